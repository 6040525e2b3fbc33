// Summary statistics of repeated timings: the median (the figure Tessel reports)
// and the coefficient of variation (sample standard deviation over the mean).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace tessel {

// 0 for no values.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// 0 for fewer than two values (no spread to speak of) or a mean that is not positive.
inline double coefficient_of_variation(const std::vector<double> &v) {
  size_t n = v.size();
  if (n < 2) return 0;
  double mean = 0;
  for (double x : v) mean += x;
  mean /= double(n);
  if (mean <= 0) return 0;
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  return std::sqrt(var / double(n - 1)) / mean;
}

} // namespace tessel
