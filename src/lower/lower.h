// Lowering: a workload and its schedule become loop-IR functions.
#pragma once

#include "ir/ir.h"
#include "schedules/schedule.h"
#include "support/error.h"
#include "target/target.h"

#include <string>
#include <vector>

namespace tessel::lower {

// One loop-IR function: `args` are handle variables bound to `arg_tensors`.
struct LoweredFunc {
  std::string name;
  std::vector<ir::Expr> args;
  std::vector<ir::Tensor> arg_tensors;
  ir::Stmt body;
};

// What a schedule lowers to: the kernel, plus one function per constant input
// the schedule re-lays-out ahead of time (args: the input, then its packed
// form). The kernel reads the packed tensors as inputs; its arguments are the
// workload inputs it still reads, then the packed tensors, then the outputs.
struct LoweredProgram {
  std::vector<LoweredFunc> prepack;
  LoweredFunc kernel;
  std::vector<ir::Tensor> inputs, outputs; // the workload's, in argument order
};

Expected<LoweredProgram> lower(const sched::Schedule &schedule, const std::string &name);

// GPU-bound loops (blocks, threads, virtual threads) become serial loops, so a
// GPU schedule's index arithmetic and memory regions can be checked on the CPU
// against the interpreter. Sound because every loop bound to threads that
// shares data is followed by the loops reading it only after it completes.
// Also runs CUDA tensor intrinsics (WMMA) through their CPU emulations.
LoweredProgram emulate_gpu_on_cpu(LoweredProgram p);

// Tensor-intrinsic calls (of intrinsics of target kind `kind`, or all when
// empty) become calls of their portable emulations (schedules/intrinsics.h), so
// a schedule tensorized for hardware this machine lacks (AMX, tensor cores)
// can be checked here against the interpreter. Not a timing.
LoweredProgram emulate_intrinsics(LoweredProgram p, const std::string &kind = "");

// What a GPU kernel of this program needs from the device, and whether it fits.
struct GpuResources {
  int64_t threads_per_block = 1; // product of the threadIdx extents
  int64_t blocks = 1;            // product of the blockIdx extents
  int64_t vthreads = 1;
  int64_t shared_bytes = 0;                 // shared-memory allocations, and a staging copy of fragments per warp
  int64_t local_bytes = 0;                  // per-thread local (register) arrays, fragments' share included
  int64_t thread_x_extent = 0;              // the largest threadIdx.x extent; 0 when no loop binds it
  std::vector<std::string> warp_intrinsics; // warp-level tensor intrinsics the kernel calls
};
GpuResources gpu_resources(const LoweredFunc &f);
// Registers per thread the kernel is expected to take (local arrays, plus room for addresses and loop
// state) before it is compiled; the cubin says how many it takes.
int64_t estimated_registers(const GpuResources &r);
// Checks the resources against a CUDA target's limits; errors say which limit.
Status check_gpu_limits(const LoweredFunc &f, const Target &target);

// The passes, in the order lower() runs them (each is usable alone in tests).
ir::Stmt schedule_to_loops(const sched::Schedule &schedule);                     // loop nests per stage
ir::Stmt stage_to_loops(const sched::Schedule &schedule, const sched::Stage &s); // one stage alone
ir::Stmt storage_flatten(const ir::Stmt &s, const std::vector<ir::Tensor> &args,
                         const std::vector<ir::Expr> &arg_vars); // tensors -> flat buffers
ir::Stmt partition_loops(const ir::Stmt &s);      // loops over padding -> boundaries and a guard-free interior
ir::Stmt tensorize_loops(const ir::Stmt &s);      // tensorized tiles -> kernel calls
ir::Stmt vectorize_loops(const ir::Stmt &s);      // vector loops -> vector IR
ir::Stmt unroll_loops(const ir::Stmt &s);         // unrolled loops -> copies (up to 1024 statements a nest)
ir::Stmt promote_accumulators(const ir::Stmt &s); // elements a serial loop updates in place -> locals (CPU)

} // namespace tessel::lower
