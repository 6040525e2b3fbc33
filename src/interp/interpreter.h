// The reference interpreter: evaluates a workload straight from its tensor
// expressions, one stage after another, with no scheduling. Slow and plainly
// correct, it is the oracle every compiled kernel is checked against.
//
// Floating-point values are computed in double (reductions accumulate in
// double) and rounded to each tensor's dtype when stored; integers in int64,
// wrapped to the tensor's width when stored.
#pragma once

#include "interp/ndarray.h"
#include "support/error.h"
#include "te/workload.h"

#include <functional>
#include <vector>

namespace tessel::interp {

// Allocates inputs of the workload's shapes filled with fill_random(seed + i).
std::vector<NDArray> random_inputs(const te::Workload &w, uint64_t seed);
// Allocates zeroed outputs of the workload's shapes.
std::vector<NDArray> empty_outputs(const te::Workload &w);

// Called now and then with the finished fraction of the work (0..1).
using Progress = std::function<void(double)>;

// Returns one array per workload output. Inputs must match the workload's
// inputs in count, shape and dtype (otherwise an error says which differs).
Expected<std::vector<NDArray>> interpret(const te::Workload &w, const std::vector<NDArray> &inputs,
                                         const Progress &progress = {});

} // namespace tessel::interp
