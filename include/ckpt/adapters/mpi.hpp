#pragma once

// ckpt::Communicator over MPI, for DistributedCheckpoint: link ckpt::mpi
// (find_package(ckpt CONFIG REQUIRED COMPONENTS mpi)). The only ckpt header
// that includes <mpi.h>; the rest of ckpt never needs MPI.
//
//   ckpt::MpiSession mpi(argc, argv);               // MPI_Init_thread .. MPI_Finalize, if the program owns MPI
//   ckpt::MpiCommunicator world;                    // MPI_COMM_WORLD, or any communicator
//   ckpt::DistributedCheckpoint<State> checkpoint(world);

#include <mpi.h>

#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/distributed/communicator.hpp"
#include "ckpt/error.hpp"

namespace ckpt {

class MpiCommunicator final : public Communicator {
 public:
  // Uses `comm` (not owned) of an initialised MPI library.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  MPI_Comm comm() const noexcept { return comm_; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  std::vector<std::string> all_gather(std::string_view bytes) override {
    std::vector<int> sizes(static_cast<std::size_t>(size_));
    const int mine = count_of(bytes.size());
    check(MPI_Allgather(&mine, 1, MPI_INT, sizes.data(), 1, MPI_INT, comm_), "MPI_Allgather");
    const std::vector<int> offsets = offsets_of(sizes);
    std::string all(static_cast<std::size_t>(offsets.back() + sizes.back()), '\0');
    check(MPI_Allgatherv(bytes.data(), mine, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE, comm_),
          "MPI_Allgatherv");
    return split(all, sizes, offsets);
  }

  std::vector<std::string> gather(std::string_view bytes, int root) override {
    const bool is_root = rank_ == root;
    std::vector<int> sizes(is_root ? static_cast<std::size_t>(size_) : 0);
    const int mine = count_of(bytes.size());
    check(MPI_Gather(&mine, 1, MPI_INT, sizes.data(), 1, MPI_INT, root, comm_), "MPI_Gather");
    if (!is_root) {
      check(MPI_Gatherv(bytes.data(), mine, MPI_BYTE, nullptr, nullptr, nullptr, MPI_BYTE, root, comm_), "MPI_Gatherv");
      return {};
    }
    const std::vector<int> offsets = offsets_of(sizes);
    std::string all(static_cast<std::size_t>(offsets.back() + sizes.back()), '\0');
    check(MPI_Gatherv(bytes.data(), mine, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE, root, comm_),
          "MPI_Gatherv");
    return split(all, sizes, offsets);
  }

  std::string broadcast(std::string_view bytes, int root) override {
    int size = rank_ == root ? count_of(bytes.size()) : 0;
    check(MPI_Bcast(&size, 1, MPI_INT, root, comm_), "MPI_Bcast");
    std::string received = rank_ == root ? std::string(bytes) : std::string(static_cast<std::size_t>(size), '\0');
    check(MPI_Bcast(received.data(), size, MPI_BYTE, root, comm_), "MPI_Bcast");
    return received;
  }

  // Background collectives need MPI_THREAD_MULTIPLE; with a lower level an
  // asynchronous save commits at the next call instead.
  bool allows_background_collectives() const override {
    int provided = MPI_THREAD_SINGLE;
    MPI_Query_thread(&provided);
    return provided == MPI_THREAD_MULTIPLE;
  }

  std::unique_ptr<Communicator> duplicate() override {
    MPI_Comm copy = MPI_COMM_NULL;
    check(MPI_Comm_dup(comm_, &copy), "MPI_Comm_dup");
    auto duplicate = std::make_unique<MpiCommunicator>(copy);
    duplicate->owned_ = true;
    return duplicate;
  }

 private:
  // Only under MPI_ERRORS_RETURN does a failed call come back at all.
  static void check(int result, const char* call) {
    if (result == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    MPI_Error_string(result, text, &length);
    throw StateError(ErrorId::state_rank_failed, "", "",
                     detail::join({call, " failed: ", std::string_view(text, length)}));
  }
  static int count_of(std::size_t bytes) {
    if (bytes > static_cast<std::size_t>(INT_MAX)) {
      throw ArgumentError(ErrorId::argument_invalid, "", "",
                          detail::join({"expected a message between ranks below 2 GiB, found ", bytes, " bytes"}));
    }
    return static_cast<int>(bytes);
  }
  static std::vector<int> offsets_of(const std::vector<int>& sizes) {
    std::vector<int> offsets(sizes.size(), 0);
    long long total = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      offsets[i] = static_cast<int>(total);
      total += sizes[i];
      if (total > INT_MAX) count_of(static_cast<std::size_t>(total));
    }
    return offsets;
  }
  static std::vector<std::string> split(const std::string& all, const std::vector<int>& sizes,
                                        const std::vector<int>& offsets) {
    std::vector<std::string> parts;
    parts.reserve(sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) parts.push_back(all.substr(offsets[i], sizes[i]));
    return parts;
  }

  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
  bool owned_ = false;
};

// Initialises MPI for a program that owns it (MPI_Init_thread, asking for
// MPI_THREAD_MULTIPLE so that asynchronous saves commit in the background)
// and finalises it at the end of the scope.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv, int required = MPI_THREAD_MULTIPLE) {
    MPI_Init_thread(&argc, &argv, required, &provided_);
  }
  ~MpiSession() { MPI_Finalize(); }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  // The thread level the library granted (MPI_THREAD_SINGLE .. MPI_THREAD_MULTIPLE).
  int provided() const noexcept { return provided_; }

 private:
  int provided_ = MPI_THREAD_SINGLE;
};

}  // namespace ckpt
