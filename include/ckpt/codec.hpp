#pragma once

// The codec API: the Codec interface, the registry of codecs by name and the
// policy that picks a codec per tensor. Each lives in its own header under
// ckpt/codecs/; this one includes them all.

#include "ckpt/codecs/codec.hpp"
#include "ckpt/codecs/policy.hpp"
#include "ckpt/codecs/raw.hpp"
#include "ckpt/codecs/registry.hpp"
