#pragma once
// The Eigen adapter moved to <ckpt/adapters/eigen.hpp>; this path keeps working for code written before.
#include "ckpt/adapters/eigen.hpp"
