// Tuned CUDA kernels against cuBLAS, measured side by side in one run on one GPU:
// each matmul's best record for a CUDA target in a tuning database (as
// `tessel run --target T --db` applies it) next to cublasSgemm (f32) or
// cublasGemmEx (f16/bf16 inputs, f32 accumulation) on the same inputs. Both are
// timed with CUDA events, the L2 flushed before every timed run, median of the
// repeats; Google Benchmark interleaves the repetitions. cuBLAS's output is
// checked against Tessel's (which the tuner checked against the interpreter).
//   bench_cuda --db gpu.db [--target h100] SPEC... [--benchmark_*]
#include "bench_util.h"
#include "codegen/cuda_compiler.h"
#include "codegen/cuda_driver.h"
#include "db/database.h"
#include "interp/interpreter.h"
#include "lower/lower.h"
#include "support/stats.h"
#include "te/ops.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>

using namespace tessel;

namespace {

struct Options {
  std::string db = "tessel.db";
  std::string target = "h100";
  // Timed runs per benchmark iteration; the iteration's time is their median. An iteration of Tessel's
  // also copies the inputs and loads the module (run_cuda_program), so iterations are few and fixed:
  // with Google Benchmark choosing them by the kernel's time alone, one repetition took minutes.
  int repeats = 30;
  int iterations = 3;
  std::vector<std::string> specs;
};
Options g;

struct Case {
  std::string spec;
  te::Workload w;
  int64_t m = 0, n = 0, k = 0;
  std::vector<interp::NDArray> inputs, outputs;
  codegen::CudaProgram program;
  std::vector<void *> args;
  std::vector<int64_t> bytes;
  std::string kernels; // launch shapes and resources, for the table's notes
};
std::vector<std::unique_ptr<Case>> g_cases;
std::map<std::string, std::string> g_check;

#define CHECK_CUDA(call)                                                                                               \
  if (cudaError_t e_ = (call); e_ != cudaSuccess) {                                                                    \
    s.SkipWithError(cudaGetErrorString(e_));                                                                           \
    return;                                                                                                            \
  }

// The best record's program, compiled; its first run gives Tessel's outputs.
Status prepare(Case &c, const db::Database &db, const Target &target) {
  auto w = te::make_op_workload(c.spec);
  if (!w) return Status::error(w.error());
  c.w = w.take();
  if (c.w.key.rfind("matmul", 0) != 0) return Status::error("cuBLAS is compared on matmul workloads only");
  auto shape = c.w.outputs[0]->shape;
  c.m = shape[0], c.n = shape[1], c.k = c.w.flops() / (2 * c.m * c.n);
  auto best = db::apply_best(db, c.w, db::target_key(target, 1));
  if (!best) return Status::error(best.error());
  auto lowered = lower::lower(best->schedule, "tuned");
  if (!lowered) return Status::error(lowered.error());
  auto program = codegen::compile_cuda_program(*lowered, target);
  if (!program) return Status::error(program.error());
  if (!program->over_limits.empty()) return Status::error("the best record does not fit: " + program->over_limits);
  c.program = program.take();
  for (auto &u : c.program.usage)
    c.kernels += u.name + " grid " + std::to_string(u.grid[0]) + "x" + std::to_string(u.grid[1]) + "x" +
                 std::to_string(u.grid[2]) + " block " + std::to_string(u.block[0]) + "x" + std::to_string(u.block[1]) +
                 "x" + std::to_string(u.block[2]) + ", " + std::to_string(u.registers) + " regs, " +
                 std::to_string(u.shared_bytes) + " B shared; ";
  c.inputs = interp::random_inputs(c.w, 3);
  c.outputs = interp::empty_outputs(c.w);
  for (auto [source, i] : c.program.code.args) {
    interp::NDArray &a = source == codegen::ObjectCode::Source::Input ? c.inputs[size_t(i)] : c.outputs[size_t(i)];
    c.args.push_back(a.data()), c.bytes.push_back(a.bytes());
  }
  codegen::CudaRunOptions once;
  once.repeats = 1;
  auto first = codegen::run_cuda_program(c.program.code, c.args, c.bytes, once);
  if (!first) return Status::error(first.error());
  auto expected = interp::interpret(c.w, c.inputs);
  if (!expected) return Status::error("reference interpreter: " + expected.error());
  interp::Comparison cmp = interp::compare(c.outputs[0], (*expected)[0]);
  if (!cmp.ok) return Status::error("the tuned kernel does not match the interpreter: " + cmp.message);
  return Status::ok();
}

void run_tessel(benchmark::State &s, Case &c, int64_t flush_bytes) {
  codegen::CudaRunOptions o;
  o.repeats = g.repeats;
  o.flush_bytes = flush_bytes;
  for (auto _ : s) {
    auto seconds = codegen::run_cuda_program(c.program.code, c.args, c.bytes, o);
    if (!seconds) {
      s.SkipWithError(seconds.error().c_str());
      return;
    }
    s.SetIterationTime(median(*seconds));
  }
}

cudaDataType cuda_type(const ir::DataType &t) {
  if (t == ir::DataType::f16()) return CUDA_R_16F;
  if (t == ir::DataType::bf16()) return CUDA_R_16BF;
  return CUDA_R_32F;
}

// Row-major C[m,n] = A[m,k] B[k,n] is column-major C^T = B^T A^T: cuBLAS gets B first.
void run_cublas(benchmark::State &s, Case &c, int64_t flush_bytes) {
  const interp::NDArray &A = c.inputs[0], &B = c.inputs[1];
  interp::NDArray C = interp::empty_outputs(c.w)[0];
  void *dA = nullptr, *dB = nullptr, *dC = nullptr, *flush = nullptr;
  CHECK_CUDA(cudaMalloc(&dA, size_t(A.bytes())));
  CHECK_CUDA(cudaMalloc(&dB, size_t(B.bytes())));
  CHECK_CUDA(cudaMalloc(&dC, size_t(C.bytes())));
  CHECK_CUDA(cudaMalloc(&flush, size_t(std::max<int64_t>(flush_bytes, 1))));
  CHECK_CUDA(cudaMemcpy(dA, A.data(), size_t(A.bytes()), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dB, B.data(), size_t(B.bytes()), cudaMemcpyHostToDevice));
  cublasHandle_t h = nullptr;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return s.SkipWithError("cublasCreate failed");
  const float alpha = 1, beta = 0;
  const ir::DataType t = A.dtype();
  auto gemm = [&] {
    if (t == ir::DataType::f32())
      return cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, int(c.n), int(c.m), int(c.k), &alpha,
                         static_cast<const float *>(dB), int(c.n), static_cast<const float *>(dA), int(c.k), &beta,
                         static_cast<float *>(dC), int(c.n));
    return cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, int(c.n), int(c.m), int(c.k), &alpha, dB, cuda_type(t), int(c.n),
                        dA, cuda_type(t), int(c.k), &beta, dC, cuda_type(C.dtype()), int(c.n), CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
  };
  std::string key = "cuBLAS/" + c.spec;
  if (gemm() != CUBLAS_STATUS_SUCCESS) return s.SkipWithError("cuBLAS has no GEMM for these types");
  CHECK_CUDA(cudaMemcpy(C.data(), dC, size_t(C.bytes()), cudaMemcpyDeviceToHost));
  interp::Comparison cmp = interp::compare(C, c.outputs[0]);
  g_check[key] =
      cmp.ok ? "ok (max abs difference " + std::to_string(cmp.max_abs_error) + ")" : "MISMATCH " + cmp.message;
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  for (auto _ : s) {
    std::vector<double> seconds;
    for (int r = 0; r < g.repeats; ++r) {
      if (flush_bytes > 0) CHECK_CUDA(cudaMemsetAsync(flush, r & 0xff, size_t(flush_bytes)));
      CHECK_CUDA(cudaEventRecord(start));
      gemm();
      CHECK_CUDA(cudaEventRecord(stop));
      CHECK_CUDA(cudaEventSynchronize(stop));
      float ms = 0;
      CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
      seconds.push_back(ms * 1e-3);
    }
    s.SetIterationTime(median(seconds));
  }
  cudaEventDestroy(start), cudaEventDestroy(stop);
  cublasDestroy(h);
  cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(flush);
}

} // namespace

