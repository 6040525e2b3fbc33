// The CUDA back end's compile step: a lowered GPU program becomes CUDA C++
// (codegen/cuda_codegen.h), NVRTC compiles it for the target's architecture
// (codegen/nvrtc.h), and each kernel's resources, read back from the cubin,
// are checked against the target's limits before anything is measured.
#pragma once

#include "codegen/cpu_compiler.h"
#include "codegen/cuda_codegen.h"
#include "codegen/nvrtc.h"

namespace tessel::codegen {

// One kernel's launch and what it takes of an SM.
struct CudaKernelUsage {
  std::string name;
  std::array<int64_t, 3> grid{1, 1, 1}, block{1, 1, 1};
  int registers = 0;
  int64_t shared_bytes = 0; // static (the cubin's) plus the dynamic arena
  int64_t local_bytes = 0;  // per thread: spills and stack
};

// What a runner needs to run a compiled program on any machine with a GPU: the
// cubin and how to launch it (no IR; it travels to workers and device servers).
struct CudaCode {
  std::string cubin;
  struct Kernel {
    std::string name;
    std::array<int64_t, 3> grid{1, 1, 1}, block{1, 1, 1};
    int64_t shared_bytes = 0; // dynamic: the kernel's arena
    std::vector<int> params;  // < args.size(): that program argument; else workspace[i - args.size()]
    int registers = 0;        // per thread, read back from the cubin (for the cost model)
    int64_t local_bytes = 0;  // per thread: spills and stack, from the cubin
  };
  std::vector<Kernel> kernels; // launched in order
  std::vector<int64_t> workspace_bytes;
  std::vector<std::pair<ObjectCode::Source, int>> args; // each program argument: a workload input or output
  bool empty() const { return cubin.empty(); }
};

struct CudaProgram {
  CudaSource source;
  CudaBinary binary;
  std::vector<CudaKernelUsage> usage; // per kernel, in launch order
  CudaCode code;
  std::string over_limits; // why a kernel does not fit the target (empty: all fit)
};

// Generates, compiles and checks the kernels against the target's limits (`over_limits` says which
// limit a kernel exceeds: such a program compiles, but must not be launched).
Expected<CudaProgram> compile_cuda_program(const lower::LoweredProgram &p, const Target &target);

// The per-kernel usage of a compiled source, and whether it fits `target`.
Expected<std::vector<CudaKernelUsage>> cuda_kernel_usage(const CudaSource &src, const CudaBinary &bin);
Status check_cuda_limits(const std::vector<CudaKernelUsage> &usage, const Target &target);

// A table of the kernels' launches and resources (for `tessel show --resources`).
Expected<std::string> cuda_resource_report(const CudaSource &src, const Target &target);

} // namespace tessel::codegen
