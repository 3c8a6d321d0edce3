#pragma once

// Distributed checkpoints: one directory saved by every rank and loaded by any
// number of ranks (docs/distributed.md), and DistributedCheckpointManager,
// the manager across ranks (docs/manager.md). Kept out of <ckpt/ckpt.hpp> because
// most programs save one process's state and would otherwise compile the
// save and load protocols, the index and the directory code in every
// translation unit (README, "Compile time"). The shard descriptors that
// describe() names (box_shard, flat_shard, replicated) stay in <ckpt/ckpt.hpp>,
// so one describe() serves both checkpoints. The MPI communicator is in
// <ckpt/adapters/mpi.hpp> (target ckpt::mpi).

#include "ckpt/ckpt.hpp"
#include "ckpt/distributed/checkpoint.hpp"
#include "ckpt/distributed/communicator.hpp"
#include "ckpt/distributed/directory.hpp"
#include "ckpt/distributed/manager.hpp"
#include "ckpt/distributed/sharding.hpp"
