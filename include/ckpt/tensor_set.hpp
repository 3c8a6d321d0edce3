#pragma once
// TensorSet moved to <ckpt/interop/tensor_set.hpp>; this path keeps working for code written before.
#include "ckpt/interop/tensor_set.hpp"
