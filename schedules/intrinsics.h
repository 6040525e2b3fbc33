// Tensor intrinsics: hand-written instructions or micro-kernels a schedule can
// map a tile of a contraction onto (tensorize). Every intrinsic computes
//   C[i, j] += A[i, k] * B[k, j]   over an m x n x k tile,
// with C and B contiguous along j (any strides otherwise). Operands of a
// narrower type than C are read through a cast to C's type (bf16 -> f32,
// i8 -> i32). All share one C ABI (see src/runtime/runtime.h):
//   fn(C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k)
//
// CPU intrinsics name a runtime function and the ISA feature it needs. CUDA
// intrinsics are warp-level tensor-core operations (WMMA): a whole warp
// computes one fixed-shape tile whose accumulator lives in a `fragment`-scope
// stage; the CUDA back end emits them, and the target must list the shape in
// its `tensor_cores`. Every intrinsic also names an emulation function: a
// portable C function with the same ABI and semantics, which the lowering swaps
// in to check a schedule on a CPU without that hardware (`tessel run
// --emulate-intrinsics`, and GPU emulation).
#pragma once

#include "ir/ir.h"
#include "target/target.h"

#include <optional>
#include <string>
#include <vector>

namespace tessel::sched {

struct TensorIntrinsic {
  std::string name;             // what schedules and traces say: "avx512_fma_f32"
  std::string target_kind;      // "cpu" or "cuda"
  std::string runtime_symbol;   // cpu: the C function in src/runtime; cuda: the device function
  std::string emulation_symbol; // a portable C function with the same ABI and semantics
  std::string required_feature; // cpu: the LLVM feature the target must have
  ir::DataType a, b, c;
  int m = 0, n = 0, k = 0; // the tile's fixed shape; 0: any extent
  bool warp_level = false; // executed by a whole warp on a fragment-scope accumulator
  std::string description;

  bool fixed_shape() const { return m > 0; }
  // Whether kernels for `target` may use it (CPU feature, or CUDA tensor-core shape).
  bool available_on(const Target &target) const;
  std::string shape_str() const; // "m16n16k16", or "any shape"
};

// The two tensor reads of a stage computing sum(A[..] * B[..]) (each possibly
// widened by a cast to the stage's type), the form every intrinsic computes;
// nullopt for any other stage.
struct ProductOperands {
  const ir::TensorRead *a, *b;
};
std::optional<ProductOperands> product_operands(const ir::Tensor &t);

// The layout every intrinsic reads, C[i, j] += A[i, k] * B[k, j] with C and B
// contiguous along j, given the coefficients of the tile's loops i, j, k in
// the flattened indices of C, A and B. Without a j loop (extent 1) only the
// conditions that do not involve j remain.
struct TileStrides {
  int64_t c_j, c_k, a_j, b_i, b_j;
};
bool fits_intrinsic_layout(const TileStrides &t, bool has_j = true);

// In order of preference: the space uses the first one a stage and target allow.
const std::vector<TensorIntrinsic> &tensor_intrinsics();
const TensorIntrinsic *find_tensor_intrinsic(const std::string &name);
// The intrinsic whose runtime function is `symbol`, if any (emulations are shared).
const TensorIntrinsic *intrinsic_of_symbol(const std::string &symbol);

} // namespace tessel::sched
