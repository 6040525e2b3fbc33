#include "lower/lower.h"

#include "ir/simplify.h"
#include "ir/visitor.h"
#include "schedules/intrinsics.h"

#include <algorithm>

namespace tessel::lower {

namespace {

LoweredFunc make_func(const std::string &name, std::vector<ir::Tensor> args, const ir::Stmt &loops) {
  LoweredFunc f;
  f.name = name;
  f.arg_tensors = std::move(args);
  for (auto &t : f.arg_tensors) f.args.push_back(ir::Var::make(ir::DataType::handle(), t->name));
  ir::Stmt s = loops;
  s = storage_flatten(s, f.arg_tensors, f.args); // multi-dimensional tensors -> flat buffers
  s = ir::simplify(s);                           // fold indices, drop provably-true tail guards
  s = partition_loops(s);                        // padded loops -> boundaries and a guard-free interior
  s = tensorize_loops(s);                        // tensorized tiles -> micro-kernel calls
  s = vectorize_loops(s);                        // vectorized loops -> Ramp/Broadcast vector IR
  s = unroll_loops(s);                           // unrolled loops -> straight-line copies
  s = promote_accumulators(s);                   // elements a serial loop updates in place -> locals (registers)
  s = ir::simplify(s);
  f.body = s;
  return f;
}

} // namespace

Expected<LoweredProgram> lower(const sched::Schedule &schedule, const std::string &name) {
  return catch_errors([&]() -> LoweredProgram {
    LoweredProgram p;
    const te::Workload &w = schedule.workload;
    for (auto &st : schedule.stages) { // only tensor-core instructions compute a fragment
      if (st.scope != ir::MemoryScope::Fragment) continue;
      bool warp = false;
      for (auto &l : st.loops)
        if (auto *in = sched::find_tensor_intrinsic(l.tensorize)) warp |= in->warp_level;
      TESSEL_CHECK(warp, "stage " + st.tensor->name + " lives in a fragment but is not tensorized with a warp-level " +
                             "intrinsic (wmma_*); tensorize its m x n x k tiles, or use scope local");
    }
    p.inputs = w.inputs;
    p.outputs = w.outputs;

    ir::Stmt loops = schedule_to_loops(schedule); // stages -> loop nests, intermediates realized
    std::vector<ir::Tensor> kernel_args;
    for (auto &t : w.inputs)
      if (ir::reads_tensor(loops, t.get())) kernel_args.push_back(t);
    for (auto &st : schedule.stages) {
      if (!st.prepack) continue;
      const ir::Tensor &packed = st.tensor;
      kernel_args.push_back(packed);
      ir::Tensor src; // the input it re-lays-out
      for (auto &t : w.inputs)
        if (t->name == st.relayout_of) src = t;
      TESSEL_CHECK(src != nullptr, "internal: packing stage " + packed->name + " re-lays-out no input");
      p.prepack.push_back(make_func(name + "_pack_" + packed->name, {src, packed}, stage_to_loops(schedule, st)));
    }
    for (auto &t : w.outputs) kernel_args.push_back(t);
    p.kernel = make_func(name, kernel_args, loops);
    return p;
  });
}

} // namespace tessel::lower
