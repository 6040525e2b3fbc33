// Micro-kernels that tensorized schedules call (schedules/intrinsics.h).
// Compiled for their ISA with target attributes; the code generator only
// emits calls to them for targets that have that ISA.
#include "runtime/runtime.h"

#include <immintrin.h>

#include <algorithm>

namespace {

// Masks of the 4 x 16 columns of a tile that exist (cols of them).
inline void column_masks(int cols, __mmask16 m[4]) {
  for (int v = 0; v < 4; ++v) {
    int c = std::clamp(cols - 16 * v, 0, 16);
    m[v] = c == 16 ? __mmask16(0xffff) : __mmask16((1u << c) - 1);
  }
}

// Calls tile(i, rows, j, cols) over C in row blocks of at most 6, as even as
// possible (8 -> 4 + 4, not 6 + 2), and column blocks of `width`.
template <typename F> void for_each_tile(int64_t m, int64_t n, int64_t width, F &&tile) {
  int64_t blocks = (m + 5) / 6;
  for (int64_t bi = 0, i = 0; bi < blocks; ++bi) {
    int64_t rows = (m - i) / (blocks - bi);
    for (int64_t j = 0; j < n; j += width) tile(i, rows, j, int(std::min<int64_t>(width, n - j)));
    i += rows;
  }
}

// The R x 64 block of C a tile accumulates, in R x 4 zmm registers (the columns that exist: masks m), and back.
// Fully unrolled so the accumulators live in registers; shared by the f32 and bf16 tiles, whose targets include
// avx512f.
template <int R>
__attribute__((target("avx512f"), always_inline)) inline void load_accumulators(__m512 (&acc)[R][4], const float *C,
                                                                                int64_t ldc, const __mmask16 (&m)[4]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_maskz_loadu_ps(m[v], C + r * ldc + 16 * v);
}
template <int R>
__attribute__((target("avx512f"), always_inline)) inline void store_accumulators(const __m512 (&acc)[R][4], float *C,
                                                                                 int64_t ldc, const __mmask16 (&m)[4]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v)
      if (m[v]) _mm512_mask_storeu_ps(C + r * ldc + 16 * v, m[v], acc[r][v]);
}

// acc[r] += A[r, kk] * B[kk, 0..64) over kk < k; Masked loads B through the column masks m. The full-width
// case has its own loop: GCC keeps the four masks on the stack and reloaded them every k step (4 kmovw).
template <int R, bool Masked>
__attribute__((target("avx512f,fma"), always_inline)) inline void
k_loop(__m512 (&acc)[R][4], const float *A, int64_t lda_m, int64_t lda_k, const float *B, int64_t ldb_k,
       const __mmask16 (&m)[4], int64_t k) {
  for (int64_t kk = 0; kk < k; ++kk) {
    __m512 b[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v)
      b[v] = Masked ? _mm512_maskz_loadu_ps(m[v], B + kk * ldb_k + 16 * v) : _mm512_loadu_ps(B + kk * ldb_k + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512 a = _mm512_set1_ps(A[r * lda_m + kk * lda_k]);
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
}

// C[r, j] += sum_k A[r*lda_m + k*lda_k] * B[k*ldb_k + j] for R rows x up to 64
// columns: R x 4 accumulators in zmm registers (R <= 6 keeps 24 + 5 in the 32).
template <int R>
__attribute__((target("avx512f,fma"))) void tile(float *C, int64_t ldc, const float *A, int64_t lda_m, int64_t lda_k,
                                                 const float *B, int64_t ldb_k, int cols, int64_t k) {
  __mmask16 m[4];
  column_masks(cols, m);
  __m512 acc[R][4];
  load_accumulators(acc, C, ldc, m);
  if (cols == 64) // the common case: whole vectors, no masks in the k loop
    k_loop<R, false>(acc, A, lda_m, lda_k, B, ldb_k, m, k);
  else
    k_loop<R, true>(acc, A, lda_m, lda_k, B, ldb_k, m, k);
  store_accumulators(acc, C, ldc, m);
}

using TileFn = void (*)(float *, int64_t, const float *, int64_t, int64_t, const float *, int64_t, int, int64_t);
constexpr TileFn kTiles[] = {tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

} // namespace

extern "C" void tessel_ukernel_f32_fma_avx512(float *C, int64_t ldc, const float *A, int64_t lda_m, int64_t lda_k,
                                              const float *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  for_each_tile(m, n, 64, [&](int64_t i, int64_t rows, int64_t j, int cols) {
    kTiles[rows - 1](C + i * ldc + j, ldc, A + i * lda_m, lda_m, lda_k, B + j, ldb_k, cols, k);
  });
}

namespace {

// The AVX2 + FMA f32 kernel (256-bit, 16 ymm registers): R <= 6 rows x 16
// columns of C in 2R accumulators, plus 2 B vectors and one broadcast of A
// (2R + 3 <= 15). Column blocks of 16 divide the 64-wide blocks B is packed in.
// Only AVX and FMA instructions: partial blocks use vmaskmovps.
const int32_t kAvxMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

__attribute__((target("avx,fma"))) inline __m256i avx_mask(int cols) { // lanes [0, cols) of 8, cols in [0, 8]
  return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(kAvxMaskTable + 8 - cols));
}

// acc[r] += A[r, kk] * B[kk, 0..16) over kk < k; Masked loads B through the column masks m.
template <int R, bool Masked>
__attribute__((target("avx,fma"), always_inline)) inline void
k_loop_avx2(__m256 (&acc)[R][2], const float *A, int64_t lda_m, int64_t lda_k, const float *B, int64_t ldb_k,
            const __m256i (&m)[2], int64_t k) {
  for (int64_t kk = 0; kk < k; ++kk) {
    const float *b = B + kk * ldb_k;
    __m256 b0 = Masked ? _mm256_maskload_ps(b, m[0]) : _mm256_loadu_ps(b);
    __m256 b1 = Masked ? _mm256_maskload_ps(b + 8, m[1]) : _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m256 a = _mm256_broadcast_ss(A + r * lda_m + kk * lda_k);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
}

template <int R>
__attribute__((target("avx,fma"))) void tile_avx2(float *C, int64_t ldc, const float *A, int64_t lda_m, int64_t lda_k,
                                                  const float *B, int64_t ldb_k, int cols, int64_t k) {
  __m256i m[2] = {avx_mask(std::clamp(cols, 0, 8)), avx_mask(std::clamp(cols - 8, 0, 8))};
  __m256 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) acc[r][v] = _mm256_maskload_ps(C + r * ldc + 8 * v, m[v]);
  if (cols == 16) // the common case: whole vectors, no masks in the k loop
    k_loop_avx2<R, false>(acc, A, lda_m, lda_k, B, ldb_k, m, k);
  else
    k_loop_avx2<R, true>(acc, A, lda_m, lda_k, B, ldb_k, m, k);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) _mm256_maskstore_ps(C + r * ldc + 8 * v, m[v], acc[r][v]);
}

constexpr TileFn kAvx2Tiles[] = {tile_avx2<1>, tile_avx2<2>, tile_avx2<3>, tile_avx2<4>, tile_avx2<5>, tile_avx2<6>};

} // namespace

