#include "interp/ndarray.h"

#include "support/float16.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>

namespace tessel::interp {

namespace {

// Converts a double to a wrapped integer of `bits` bits (NaN -> 0, saturating
// at the int64 range first so the conversion itself is defined).
int64_t wrap_int(double v, int bits) {
  int64_t i;
  if (std::isnan(v))
    i = 0;
  else if (v >= 9223372036854775807.0)
    i = std::numeric_limits<int64_t>::max();
  else if (v <= -9223372036854775808.0)
    i = std::numeric_limits<int64_t>::min();
  else
    i = int64_t(v); // truncates toward zero
  if (bits >= 64) return i;
  uint64_t m = (uint64_t(1) << bits) - 1;
  uint64_t u = uint64_t(i) & m;
  if (u >> (bits - 1)) u |= ~m; // sign-extend
  return int64_t(u);
}

uint64_t splitmix64(uint64_t &state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string shape_str(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

} // namespace

NDArray::NDArray(std::vector<int64_t> shape, DataType dtype) : shape_(std::move(shape)), dtype_(dtype) {
  size_ = 1;
  for (int64_t e : shape_) size_ *= e < 0 ? 0 : e;
  // Round up to whole cache lines (aligned_alloc needs a multiple of the
  // alignment) and never ask for zero bytes.
  size_t n = size_t(size_ * dtype_.bytes());
  size_t alloc = (n + 63) / 64 * 64;
  if (alloc == 0) alloc = 64;
  void *p = std::aligned_alloc(64, alloc);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, alloc);
  data_ = std::shared_ptr<uint8_t>(static_cast<uint8_t *>(p), [](uint8_t *q) { std::free(q); });
}

double NDArray::get(int64_t i) const {
  const uint8_t *p = data_.get();
  switch (dtype_.code) {
  case DataType::Float:
    if (dtype_.bits == 32) return reinterpret_cast<const float *>(p)[i];
    if (dtype_.bits == 64) return reinterpret_cast<const double *>(p)[i];
    if (dtype_.bits == 16) return f16_to_float(reinterpret_cast<const uint16_t *>(p)[i]);
    break;
  case DataType::BFloat: return bf16_to_float(reinterpret_cast<const uint16_t *>(p)[i]);
  case DataType::Int:
    if (dtype_.bits == 8) return reinterpret_cast<const int8_t *>(p)[i];
    if (dtype_.bits == 16) return reinterpret_cast<const int16_t *>(p)[i];
    if (dtype_.bits == 32) return reinterpret_cast<const int32_t *>(p)[i];
    if (dtype_.bits == 64) return double(reinterpret_cast<const int64_t *>(p)[i]);
    break;
  case DataType::UInt:
    if (dtype_.bits == 1 || dtype_.bits == 8) return p[i];
    if (dtype_.bits == 16) return reinterpret_cast<const uint16_t *>(p)[i];
    if (dtype_.bits == 32) return reinterpret_cast<const uint32_t *>(p)[i];
    if (dtype_.bits == 64) return double(reinterpret_cast<const uint64_t *>(p)[i]);
    break;
  case DataType::Handle: break;
  }
  return 0;
}

void NDArray::set(int64_t i, double v) {
  uint8_t *p = data_.get();
  switch (dtype_.code) {
  case DataType::Float:
    if (dtype_.bits == 32)
      reinterpret_cast<float *>(p)[i] = float(v);
    else if (dtype_.bits == 64)
      reinterpret_cast<double *>(p)[i] = v;
    else if (dtype_.bits == 16)
      reinterpret_cast<uint16_t *>(p)[i] = float_to_f16(float(v));
    break;
  case DataType::BFloat: reinterpret_cast<uint16_t *>(p)[i] = float_to_bf16(float(v)); break;
  case DataType::Int:
    if (dtype_.bits == 8)
      reinterpret_cast<int8_t *>(p)[i] = int8_t(wrap_int(v, 8));
    else if (dtype_.bits == 16)
      reinterpret_cast<int16_t *>(p)[i] = int16_t(wrap_int(v, 16));
    else if (dtype_.bits == 32)
      reinterpret_cast<int32_t *>(p)[i] = int32_t(wrap_int(v, 32));
    else if (dtype_.bits == 64)
      reinterpret_cast<int64_t *>(p)[i] = wrap_int(v, 64);
    break;
  case DataType::UInt:
    if (dtype_.bits == 1)
      p[i] = v != 0;
    else if (dtype_.bits == 8)
      p[i] = uint8_t(wrap_int(v, 64));
    else if (dtype_.bits == 16)
      reinterpret_cast<uint16_t *>(p)[i] = uint16_t(wrap_int(v, 64));
    else if (dtype_.bits == 32)
      reinterpret_cast<uint32_t *>(p)[i] = uint32_t(wrap_int(v, 64));
    else if (dtype_.bits == 64)
      reinterpret_cast<uint64_t *>(p)[i] = uint64_t(wrap_int(v, 64));
    break;
  case DataType::Handle: break;
  }
}

void NDArray::fill_random(uint64_t seed, double lo, double hi) {
  uint64_t state = seed * 0x2545f4914f6cdd1dull + 0x1234567u;
  for (int64_t i = 0; i < size_; ++i) {
    uint64_t r = splitmix64(state);
    if (dtype_.is_float()) {
      double u = double(r >> 11) * 0x1.0p-53; // [0, 1)
      set(i, lo + (hi - lo) * u);
      // Rounding to a narrow type may land on `hi`: draw again (deterministically).
      for (int tries = 0; get(i) >= hi && tries < 16; ++tries)
        set(i, lo + (hi - lo) * (double(splitmix64(state) >> 11) * 0x1.0p-53));
      if (get(i) >= hi) set(i, lo);
    } else if (dtype_.is_bool()) {
      set(i, double(r >> 63));
    } else if (dtype_.is_uint()) {
      set(i, double(r % 5)); // [0, 4]
    } else {
      set(i, double(int64_t(r % 9) - 4)); // [-4, 4]: sums and products stay small
    }
  }
}

Tolerance Tolerance::for_dtype(DataType t) {
  if (t.code == DataType::BFloat) return {2e-2, 8e-3};
  if (t.code == DataType::Float) {
    if (t.bits == 16) return {1e-2, 1e-3};
    if (t.bits == 64) return {1e-10, 1e-12};
    return {1e-4, 1e-5};
  }
  return {0, 0}; // integers and bool: exact
}

Comparison compare(const NDArray &actual, const NDArray &expected, Tolerance tol) {
  Comparison c;
  if (actual.shape() != expected.shape() || actual.dtype() != expected.dtype()) {
    c.ok = false;
    c.message = "mismatched arrays: got " + actual.dtype().str() + shape_str(actual.shape()) + ", expected " +
                expected.dtype().str() + shape_str(expected.shape());
    return c;
  }
  const int64_t n = expected.size();
  double max_expected = 0;
  for (int64_t i = 0; i < n; ++i) {
    double e = std::fabs(expected.get(i));
    if (std::isfinite(e) && e > max_expected) max_expected = e;
  }
  const double atol = tol.atol_rel * max_expected;
  // The worst element is the one furthest beyond its allowance (error / allowed).
  double worst_ratio = -1;
  int64_t failures = 0;
  for (int64_t i = 0; i < n; ++i) {
    double a = actual.get(i), e = expected.get(i);
    double err, ratio;
    bool fail;
    if (std::isnan(a) || std::isnan(e)) {
      fail = std::isnan(a) != std::isnan(e);
      err = fail ? std::numeric_limits<double>::infinity() : 0;
      ratio = fail ? std::numeric_limits<double>::infinity() : 0;
    } else if (std::isinf(a) || std::isinf(e)) {
      fail = a != e;
      err = fail ? std::numeric_limits<double>::infinity() : 0;
      ratio = err;
    } else {
      err = std::fabs(a - e);
      double allowed = tol.rtol * std::fabs(e) + atol;
      fail = err > allowed;
      ratio = allowed > 0 ? err / allowed : (err > 0 ? std::numeric_limits<double>::infinity() : 0);
    }
    if (err > c.max_abs_error) c.max_abs_error = err;
    failures += fail;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      c.worst_index = i;
      c.worst_actual = a;
      c.worst_expected = e;
    }
  }
  if (failures == 0) return c;
  c.ok = false;
  // Multi-dimensional position of the worst element, row-major.
  std::vector<int64_t> pos(expected.shape().size());
  int64_t rest = c.worst_index;
  for (size_t d = pos.size(); d-- > 0;) {
    int64_t e = expected.shape()[d];
    pos[d] = e > 0 ? rest % e : 0;
    rest = e > 0 ? rest / e : 0;
  }
  double allowed = tol.rtol * std::fabs(c.worst_expected) + atol;
  c.message = std::to_string(failures) + " of " + std::to_string(n) + " elements differ; worst at flat index " +
              std::to_string(c.worst_index) + " " + shape_str(pos) + ": got " + num(c.worst_actual) + ", expected " +
              num(c.worst_expected) + " (|error| " + num(std::fabs(c.worst_actual - c.worst_expected)) + ", allowed " +
              num(allowed) + " = rtol " + num(tol.rtol) + " * |expected| + " + num(tol.atol_rel) + " * max|expected| " +
              num(max_expected) + ", dtype " + expected.dtype().str() + ")";
  return c;
}

Comparison compare(const NDArray &actual, const NDArray &expected) {
  return compare(actual, expected, Tolerance::for_dtype(expected.dtype()));
}

} // namespace tessel::interp
