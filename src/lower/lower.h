// Lowering: a workload and its schedule become one loop-IR function.
#pragma once

#include "ir/ir.h"
#include "schedules/schedule.h"
#include "support/error.h"

#include <string>
#include <vector>

namespace tessel::lower {

// A lowered kernel: `args` are handle variables bound to the workload's
// inputs then outputs (`arg_tensors`), in that order.
struct LoweredFunc {
  std::string name;
  std::vector<ir::Expr> args;
  std::vector<ir::Tensor> arg_tensors;
  ir::Stmt body;
};

Expected<LoweredFunc> lower(const sched::Schedule &schedule, const std::string &name);

// The passes, in the order lower() runs them (each is usable alone in tests).
ir::Stmt schedule_to_loops(const sched::Schedule &schedule);          // loop nests per stage
ir::Stmt storage_flatten(const ir::Stmt &s, const std::vector<ir::Tensor> &args,
                         const std::vector<ir::Expr> &arg_vars);       // tensors -> flat buffers
ir::Stmt vectorize_loops(const ir::Stmt &s);                          // vector loops -> vector IR
ir::Stmt unroll_loops(const ir::Stmt &s);                             // unrolled loops -> copies

} // namespace tessel::lower
