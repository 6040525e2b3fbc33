// Schedule primitives. Each checks its preconditions and returns an error
// value for an illegal request instead of producing wrong code.
#pragma once

#include "schedules/schedule.h"
#include "support/error.h"

namespace tessel::sched {

struct SplitResult {
  int outer, inner;
};

// Splits leaf `loop` of `stage` into (outer, inner) with inner extent `factor`.
Expected<SplitResult> split(Schedule &s, const std::string &stage, int loop, int64_t factor);
// Fuses two adjacent leaves (outer directly above inner) into one loop.
Expected<int> fuse(Schedule &s, const std::string &stage, int outer, int inner);
// Reorders the given leaves into this relative order (others keep their slots).
Status reorder(Schedule &s, const std::string &stage, const std::vector<int> &order);
// Marks a spatial leaf parallel (at most one parallel loop per stage).
Status parallel(Schedule &s, const std::string &stage, int loop);
// Marks a spatial leaf vectorized (extent 2..64); loops inside it stay loops
// over vector bodies.
Status vectorize(Schedule &s, const std::string &stage, int loop);
// Marks a leaf unrolled (constant extent up to 1024).
Status unroll(Schedule &s, const std::string &stage, int loop);
// Computes a pure elementwise stage inside its consumers.
Status compute_inline(Schedule &s, const std::string &stage);

} // namespace tessel::sched
