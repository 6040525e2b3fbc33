// Kernel libraries: the ahead-of-time form of (tuned) programs that applications
// link. A library is one static archive, its object files and one C header.
//
// The C ABI of a kernel NAME of workload W (inputs, then outputs, in W's order):
//
//   int32_t NAME(const TI *input..., TO *output..., int32_t num_threads);
//
// and, when W has constant inputs (weights, marked `const` in W), for each one X:
//
//   int64_t NAME_X_packed_bytes(void);             // size of X's packed form
//   void NAME_pack_X(const TX *X, void *X_packed); // fills it (64-byte aligned buffer)
//   int32_t NAME_prepacked(<inputs, each constant one as const void *X_packed>,
//                          TO *output..., int32_t num_threads);
//
// The ABI depends only on the workload, never on the schedule: re-tuning changes
// what a packed form holds and how big it is, not how it is called. NAME packs
// constants on every call (into scratch memory); pack once and call
// NAME_prepacked in a loop. num_threads <= 0 uses one thread per hardware
// thread. Every function returns 0. The runtime (libtessel_runtime.a) is linked
// beside the library; it sets the thread count process-wide, so concurrent
// callers should agree on it.
#pragma once

#include "lower/lower.h"
#include "support/error.h"
#include "target/target.h"

#include <string>
#include <vector>

namespace tessel::codegen {

struct LibraryKernel {
  std::string name;              // C symbol of the kernel (a C identifier)
  lower::LoweredProgram program; // lowered with any function names: they are made internal
  std::vector<std::string> doc;  // lines for its header comment (workload, record used, ...)
};

// One relocatable object (ELF) holding the kernel behind its C ABI.
Expected<std::string> library_object(const LibraryKernel &kernel, const Target &target);

// The C header declaring every kernel's ABI; valid C99 and C++.
std::string library_header(const std::vector<LibraryKernel> &kernels, const std::string &library_name,
                           const std::vector<std::string> &doc = {});

// A static archive (GNU format, with a symbol table, deterministic) of named objects.
Status write_archive(const std::string &path, const std::vector<std::pair<std::string, std::string>> &members);

// "lib<name>.a"-style checks: a C identifier (letters, digits, '_', not starting with a digit).
bool is_c_identifier(const std::string &s);

} // namespace tessel::codegen
