// The runtime that generated CPU kernels call: a persistent thread pool for
// parallel loops and aligned allocation for intermediate buffers. JIT kernels
// bind to it in-process; AOT objects need libtessel_runtime.a at link time.
//
// Why our own pool rather than OpenMP: kernels then depend on nothing but this
// small C ABI (no libgomp/libomp version coupling in users' builds), the
// thread count is set per measurement, and the static chunking is
// deterministic (same schedule, same work split, same result).
#pragma once

#include <cstdint>

extern "C" {

typedef void (*tessel_task_fn)(int64_t begin, int64_t end, void *closure);

// Runs task over [0, n) split into contiguous chunks, one per thread; returns
// when all chunks are done. Called from inside a task it runs serially.
void tessel_parallel_for(int64_t n, tessel_task_fn task, void *closure);
void tessel_set_num_threads(int n); // n <= 0: one per hardware thread
int tessel_get_num_threads(void);

// Tensor-intrinsic micro-kernels (schedules/intrinsics.h).
// avx512_fma_f32: C[i*ldc + j] += sum_k A[i*lda_m + k*lda_k] * B[k*ldb_k + j], i < m, j < n.
void tessel_ukernel_f32_fma_avx512(float *C, int64_t ldc, const float *A, int64_t lda_m, int64_t lda_k, const float *B,
                                   int64_t ldb_k, int64_t m, int64_t n, int64_t k);

// avx2_fma_f32: the same with AVX2-class 256-bit vectors (needs AVX and FMA).
void tessel_ukernel_f32_fma_avx2(float *C, int64_t ldc, const float *A, int64_t lda_m, int64_t lda_k, const float *B,
                                 int64_t ldb_k, int64_t m, int64_t n, int64_t k);

// avx512_bf16_dot: the same with bf16 A and B (f32 C), two products per lane (vdpbf16ps).
void tessel_ukernel_bf16_dot_avx512(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k,
                                    const uint16_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k);

// amx_bf16 / amx_int8: the same with AMX tiles (needs AMX and Linux >= 5.16;
// aborts with a message otherwise, so only targets with amx features use them).
void tessel_ukernel_bf16_amx(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k, const uint16_t *B,
                             int64_t ldb_k, int64_t m, int64_t n, int64_t k);
void tessel_ukernel_i8_amx(int32_t *C, int64_t ldc, const int8_t *A, int64_t lda_m, int64_t lda_k, const int8_t *B,
                           int64_t ldb_k, int64_t m, int64_t n, int64_t k);
int tessel_amx_usable(void); // 1 when this CPU and OS run AMX tiles

// Emulations (any x86-64 CPU): the AMX kernels' packing and tiling on
// software tile registers, and plain reference loops for the other intrinsics.
void tessel_ukernel_bf16_amx_emulated(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k,
                                      const uint16_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k);
void tessel_ukernel_i8_amx_emulated(int32_t *C, int64_t ldc, const int8_t *A, int64_t lda_m, int64_t lda_k,
                                    const int8_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k);
void tessel_ukernel_f32_reference(float *C, int64_t ldc, const float *A, int64_t lda_m, int64_t lda_k, const float *B,
                                  int64_t ldb_k, int64_t m, int64_t n, int64_t k);
void tessel_ukernel_bf16_reference(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k,
                                   const uint16_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k);
void tessel_ukernel_f16_reference(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k,
                                  const uint16_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k);
void tessel_ukernel_i8_reference(int32_t *C, int64_t ldc, const int8_t *A, int64_t lda_m, int64_t lda_k,
                                 const int8_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k);

// 64-byte aligned; never returns null (aborts with a message when out of memory).
void *tessel_alloc(int64_t bytes);
void tessel_free(void *p);
}
