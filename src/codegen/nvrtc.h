// CUDA C++ source -> cubin with NVRTC, and the resources (registers, shared and local memory) of each kernel read
// back from the cubin, for the CUDA back end. NVRTC is loaded at run time (dlopen), so Tessel builds and runs
// without the CUDA toolkit; only compiling CUDA needs it. NVRTC needs no GPU or driver.
#pragma once

#include "support/error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessel::codegen {

// Per-kernel resources read back from a compiled cubin.
struct CubinKernel {
  std::string name;                // the kernel's (extern "C") symbol
  int registers = 0;               // registers per thread
  int64_t static_shared_bytes = 0; // __shared__ arrays declared in the source
  int64_t local_bytes = 0;         // per-thread local memory (stack frame / spills)
  int64_t param_bytes = 0;         // parameter bytes (0 if unknown)
};

struct CudaBinary {
  std::string cubin;          // ELF bytes for the driver API (cuModuleLoadData)
  std::string log;            // NVRTC's log (warnings)
  double compile_seconds = 0; // of the compilation that produced it, also when served from the cache
  bool cached = false;        // served from a cache (in process or on disk)
  std::vector<CubinKernel> kernels;
};

// Whether NVRTC can be loaded here; on false, *why says what is missing and how to fix it.
bool nvrtc_available(std::string *why = nullptr);

// CUDA C++ source -> cubin for `arch` ("sm_90", "sm_80", "sm_90a"), via NVRTC loaded at run time. Compiled with
// -std=c++17 -default-device and without --use_fast_math (IEEE results); <mma.h>, <cuda_fp16.h>, <cuda_bf16.h> (and
// <cuda/std/...>, from include/cccl) come from the toolkit's include directory. Cached by (source, arch, options,
// NVRTC version): in process, up to 256 binaries, and on disk under $TESSEL_CACHE_DIR/nvrtc (default
// $XDG_CACHE_HOME/tessel or ~/.cache/tessel; TESSEL_CACHE_DIR=off disables it), up to 4096 binaries.
Expected<CudaBinary> compile_cuda(const std::string &source, const std::string &arch);

// Resources of every kernel (__global__ function) in a cubin (ELF) image; a malformed image is an error.
Expected<std::vector<CubinKernel>> cubin_kernels(const std::string &cubin);

} // namespace tessel::codegen
