// Tuned kernels against the vendor libraries, measured side by side in one run:
// each workload's best record in a tuning database (as `tessel run --db` applies
// it) next to oneDNN (and OpenBLAS for GEMMs) on the same inputs, interleaved
// repetitions, medians. Checks every baseline's output against Tessel's (which
// the tuner checked against the interpreter). benchmarks/tune_vs_vendor runs it.
//   bench_tuned --db tessel.db [--threads N] [--default] SPEC...
#include "bench_util.h"
#include "codegen/cpu_compiler.h"
#include "db/database.h"
#include "interp/interpreter.h"
#include "lower/lower.h"
#include "runtime/runtime.h"
#include "search/tuner.h"
#include "te/ops.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#ifdef TESSEL_HAVE_OPENBLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif
#ifdef TESSEL_HAVE_DNNL
#include <dnnl.hpp>
#endif

using namespace tessel;

namespace {

struct Options {
  std::string db = "tessel.db";
  int threads = 1;
  bool with_default = false;
  std::vector<std::string> specs;
};
Options g;

std::map<std::string, int64_t> params_of(const std::string &spec) {
  std::map<std::string, int64_t> out;
  auto colon = spec.find(':');
  std::string rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
  size_t start = 0;
  while (start < rest.size()) {
    size_t comma = rest.find(',', start);
    std::string kv = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    auto eq = kv.find('=');
    if (eq != std::string::npos) {
      try {
        out[kv.substr(0, eq)] = std::stoll(kv.substr(eq + 1));
      } catch (...) {
      }
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}
std::string op_of(const std::string &spec) { return spec.substr(0, spec.find(':')); }

struct Case {
  std::string spec;
  te::Workload w;
  std::vector<interp::NDArray> inputs, outputs;
  std::vector<void *> in, out;
  std::unique_ptr<codegen::CompiledProgram> tuned, plain;
  std::vector<float> tessel_out;
  std::string note;
  int trials = 0, trials_to_95 = 0;
  double seconds_to_95 = 0;
};
std::vector<std::unique_ptr<Case>> g_cases;
std::map<std::string, double> g_check; // "spec/baseline" -> max relative difference to Tessel

double rel_diff(const std::vector<float> &a, const float *b) {
  double maxabs = 1e-30, diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    maxabs = std::max(maxabs, double(std::fabs(a[i]))), diff = std::max(diff, double(std::fabs(a[i] - b[i])));
  return diff / maxabs;
}

// OpenMP reads its environment when the library loads, before main: a thread count or spin limit set later
// is partly ignored. Measured here (AMD EPYC, 1 thread, GEMM 1024^3 interleaved with oneDNN): with the
// defaults an OpenMP thread kept spinning after each oneDNN call and slowed whatever ran next, Tessel 193
// vs oneDNN 210 GFLOP/s; with OMP_NUM_THREADS set beforehand, 212 vs 210. So the process re-executes itself
// once with OMP_NUM_THREADS = --threads and GOMP_SPINCOUNT = 10000 (about 100 us of spinning, as long as
// Tessel's own pool spins) unless they are set already: neither runtime then taxes the other's runs.
void ensure_openmp_environment(int threads, char **argv) {
  std::string want = std::to_string(threads);
  const char *have = std::getenv("OMP_NUM_THREADS");
  if (have && want == have && std::getenv("GOMP_SPINCOUNT")) return;
  setenv("OMP_NUM_THREADS", want.c_str(), 1);
  if (!std::getenv("GOMP_SPINCOUNT")) setenv("GOMP_SPINCOUNT", "10000", 1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "bench_tuned: could not re-execute itself to set OMP_NUM_THREADS (%s); continuing\n",
               std::strerror(errno));
}

void set_threads(int n) {
  tessel_set_num_threads(n);
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"))) f(n);
#ifdef TESSEL_HAVE_OPENBLAS
  openblas_set_num_threads(n);
#endif
}

void run_program(benchmark::State &state, Case &c, codegen::CompiledProgram &p) {
  for (auto _ : state) p.run(c.in, c.out);
  state.counters["GFLOP/s"] = benchmark::Counter(c.w.flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

#ifdef TESSEL_HAVE_OPENBLAS
// matmul, dense (Y = X W^T + bias) and batch_matmul on cblas_sgemm.
bool gemm(Case &c, const float *const *in, float *out) {
  auto p = params_of(c.spec);
  std::string op = op_of(c.spec);
  int M = int(p["M"]), N = int(p["N"]), K = int(p["K"]), B = op == "batch_matmul" ? int(p["B"]) : 1;
  if (op == "matmul" || op == "batch_matmul") {
    for (int b = 0; b < B; ++b)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, in[0] + size_t(b) * M * K, K,
                  in[1] + size_t(b) * K * N, N, 0.f, out + size_t(b) * M * N, N);
    return true;
  }
  if (op == "dense") {
    for (int i = 0; i < M; ++i) std::copy(in[2], in[2] + N, out + size_t(i) * N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, in[0], K, in[1], K, 1.f, out, N);
    return true;
  }
  return false;
}
#endif

#ifdef TESSEL_HAVE_DNNL
using dnnl::memory;
using tag = memory::format_tag;
struct Dnnl {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  memory dst, dst_plain; // dst in oneDNN's layout, and plain for the check
  std::string impl;
};

// oneDNN's primitive for the workload, inputs reordered into its preferred layouts ahead of time.
std::unique_ptr<Dnnl> make_dnnl(Case &c) {
  auto d = std::make_unique<Dnnl>();
  auto p = params_of(c.spec);
  std::string op = op_of(c.spec);
  auto f32 = memory::data_type::f32;
  auto plain = [&](int i, const memory::dims &dims, tag t) {
    return memory({dims, f32, t}, d->eng, c.inputs[size_t(i)].data());
  };
  auto place = [&](const memory &from, const memory::desc &want) {
    if (from.get_desc() == want) return from;
    memory to(want, d->eng);
    dnnl::reorder(from, to).execute(d->strm, const_cast<memory &>(from), to);
    return to;
  };
  if (op == "matmul" || op == "batch_matmul" || op == "dense") {
    int64_t M = p["M"], N = p["N"], K = p["K"], B = op == "batch_matmul" ? p["B"] : 1;
    memory::dims a_dims = {B, M, K}, b_dims = {B, K, N}, c_dims = {B, M, N};
    memory::desc a_md(a_dims, f32, tag::abc), c_md(c_dims, f32, tag::abc);
    memory::desc b_any(b_dims, f32, tag::any);
    memory a = plain(0, a_dims, tag::abc);
    memory b_plain = op == "dense" ? memory({b_dims, f32, tag::acb}, d->eng, c.inputs[1].data()) // W[N,K] = B^T
                                   : plain(1, b_dims, tag::abc);
    dnnl::matmul::desc desc = op == "dense"
                                  ? dnnl::matmul::desc(a_md, b_any, memory::desc({1, 1, N}, f32, tag::abc), c_md)
                                  : dnnl::matmul::desc(a_md, b_any, c_md);
    dnnl::matmul::primitive_desc pd(desc, d->eng);
    d->impl = pd.impl_info_str();
    d->prim = dnnl::matmul(pd);
    d->dst = memory(pd.dst_desc(), d->eng, c.outputs[0].data());
    d->args = {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, place(b_plain, pd.weights_desc())}, {DNNL_ARG_DST, d->dst}};
    if (op == "dense") d->args[DNNL_ARG_BIAS] = memory({{1, 1, N}, f32, tag::abc}, d->eng, c.inputs[2].data());
  } else if (op == "conv2d" || op == "depthwise_conv2d") {
    int64_t N = p["N"], C = p["C"], H = p["H"], W = p["W"], R = p["R"], S = p["S"];
    int64_t stride = p.count("stride") ? p["stride"] : 1, pad = p.count("pad") ? p["pad"] : 0;
    bool dw = op == "depthwise_conv2d";
    int64_t K = dw ? C : p["K"];
    int64_t OH = (H + 2 * pad - R) / stride + 1, OW = (W + 2 * pad - S) / stride + 1;
    memory::dims src_dims{N, C, H, W}, dst_dims{N, K, OH, OW};
    memory::dims wei_dims = dw ? memory::dims{C, 1, 1, R, S} : memory::dims{K, C, R, S};
    memory::desc src_any(src_dims, f32, tag::any), wei_any(wei_dims, f32, tag::any), dst_any(dst_dims, f32, tag::any);
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                         src_any, wei_any, dst_any, {stride, stride}, {pad, pad}, {pad, pad});
    dnnl::convolution_forward::primitive_desc pd(desc, d->eng);
    d->impl = pd.impl_info_str();
    d->prim = dnnl::convolution_forward(pd);
    d->dst = memory(pd.dst_desc(), d->eng);
    d->dst_plain = memory({dst_dims, f32, tag::nchw}, d->eng, c.outputs[0].data());
    d->args = {{DNNL_ARG_SRC, place(plain(0, src_dims, tag::nchw), pd.src_desc())},
               {DNNL_ARG_WEIGHTS, place(plain(1, wei_dims, dw ? tag::goihw : tag::oihw), pd.weights_desc())},
               {DNNL_ARG_DST, d->dst}};
  } else if (op == "softmax") {
    memory::dims dims{p["M"], p["N"]};
    memory::desc md(dims, f32, tag::ab);
    dnnl::softmax_forward::desc desc(dnnl::prop_kind::forward_inference, md, 1);
    dnnl::softmax_forward::primitive_desc pd(desc, d->eng);
    d->impl = pd.impl_info_str();
    d->prim = dnnl::softmax_forward(pd);
    d->dst = memory(md, d->eng, c.outputs[0].data());
    d->args = {{DNNL_ARG_SRC, plain(0, dims, tag::ab)}, {DNNL_ARG_DST, d->dst}};
  } else if (op == "gelu") {
    memory::dims dims{p["M"], p["N"]};
    memory::desc md(dims, f32, tag::ab);
    dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_gelu_erf, md, 0.f,
                                     0.f);
    dnnl::eltwise_forward::primitive_desc pd(desc, d->eng);
    d->impl = pd.impl_info_str();
    d->prim = dnnl::eltwise_forward(pd);
    d->dst = memory(md, d->eng, c.outputs[0].data());
    d->args = {{DNNL_ARG_SRC, plain(0, dims, tag::ab)}, {DNNL_ARG_DST, d->dst}};
  } else if (op == "layernorm") {
    memory::dims dims{p["M"], p["N"]};
    memory::desc md(dims, f32, tag::ab);
    float eps = 1e-5f; // the spec's default; tune_vs_vendor uses it
    auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    dnnl::layer_normalization_forward::desc desc(dnnl::prop_kind::forward_inference, md, eps, flags);
    dnnl::layer_normalization_forward::primitive_desc pd(desc, d->eng);
    d->impl = pd.impl_info_str();
    d->prim = dnnl::layer_normalization_forward(pd);
    d->dst = memory(md, d->eng, c.outputs[0].data());
    memory::desc vec({p["N"]}, f32, tag::a);
    d->args = {{DNNL_ARG_SRC, plain(0, dims, tag::ab)},
               {DNNL_ARG_SCALE, memory(vec, d->eng, c.inputs[1].data())},
               {DNNL_ARG_SHIFT, memory(vec, d->eng, c.inputs[2].data())},
               {DNNL_ARG_DST, d->dst}};
  } else {
    return nullptr;
  }
  d->strm.wait();
  return d;
}
std::map<std::string, std::string> g_dnnl_impl;
#endif

Status prepare(Case &c, const db::Database &db) {
  auto w = te::make_op_workload(c.spec);
  if (!w) return Status::error(w.error());
  c.w = w.take();
  c.inputs = interp::random_inputs(c.w, 3);
  c.outputs = interp::empty_outputs(c.w);
  for (auto &a : c.inputs) c.in.push_back(a.data());
  for (auto &a : c.outputs) c.out.push_back(a.data());
  db::TargetKey key = db::target_key(Target::host(), g.threads);
  auto best = db::apply_best(db, c.w, key);
  if (!best) return Status::error(best.error());
  auto lowered = lower::lower(best->schedule, "tuned");
  if (!lowered) return Status::error(lowered.error());
  auto program = codegen::jit_compile(*lowered, Target::host());
  if (!program) return Status::error(program.error());
  c.tuned = std::make_unique<codegen::CompiledProgram>(program.take());
  c.tuned->pack(c.in);
  c.tuned->run(c.in, c.out);
  auto *o = static_cast<const float *>(c.outputs[0].data());
  c.tessel_out.assign(o, o + c.outputs[0].size());
  if (g.with_default) {
    auto plain = codegen::jit_compile(lower::lower(sched::default_schedule(c.w), "plain").take(), Target::host());
    if (plain) c.plain = std::make_unique<codegen::CompiledProgram>(plain.take()), c.plain->pack(c.in);
  }
  // Trials and seconds the search took to reach 95% of its final best (records in id order).
  auto records = db.records_for_workload(c.w.hash_hex());
  if (records) {
    std::vector<db::Record> mine;
    for (auto &r : *records)
      if (r.target.canonical == key.canonical && r.message.rfind(search::kRemeasuredNote, 0) != 0 &&
          r.message.rfind(search::kDefaultScheduleNote, 0) != 0)
        mine.push_back(r);
    std::sort(mine.begin(), mine.end(), [](auto &a, auto &b) { return a.id < b.id; });
    double best_s = 0;
    for (auto &r : mine)
      if (r.status == db::RecordStatus::Ok && (best_s == 0 || r.median_seconds < best_s)) best_s = r.median_seconds;
    c.trials = int(mine.size());
    double running = 0;
    for (size_t i = 0; i < mine.size(); ++i) {
      if (mine[i].status == db::RecordStatus::Ok && (running == 0 || mine[i].median_seconds < running))
        running = mine[i].median_seconds;
      if (running > 0 && best_s / running >= 0.95) {
        c.trials_to_95 = int(i + 1);
        c.seconds_to_95 = double(mine[i].timestamp - mine.front().timestamp);
        break;
      }
    }
  }
  return Status::ok();
}

} // namespace

