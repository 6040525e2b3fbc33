// The tensor-intrinsic micro-kernels alone (src/runtime/ukernels*.cpp), operands in cache: what a tuned GEMM or
// conv can reach at most, and a way to repeat a kernel change's figure on the next machine. Every kernel the host
// runs, on the shapes schedules give them: a full register tile, a block of tiles with a long k, a ragged tile,
// and A column-major (conv's im2col-free layout). The plain reference loops (the emulations) run beside them.
//   bench_ukernels                                   # every kernel the host has, 5 interleaved repetitions
//   bench_ukernels --benchmark_filter=avx512_fma     # one kernel
#include "bench_util.h"
#include "runtime/runtime.h"
#include "schedules/intrinsics.h"
#include "support/float16.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace tessel;

namespace {

using F32Kernel = void (*)(float *, int64_t, const float *, int64_t, int64_t, const float *, int64_t, int64_t, int64_t,
                           int64_t);
using Bf16Kernel = void (*)(float *, int64_t, const uint16_t *, int64_t, int64_t, const uint16_t *, int64_t, int64_t,
                            int64_t, int64_t);
using I8Kernel = void (*)(int32_t *, int64_t, const int8_t *, int64_t, int64_t, const int8_t *, int64_t, int64_t,
                          int64_t, int64_t);

struct Kernel {
  std::string name;      // the intrinsic's, or "<dtype>_reference"
  std::string intrinsic; // whose availability on the host decides whether it runs; "" for the references
  F32Kernel f32 = nullptr;
  Bf16Kernel bf16 = nullptr;
  I8Kernel i8 = nullptr;
  bool amx = false; // also needs the OS to grant AMX tiles
};

const std::vector<Kernel> &kernels() {
  static const std::vector<Kernel> all = {
      {"avx512_fma_f32", "avx512_fma_f32", tessel_ukernel_f32_fma_avx512},
      {"avx2_fma_f32", "avx2_fma_f32", tessel_ukernel_f32_fma_avx2},
      {"f32_reference", "", tessel_ukernel_f32_reference},
      {"avx512_bf16_dot", "avx512_bf16_dot", nullptr, tessel_ukernel_bf16_dot_avx512},
      {"amx_bf16", "amx_bf16", nullptr, tessel_ukernel_bf16_amx, nullptr, true},
      {"bf16_reference", "", nullptr, tessel_ukernel_bf16_reference},
      {"amx_int8", "amx_int8", nullptr, nullptr, tessel_ukernel_i8_amx, true},
      {"i8_reference", "", nullptr, nullptr, tessel_ukernel_i8_reference},
  };
  return all;
}

struct Shape {
  const char *name;
  int64_t m, n, k;
  bool a_column_major; // A[i, k] at k * m + i (lda_m = 1) instead of i * k + k
};
const Shape kShapes[] = {
    {"tile_6x64x512", 6, 64, 512, false},
    {"block_16x64x1024", 16, 64, 1024, false},
    {"ragged_5x50x256", 5, 50, 256, false},
    {"colA_16x64x1024", 16, 64, 1024, true},
};

// The benchmark's name: what it is registered as and what the table looks up.
std::string bench_name(const Kernel &k, const Shape &s) { return "BM_Ukernel/" + k.name + "/" + s.name; }

// Why a kernel cannot run here, or "" when it can.
std::string unavailable(const Kernel &k) {
  if (k.intrinsic.empty()) return "";
  const sched::TensorIntrinsic *in = sched::find_tensor_intrinsic(k.intrinsic);
  if (!in) return "no intrinsic " + k.intrinsic;
  if (!in->available_on(Target::host())) return "host lacks " + in->required_feature;
  if (k.amx && !tessel_amx_usable()) return "the OS grants no AMX tiles";
  return "";
}

template <typename T> std::vector<T> random_values(size_t n, int seed) {
  std::mt19937 rng(seed);
  std::vector<T> v(n);
  std::uniform_int_distribution<int> small(-3, 3);
  for (auto &x : v) {
    if constexpr (std::is_same_v<T, uint16_t>) { // bf16
      x = float_to_bf16(float(small(rng)) * 0.125f);
    } else if constexpr (std::is_same_v<T, float>) {
      x = float(small(rng)) * 0.125f;
    } else {
      x = T(small(rng));
    }
  }
  return v;
}

void BM_Ukernel(benchmark::State &state, const Kernel &kernel, const Shape &s) {
  const int64_t lda_m = s.a_column_major ? 1 : s.k, lda_k = s.a_column_major ? s.m : 1;
  auto run = [&](auto *fn, auto a_elem, auto c_elem) {
    using A = decltype(a_elem);
    using C = decltype(c_elem);
    auto a = random_values<A>(size_t(s.m * s.k), 1), b = random_values<A>(size_t(s.k * s.n), 2);
    std::vector<C> c(size_t(s.m * s.n), C(0));
    for (auto _ : state) {
      fn(c.data(), s.n, a.data(), lda_m, lda_k, b.data(), s.n, s.m, s.n, s.k);
      benchmark::DoNotOptimize(c.data());
      benchmark::ClobberMemory();
    }
  };
  if (kernel.f32) run(kernel.f32, float(), float());
  if (kernel.bf16) run(kernel.bf16, uint16_t(), float());
  if (kernel.i8) run(kernel.i8, int8_t(), int32_t());
  // Multiply-adds count two operations, integer ones too (GOP/s for int8), as for the GEMMs.
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(s.m * s.n * s.k) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

} // namespace

int main(int argc, char **argv) {
  if (!bench::initialize_with_defaults(argc, argv,
                                       {"--benchmark_repetitions=5", "--benchmark_enable_random_interleaving=true",
                                        "--benchmark_report_aggregates_only=true", "--benchmark_min_time=0.1",
                                        "--benchmark_color=false"}))
    return 1;
  for (const Kernel &k : kernels()) // only what the host runs; the table names the others and why
    for (const Shape &s : kShapes)
      if (unavailable(k).empty()) benchmark::RegisterBenchmark(bench_name(k, s).c_str(), BM_Ukernel, k, s);
  bench::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\n== Micro-kernels, operands in cache, GFLOP/s (GOP/s for int8); medians; single-threaded; %s ==\n",
              Target::host().str().c_str());
  std::printf("%-18s", "kernel");
  for (const Shape &s : kShapes) std::printf(" %18s", s.name);
  std::printf("\n");
  for (const Kernel &k : kernels()) {
    std::printf("%-18s", k.name.c_str());
    std::string why = unavailable(k);
    for (const Shape &s : kShapes) {
      auto it = reporter.gflops.find(bench_name(k, s));
      if (it != reporter.gflops.end())
        std::printf(" %18.1f", it->second);
      else
        std::printf(" %18s", why.empty() ? "-" : "skipped");
    }
    if (!why.empty()) std::printf("   (%s)", why.c_str());
    std::printf("\n");
  }
  return 0;
}
