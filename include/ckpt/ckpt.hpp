#pragma once

// The whole public surface of ckpt. Optional adapters (Eigen, libtorch, HDF5)
// have their own headers and are not included here.
#include "ckpt/version.hpp"
#include "ckpt/error.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/codec.hpp"
#include "ckpt/writer.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/tensor_set.hpp"
#include "ckpt/names.hpp"
#include "ckpt/tensor_traits.hpp"
#include "ckpt/describe.hpp"
#include "ckpt/checkpoint.hpp"
#include "ckpt/optim.hpp"
#include "ckpt/manager_policies.hpp"
#include "ckpt/manager.hpp"
#if defined(CKPT_WITH_ZSTD)
#include "ckpt/codecs/zstd.hpp"
#endif
