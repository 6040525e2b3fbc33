// AMX micro-kernels (intrinsics amx_bf16 and amx_int8). One driver packs the
// operands into tile images and runs 2 x 2 blocks of 16 x 16 accumulator
// tiles; it is written against a small tile interface with two
// implementations:
//   HardwareTiles — the AMX instructions (tileloadd, tdpbf16ps, tdpbssd, ...);
//   SoftwareTiles — the same instructions' semantics in plain C++, on
//                   in-memory tile registers.
// The emulated kernels (the intrinsics' emulation symbols) run the same driver,
// packing and edge handling on SoftwareTiles, so everything but the
// instructions themselves is checked on machines without AMX.
//
// Tile images (64 bytes per row, 16 rows; zero padding makes edge tiles exact):
//   A: row r holds A[r, k0 .. k0 + K)                  (K = 32 bf16 or 64 int8)
//   B: row q holds, for each column j, the G values B[k0 + q*G + g, j], g < G
//      (G = 2 for bf16, 4 for int8: the "VNNI" layout tdp* instructions read)
//   C: row r holds C[r, j0 .. j0 + 16) in f32 or i32.
#include "runtime/runtime.h"
#include "support/amx.h"
#include "support/float16.h"

#include <immintrin.h>

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

struct Bf16 {
  using In = uint16_t;
  using Acc = float;
  static constexpr int kGroup = 2;
};
struct Int8 {
  using In = int8_t;
  using Acc = int32_t;
  static constexpr int kGroup = 4;
};

constexpr int kRows = 16, kRowBytes = 64;

// ------------------------------------------------------------------ hardware
bool amx_usable() { return tessel::amx_tiles_usable(); } // support/amx.h: CPU, Linux and a real try

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target("amx-tile"))) void load_tile_config() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = kRowBytes, cfg.rows[t] = kRows;
  // Not GCC 12's _tile_loadconfig: its asm operand covers only 8 bytes of the config, so the
  // stores of colsb/rows were dropped as dead and tiles stayed unconfigured (SIGILL on use).
  asm volatile("ldtilecfg %0" ::"m"(cfg));
}

// Tile numbers are part of the instructions, hence template parameters.
struct HardwareTiles {
  static void begin() {
    thread_local bool configured = false; // the tile configuration is per thread
    if (configured) return;
    if (!amx_usable()) {
      std::fprintf(stderr, "tessel: this kernel uses AMX tiles, but this CPU lacks AMX or Linux refused the tile state "
                           "(needs Linux >= 5.16); tune for a target without amx features\n");
      std::abort();
    }
    load_tile_config();
    configured = true;
  }
  // The instructions as inline asm: GCC's _tile_* macros paste their tile
  // argument's spelling, which a template parameter does not have.
  template <int T> static void load(const void *p, int64_t stride) {
    asm volatile("tileloadd (%0,%1,1), %%tmm%c2" ::"r"(p), "r"(stride), "i"(T) : "memory");
  }
  template <int T> static void store(void *p, int64_t stride) {
    asm volatile("tilestored %%tmm%c2, (%0,%1,1)" ::"r"(p), "r"(stride), "i"(T) : "memory");
  }
  template <typename E, int C, int A, int B> static void dot() { // tmmC += tmmA * tmmB
    if constexpr (std::is_same_v<E, Bf16>)
      asm volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" ::"i"(C), "i"(A), "i"(B));
    else
      asm volatile("tdpbssd %%tmm%c2, %%tmm%c1, %%tmm%c0" ::"i"(C), "i"(A), "i"(B));
  }
};

// ------------------------------------------------------------------ software
struct SoftwareTiles {
  struct Tile {
    alignas(64) uint8_t bytes[kRows][kRowBytes];
  };
  static Tile &reg(int t) {
    thread_local Tile regs[8];
    return regs[t];
  }
  static void begin() {}
  template <int T> static void load(const void *p, int64_t stride) {
    for (int r = 0; r < kRows; ++r)
      std::memcpy(reg(T).bytes[r], static_cast<const uint8_t *>(p) + r * stride, kRowBytes);
  }
  template <int T> static void store(void *p, int64_t stride) {
    for (int r = 0; r < kRows; ++r) std::memcpy(static_cast<uint8_t *>(p) + r * stride, reg(T).bytes[r], kRowBytes);
  }
  // tdpbf16ps / tdpbssd: C[m][n] += sum over k, g of A[m][k*G + g] * B[k][n*G + g].
  template <typename E, int C, int A, int B> static void dot() {
    using In = typename E::In;
    using Acc = typename E::Acc;
    constexpr int G = E::kGroup, groups = kRowBytes / int(sizeof(In)) / G, cols = kRowBytes / 4;
    for (int m = 0; m < kRows; ++m)
      for (int n = 0; n < cols; ++n) {
        Acc c;
        std::memcpy(&c, reg(C).bytes[m] + 4 * n, 4);
        for (int k = 0; k < groups; ++k)
          for (int g = 0; g < G; ++g) {
            In a, b;
            std::memcpy(&a, reg(A).bytes[m] + sizeof(In) * (k * G + g), sizeof(In));
            std::memcpy(&b, reg(B).bytes[k] + sizeof(In) * (n * G + g), sizeof(In));
            if constexpr (std::is_same_v<E, Bf16>)
              c += tessel::bf16_to_float(a) * tessel::bf16_to_float(b);
            else
              c += int32_t(a) * int32_t(b);
          }
        std::memcpy(reg(C).bytes[m] + 4 * n, &c, 4);
      }
  }
};

