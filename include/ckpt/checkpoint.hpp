#pragma once

// Checkpoint<State>: one call saves a described state (see describe.hpp),
// one call restores it.
//
//   ckpt::Checkpoint<TrainState> checkpoint;
//   checkpoint.save("step-100.safetensors", state);
//   checkpoint.load("step-100.safetensors", state);   // strict: throws MismatchError listing every problem

#include <string>
#include <utility>

#include "ckpt/describe.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/writer.hpp"

namespace ckpt {

struct LoadOptions {
  // Strict: any missing, unexpected, wrong-dtype or wrong-shape tensor (or a
  // missing or mistyped metadata value) fails the load before anything is
  // loaded. Otherwise what matches is loaded and the rest reported.
  bool strict = true;
  // Applies when Checkpoint opens the file itself; a Reader passed in keeps its own options.
  bool verify_checksums = true;
};

namespace detail {

template <class State>
CollectedState collect_state(const State& state, const std::string& file) {
  SavingArchive archive(file);
  // describe() takes its object non-const so that one function serves saving
  // and loading; the saving archive only reads, so the cast never leads to a write.
  archive.visit_root(const_cast<State&>(state));
  return std::move(archive).take();
}

}  // namespace detail

// What a save of `state` writes: views into `state` (valid while it lives and
// is not resized) and its metadata. Throws ArgumentError on a bad or
// duplicate name.
template <class State>
CollectedState collect_state(const State& state) {
  return detail::collect_state(state, "");
}

// Loads `state` from an open checkpoint; see LoadOptions::strict.
template <class State>
LoadReport load_state(const Reader& reader, State& state, bool strict = true) {
  LoadingArchive archive(reader);
  archive.visit_root(state);
  return archive.finish(strict);
}

template <class State>
class Checkpoint {
 public:
  explicit Checkpoint(SaveOptions save = {}, LoadOptions load = {})
      : save_options_(std::move(save)), load_options_(load) {}

  // Writes atomically: an existing file at `path` stays intact if the save fails.
  SaveStats save(const std::string& path, const State& state) const {
    const CollectedState collected = detail::collect_state(state, path);
    return write_checkpoint(path, collected.tensors, collected.metadata, save_options_);
  }

  LoadReport load(const std::string& path, State& state) const {
    ReadOptions read_options;
    read_options.verify_checksums = load_options_.verify_checksums;
    read_options.threads = save_options_.threads;
    const Reader reader(path, read_options);
    return load(reader, state);
  }

  LoadReport load(const Reader& reader, State& state) const { return load_state(reader, state, load_options_.strict); }

  const SaveOptions& save_options() const noexcept { return save_options_; }
  const LoadOptions& load_options() const noexcept { return load_options_; }

 private:
  SaveOptions save_options_;
  LoadOptions load_options_;
};

}  // namespace ckpt
