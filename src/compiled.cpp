// The library of the optional compiled mode (target ckpt::compiled; see
// include/ckpt/compiled.hpp): the explicit instantiations that programs
// built with CKPT_COMPILED call instead of compiling them in every
// translation unit. The list is compiled.hpp's own, turned into definitions.

#define CKPT_COMPILED_INSTANTIATE
#include "ckpt/compiled.hpp"
