#include "measure/timing.h"

#include "support/stats.h"

#include <algorithm>
#include <chrono>

namespace tessel::measure {

Timing time_calls(const std::function<void()> &call, const TimingOptions &o) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < o.warmup_calls; ++i) call();
  int calls = std::max(1, o.number);
  // Calibrate: grow the call count until one batch reaches min_repeat_ms.
  for (; o.number <= 0;) {
    auto t0 = clock::now();
    for (int i = 0; i < calls; ++i) call();
    double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (ms >= o.min_repeat_ms || calls >= (1 << 20)) break;
    calls = ms <= 0 ? calls * 16 : std::max(calls * 2, int(calls * o.min_repeat_ms / ms * 1.2));
  }
  Timing t;
  t.calls_per_repeat = calls;
  for (int r = 0; r < std::max(1, o.repeats); ++r) {
    if (o.before_repeat) o.before_repeat();
    auto t0 = clock::now();
    for (int i = 0; i < calls; ++i) call();
    t.per_repeat_seconds.push_back(std::chrono::duration<double>(clock::now() - t0).count() / calls);
    if (r == 0 && o.stop_after_first && o.stop_after_first(t.per_repeat_seconds[0])) {
      t.stopped_early = true;
      break;
    }
  }
  t.median_seconds = median(t.per_repeat_seconds);
  auto [lo, hi] = std::minmax_element(t.per_repeat_seconds.begin(), t.per_repeat_seconds.end());
  t.min_seconds = *lo;
  t.max_seconds = *hi;
  return t;
}

} // namespace tessel::measure
