#pragma once

// The whole public surface of ckpt. Optional adapters (Eigen, libtorch, HDF5)
// have their own headers and are not included here.
#include "ckpt/version.hpp"
#include "ckpt/error.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/codec.hpp"
