#pragma once

// The whole public surface of ckpt that needs only its required dependencies
// (nlohmann_json, xxHash, and zstd when built with CKPT_WITH_ZSTD). Adapters
// and formats with dependencies of their own (Eigen, libtorch, .npz through
// libzip, HDF5) have their own headers under ckpt/adapters/ and ckpt/interop/;
// distributed checkpoints have <ckpt/distributed.hpp>.
// docs/architecture.md shows how the headers fit together.

// Vocabulary: errors, element types, tensors, names.
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/names.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/version.hpp"

// Codecs and the checkpoint file: writing and reading named tensors.
#include "ckpt/codec.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/writer.hpp"

// A user's state: how it is described, saved and loaded.
#include "ckpt/checkpoint.hpp"
#include "ckpt/describe.hpp"
#include "ckpt/load_report.hpp"
#include "ckpt/optim.hpp"
#include "ckpt/tensor_traits.hpp"

// The shards a describe() can name (box_shard, flat_shard, replicated). The
// distributed checkpoint that saves and loads them is <ckpt/distributed.hpp>.
#include "ckpt/distributed/sharding.hpp"

// The training loop's policy object.
#include "ckpt/manager.hpp"
#include "ckpt/manager_policies.hpp"

// Tensors loaded whole from another format (what load_npz and load_hdf5 return).
#include "ckpt/interop/tensor_set.hpp"

// With the CMake target ckpt::compiled (CKPT_COMPILED), the file format's code
// is compiled once in that library instead of in every translation unit.
#include "ckpt/compiled.hpp"
