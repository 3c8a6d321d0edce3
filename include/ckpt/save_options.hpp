#pragma once

// What a save is asked to do and what it reports (SaveOptions, SaveStats),
// and the declarations writer.hpp and the save's detail headers share.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/codecs/policy.hpp"
#include "ckpt/incremental.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

struct SaveOptions {
  CodecPolicy codecs{"raw"};
  std::size_t chunk_bytes = std::size_t(4) << 20;  // raw bytes per codec chunk
  unsigned threads = 0;                            // encode threads; 0 = hardware_concurrency
  bool durable = true;                             // fsync file and directory
  IncrementalOptions incremental;                  // a parent to reference unchanged tensors in (incremental.hpp)
};

struct SaveStats {
  std::uint64_t file_bytes = 0;
  std::uint64_t tensor_bytes = 0;      // logical (decoded) bytes of all tensors
  std::uint64_t referenced_bytes = 0;  // of those, the bytes an incremental save referenced instead of writing
  double seconds = 0;
};

namespace detail {
template <class Void>
struct ContentPlan;
// Who makes a saved file's data durable: the save, as SaveOptions::durable
// says, or its caller, which fsyncs the file by name once the save returned
// (a distributed rank file, whose directory one rank fsyncs for all). Data
// that will be synced is sent to disk as it is written.
enum class DataSync { by_options, by_caller };
template <class Void>
SaveStats write_content_plan(const std::string& path, const std::vector<NamedTensor>& stored,
                             const nlohmann::json& metadata, const SaveOptions& options,
                             const ContentPlan<Void>& content, const std::vector<std::size_t>* by_name = nullptr,
                             DataSync sync = DataSync::by_options);

// A save's arguments, checked, as write_checkpoint hands them to the save
// against a parent.
struct SaveRequest {
  const std::string& path;
  const std::vector<NamedTensor>& tensors;
  const nlohmann::json& metadata;
  const SaveOptions& options;
  const std::vector<std::size_t>& by_name;  // the positions of `tensors` sorted by name
  std::chrono::steady_clock::time_point start;
};

// The save a ParentCheckpoint was given with.
class ParentAccess {
 public:
  static SaveStats save(const SaveRequest& request) { return request.options.incremental.parent.save_(request); }
};
}  // namespace detail

}  // namespace ckpt
