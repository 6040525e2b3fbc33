// The CUDA back end's code generator: a lowered GPU program becomes one CUDA
// C++ source with a __global__ function per kernel (lower/gpu_kernels.h says
// how the program is split and what each kernel's loops became). NVRTC
// compiles the source for the device (codegen/nvrtc.h); the same source also
// compiles as C++ on a CPU, where `<name>_host_run` runs every kernel under a
// thread-per-CUDA-thread emulation: a check of the generated code itself
// against the interpreter on machines without a GPU.
#pragma once

#include "lower/gpu_kernels.h"

#include <string>

namespace tessel::codegen {

struct CudaSource {
  std::string source;        // the prelude, the kernels, and (for C++ compilers) the host emulation entry
  lower::GpuProgram program; // launches in order: grid, block, dynamic shared memory, parameters
  std::string host_entry;    // extern "C" int NAME(void **args): args as the program's, emulated on the CPU
};

Expected<CudaSource> generate_cuda(const lower::LoweredProgram &p, const Target &target);

// The C type a buffer of `t` holds on the device ("float", "tessel_f16", ...).
std::string cuda_storage_type(ir::DataType t);

} // namespace tessel::codegen
