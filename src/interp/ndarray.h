// A dense, row-major, 64-byte-aligned array: the buffers kernels read and
// write, and the interpreter's values.
#pragma once

#include "ir/type.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace tessel::interp {

using ir::DataType;

class NDArray {
public:
  NDArray() = default;
  NDArray(std::vector<int64_t> shape, DataType dtype); // zero-filled

  const std::vector<int64_t> &shape() const { return shape_; }
  DataType dtype() const { return dtype_; }
  int64_t size() const { return size_; } // elements
  int64_t bytes() const { return size_ * dtype_.bytes(); }
  void *data() { return data_.get(); }
  const void *data() const { return data_.get(); }

  // Element access through double, converting from/to the storage type
  // (round-to-nearest-even for f16/bf16, wrap-around for integers).
  double get(int64_t flat_index) const;
  void set(int64_t flat_index, double value);

  // Deterministic pseudo-random contents: floats uniform in [lo, hi), integers
  // uniform in a small range (so integer sums cannot overflow).
  void fill_random(uint64_t seed, double lo = -1.0, double hi = 1.0);

private:
  std::vector<int64_t> shape_;
  DataType dtype_;
  int64_t size_ = 0;
  std::shared_ptr<uint8_t> data_;
};

// Tolerances per dtype, relative to the largest magnitude of the reference.
struct Tolerance {
  double rtol;
  double atol_rel; // absolute tolerance as a fraction of max |expected|
  static Tolerance for_dtype(DataType t);
};

struct Comparison {
  bool ok = true;
  double max_abs_error = 0;
  int64_t worst_index = -1;
  double worst_actual = 0, worst_expected = 0;
  std::string message; // empty when ok; else names the worst element and the tolerance
};

Comparison compare(const NDArray &actual, const NDArray &expected, Tolerance tol);
Comparison compare(const NDArray &actual, const NDArray &expected); // tolerance of expected's dtype

} // namespace tessel::interp
