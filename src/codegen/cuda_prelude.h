// The prelude of every generated CUDA source. Under NVRTC (__CUDACC__) it maps
// Tessel's helpers onto CUDA; compiled as plain C++ it is a host emulation of
// the few CUDA features the kernels use (one std::thread per CUDA thread,
// blocks one after another, barriers for __syncthreads and __syncwarp, warp
// shuffles through an exchange array), so the very source NVRTC compiles can
// be run against the interpreter on a machine without a GPU.
#pragma once

namespace tessel::codegen {

inline constexpr const char *kCudaPrelude =
    R"CUDA(// ---- Tessel CUDA prelude (once per translation unit: several programs may share one)
#ifndef TESSEL_CUDA_PRELUDE
#define TESSEL_CUDA_PRELUDE
#if defined(__CUDACC__)
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <mma.h>
typedef long long int64_t;
typedef int int32_t;
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef unsigned long long uint64_t;
typedef __half tessel_f16;
typedef __nv_bfloat16 tessel_bf16;
#define TESSEL_DEVICE static __device__ __forceinline__
#define TESSEL_KERNEL(threads) extern "C" __global__ void __launch_bounds__(threads)
#define TESSEL_ARENA(name) extern __shared__ __align__(128) unsigned char name[]
#define TESSEL_SYNCWARP() __syncwarp()
#define TESSEL_INF_F32 __int_as_float(0x7f800000)
#define TESSEL_INF_F64 __longlong_as_double(0x7ff0000000000000LL)
TESSEL_DEVICE float tessel_to_f32(tessel_f16 v) { return __half2float(v); }
TESSEL_DEVICE float tessel_to_f32(tessel_bf16 v) { return __bfloat162float(v); }
TESSEL_DEVICE tessel_f16 tessel_to_f16(float v) { return __float2half_rn(v); }
TESSEL_DEVICE tessel_bf16 tessel_to_bf16(float v) { return __float2bfloat16_rn(v); }
#else // host emulation: plain C++17 with threads
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <thread>
#include <vector>
#include <math.h>
struct tessel_dim3 {
  unsigned x = 1, y = 1, z = 1;
};
namespace tessel_host {
inline thread_local tessel_dim3 thread_idx, block_idx;
inline tessel_dim3 block_dim, grid_dim;
inline std::unique_ptr<std::barrier<>> block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline std::vector<uint64_t> exchange;
inline std::vector<unsigned char> arena;
inline unsigned linear_tid() {
  return thread_idx.x + block_dim.x * (thread_idx.y + block_dim.y * thread_idx.z);
}
inline void warp_barrier() { warp_barriers[linear_tid() / 32]->arrive_and_wait(); }
// Runs `kernel` on every thread of every block: blocks in order, a block's threads at once.
inline void launch(tessel_dim3 grid, tessel_dim3 block, size_t shared_bytes, const std::function<void()> &kernel) {
  grid_dim = grid, block_dim = block;
  unsigned n = block.x * block.y * block.z;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        arena.assign(shared_bytes + 16, 0xcd); // garbage, as on a GPU: reads before writes show
        block_barrier = std::make_unique<std::barrier<>>(n);
        warp_barriers.clear();
        for (unsigned w = 0; w * 32 < n; ++w)
          warp_barriers.push_back(std::make_unique<std::barrier<>>(std::min(32u, n - w * 32)));
        exchange.assign(n, 0);
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < n; ++t)
          threads.emplace_back([&, t] {
            block_idx = {bx, by, bz};
            thread_idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            kernel();
          });
        for (auto &t : threads) t.join();
      }
}
} // namespace tessel_host
#define threadIdx tessel_host::thread_idx
#define blockIdx tessel_host::block_idx
#define blockDim tessel_host::block_dim
#define gridDim tessel_host::grid_dim
#define __syncthreads() tessel_host::block_barrier->arrive_and_wait()
#define __shared__ static
#define __restrict__ __restrict
#define TESSEL_DEVICE static inline
#define TESSEL_KERNEL(threads) static void
#define TESSEL_ARENA(name) unsigned char *name = tessel_host::arena.data()
#define TESSEL_SYNCWARP() tessel_host::warp_barrier()
#define TESSEL_INF_F32 std::numeric_limits<float>::infinity()
#define TESSEL_INF_F64 std::numeric_limits<double>::infinity()
template <typename T> TESSEL_DEVICE T __shfl_down_sync(unsigned, T v, unsigned delta) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  unsigned tid = tessel_host::linear_tid(), lane = tid % 32, n = tessel_host::block_dim.x *
                                                                   tessel_host::block_dim.y * tessel_host::block_dim.z;
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  tessel_host::exchange[tid] = bits;
  tessel_host::warp_barrier();
  T out = v;
  if (lane + delta < 32 && tid + delta < n) std::memcpy(&out, &tessel_host::exchange[tid + delta], sizeof(T));
  tessel_host::warp_barrier();
  return out;
}
struct tessel_f16 {
  uint16_t bits;
};
struct tessel_bf16 {
  uint16_t bits;
};
TESSEL_DEVICE uint32_t tessel_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}
TESSEL_DEVICE float tessel_float(uint32_t u) {
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}
TESSEL_DEVICE float tessel_to_f32(tessel_bf16 v) { return tessel_float(uint32_t(v.bits) << 16); }
TESSEL_DEVICE tessel_bf16 tessel_to_bf16(float v) {
  uint32_t u = tessel_bits(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {uint16_t((u >> 16) | 0x40)}; // NaN stays NaN
  return {uint16_t((u + 0x7fffu + ((u >> 16) & 1)) >> 16)};               // round to nearest even
}
TESSEL_DEVICE float tessel_to_f32(tessel_f16 v) {
  uint32_t sign = uint32_t(v.bits & 0x8000) << 16, exp = (v.bits >> 10) & 0x1f, man = v.bits & 0x3ff;
  if (exp == 0x1f) return tessel_float(sign | 0x7f800000u | (man << 13));
  if (exp == 0) return (sign ? -1.0f : 1.0f) * std::ldexp(float(man), -24);
  return tessel_float(sign | ((exp + 112) << 23) | (man << 13));
}
TESSEL_DEVICE tessel_f16 tessel_to_f16(float v) {
  uint32_t u = tessel_bits(v), sign = (u >> 16) & 0x8000;
  float a = std::fabs(v);
  if (std::isnan(v)) return {uint16_t(sign | 0x7e00)};
  if (a >= 65520.0f) return {uint16_t(sign | 0x7c00)}; // rounds to infinity
  if (a < 6.103515625e-05f) return {uint16_t(sign | uint16_t(std::nearbyint(a * 16777216.0f)))}; // subnormal
  uint32_t au = tessel_bits(a), exp = (au >> 23) - 112, man = au & 0x7fffff;
  uint32_t h = (exp << 10) | (man >> 13), rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return {uint16_t(sign | h)};
}
#endif
TESSEL_DEVICE float tessel_widen(tessel_f16 v) { return tessel_to_f32(v); }
TESSEL_DEVICE float tessel_widen(tessel_bf16 v) { return tessel_to_f32(v); }
TESSEL_DEVICE int32_t tessel_widen(int8_t v) { return v; }
// Integer division and modulo rounding toward -infinity (the IR's semantics).
template <typename T> TESSEL_DEVICE T tessel_floordiv(T a, T b) {
  T q = a / b, r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? q - 1 : q;
}
template <typename T> TESSEL_DEVICE T tessel_floormod(T a, T b) {
  T r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
// One aligned 8- or 16-byte move (a vectorized copy; the generator proved the alignment).
#if defined(__CUDACC__)
TESSEL_DEVICE void tessel_copy16(void *dst, const void *src) {
  *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
}
TESSEL_DEVICE void tessel_copy8(void *dst, const void *src) {
  *reinterpret_cast<uint2 *>(dst) = *reinterpret_cast<const uint2 *>(src);
}
#else
TESSEL_DEVICE void tessel_copy16(void *dst, const void *src) { std::memcpy(dst, src, 16); }
TESSEL_DEVICE void tessel_copy8(void *dst, const void *src) { std::memcpy(dst, src, 8); }
#endif
// Values of 4-byte lanes stored in one aligned 8- or 16-byte move.
template <typename T, typename... V> TESSEL_DEVICE void tessel_copy16_lanes(T *dst, V... v) {
  static_assert(sizeof(T) * sizeof...(V) == 16, "16 bytes");
  struct alignas(16) Lanes {
    T x[sizeof...(V)];
  } lanes{{T(v)...}};
  tessel_copy16(dst, &lanes);
}
template <typename T, typename... V> TESSEL_DEVICE void tessel_copy8_lanes(T *dst, V... v) {
  static_assert(sizeof(T) * sizeof...(V) == 8, "8 bytes");
  struct alignas(8) Lanes {
    T x[sizeof...(V)];
  } lanes{{T(v)...}};
  tessel_copy8(dst, &lanes);
}
template <typename T> TESSEL_DEVICE T tessel_min(T a, T b) { return a < b ? a : b; }
template <typename T> TESSEL_DEVICE T tessel_max(T a, T b) { return a > b ? a : b; }

// Every thread of the block passes its value; every thread gets the combination
// of all: shuffles within each warp, then across the warps' partials.
template <typename T, typename F> TESSEL_DEVICE void tessel_block_allreduce(T *v, F combine) {
  __shared__ T partial[32];
  unsigned n = blockDim.x * blockDim.y * blockDim.z;
  unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned lane = tid % 32, warp = tid / 32, warps = (n + 31) / 32;
  unsigned active = n - warp * 32 < 32 ? n - warp * 32 : 32;
  unsigned mask = active == 32 ? 0xffffffffu : (1u << active) - 1;
  T x = *v;
  for (unsigned o = 16; o > 0; o >>= 1) {
    T y = __shfl_down_sync(mask, x, o);
    if (lane + o < active) x = combine(x, y);
  }
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  if (warp == 0) {
    x = partial[lane < warps ? lane : 0];
    for (unsigned o = 16; o > 0; o >>= 1) {
      T y = __shfl_down_sync(mask, x, o);
      if (lane + o < warps) x = combine(x, y);
    }
    if (lane == 0) partial[0] = x;
  }
  __syncthreads();
  *v = partial[0];
  __syncthreads(); // `partial` is reused by the next reduction
}
template <typename T> TESSEL_DEVICE void tessel_block_allreduce_sum(T *v) {
  tessel_block_allreduce(v, [](T a, T b) { return a + b; });
}
template <typename T> TESSEL_DEVICE void tessel_block_allreduce_max(T *v) {
  tessel_block_allreduce(v, [](T a, T b) { return a > b || b != b ? a : b; }); // maxNum: NaN only if both are
}
template <typename T> TESSEL_DEVICE void tessel_block_allreduce_min(T *v) {
  tessel_block_allreduce(v, [](T a, T b) { return a < b || b != b ? a : b; });
}

// Tensor-core tiles: C[i, j] += A[i, k] * B[k, j] over an M x N x K tile by one
// warp, C and B row-major. WMMA where the layout allows it (A row- or
// column-major, 32-byte aligned, leading dimensions multiples of 16 bytes);
// otherwise, and in the host emulation, the warp's lanes share the elements.
template <int M, int N, int K, typename TA, typename TC>
TESSEL_DEVICE void tessel_mma_lanes(TC *C, int64_t ldc, const TA *A, int64_t lda_m, int64_t lda_k, const TA *B,
                                    int64_t ldb_k) {
  TESSEL_SYNCWARP();
  for (int e = int(threadIdx.x % 32); e < M * N; e += 32) {
    int i = e / N, j = e % N;
    TC acc = C[i * ldc + j];
    for (int k = 0; k < K; ++k) acc += tessel_widen(A[i * lda_m + k * lda_k]) * tessel_widen(B[k * ldb_k + j]);
    C[i * ldc + j] = acc;
  }
  TESSEL_SYNCWARP();
}
#if defined(__CUDA_ARCH__)
TESSEL_DEVICE bool tessel_aligned(const void *p) { return (reinterpret_cast<unsigned long long>(p) & 31) == 0; }
// Whether WMMA loads these operands as they lie: A row- or column-major, 32-byte aligned, leading
// dimensions multiples of 16 bytes.
template <typename TA>
TESSEL_DEVICE bool tessel_wmma_operands(const TA *A, int64_t lda_m, int64_t lda_k, const TA *B, int64_t ldb_k) {
  const int64_t ea = 16 / sizeof(TA);
  bool a_row = lda_k == 1 && lda_m % ea == 0, a_col = lda_m == 1 && lda_k % ea == 0;
  return (a_row || a_col) && ldb_k % ea == 0 && tessel_aligned(A) && tessel_aligned(B);
}
// acc += A * B on an accumulator fragment (operands checked by the caller).
template <int M, int N, int K, typename TA, typename F>
TESSEL_DEVICE void tessel_wmma_on(F &acc, const TA *A, int64_t lda_m, int64_t lda_k, const TA *B, int64_t ldb_k) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_b, M, N, K, TA, wmma::row_major> b;
  wmma::load_matrix_sync(b, B, unsigned(ldb_k));
  if (lda_k == 1) {
    wmma::fragment<wmma::matrix_a, M, N, K, TA, wmma::row_major> a;
    wmma::load_matrix_sync(a, A, unsigned(lda_m));
    wmma::mma_sync(acc, a, b, acc);
  } else {
    wmma::fragment<wmma::matrix_a, M, N, K, TA, wmma::col_major> a;
    wmma::load_matrix_sync(a, A, unsigned(lda_k));
    wmma::mma_sync(acc, a, b, acc);
  }
}
template <int M, int N, int K, typename TA, typename TC>
TESSEL_DEVICE void tessel_mma(TC *C, int64_t ldc, const TA *A, int64_t lda_m, int64_t lda_k, const TA *B,
                              int64_t ldb_k) {
  if (!tessel_wmma_operands(A, lda_m, lda_k, B, ldb_k) || ldc % (16 / sizeof(TC)) != 0 || !tessel_aligned(C)) {
    tessel_mma_lanes<M, N, K>(C, ldc, A, lda_m, lda_k, B, ldb_k);
    return;
  }
  __syncwarp();
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, M, N, K, TC> c;
  nvcuda::wmma::load_matrix_sync(c, C, unsigned(ldc), nvcuda::wmma::mem_row_major);
  tessel_wmma_on<M, N, K>(c, A, lda_m, lda_k, B, ldb_k);
  nvcuda::wmma::store_matrix_sync(C, c, unsigned(ldc), nvcuda::wmma::mem_row_major);
  __syncwarp();
}
// Accumulators held in registers across a tile's whole k loop (tessel_acc<M, N, K, TC>
// arrays): filled with zero, updated by one MMA per call, stored to the warp's staging
// buffer once at the end. In the host emulation every lane holds the whole tile.
template <int M, int N, int K, typename TC>
using tessel_acc = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, M, N, K, TC>;
template <typename F> TESSEL_DEVICE void tessel_acc_fill(F *acc, int64_t count) {
  for (int64_t t = 0; t < count; ++t) nvcuda::wmma::fill_fragment(acc[t], 0);
}
template <typename F, typename TC>
TESSEL_DEVICE void tessel_acc_store(F *acc, int64_t count, TC *C, int64_t ldc, int64_t per_row, int64_t m,
                                    int64_t n) {
  __syncwarp();
  for (int64_t t = 0; t < count; ++t)
    nvcuda::wmma::store_matrix_sync(C + (t / per_row) * m * ldc + (t % per_row) * n, acc[t], unsigned(ldc),
                                    nvcuda::wmma::mem_row_major);
  __syncwarp();
}
template <int M, int N, int K, typename TA, typename F>
TESSEL_DEVICE void tessel_acc_mma(F &acc, const TA *A, int64_t lda_m, int64_t lda_k, const TA *B, int64_t ldb_k) {
  if (!tessel_wmma_operands(A, lda_m, lda_k, B, ldb_k))
    __trap(); // the schedule's staging keeps tiles aligned; a layout that does not is a bug, not a result
  tessel_wmma_on<M, N, K>(acc, A, lda_m, lda_k, B, ldb_k);
}
#else
template <int M, int N, int K, typename TA, typename TC>
TESSEL_DEVICE void tessel_mma(TC *C, int64_t ldc, const TA *A, int64_t lda_m, int64_t lda_k, const TA *B,
                              int64_t ldb_k) {
  tessel_mma_lanes<M, N, K>(C, ldc, A, lda_m, lda_k, B, ldb_k);
}
template <int M, int N, int K, typename TC> struct tessel_acc {
  TC x[M * N];
};
template <typename F> TESSEL_DEVICE void tessel_acc_fill(F *acc, int64_t count) {
  for (int64_t t = 0; t < count; ++t)
    for (auto &v : acc[t].x) v = 0;
}
template <typename F, typename TC>
TESSEL_DEVICE void tessel_acc_store(F *acc, int64_t count, TC *C, int64_t ldc, int64_t per_row, int64_t m,
                                    int64_t n) {
  TESSEL_SYNCWARP();
  if (threadIdx.x % 32 == 0)
    for (int64_t t = 0; t < count; ++t)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) C[((t / per_row) * m + i) * ldc + (t % per_row) * n + j] = acc[t].x[i * n + j];
  TESSEL_SYNCWARP();
}
template <int M, int N, int K, typename TA, typename F>
TESSEL_DEVICE void tessel_acc_mma(F &acc, const TA *A, int64_t lda_m, int64_t lda_k, const TA *B, int64_t ldb_k) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      for (int k = 0; k < K; ++k)
        acc.x[i * N + j] += tessel_widen(A[i * lda_m + k * lda_k]) * tessel_widen(B[k * ldb_k + j]);
}
#endif
#define TESSEL_WMMA(NAME, TA, TC, M, N, K)                                                                       \
  TESSEL_DEVICE void NAME(TC *C, int64_t ldc, const TA *A, int64_t lda_m, int64_t lda_k, const TA *B,           \
                          int64_t ldb_k, int64_t, int64_t, int64_t) {                                             \
    tessel_mma<M, N, K>(C, ldc, A, lda_m, lda_k, B, ldb_k);                                                      \
  }                                                                                                              \
  TESSEL_DEVICE void NAME##_acc(tessel_acc<M, N, K, TC> *acc, int64_t tile, const TA *A, int64_t lda_m,         \
                                int64_t lda_k, const TA *B, int64_t ldb_k) {                                     \
    tessel_acc_mma<M, N, K>(acc[tile], A, lda_m, lda_k, B, ldb_k);                                               \
  }
TESSEL_WMMA(tessel_wmma_f16_m16n16k16, tessel_f16, float, 16, 16, 16)
TESSEL_WMMA(tessel_wmma_f16_m32n8k16, tessel_f16, float, 32, 8, 16)
TESSEL_WMMA(tessel_wmma_f16_m8n32k16, tessel_f16, float, 8, 32, 16)
TESSEL_WMMA(tessel_wmma_bf16_m16n16k16, tessel_bf16, float, 16, 16, 16)
TESSEL_WMMA(tessel_wmma_bf16_m32n8k16, tessel_bf16, float, 32, 8, 16)
TESSEL_WMMA(tessel_wmma_bf16_m8n32k16, tessel_bf16, float, 8, 32, 16)
TESSEL_WMMA(tessel_wmma_i8_m16n16k16, int8_t, int32_t, 16, 16, 16)
TESSEL_WMMA(tessel_wmma_i8_m32n8k16, int8_t, int32_t, 32, 8, 16)
TESSEL_WMMA(tessel_wmma_i8_m8n32k16, int8_t, int32_t, 8, 32, 16)
#endif // TESSEL_CUDA_PRELUDE
// ---- end of the prelude
)CUDA";

} // namespace tessel::codegen