// ------------------------------------------------------------------- packing
// B into VNNI tile images: tile (tk, tj) holds rows k0 = tk*K .. k0+K of
// columns tj*16 .. +16, row q of the image interleaving B rows k0 + q*G + g.
// One image row is G source rows x 16 columns: with AVX-512 (every AMX CPU
// has it) each is built with widening loads, shifts and ors; a portable loop
// does the same elsewhere (the emulation runs on any CPU).
template <typename E>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void
pack_vnni_row_avx512(typename E::In *dst, const typename E::In *B, int64_t ldb_k, int rows, int cols) {
  constexpr int G = E::kGroup;
  __mmask16 mask = cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  __m512i out = _mm512_setzero_si512();
  for (int g = 0; g < rows; ++g) {
    __m512i wide;
    if constexpr (G == 2)
      wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, B + g * ldb_k));
    else
      wide = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, B + g * ldb_k));
    out = _mm512_or_si512(out, _mm512_sllv_epi32(wide, _mm512_set1_epi32(int(g * 8 * sizeof(typename E::In)))));
  }
  _mm512_storeu_si512(dst, out);
}

template <typename E>
void pack_vnni_row_portable(typename E::In *dst, const typename E::In *B, int64_t ldb_k, int rows, int cols) {
  constexpr int G = E::kGroup;
  std::memset(dst, 0, kRowBytes);
  for (int g = 0; g < rows; ++g)
    for (int j = 0; j < cols; ++j) dst[j * G + g] = B[g * ldb_k + j];
}

template <typename E>
void pack_vnni(std::vector<typename E::In> &pb, const typename E::In *B, int64_t ldb_k, int64_t n, int64_t k,
               int64_t nt, int64_t kt) {
  using In = typename E::In;
  constexpr int K = kRowBytes / int(sizeof(In)), G = E::kGroup, tile_elems = kRows * K;
  static const bool avx512 = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  pb.assign(size_t(kt * nt * tile_elems), In(0));
  for (int64_t kk = 0; kk < k; kk += G) {
    int rows = int(std::min<int64_t>(G, k - kk));
    In *image_row = pb.data() + (kk / K) * nt * tile_elems + ((kk % K) / G) * K;
    for (int64_t j = 0; j < n; j += kRows) {
      int cols = int(std::min<int64_t>(kRows, n - j));
      In *dst = image_row + (j / kRows) * tile_elems;
      if (avx512)
        pack_vnni_row_avx512<E>(dst, B + kk * ldb_k + j, ldb_k, rows, cols);
      else
        pack_vnni_row_portable<E>(dst, B + kk * ldb_k + j, ldb_k, rows, cols);
    }
  }
}