extern "C" void tessel_ukernel_f32_fma_avx2(float *C, int64_t ldc, const float *A, int64_t lda_m, int64_t lda_k,
                                            const float *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  for_each_tile(m, n, 16, [&](int64_t i, int64_t rows, int64_t j, int cols) {
    kAvx2Tiles[rows - 1](C + i * ldc + j, ldc, A + i * lda_m, lda_m, lda_k, B + j, ldb_k, cols, k);
  });
}

namespace {

// bf16 x bf16 -> f32 with AVX-512 BF16 (vdpbf16ps: two products per 32-bit
// lane). B rows k and k+1 are interleaved into pairs on the fly, so B keeps a
// plain [k][j] layout; A's pair (k, k+1) is broadcast. An odd k ends with a
// zero partner.
// acc[r] += A[r, kk..kk+1] . B[kk..kk+1, 0..64) over kk < k, in pairs; Masked loads B through the column masks
// m (the full-width case has its own loop, as the f32 kernel's).
template <int R, bool Masked>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma"), always_inline)) inline void
k_loop_bf16(__m512 (&acc)[R][4], const uint16_t *A, int64_t lda_m, int64_t lda_k, const uint16_t *B, int64_t ldb_k,
            const __mmask16 (&m)[4], int64_t k) {
  for (int64_t kk = 0; kk < k; kk += 2) {
    bool pair = kk + 1 < k;
    __m512i b[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      const uint16_t *row = B + kk * ldb_k + 16 * v;
      __m256i lo16 = Masked ? _mm256_maskz_loadu_epi16(m[v], row) : _mm256_loadu_si256((const __m256i *)row);
      __m256i hi16 = !pair    ? _mm256_setzero_si256()
                     : Masked ? _mm256_maskz_loadu_epi16(m[v], row + ldb_k)
                              : _mm256_loadu_si256((const __m256i *)(row + ldb_k));
      b[v] = _mm512_or_si512(_mm512_cvtepu16_epi32(lo16), _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi16), 16));
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      uint32_t a0 = A[r * lda_m + kk * lda_k], a1 = pair ? A[r * lda_m + (kk + 1) * lda_k] : 0;
      __m512i a = _mm512_set1_epi32(int32_t(a0 | (a1 << 16)));
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)a, (__m512bh)b[v]);
    }
  }
}

template <int R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma"))) void
tile_bf16(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k, const uint16_t *B, int64_t ldb_k,
          int cols, int64_t k) {
  __mmask16 m[4];
  column_masks(cols, m);
  __m512 acc[R][4];
  load_accumulators(acc, C, ldc, m);
  if (cols == 64)
    k_loop_bf16<R, false>(acc, A, lda_m, lda_k, B, ldb_k, m, k);
  else
    k_loop_bf16<R, true>(acc, A, lda_m, lda_k, B, ldb_k, m, k);
  store_accumulators(acc, C, ldc, m);
}

using Bf16TileFn = void (*)(float *, int64_t, const uint16_t *, int64_t, int64_t, const uint16_t *, int64_t, int,
                            int64_t);
constexpr Bf16TileFn kBf16Tiles[] = {tile_bf16<1>, tile_bf16<2>, tile_bf16<3>,
                                     tile_bf16<4>, tile_bf16<5>, tile_bf16<6>};

} // namespace

extern "C" void tessel_ukernel_bf16_dot_avx512(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k,
                                               const uint16_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  for_each_tile(m, n, 64, [&](int64_t i, int64_t rows, int64_t j, int cols) {
    kBf16Tiles[rows - 1](C + i * ldc + j, ldc, A + i * lda_m, lda_m, lda_k, B + j, ldb_k, cols, k);
  });
}
