// Timing of an in-process kernel call: warm-up, then repeats whose inner call
// count is calibrated so each repeat lasts at least `min_repeat_ms`; the
// figure reported is the median per-call time (robust to noisy neighbours).
#pragma once

#include <functional>
#include <vector>

namespace tessel::measure {

struct TimingOptions {
  int repeats = 5;
  double min_repeat_ms = 20;
  int warmup_calls = 1;
};

struct Timing {
  double median_seconds = 0;
  double min_seconds = 0;
  double max_seconds = 0;
  std::vector<double> per_repeat_seconds; // per-call time of each repeat
  int calls_per_repeat = 1;
};

Timing time_calls(const std::function<void()> &call, const TimingOptions &options = {});

} // namespace tessel::measure
