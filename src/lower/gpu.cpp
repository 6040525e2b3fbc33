// GPU-facing checks on lowered programs: CPU emulation of GPU-bound loops and
// the resources a kernel asks of the device.
#include "lower/lower.h"

#include "ir/visitor.h"
#include "schedules/intrinsics.h"

#include <algorithm>
#include <map>

namespace tessel::lower {

using namespace ir;

namespace {

class SerializeGpuLoops : public IRMutator {
public:
  using IRMutator::mutate;

protected:
  Stmt visit(const For *op, const Stmt &s) override {
    Stmt body = mutate(op->body);
    bool gpu = is_gpu_bound(op->kind);
    return op->with(s, body, gpu ? ForKind::Serial : op->kind, gpu ? "" : op->thread_tag);
  }
};

class ResourceCounter : public IRVisitor {
public:
  using IRVisitor::visit;
  std::map<std::string, int64_t> extents; // per thread tag: the largest extent bound to it
  GpuResources r;
  int64_t fragment_bytes = 0; // one copy per warp (threadIdx.y/z) in the CUDA back end's shared memory
  void visit(const For *op) override {
    int64_t n = 0;
    if (!op->thread_tag.empty() && is_const_int(op->extent, &n)) {
      int64_t &e = extents[op->thread_tag];
      e = std::max(e, n);
    }
    IRVisitor::visit(op);
  }
  void visit(const Allocate *op) override {
    int64_t n = 0;
    if (is_const_int(op->extent, &n)) {
      if (op->scope == MemoryScope::Shared) r.shared_bytes += n * op->dtype.bytes();
      if (op->scope == MemoryScope::Local) r.local_bytes += n * op->dtype.bytes();
      if (op->scope == MemoryScope::Fragment) { // registers, plus the warp's staging copy in shared memory
        r.local_bytes += (n * op->dtype.bytes() + kWarp - 1) / kWarp;
        fragment_bytes += n * op->dtype.bytes();
      }
    }
    IRVisitor::visit(op);
  }
  void visit(const ExternCall *op) override {
    const sched::TensorIntrinsic *in = sched::intrinsic_of_symbol(op->name);
    if (in && in->warp_level &&
        std::find(r.warp_intrinsics.begin(), r.warp_intrinsics.end(), in->name) == r.warp_intrinsics.end())
      r.warp_intrinsics.push_back(in->name);
    IRVisitor::visit(op);
  }
  static constexpr int64_t kWarp = 32; // a fragment is spread over a warp's 32 lanes
};

} // namespace

LoweredProgram emulate_gpu_on_cpu(LoweredProgram p) {
  for (auto &f : p.prepack) f.body = SerializeGpuLoops().mutate(f.body);
  p.kernel.body = SerializeGpuLoops().mutate(p.kernel.body);
  return emulate_intrinsics(std::move(p), "cuda");
}

GpuResources gpu_resources(const LoweredFunc &f) {
  ResourceCounter c;
  f.body.accept(&c);
  for (auto &[tag, e] : c.extents) {
    if (tag.rfind("threadIdx", 0) == 0)
      c.r.threads_per_block *= e;
    else if (tag.rfind("blockIdx", 0) == 0)
      c.r.blocks *= e;
    else if (tag == "vthread")
      c.r.vthreads *= e;
  }
  for (const char *tag : {"threadIdx.y", "threadIdx.z"})
    if (c.extents.count(tag)) c.fragment_bytes *= c.extents[tag];
  c.r.shared_bytes += c.fragment_bytes;
  // Warp-level intrinsics run on whole warps: threadIdx.x is the lanes, even when no loop binds it.
  if (c.extents.count("threadIdx.x"))
    c.r.thread_x_extent = c.extents["threadIdx.x"];
  else if (!c.r.warp_intrinsics.empty())
    c.r.threads_per_block *= ResourceCounter::kWarp;
  return c.r;
}

int64_t estimated_registers(const GpuResources &r) { return r.local_bytes / 4 + 32; }

Status check_gpu_limits(const LoweredFunc &f, const Target &target) {
  if (!target.gpu) return Status::error("target " + target.name + " is not a GPU");
  const GpuLimits &g = *target.gpu;
  GpuResources r = gpu_resources(f);
  for (auto &name : r.warp_intrinsics) {
    const sched::TensorIntrinsic *in = sched::find_tensor_intrinsic(name);
    if (!in->available_on(target))
      return Status::error(name + " needs " + in->shape_str() + " " + in->a.str() + "->" + in->c.str() +
                           " tensor cores, which " + target.name + " does not list");
    if (r.thread_x_extent != 0 && r.thread_x_extent != g.warp_size)
      return Status::error("the kernel uses " + name + " on whole warps, so threadIdx.x is a warp's " +
                           std::to_string(g.warp_size) + " lanes; a loop binds it to " +
                           std::to_string(r.thread_x_extent) + " iterations");
  }
  if (r.threads_per_block > g.max_threads_per_block)
    return Status::error(std::to_string(r.threads_per_block) + " threads per block exceed the " +
                         std::to_string(g.max_threads_per_block) + " of " + target.name);
  if (r.shared_bytes > g.shared_memory_per_block)
    return Status::error(std::to_string(r.shared_bytes) + " bytes of shared memory exceed the " +
                         std::to_string(g.shared_memory_per_block) + " per block of " + target.name);
  // Registers: local arrays live in registers; leave room for addresses and loop state.
  int64_t regs = estimated_registers(r);
  if (regs > g.max_registers_per_thread)
    return Status::error("about " + std::to_string(regs) + " registers per thread exceed the " +
                         std::to_string(g.max_registers_per_thread) + " of " + target.name);
  if (r.threads_per_block * regs > g.registers_per_sm)
    return Status::error(std::to_string(r.threads_per_block) + " threads x " + std::to_string(regs) +
                         " registers exceed the register file of an SM (" + std::to_string(g.registers_per_sm) + ")");
  return Status::ok();
}

} // namespace tessel::lower
