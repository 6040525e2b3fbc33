// Tensor intrinsics: hand-written micro-kernels a schedule can map a tile of
// a contraction onto (tensorize). Each names the runtime function that
// implements it, the ISA it needs, and the computation it performs:
//   C[i, j] += A[i, k] * B[k, j]   over an m x n x k tile,
// with C and B contiguous along j (any strides otherwise). Operands of a
// narrower type than C may be read through a cast to C's type (bf16 -> f32).
#pragma once

#include "ir/type.h"

#include <string>
#include <vector>

namespace tessel::sched {

struct TensorIntrinsic {
  std::string name;           // what schedules and traces say: "avx512_fma_f32"
  std::string runtime_symbol; // the C function in src/runtime that implements it
  std::string required_feature; // LLVM CPU feature the target must have
  ir::DataType a, b, c;
  std::string description;
};

const std::vector<TensorIntrinsic> &tensor_intrinsics();
const TensorIntrinsic *find_tensor_intrinsic(const std::string &name);

} // namespace tessel::sched
