#pragma once
// HDF5 export and import moved to <ckpt/interop/hdf5.hpp>; this path keeps working for code written before.
#include "ckpt/interop/hdf5.hpp"
