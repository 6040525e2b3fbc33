// Portable emulations of the tensor intrinsics (schedules/intrinsics.h): plain
// loops with the intrinsics' ABI and arithmetic (narrow operands widened
// exactly, products accumulated in C's type). The lowering calls these instead
// of the hardware's kernels to check a tensorized schedule on any CPU.
#include "runtime/runtime.h"
#include "support/float16.h"

namespace {

template <typename Acc, typename In, typename Widen>
void reference(Acc *C, int64_t ldc, const In *A, int64_t lda_m, int64_t lda_k, const In *B, int64_t ldb_k, int64_t m,
               int64_t n, int64_t k, Widen widen) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      Acc acc = C[i * ldc + j];
      for (int64_t kk = 0; kk < k; ++kk) acc += widen(A[i * lda_m + kk * lda_k]) * widen(B[kk * ldb_k + j]);
      C[i * ldc + j] = acc;
    }
}

} // namespace

extern "C" {

void tessel_ukernel_f32_reference(float *C, int64_t ldc, const float *A, int64_t lda_m, int64_t lda_k, const float *B,
                                  int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  reference(C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k, [](float x) { return x; });
}

void tessel_ukernel_bf16_reference(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k,
                                   const uint16_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  reference(C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k, [](uint16_t x) { return tessel::bf16_to_float(x); });
}

void tessel_ukernel_f16_reference(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k,
                                  const uint16_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  reference(C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k, [](uint16_t x) { return tessel::f16_to_float(x); });
}

void tessel_ukernel_i8_reference(int32_t *C, int64_t ldc, const int8_t *A, int64_t lda_m, int64_t lda_k,
                                 const int8_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  reference(C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k, [](int8_t x) { return int32_t(x); });
}
}