int main(int argc, char **argv) {
  std::vector<char *> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--db" && i + 1 < argc)
      g.db = argv[++i];
    else if (a == "--threads" && i + 1 < argc)
      g.threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--default")
      g.with_default = true;
    else if (a.rfind("--benchmark", 0) == 0)
      rest.push_back(argv[i]);
    else
      g.specs.push_back(a);
  }
  ensure_openmp_environment(g.threads, argv);
  int rest_argc = int(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  set_threads(g.threads);
  db::OpenOptions ro;
  ro.read_only = true;
  auto db = db::open_sqlite(g.db, ro);
  if (!db) {
    std::fprintf(stderr, "bench_tuned: %s\n", db.error().c_str());
    return 1;
  }
  for (auto &spec : g.specs) {
    auto c = std::make_unique<Case>();
    c->spec = spec;
    if (Status st = prepare(*c, **db); !st) {
      std::fprintf(stderr, "bench_tuned: %s: %s (skipped)\n", spec.c_str(), st.message().c_str());
      continue;
    }
    Case *cp = c.get();
    benchmark::RegisterBenchmark(("Tessel_tuned/" + spec).c_str(),
                                 [cp](benchmark::State &s) { run_program(s, *cp, *cp->tuned); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    if (cp->plain)
      benchmark::RegisterBenchmark(("Tessel_default/" + spec).c_str(),
                                   [cp](benchmark::State &s) { run_program(s, *cp, *cp->plain); })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
#ifdef TESSEL_HAVE_OPENBLAS
    {
      std::vector<const float *> in;
      for (auto &a : cp->inputs) in.push_back(static_cast<const float *>(a.data()));
      std::vector<float> out(cp->tessel_out.size());
      if (gemm(*cp, in.data(), out.data())) {
        g_check[spec + "/OpenBLAS"] = rel_diff(cp->tessel_out, out.data());
        benchmark::RegisterBenchmark(("OpenBLAS/" + spec).c_str(),
                                     [cp, in](benchmark::State &s) {
                                       std::vector<float> o(cp->tessel_out.size());
                                       for (auto _ : s) gemm(*cp, in.data(), o.data());
                                       s.counters["GFLOP/s"] = benchmark::Counter(
                                           cp->w.flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
                                     })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
#endif
#ifdef TESSEL_HAVE_DNNL
    try {
      std::shared_ptr<Dnnl> d = make_dnnl(*cp);
      if (d) {
        d->prim.execute(d->strm, d->args);
        if (d->dst_plain) dnnl::reorder(d->dst, d->dst_plain).execute(d->strm, d->dst, d->dst_plain);
        d->strm.wait();
        g_check[spec + "/oneDNN"] = rel_diff(cp->tessel_out, static_cast<const float *>(cp->outputs[0].data()));
        g_dnnl_impl[spec] = d->impl;
        benchmark::RegisterBenchmark(("oneDNN/" + spec).c_str(),
                                     [cp, d](benchmark::State &s) {
                                       for (auto _ : s) {
                                         d->prim.execute(d->strm, d->args);
                                         d->strm.wait();
                                       }
                                       s.counters["GFLOP/s"] = benchmark::Counter(
                                           cp->w.flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
                                     })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    } catch (const dnnl::error &e) {
      std::fprintf(stderr, "bench_tuned: oneDNN has no primitive for %s: %s\n", spec.c_str(), e.what());
    }
#endif
    g_cases.push_back(std::move(c));
  }
  bench::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n== Tuned vs vendor (%s; %s; %d thread%s; GFLOP/s, medians) ==\n", Target::host().str().c_str(),
              g.db.c_str(), g.threads, g.threads == 1 ? "" : "s");
  std::printf("%-58s %9s %9s %7s %9s %7s %7s %8s\n", "workload", "tuned", "oneDNN", "ratio", "OpenBLAS", "ratio",
              "trials", "to 95%");
  double log_sum = 0;
  int n = 0;
  for (auto &c : g_cases) {
    auto get = [&](const std::string &name) {
      auto it = reporter.gflops.find(name + "/" + c->spec);
      return it == reporter.gflops.end() ? 0.0 : it->second;
    };
    double t = get("Tessel_tuned"), d = get("oneDNN"), b = get("OpenBLAS");
    if (t > 0 && d > 0) log_sum += std::log(t / d), ++n;
    std::printf("%-58s %9.1f %9.1f %7s %9s %7s %7d %8s\n", c->spec.c_str(), t, d,
                d > 0 ? (std::to_string(t / d).substr(0, 5) + "x").c_str() : "-",
                b > 0 ? std::to_string(b).substr(0, 6).c_str() : "-",
                b > 0 ? (std::to_string(t / b).substr(0, 5) + "x").c_str() : "-", c->trials,
                c->trials_to_95
                    ? (std::to_string(c->trials_to_95) + "/" + std::to_string(int(c->seconds_to_95)) + "s").c_str()
                    : "-");
  }
  if (n) std::printf("geometric mean of tuned / oneDNN over %d workloads: %.3fx\n", n, std::exp(log_sum / n));
  std::printf("checks (max difference to Tessel's output, relative to its largest value):");
  for (auto &[k, v] : g_check) std::printf(" %s %.1e%s", k.c_str(), v, v > 1e-3 ? " MISMATCH" : "");
  std::printf("\n");
#ifdef TESSEL_HAVE_DNNL
  for (auto &[k, v] : g_dnnl_impl) std::printf("oneDNN %s: %s\n", k.c_str(), v.c_str());
#endif
  benchmark::Shutdown();
  return 0;
}
