// Code generator benchmarks:
//  * JIT compile time per kernel (lower + LLVM -O3 + ORC JIT);
//  * CUDA compile time per candidate (lower + CUDA C++ + NVRTC + the cubin's resources), cold and from
//    the cache, for sampled GPU schedules;
//  * default-schedule GEMM throughput next to OpenBLAS cblas_sgemm, both
//    single-threaded, interleaved in one run, reported as a ratio.
// Run through scripts/bench, which prints the summary table.
#include "codegen/cpu_compiler.h"
#include "codegen/cuda_compiler.h"
#include "interp/interpreter.h"
#include "runtime/runtime.h"
#include "schedules/schedule.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "te/ops.h"

#include "bench_util.h"

#include <benchmark/benchmark.h>

#ifdef TESSEL_HAVE_OPENBLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
extern "C" char *openblas_get_corename(void);
#endif

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace tessel;
using tessel::bench::read_file;

namespace {

const std::vector<std::string> kCompileSpecs = {
    "matmul:M=256,N=256,K=256",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,layout=NCHW",
    "softmax:M=128,N=1000",
    "layernorm:M=128,N=768",
    "conv2d_bias_relu:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,layout=NHWC",
};

te::Workload load(const std::string &spec) {
  auto w = te::make_op_workload(spec);
  if (!w) {
    std::fprintf(stderr, "bench: %s\n", w.error().c_str());
    std::exit(1);
  }
  return *w;
}

void BM_JitCompile(benchmark::State &state) {
  te::Workload w = load(kCompileSpecs[state.range(0)]);
  state.SetLabel(w.key);
  for (auto _ : state) {
    auto f = lower::lower(sched::default_schedule(w), "k");
    auto k = codegen::jit_compile(*f, Target::host());
    if (!k) state.SkipWithError(k.error().c_str());
    benchmark::DoNotOptimize(k);
  }
}
BENCHMARK(BM_JitCompile)->DenseRange(0, int(kCompileSpecs.size()) - 1)->Unit(benchmark::kMillisecond);

// What the builder does per CUDA candidate, for a fresh sample each iteration (a new source: NVRTC compiles);
// with range(1) = 1, the same candidate again (served from the cache by source).
const std::vector<std::pair<std::string, std::string>> kCudaSpecs = {
    {"matmul:M=1024,N=1024,K=1024", "gpu-tile+shared"},
    {"matmul:M=1024,N=1024,K=1024,dtype=f16", "gpu-tensorcore"},
    {"softmax:M=128,N=3072", ""},
};
void BM_CudaCompile(benchmark::State &state) {
  std::string why;
  if (!codegen::nvrtc_available(&why)) return state.SkipWithError(("no NVRTC: " + why).c_str());
  auto [spec, sketch_name] = kCudaSpecs[size_t(state.range(0))];
  te::Workload w = load(spec);
  Target h100 = Target::load("h100").take();
  sched::SpaceGenerator gen(h100);
  std::vector<sched::Sketch> sketches;
  for (auto &k : gen.sketches(w))
    if (sketch_name.empty() || k.name == sketch_name) sketches.push_back(k);
  sched::Rng rng(7);
  state.SetLabel(spec + (sketch_name.empty() ? "" : " " + sketch_name));
  int i = 0;
  std::optional<sched::Schedule> same;
  for (auto _ : state) {
    state.PauseTiming();
    if (!same || state.range(1) == 0) {
      auto s = gen.sample(w, sketches[size_t(i) % sketches.size()], rng);
      if (!s) return state.SkipWithError(s.error().c_str());
      same = s.take();
    }
    state.ResumeTiming();
    auto p = lower::lower(*same, "k" + std::to_string(state.range(1) ? 0 : i++)); // a new name, a new source
    auto cuda = codegen::compile_cuda_program(*p, h100);
    if (!cuda) return state.SkipWithError(cuda.error().c_str());
    benchmark::DoNotOptimize(cuda);
  }
}
BENCHMARK(BM_CudaCompile)
    ->ArgsProduct({{0, 1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(8)
    ->UseRealTime();

// A parallel region of two chunks of about 15 us of work each, back to back (as a timing loop or a kernel of
// several parallel nests runs them): about 15 us when both threads work at once, 30 us and more when one
// of them sleeps through the region (the caller then runs both chunks).
void BM_ParallelRegion(benchmark::State &state) {
  tessel_set_num_threads(int(state.range(0)));
  auto work = [](int64_t begin, int64_t end, void *) {
    for (int64_t c = begin; c < end; ++c) {
      volatile double x = 1;
      for (int i = 0; i < 4000; ++i) x = x * 1.0000001 + 1e-9;
    }
  };
  for (auto _ : state) tessel_parallel_for(2, work, nullptr);
  tessel_set_num_threads(1);
}
BENCHMARK(BM_ParallelRegion)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Gemm_TesselDefault(benchmark::State &state) {
  int64_t n = state.range(0);
  te::Workload w = load("matmul:M=" + std::to_string(n) + ",N=" + std::to_string(n) + ",K=" + std::to_string(n));
  auto f = lower::lower(sched::default_schedule(w), "gemm");
  auto k = codegen::jit_compile(*f, Target::host());
  if (!k) return state.SkipWithError(k.error().c_str());
  auto in = interp::random_inputs(w, 1);
  auto out = interp::empty_outputs(w);
  std::vector<void *> ins{in[0].data(), in[1].data()}, outs{out[0].data()};
  tessel_set_num_threads(1);
  k->pack(ins);
  for (auto _ : state) k->run(ins, outs);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Gemm_TesselDefault)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

// The hand-written trace of configs/traces: proof that the schedule space
// holds programs as fast as a tuned BLAS. B is a constant packed ahead of time
// (the packing is not in the timed call).
void gemm_trace(benchmark::State &state, const char *trace) {
  std::string root = TESSEL_SOURCE_DIR;
  auto w = te::load_workload(root + "/configs/workloads/matmul_1024_constb.te");
  if (!w) return state.SkipWithError(w.error().c_str());
  auto s = sched::replay_json(*w, read_file(root + "/configs/traces/" + trace));
  if (!s) return state.SkipWithError(s.error().c_str());
  auto f = lower::lower(*s, "gemm");
  auto k = codegen::jit_compile(*f, Target::host());
  if (!k) return state.SkipWithError(k.error().c_str());
  auto in = interp::random_inputs(*w, 1);
  auto out = interp::empty_outputs(*w);
  std::vector<void *> ins{in[0].data(), in[1].data()}, outs{out[0].data()};
  tessel_set_num_threads(1);
  k->pack(ins);
  for (auto _ : state) k->run(ins, outs);
  double n = 1024;
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_Gemm_TesselTrace(benchmark::State &state) { gemm_trace(state, "matmul_1024_constb_avx512.json"); }
BENCHMARK(BM_Gemm_TesselTrace)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
// The register tile tensorized onto the FMA micro-kernel of this host's ISA (AVX-512 or AVX2).
std::string tensorized_trace() { return "matmul_1024_constb_" + bench::host_trace_isa() + "_tensorized.json"; }
void BM_Gemm_TesselTensorized(benchmark::State &state) { gemm_trace(state, tensorized_trace().c_str()); }
BENCHMARK(BM_Gemm_TesselTensorized)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

#ifdef TESSEL_HAVE_OPENBLAS
void BM_Gemm_OpenBLAS(benchmark::State &state) {
  int n = int(state.range(0));
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  openblas_set_num_threads(1);
  for (auto _ : state)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  // Some OpenBLAS builds compute wrong results on CPUs newer than themselves: a baseline must be right to count.
  for (float x : c)
    if (x != 0.125f * float(n))
      return state.SkipWithError(
          ("OpenBLAS computed a wrong result with its " + std::string(openblas_get_corename()) + " kernels").c_str());
  state.SetLabel(std::string("OpenBLAS core ") + openblas_get_corename());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Gemm_OpenBLAS)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

} // namespace

int main(int argc, char **argv) {
  setenv("TESSEL_CACHE_DIR", "off", 1); // cold CUDA compiles are cold: no binaries from an earlier run
  benchmark::Initialize(&argc, argv);
  bench::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n== Summary (medians; single-threaded; %s) ==\n", Target::host().str().c_str());
#ifdef TESSEL_HAVE_OPENBLAS
  std::printf("OpenBLAS kernels: %s (OPENBLAS_CORETYPE=%s)\n", openblas_get_corename(),
              std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "unset");
#endif
  std::string tensorized_label = "configs/traces/" + tensorized_trace();
  std::printf("%-10s %-48s %12s %18s %10s\n", "GEMM n^3", "Tessel schedule", "GFLOP/s", "OpenBLAS GFLOP/s", "ratio");
  for (int n : {256, 1024}) {
    auto o = reporter.gflops.find("BM_Gemm_OpenBLAS/" + std::to_string(n));
    for (auto [bench, label] : {std::pair<const char *, const char *>{"BM_Gemm_TesselDefault/", "default (untuned)"},
                                {"BM_Gemm_TesselTrace/", "configs/traces/matmul_1024_constb_avx512.json"},
                                {"BM_Gemm_TesselTensorized/", tensorized_label.c_str()}}) {
      auto t = reporter.gflops.find(bench + std::to_string(n));
      if (t == reporter.gflops.end()) continue;
      if (o == reporter.gflops.end())
        std::printf("%-10d %-48s %12.2f %18s %10s\n", n, label, t->second, "-", "-");
      else
        std::printf("%-10d %-48s %12.2f %18.2f %9.3fx\n", n, label, t->second, o->second, t->second / o->second);
    }
  }
  std::printf("\n%-4s %-75s %10s\n", "#", "JIT compile (lower + LLVM -O3 + JIT)", "ms");
  for (size_t i = 0; i < kCompileSpecs.size(); ++i) {
    auto it = reporter.ms.find("BM_JitCompile/" + std::to_string(i));
    if (it != reporter.ms.end()) std::printf("%-4zu %-75s %10.1f\n", i, kCompileSpecs[i].c_str(), it->second);
  }
  auto one = reporter.ms.find("BM_ParallelRegion/1"), two = reporter.ms.find("BM_ParallelRegion/2");
  if (one != reporter.ms.end() && two != reporter.ms.end())
    std::printf("\nparallel region of two work chunks: %.2f us on 1 thread, %.2f us on 2 (%.2fx)\n", one->second,
                two->second, one->second / two->second);
  std::printf("\n%-4s %-63s %10s %10s\n", "#", "CUDA compile per candidate (lower + CUDA + NVRTC + cubin)", "cold ms",
              "cached ms");
  for (size_t i = 0; i < kCudaSpecs.size(); ++i) {
    auto cold = reporter.ms.find("BM_CudaCompile/" + std::to_string(i) + "/0/iterations:8");
    auto hot = reporter.ms.find("BM_CudaCompile/" + std::to_string(i) + "/1/iterations:8");
    if (cold != reporter.ms.end() && hot != reporter.ms.end())
      std::printf("%-4zu %-63s %10.1f %10.2f\n", i, (kCudaSpecs[i].first + " " + kCudaSpecs[i].second).c_str(),
                  cold->second, hot->second);
  }
  benchmark::Shutdown();
  return 0;
}
