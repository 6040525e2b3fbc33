// Tessel's version (the CMake project version) and the LLVM it generates code
// with: recorded with every tuning run and kernel library, and part of the keys
// of compiled-kernel caches.
#pragma once

#include <string>

#ifndef TESSEL_VERSION
#error "TESSEL_VERSION is defined by the top-level CMakeLists.txt"
#endif

namespace tessel {
inline std::string version() { return TESSEL_VERSION; }
} // namespace tessel
