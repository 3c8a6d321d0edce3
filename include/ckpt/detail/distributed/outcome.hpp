#pragma once

// How one rank's failure becomes every rank's failure. Each step of a
// distributed save or load runs on every rank inside a try; its outcome (a
// payload, or the error it threw) travels in the collective that follows, so
// that every rank reaches every collective whatever happened, and every rank
// then throws the same error: the one of the lowest failing rank, of the same
// kind and id, naming that rank. No rank hangs waiting for one that gave up.
//
// The collectives are templates on the communicator: any type with rank(),
// size(), all_gather(bytes), gather(bytes, root) and broadcast(bytes, root)
// (ckpt::Communicator is one).

#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ckpt/detail/distributed/wire.hpp"
#include "ckpt/detail/format/chunked.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

// The error one rank threw, as it crosses to the others.
struct RankFailure {
  int rank = 0;
  int id = 0;  // the ErrorId of a ckpt error; 0 for any other exception
  std::string file;
  std::string tensor;
  std::string detail;  // Error::message(): without the id, file and tensor
};

// The exception in flight on `rank`; call inside a catch block.
template <class = void>
RankFailure capture_failure(int rank) {
  try {
    throw;
  } catch (const Error& error) {
    return {rank, static_cast<int>(error.id()), error.file(), error.tensor(), error.message()};
  } catch (const std::exception& error) {
    return {rank, 0, "", "", error.what()};
  } catch (...) {
    return {rank, 0, "", "", "an exception of unknown type"};
  }
}

// Throws the ckpt exception class that owns `id`.
template <class = void>
[[noreturn]] void throw_error(ErrorId id, std::string file, std::string tensor, const std::string& what) {
  switch (static_cast<int>(id) / 100) {
    case 1: throw IoError(id, std::move(file), std::move(tensor), what);
    case 2: throw FormatError(id, std::move(file), std::move(tensor), what);
    case 3: throw IntegrityError(id, std::move(file), std::move(tensor), what);
    case 4: throw CodecError(id, std::move(file), std::move(tensor), what);
    case 5: throw MismatchError(id, std::move(file), std::move(tensor), what);
    case 6: throw ArgumentError(id, std::move(file), std::move(tensor), what);
    default: throw StateError(id, std::move(file), std::move(tensor), what);
  }
}

// Throws `failure` on this rank: same kind, id, file and tensor, the failing
// rank named first. Exceptions that are not ckpt errors become StateError
// state_rank_failed.
template <class = void>
[[noreturn]] void throw_rank_failure(const RankFailure& failure, int world_size, std::size_t failing_ranks) {
  std::string where = join({"rank ", failure.rank, " of ", world_size});
  if (failing_ranks > 1) {
    where += failing_ranks == static_cast<std::size_t>(world_size)
                 ? std::string(" (every rank failed)")
                 : join({" (the first of ", failing_ranks, " failing ranks)"});
  }
  if (failure.id == 0) {
    throw StateError(ErrorId::state_rank_failed, failure.file, failure.tensor,
                     join({where, " failed: ", failure.detail}));
  }
  throw_error(static_cast<ErrorId>(failure.id), failure.file, failure.tensor, join({where, ": ", failure.detail}));
}

// What a rank reports after a step: its payload, or its failure.
struct RankOutcome {
  std::optional<RankFailure> failure;
  std::string payload;
};

template <class = void>
std::string encode_outcome(const RankOutcome& outcome) {
  WireWriter writer;
  writer.u64(outcome.failure ? 1 : 0);
  if (outcome.failure) {
    const RankFailure& failure = *outcome.failure;
    writer.u64(static_cast<std::uint64_t>(failure.id)).text(failure.file).text(failure.tensor).text(failure.detail);
  }
  writer.text(outcome.payload);
  return std::move(writer).take();
}

template <class = void>
RankOutcome decode_outcome(std::string_view bytes, int rank) {
  WireReader reader(bytes);
  RankOutcome outcome;
  if (reader.u64() != 0) {
    RankFailure failure;
    failure.rank = rank;
    failure.id = static_cast<int>(reader.u64());
    failure.file = reader.text();
    failure.tensor = reader.text();
    failure.detail = reader.text();
    outcome.failure = std::move(failure);
  }
  outcome.payload = reader.text();
  reader.expect_end();
  return outcome;
}

// Runs `step` (returning this rank's payload) and catches whatever it throws.
template <class Step>
RankOutcome run_step(int rank, Step&& step) {
  RankOutcome outcome;
  try {
    outcome.payload = step();
  } catch (...) {
    outcome.failure = capture_failure(rank);
  }
  return outcome;
}

// Throws the lowest failing rank's failure, if any rank failed.
template <class = void>
void throw_first_failure(const std::vector<RankOutcome>& outcomes, int world_size) {
  const RankFailure* first = nullptr;
  std::size_t failing = 0;
  for (const RankOutcome& outcome : outcomes) {
    if (!outcome.failure) continue;
    if (first == nullptr) first = &*outcome.failure;
    ++failing;
  }
  if (first != nullptr) throw_rank_failure(*first, world_size, failing);
}

template <class = void>
std::vector<RankOutcome> decode_outcomes(const std::vector<std::string>& gathered) {
  std::vector<RankOutcome> outcomes;
  outcomes.reserve(gathered.size());
  for (std::size_t rank = 0; rank < gathered.size(); ++rank) {
    outcomes.push_back(decode_outcome(gathered[rank], static_cast<int>(rank)));
  }
  return outcomes;
}

// Every rank runs `step`; then every rank learns every outcome. Throws on
// every rank if any rank failed, else returns every rank's payload.
template <class Comm, class Step>
std::vector<std::string> all_gather_step(Comm& comm, Step&& step) {
  const RankOutcome mine = run_step(comm.rank(), std::forward<Step>(step));
  std::vector<RankOutcome> outcomes = decode_outcomes(comm.all_gather(encode_outcome(mine)));
  throw_first_failure(outcomes, comm.size());
  std::vector<std::string> payloads;
  payloads.reserve(outcomes.size());
  for (RankOutcome& outcome : outcomes) payloads.push_back(std::move(outcome.payload));
  return payloads;
}

// Every rank reaches the exchange with the outcome it already has; throws on
// every rank if any failed.
template <class Comm>
void agree_on_outcome(Comm& comm, const RankOutcome& mine) {
  throw_first_failure(decode_outcomes(comm.all_gather(encode_outcome(mine))), comm.size());
}

// Rank 0 runs `step`; every rank receives its payload, or throws its failure.
template <class Comm, class Step>
std::string broadcast_step(Comm& comm, Step&& step) {
  RankOutcome outcome;
  if (comm.rank() == 0) outcome = run_step(0, std::forward<Step>(step));
  RankOutcome received =
      decode_outcome(comm.broadcast(comm.rank() == 0 ? encode_outcome(outcome) : std::string(), 0), 0);
  if (received.failure) throw_rank_failure(*received.failure, comm.size(), 1);
  return std::move(received.payload);
}

}  // namespace ckpt::detail