// -------------------------------------------------------------------- driver
// C[i*ldc + j] += sum_k A[i*lda_m + k*lda_k] * B[k*ldb_k + j], i < m, j < n.
template <typename E, typename Tiles>
void amx_gemm(typename E::Acc *C, int64_t ldc, const typename E::In *A, int64_t lda_m, int64_t lda_k,
              const typename E::In *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  using In = typename E::In;
  using Acc = typename E::Acc;
  constexpr int K = kRowBytes / int(sizeof(In)), tile_elems = kRows * K;
  if (m <= 0 || n <= 0 || k <= 0) return;
  Tiles::begin();
  // Tile counts, rounded up to whole 2 x 2 blocks.
  const int64_t mt = (m + 31) / 32 * 2, nt = (n + 31) / 32 * 2, kt = (k + K - 1) / K;
  thread_local std::vector<In> pa, pb; // packed operands, reused across calls
  // A: row-major with whole tiles is read in place; anything else is packed.
  const bool a_in_place = lda_k == 1 && m % 32 == 0 && k % K == 0;
  if (!a_in_place) {
    pa.assign(size_t(mt * kt * tile_elems), In(0));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t kk = 0; kk < k; ++kk)
        pa[size_t(((i / kRows) * kt + kk / K) * tile_elems + (i % kRows) * K + kk % K)] = A[i * lda_m + kk * lda_k];
  }
  pack_vnni<E>(pb, B, ldb_k, n, k, nt, kt);
  const int64_t a_stride = a_in_place ? lda_m * int64_t(sizeof(In)) : kRowBytes;
  auto a_tile = [&](int64_t ti, int64_t tk) -> const In * {
    return a_in_place ? A + ti * kRows * lda_m + tk * K : pa.data() + (ti * kt + tk) * tile_elems;
  };
  auto b_tile = [&](int64_t tk, int64_t tj) { return pb.data() + (tk * nt + tj) * tile_elems; };

  // C tiles that overhang C go through a zero-padded copy.
  alignas(64) Acc edge[4][kRows][kRows];
  auto c_ptr = [&](int t, int64_t ti, int64_t tj, int64_t &stride) -> Acc * {
    int64_t rows = std::min<int64_t>(kRows, m - ti * kRows), cols = std::min<int64_t>(kRows, n - tj * kRows);
    if (rows == kRows && cols == kRows) {
      stride = ldc * int64_t(sizeof(Acc));
      return C + ti * kRows * ldc + tj * kRows;
    }
    std::memset(edge[t], 0, sizeof edge[t]);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) edge[t][r][c] = C[(ti * kRows + r) * ldc + tj * kRows + c];
    stride = kRowBytes;
    return &edge[t][0][0];
  };
  auto write_back = [&](int t, int64_t ti, int64_t tj) {
    int64_t rows = std::min<int64_t>(kRows, m - ti * kRows), cols = std::min<int64_t>(kRows, n - tj * kRows);
    if (rows == kRows && cols == kRows) return;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) C[(ti * kRows + r) * ldc + tj * kRows + c] = edge[t][r][c];
  };

  for (int64_t ti = 0; ti < mt; ti += 2)
    for (int64_t tj = 0; tj < nt; tj += 2) {
      // tmm0..3: C tiles (ti, tj), (ti, tj+1), (ti+1, tj), (ti+1, tj+1); tmm4, 5: A; tmm6, 7: B.
      int64_t s[4];
      Acc *c[4] = {c_ptr(0, ti, tj, s[0]), c_ptr(1, ti, tj + 1, s[1]), c_ptr(2, ti + 1, tj, s[2]),
                   c_ptr(3, ti + 1, tj + 1, s[3])};
      Tiles::template load<0>(c[0], s[0]);
      Tiles::template load<1>(c[1], s[1]);
      Tiles::template load<2>(c[2], s[2]);
      Tiles::template load<3>(c[3], s[3]);
      for (int64_t tk = 0; tk < kt; ++tk) {
        Tiles::template load<4>(a_tile(ti, tk), a_stride);
        Tiles::template load<5>(a_tile(ti + 1, tk), a_stride);
        Tiles::template load<6>(b_tile(tk, tj), kRowBytes);
        Tiles::template load<7>(b_tile(tk, tj + 1), kRowBytes);
        Tiles::template dot<E, 0, 4, 6>();
        Tiles::template dot<E, 1, 4, 7>();
        Tiles::template dot<E, 2, 5, 6>();
        Tiles::template dot<E, 3, 5, 7>();
      }
      Tiles::template store<0>(c[0], s[0]);
      Tiles::template store<1>(c[1], s[1]);
      Tiles::template store<2>(c[2], s[2]);
      Tiles::template store<3>(c[3], s[3]);
      write_back(0, ti, tj), write_back(1, ti, tj + 1), write_back(2, ti + 1, tj), write_back(3, ti + 1, tj + 1);
    }
}

} // namespace

extern "C" {

void tessel_ukernel_bf16_amx(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k, const uint16_t *B,
                             int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  amx_gemm<Bf16, HardwareTiles>(C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k);
}

void tessel_ukernel_i8_amx(int32_t *C, int64_t ldc, const int8_t *A, int64_t lda_m, int64_t lda_k, const int8_t *B,
                           int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  amx_gemm<Int8, HardwareTiles>(C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k);
}

void tessel_ukernel_bf16_amx_emulated(float *C, int64_t ldc, const uint16_t *A, int64_t lda_m, int64_t lda_k,
                                      const uint16_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  amx_gemm<Bf16, SoftwareTiles>(C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k);
}

void tessel_ukernel_i8_amx_emulated(int32_t *C, int64_t ldc, const int8_t *A, int64_t lda_m, int64_t lda_k,
                                    const int8_t *B, int64_t ldb_k, int64_t m, int64_t n, int64_t k) {
  amx_gemm<Int8, SoftwareTiles>(C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k);
}

int tessel_amx_usable(void) { return amx_usable() ? 1 : 0; }
}
