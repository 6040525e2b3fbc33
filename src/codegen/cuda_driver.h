// Running compiled CUDA programs (codegen/cuda_compiler.h) on an NVIDIA GPU
// through the CUDA driver API, loaded at run time (dlopen("libcuda.so.1")) so
// that Tessel builds and runs everything else on machines without a driver.
#pragma once

#include "codegen/cuda_compiler.h"

namespace tessel::codegen {

struct CudaDevice {
  int ordinal = 0;
  std::string name;         // "NVIDIA H200"
  int major = 0, minor = 0; // compute capability
  int sm_count = 0;
  int64_t memory_bytes = 0;
  std::string arch() const { return "sm_" + std::to_string(major) + std::to_string(minor); }
};

// Whether a CUDA driver and a device are here; on false, *why says what is missing.
bool cuda_driver_available(std::string *why = nullptr);
Expected<CudaDevice> cuda_device(int ordinal = 0);
// Whether kernels compiled for `target` run here: for CPUs Target::runnable_here(); for CUDA targets a
// driver and a GPU whose compute capability is at least the target's.
Status runnable_here(const Target &target);

struct CudaRunOptions {
  int warmup = 1;
  int repeats = 5;
  int64_t flush_bytes = 0; // > 0: overwrite a buffer of this size between repeats (flushes L2)
};

// Copies `args` (host buffers in the program's argument order, `bytes` each) to the device, runs every
// kernel once and copies the outputs back into `args`, then times `repeats` runs of the whole program
// with CUDA events. Returns the seconds of each repeat. A kernel fault is an error naming the kernel; the
// CUDA context may then be unusable, so callers that go on run this in a process of its own.
Expected<std::vector<double>> run_cuda_program(const CudaCode &code, const std::vector<void *> &args,
                                               const std::vector<int64_t> &bytes, const CudaRunOptions &options,
                                               int device = 0);

} // namespace tessel::codegen