int main(int argc, char **argv) {
  std::vector<char *> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--db" && i + 1 < argc)
      g.db = argv[++i];
    else if (a == "--target" && i + 1 < argc)
      g.target = argv[++i];
    else if (a == "--repeats" && i + 1 < argc)
      g.repeats = std::max(1, std::atoi(argv[++i]));
    else if (a.rfind("--benchmark", 0) == 0)
      rest.push_back(argv[i]);
    else if (a == "-h" || a == "--help") {
      std::printf("bench_cuda --db DB [--target h100] [--repeats N] SPEC... [--benchmark_*]\n"
                  "  tuned matmuls of a CUDA target next to cuBLAS, in one run on this machine's GPU\n");
      return 0;
    } else
      g.specs.push_back(a);
  }
  int rest_argc = int(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  auto target = Target::load(g.target);
  if (!target || !target->is_cuda()) {
    std::fprintf(stderr, "bench_cuda: %s is not a CUDA target (try h100, a100)\n", g.target.c_str());
    return 1;
  }
  if (Status here = codegen::runnable_here(*target); !here) {
    std::fprintf(stderr, "bench_cuda: %s\n", here.message().c_str());
    return 2;
  }
  auto device = codegen::cuda_device();
  db::OpenOptions ro;
  ro.read_only = true;
  auto db = db::open_sqlite(g.db, ro);
  if (!db) {
    std::fprintf(stderr, "bench_cuda: %s\n", db.error().c_str());
    return 1;
  }
  const int64_t flush = target->l2_bytes;
  for (auto &spec : g.specs) {
    auto c = std::make_unique<Case>();
    c->spec = spec;
    if (Status st = prepare(*c, **db, *target); !st) {
      std::fprintf(stderr, "bench_cuda: %s: %s (skipped)\n", spec.c_str(), st.message().c_str());
      continue;
    }
    Case *cp = c.get();
    benchmark::RegisterBenchmark(("Tessel_tuned/" + spec).c_str(),
                                 [cp, flush](benchmark::State &s) { run_tessel(s, *cp, flush); })
        ->UseManualTime()
        ->Iterations(g.iterations)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("cuBLAS/" + spec).c_str(),
                                 [cp, flush](benchmark::State &s) { run_cublas(s, *cp, flush); })
        ->UseManualTime()
        ->Iterations(g.iterations)
        ->Unit(benchmark::kMicrosecond);
    g_cases.push_back(std::move(c));
  }
  bench::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n== Tuned CUDA kernels vs cuBLAS (%s, %s; %s; GFLOP/s, medians; L2 flushed) ==\n",
              device ? device->name.c_str() : "?", target->name.c_str(), g.db.c_str());
  std::printf("%-44s %10s %10s %7s\n", "workload", "tuned", "cuBLAS", "ratio");
  for (auto &c : g_cases) {
    auto get = [&](const std::string &name) { // from the median time (manual, in microseconds)
      auto it = reporter.ms.find(name + "/" + c->spec);
      return it == reporter.ms.end() || it->second <= 0 ? 0.0 : c->w.flops() * 1e-9 / (it->second * 1e-6);
    };
    double t = get("Tessel_tuned"), b = get("cuBLAS");
    std::printf("%-44s %10.1f %10.1f %7s   %s\n", c->spec.c_str(), t, b,
                b > 0 ? (std::to_string(t / b).substr(0, 5) + "x").c_str() : "-", c->kernels.c_str());
  }
  std::printf("checks (cuBLAS against Tessel's output):");
  for (auto &[k, v] : g_check) std::printf(" %s %s;", k.c_str(), v.c_str());
  std::printf("\n");
  benchmark::Shutdown();
  return 0;
}
