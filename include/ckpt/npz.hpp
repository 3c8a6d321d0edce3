#pragma once
// NumPy .npz export and import moved to <ckpt/interop/npz.hpp>; this path keeps working for code written before.
#include "ckpt/interop/npz.hpp"
