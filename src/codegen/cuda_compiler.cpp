#include "codegen/cuda_compiler.h"

#include <cstdio>
#include <sstream>

namespace tessel::codegen {

Expected<std::vector<CudaKernelUsage>> cuda_kernel_usage(const CudaSource &src, const CudaBinary &bin) {
  std::vector<CudaKernelUsage> out;
  for (auto &k : src.program.kernels) {
    const CubinKernel *c = nullptr;
    for (auto &x : bin.kernels)
      if (x.name == k.name) c = &x;
    if (!c) return make_error("kernel " + k.name + " is missing from the compiled cubin");
    CudaKernelUsage u;
    u.name = k.name, u.grid = k.grid, u.block = k.block;
    u.registers = c->registers;
    u.shared_bytes = c->static_shared_bytes + k.shared_bytes;
    u.local_bytes = c->local_bytes;
    out.push_back(u);
  }
  return out;
}

Status check_cuda_limits(const std::vector<CudaKernelUsage> &usage, const Target &target) {
  if (!target.gpu) return Status::error("target " + target.name + " has no GPU limits");
  const GpuLimits &g = *target.gpu;
  for (auto &u : usage) {
    int64_t threads = u.block[0] * u.block[1] * u.block[2];
    std::string where = u.name + " on " + target.name + ": ";
    if (threads > g.max_threads_per_block)
      return Status::error(where + std::to_string(threads) + " threads per block exceed the " +
                           std::to_string(g.max_threads_per_block) + " allowed");
    if (u.grid[0] > 2147483647 || u.grid[1] > 65535 || u.grid[2] > 65535)
      return Status::error(where + "the grid exceeds CUDA's limits (x < 2^31, y and z < 65536)");
    if (u.shared_bytes > g.shared_memory_per_block)
      return Status::error(where + std::to_string(u.shared_bytes) + " bytes of shared memory exceed the " +
                           std::to_string(g.shared_memory_per_block) + " a block may use");
    if (u.registers > g.max_registers_per_thread)
      return Status::error(where + std::to_string(u.registers) + " registers per thread exceed the " +
                           std::to_string(g.max_registers_per_thread) + " allowed");
    // Registers are given out per warp; a block must fit the SM's register file to launch at all.
    int64_t warps = (threads + g.warp_size - 1) / g.warp_size;
    if (warps * g.warp_size * int64_t(u.registers) > g.registers_per_sm)
      return Status::error(where + std::to_string(threads) + " threads x " + std::to_string(u.registers) +
                           " registers exceed the SM's register file (" + std::to_string(g.registers_per_sm) + ")");
  }
  return Status::ok();
}

Expected<CudaProgram> compile_cuda_program(const lower::LoweredProgram &p, const Target &target) {
  auto src = generate_cuda(p, target);
  if (!src) return make_error(src.error());
  auto bin = compile_cuda(src->source, target.gpu ? target.gpu->arch : target.cpu);
  if (!bin) return make_error(bin.error());
  auto usage = cuda_kernel_usage(*src, *bin);
  if (!usage) return make_error(usage.error());
  Status fits = check_cuda_limits(*usage, target);
  CudaProgram prog{src.take(), bin.take(), usage.take(), {}, fits.message()};
  const lower::GpuProgram &g = prog.source.program;
  CudaCode &c = prog.code;
  c.cubin = prog.binary.cubin;
  for (auto &w : g.workspace) c.workspace_bytes.push_back(w.elements * w.dtype.bytes());
  for (auto &t : g.arg_tensors) {
    for (size_t i = 0; i < p.inputs.size(); ++i)
      if (p.inputs[i] == t) c.args.push_back({ObjectCode::Source::Input, int(i)});
    for (size_t i = 0; i < p.outputs.size(); ++i)
      if (p.outputs[i] == t) c.args.push_back({ObjectCode::Source::Output, int(i)});
  }
  if (c.args.size() != g.arg_tensors.size())
    return make_error("internal: a CUDA kernel argument is neither a workload input nor an output");
  for (auto &k : g.kernels) {
    CudaCode::Kernel ck{k.name, k.grid, k.block, k.shared_bytes, {}};
    for (auto &u : prog.usage)
      if (u.name == k.name) ck.registers = u.registers, ck.local_bytes = u.local_bytes;
    for (auto &b : k.params) {
      int index = -1;
      for (size_t i = 0; i < g.args.size(); ++i)
        if (g.args[i].same_as(b)) index = int(i);
      for (size_t i = 0; i < g.workspace.size(); ++i)
        if (g.workspace[i].buffer.same_as(b)) index = int(g.args.size() + i);
      if (index < 0)
        return make_error("internal: kernel " + k.name + " uses a buffer that is neither argument nor workspace");
      ck.params.push_back(index);
    }
    c.kernels.push_back(ck);
  }
  return prog;
}

Expected<std::string> cuda_resource_report(const CudaSource &src, const Target &target) {
  auto bin = compile_cuda(src.source, target.gpu ? target.gpu->arch : target.cpu);
  if (!bin) return make_error(bin.error());
  auto usage = cuda_kernel_usage(src, *bin);
  if (!usage) return make_error(usage.error());
  std::ostringstream o;
  char line[256];
  o << "\n# CUDA resources (NVRTC, " << (target.gpu ? target.gpu->arch : target.cpu) << ", "
    << (bin->cached ? "cached" : std::to_string(int(bin->compile_seconds * 1000)) + " ms") << ")\n";
  std::snprintf(line, sizeof line, "%-28s %-16s %-14s %5s %10s %8s\n", "kernel", "grid", "block", "regs", "shared B",
                "local B");
  o << line;
  for (auto &u : *usage) {
    auto d = [](const std::array<int64_t, 3> &x) {
      return std::to_string(x[0]) + "x" + std::to_string(x[1]) + "x" + std::to_string(x[2]);
    };
    std::snprintf(line, sizeof line, "%-28s %-16s %-14s %5d %10lld %8lld\n", u.name.c_str(), d(u.grid).c_str(),
                  d(u.block).c_str(), u.registers, (long long)u.shared_bytes, (long long)u.local_bytes);
    o << line;
  }
  Status fits = check_cuda_limits(*usage, target);
  o << (fits ? "fits " + target.name + "\n" : "does not fit: " + fits.message() + "\n");
  return o.str();
}

} // namespace tessel::codegen
