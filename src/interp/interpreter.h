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

// Refuses, before anything is allocated, a run whose tensors cannot fit in the
// memory this machine has available: inputs, outputs and intermediates of the
// kernel, plus (with_reference) the interpreter's own copies of every stage.
// The message names the largest tensor, its bytes and what is available.
Status check_run_fits_in_memory(const te::Workload &w, bool with_reference);
// The same against a given number of available bytes (for tests).
Status check_run_fits_in_memory(const te::Workload &w, bool with_reference, int64_t available_bytes);

// Called now and then with the finished fraction of the work (0..1).
using Progress = std::function<void(double)>;

// Returns one array per workload output. Inputs must match the workload's
// inputs in count, shape and dtype (otherwise an error says which differs).
Expected<std::vector<NDArray>> interpret(const te::Workload &w, const std::vector<NDArray> &inputs,
                                         const Progress &progress = {});

} // namespace tessel::interp
