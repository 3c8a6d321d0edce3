#pragma once

// Library version; the CMake project version is read from these lines.
#define CKPT_VERSION_MAJOR 0
#define CKPT_VERSION_MINOR 1
#define CKPT_VERSION_PATCH 0

namespace ckpt {

// Layout version written into every checkpoint; a reader refuses files with a
// larger number (see docs/format.md).
inline constexpr int format_version = 2;

}  // namespace ckpt
