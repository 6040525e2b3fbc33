#include "lower/lower.h"

#include "ir/simplify.h"

namespace tessel::lower {

Expected<LoweredFunc> lower(const sched::Schedule &schedule, const std::string &name) {
  return catch_errors([&]() -> LoweredFunc {
    LoweredFunc f;
    f.name = name;
    const te::Workload &w = schedule.workload;
    for (auto &t : w.inputs) f.arg_tensors.push_back(t);
    for (auto &t : w.outputs) f.arg_tensors.push_back(t);
    for (auto &t : f.arg_tensors) f.args.push_back(ir::Var::make(ir::DataType::handle(), t->name));

    ir::Stmt s = schedule_to_loops(schedule);   // stages -> loop nests, intermediates realized
    s = storage_flatten(s, f.arg_tensors, f.args); // multi-dimensional tensors -> flat buffers
    s = ir::simplify(s);                        // fold indices, drop provably-true tail guards
    s = vectorize_loops(s);                     // vectorized loops -> Ramp/Broadcast vector IR
    s = unroll_loops(s);                        // unrolled loops -> straight-line copies
    s = ir::simplify(s);
    f.body = s;
    return f;
  });
}

} // namespace tessel::lower
