// GPU kernels: a lowered GPU program split into kernel launches, each a loop-IR
// body in which loops bound to blocks and threads have become the CUDA thread
// indices, shared memory is one block-wide arena, and synchronization is
// explicit. What the CUDA back end prints (codegen/cuda_codegen.h).
#pragma once

#include "lower/lower.h"

#include <array>

namespace tessel::lower {

// Statements the GPU kernels use beyond plain loops, as ExternCall names.
inline constexpr const char *kSyncThreads = "__syncthreads";
// tessel_block_allreduce_{sum,max,min}(&acc[0]): every thread of the block
// calls it; afterwards acc holds the combination of all threads' values.
inline constexpr const char *kBlockAllreducePrefix = "tessel_block_allreduce_";
// Register accumulators (whole warps call these): tessel_acc_fill(acc, count);
// <intrinsic>_acc(acc, tile, A, lda_m, lda_k, B, ldb_k); tessel_acc_store(acc, count,
// &staging[0], ldc, tiles_per_row, m, n).
inline constexpr const char *kAccFill = "tessel_acc_fill";
// tessel_copy8 / tessel_copy16(&dst[i], &src[j]): one aligned 8- or 16-byte move (a vectorized copy,
// e.g. a cooperative fetch into shared memory, as float2 / float4); tessel_copy8_lanes /
// tessel_copy16_lanes(&dst[i], v0, v1, ...): 4-byte values stored in one aligned move (a vectorized
// write-back of a thread's tile).
inline constexpr const char *kCopyPrefix = "tessel_copy";
inline constexpr const char *kAccStore = "tessel_acc_store";

// A buffer in the block's shared-memory arena (shared stages, and warp
// accumulators of tensor-core tiles, one copy per warp).
struct SharedBuffer {
  ir::Expr buffer; // handle variable the body indexes
  ir::DataType dtype;
  int64_t elements = 0; // all copies together
  int64_t offset = 0;   // bytes from the arena's start (aligned to 128)
  bool fragment = false;
};

// Tensor-core accumulators kept in registers (WMMA fragments) across a tile's k
// loop: a Local allocation of `count` M x N tiles the printer declares as fragments.
struct RegisterAccumulator {
  ir::Expr buffer;
  ir::DataType dtype; // f32 or i32
  int m = 0, n = 0, k = 0;
  int64_t count = 0;
};

struct GpuKernel {
  std::string name;
  ir::Stmt body; // uses the variables in `thread_indices`
  std::array<int64_t, 3> grid{1, 1, 1}, block{1, 1, 1};
  std::vector<ir::Expr> params; // global buffers (handle variables) it reads or writes, in order
  std::vector<SharedBuffer> shared;
  int64_t shared_bytes = 0;                      // the arena: dynamic shared memory at launch
  std::vector<RegisterAccumulator> accumulators; // Local allocations printed as WMMA fragments
  // Every index value (loop variables, lets, every integer subexpression) provably fits 32 bits:
  // index arithmetic may be 32-bit, which GPUs do natively (64-bit multiplies take several instructions).
  bool index32 = false;
  // Variables named "blockIdx.x", "threadIdx.y", ... standing for the CUDA indices.
  std::vector<ir::Expr> thread_indices;
};

// A device buffer the program needs between kernels (an intermediate stage).
struct Workspace {
  ir::Expr buffer;
  ir::DataType dtype;
  int64_t elements = 0;
};

struct GpuProgram {
  std::string name;
  std::vector<ir::Expr> args;          // the kernel function's arguments (handle variables)
  std::vector<ir::Tensor> arg_tensors; // and their tensors
  std::vector<Workspace> workspace;
  std::vector<GpuKernel> kernels; // launched in order
};

// Splits a lowered GPU program into kernels: one per top-level loop nest. A
// nest with no GPU-bound loop runs as one thread. Fails with the reason on
// what the CUDA back end cannot express (vector IR, CPU micro-kernels,
// packing stages, a barrier under a thread-dependent branch).
Expected<GpuProgram> lower_gpu_kernels(const LoweredProgram &p, const Target &target);

} // namespace tessel::lower
