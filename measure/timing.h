// Timing of an in-process kernel call, the one protocol every runner uses
// (TVM's): `warmup_calls`, then `repeats` repeats of `number` calls each, the
// count calibrated when 0 so a repeat lasts at least `min_repeat_ms`; every
// repeat's per-call time is kept, the median is the figure reported.
#pragma once

#include <functional>
#include <vector>

namespace tessel::measure {

struct TimingOptions {
  int repeats = 5;
  double min_repeat_ms = 20;
  int warmup_calls = 1;
  int number = 0;                      // calls per repeat; 0: calibrated
  std::function<void()> before_repeat; // e.g. flush the caches (not timed)
  // Called with the first repeat's per-call seconds: true ends the timing there (a hopeless candidate).
  std::function<bool(double)> stop_after_first;
};

struct Timing {
  double median_seconds = 0;
  double min_seconds = 0;
  double max_seconds = 0;
  std::vector<double> per_repeat_seconds; // per-call time of each repeat
  int calls_per_repeat = 1;
  bool stopped_early = false;
};

Timing time_calls(const std::function<void()> &call, const TimingOptions &options = {});

} // namespace tessel::measure
