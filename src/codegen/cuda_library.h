// Kernel libraries for CUDA targets: each kernel's cubin embedded in one C
// source with a host-side launcher per kernel over the CUDA driver API, and a
// C header that needs no CUDA header. The C ABI of kernel NAME of workload W:
//
//   int32_t NAME(tessel_device_ptr input..., tessel_device_ptr output..., void *stream);
//
// Arguments are device pointers (CUdeviceptr) to dense row-major buffers, 16-byte
// aligned (kernels may move 16 bytes at a time), in W's order; `stream` is a CUstream / cudaStream_t (0: the default
// stream). The kernels run on the calling thread's current CUDA context; on the first call NAME loads its module there
// and allocates the workspace it keeps between kernels. It returns 0 or the CUresult of what failed. Calls of one
// kernel share its workspace, so they must not overlap on different streams.
#pragma once

#include "codegen/cuda_compiler.h"

namespace tessel::codegen {

struct CudaLibraryKernel {
  std::string name; // C symbol (a C identifier)
  CudaProgram program;
  std::vector<ir::Tensor> inputs, outputs; // the workload's, in order
  std::vector<std::string> doc;            // lines for its header comment
};

std::string cuda_library_header(const std::vector<CudaLibraryKernel> &kernels, const std::string &library_name,
                                const std::vector<std::string> &doc = {});
// C99 source of every launcher, with the cubins as byte arrays; compile with the CUDA toolkit's
// include directory and link -lcuda.
std::string cuda_library_source(const std::vector<CudaLibraryKernel> &kernels, const std::string &library_name);

} // namespace tessel::codegen
