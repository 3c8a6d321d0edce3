#pragma once
// The libtorch adapter moved to <ckpt/adapters/torch.hpp>; this path keeps working for code written before.
#include "ckpt/adapters/torch.hpp"
