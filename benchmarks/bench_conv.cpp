// ResNet-50 conv2_x 3x3 layer (N=1, C=K=64, 56x56, stride 1, pad 1, f32,
// NCHW data, OIHW constant weight), single-threaded, in one run:
//  * Tessel, default (untuned) schedule;
//  * Tessel, the hand-written trace configs/traces/conv2d_resnet50_3x3_64_avx512.json
//    (the weight is packed once before the timed loop; only the kernel is timed);
//  * oneDNN convolution_forward (direct), with format_tag::any so oneDNN picks
//    its blocked layouts (inputs reordered once, ahead of time; only the
//    convolution primitive is timed), and forced to plain nchw/oihw/nchw;
// Without oneDNN at configure time only the Tessel rows are built.
//
//   ./build/benchmarks/bench_conv        # defaults: 5 interleaved repetitions, medians
// Any Google Benchmark flag given on the command line overrides the defaults.
#include "codegen/cpu_compiler.h"
#include "interp/interpreter.h"
#include "runtime/runtime.h"
#include "schedules/schedule.h"
#include "schedules/trace.h"
#include "te/ops.h"

#include "bench_util.h"

#include <benchmark/benchmark.h>

#ifdef TESSEL_HAVE_DNNL
#include <dlfcn.h>
#include <dnnl.hpp>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace tessel;
using tessel::bench::read_file;

namespace {

constexpr int64_t N = 1, C = 64, H = 56, W = 56, K = 64, R = 3, S = 3;
constexpr double kFlop = 2.0 * N * K * H * W * C * R * S; // 2*64*56*56*64*9 = 231.2 MFLOP
const char *kSpec = "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,layout=NCHW";
// The committed trace for this host's ISA (AVX-512 or AVX2).
std::string trace_path() { return "/configs/traces/conv2d_resnet50_3x3_64_" + bench::host_trace_isa() + ".json"; }

enum class Variant { Default, Trace };

void set_gflops(benchmark::State &state) {
  state.counters["GFLOP/s"] = benchmark::Counter(kFlop * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// One compiled Tessel variant with its inputs (packed once) and output.
struct TesselConv {
  te::Workload w;
  std::unique_ptr<codegen::CompiledProgram> prog;
  std::vector<interp::NDArray> in, out;
  std::vector<void *> ins, outs;
  std::string error;
};

TesselConv make_tessel(Variant v) {
  TesselConv t;
  auto fail = [&](std::string why) {
    t.error = std::move(why);
    return std::move(t);
  };
  std::string root = TESSEL_SOURCE_DIR;
  auto w = te::make_op_workload(kSpec);
  if (!w) return fail(w.error());
  t.w = *w;
  sched::Schedule s = sched::default_schedule(t.w);
  if (v != Variant::Default) {
    std::string path = root + trace_path();
    std::string json = read_file(path);
    if (json.empty()) return fail("cannot read " + path);
    auto replayed = sched::replay_json(t.w, json);
    if (!replayed) return fail(replayed.error());
    s = *replayed;
  }
  auto f = lower::lower(s, "conv");
  if (!f) return fail(f.error());
  auto k = codegen::jit_compile(*f, Target::host());
  if (!k) return fail(k.error());
  t.prog = std::make_unique<codegen::CompiledProgram>(std::move(*k));
  t.in = interp::random_inputs(t.w, 1);
  t.out = interp::empty_outputs(t.w);
  for (auto &a : t.in) t.ins.push_back(a.data());
  for (auto &a : t.out) t.outs.push_back(a.data());
  tessel_set_num_threads(1);
  t.prog->pack(t.ins); // the weight re-layout: once, outside the timed loop
  return t;
}

void run_tessel(benchmark::State &state, Variant v) {
  TesselConv t = make_tessel(v);
  if (!t.error.empty()) return state.SkipWithError(t.error.c_str());
  tessel_set_num_threads(1);
  for (auto _ : state) t.prog->run(t.ins, t.outs);
  set_gflops(state);
}

void BM_Conv_TesselDefault(benchmark::State &state) { run_tessel(state, Variant::Default); }
BENCHMARK(BM_Conv_TesselDefault)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Conv_TesselTrace(benchmark::State &state) { run_tessel(state, Variant::Trace); }
BENCHMARK(BM_Conv_TesselTrace)->Unit(benchmark::kMillisecond)->UseRealTime();

#ifdef TESSEL_HAVE_DNNL
using dnnl::memory;
using tag = memory::format_tag;

// oneDNN is built with OpenMP here; libgomp reads OMP_NUM_THREADS when it is
// loaded (before main), so the thread count is also set through the API,
// looked up at run time to avoid a link dependency on the OpenMP runtime.
void dnnl_single_thread() {
  setenv("OMP_NUM_THREADS", "1", 1);
  unsetenv("DNNL_VERBOSE");
  unsetenv("ONEDNN_VERBOSE");
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"))) f(1);
}

// A oneDNN convolution ready to run: primitive, memories in its chosen
// layouts (filled by reorders from the plain inputs, ahead of time).
struct DnnlConv {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::convolution_forward conv;
  memory src, wei, dst, dst_plain;
  std::string impl;
};

std::unique_ptr<DnnlConv> make_dnnl(bool any_layout, const float *data, const float *weight) {
  auto d = std::make_unique<DnnlConv>();
  memory::dims src_dims{N, C, H, W}, wei_dims{K, C, R, S}, dst_dims{N, K, H, W};
  memory::dims strides{1, 1}, padding{1, 1};
  auto f32 = memory::data_type::f32;
  memory::desc src_md(src_dims, f32, any_layout ? tag::any : tag::nchw);
  memory::desc wei_md(wei_dims, f32, any_layout ? tag::any : tag::oihw);
  memory::desc dst_md(dst_dims, f32, any_layout ? tag::any : tag::nchw);
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                       wei_md, dst_md, strides, padding, padding);
  dnnl::convolution_forward::primitive_desc pd(desc, d->eng);
  d->impl = pd.impl_info_str();
  d->conv = dnnl::convolution_forward(pd);
  // Plain inputs, then reorders into the primitive's layouts (not timed).
  memory src_plain({src_dims, f32, tag::nchw}, d->eng, const_cast<float *>(data));
  memory wei_plain({wei_dims, f32, tag::oihw}, d->eng, const_cast<float *>(weight));
  d->src = memory(pd.src_desc(), d->eng);
  d->wei = memory(pd.weights_desc(), d->eng);
  d->dst = memory(pd.dst_desc(), d->eng);
  d->dst_plain = memory({dst_dims, f32, tag::nchw}, d->eng);
  dnnl::reorder(src_plain, d->src).execute(d->strm, src_plain, d->src);
  dnnl::reorder(wei_plain, d->wei).execute(d->strm, wei_plain, d->wei);
  d->strm.wait();
  return d;
}

void run_conv(DnnlConv &d) {
  d.conv.execute(d.strm, {{DNNL_ARG_SRC, d.src}, {DNNL_ARG_WEIGHTS, d.wei}, {DNNL_ARG_DST, d.dst}});
  d.strm.wait();
}

// The output of `d` as plain NCHW (reordered when oneDNN chose another layout).
std::vector<float> dnnl_output(DnnlConv &d) {
  dnnl::reorder(d.dst, d.dst_plain).execute(d.strm, d.dst, d.dst_plain);
  d.strm.wait();
  auto *p = static_cast<const float *>(d.dst_plain.get_data_handle());
  return std::vector<float>(p, p + N * K * H * W);
}

std::map<std::string, std::string> g_dnnl_impl; // "any"/"nchw" -> implementation name

// with_reorders: the timed call also converts the NCHW input to oneDNN's
// layout and the output back (what an NCHW caller pays; Tessel's kernel
// reads and writes NCHW).
void run_dnnl(benchmark::State &state, bool any_layout, bool with_reorders) {
  auto w = te::make_op_workload(kSpec);
  if (!w) return state.SkipWithError(w.error().c_str());
  auto in = interp::random_inputs(*w, 1); // the same inputs as the Tessel rows
  std::unique_ptr<DnnlConv> d;
  std::unique_ptr<dnnl::reorder> to_blocked, to_plain;
  memory src_plain;
  try {
    d = make_dnnl(any_layout, static_cast<const float *>(in[0].data()), static_cast<const float *>(in[1].data()));
    src_plain = memory({{N, C, H, W}, memory::data_type::f32, tag::nchw}, d->eng, in[0].data());
    to_blocked = std::make_unique<dnnl::reorder>(src_plain, d->src);
    to_plain = std::make_unique<dnnl::reorder>(d->dst, d->dst_plain);
  } catch (const dnnl::error &e) {
    return state.SkipWithError(e.what());
  }
  state.SetLabel(d->impl);
  g_dnnl_impl[any_layout ? "any" : "nchw"] = d->impl;
  for (auto _ : state) {
    if (with_reorders) to_blocked->execute(d->strm, src_plain, d->src);
    d->conv.execute(d->strm, {{DNNL_ARG_SRC, d->src}, {DNNL_ARG_WEIGHTS, d->wei}, {DNNL_ARG_DST, d->dst}});
    if (with_reorders) to_plain->execute(d->strm, d->dst, d->dst_plain);
    d->strm.wait();
  }
  set_gflops(state);
}

void BM_Conv_OneDNN_AnyLayout(benchmark::State &state) { run_dnnl(state, true, false); }
BENCHMARK(BM_Conv_OneDNN_AnyLayout)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Conv_OneDNN_Plain(benchmark::State &state) { run_dnnl(state, false, false); }
BENCHMARK(BM_Conv_OneDNN_Plain)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Conv_OneDNN_AnyLayoutWithReorders(benchmark::State &state) { run_dnnl(state, true, true); }
BENCHMARK(BM_Conv_OneDNN_AnyLayoutWithReorders)->Unit(benchmark::kMillisecond)->UseRealTime();

// Once, before timing: the trace's output equals oneDNN's (same inputs).
void cross_check() {
  TesselConv t = make_tessel(Variant::Trace);
  if (!t.error.empty()) {
    std::printf("cross-check skipped: %s\n", t.error.c_str());
    return;
  }
  t.prog->run(t.ins, t.outs);
  auto d = make_dnnl(true, static_cast<const float *>(t.in[0].data()), static_cast<const float *>(t.in[1].data()));
  run_conv(*d);
  std::vector<float> ref = dnnl_output(*d);
  auto *got = static_cast<const float *>(t.out[0].data());
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_err = std::max(max_err, double(std::fabs(got[i] - ref[i])));
    max_ref = std::max(max_ref, double(std::fabs(ref[i])));
  }
  bool ok = max_err <= 1e-4 * std::max(1.0, max_ref);
  std::printf("cross-check: Tessel trace vs oneDNN (%s): max abs diff %.3g (max |out| %.3g) %s\n\n", d->impl.c_str(),
              max_err, max_ref, ok ? "ok" : "MISMATCH");
}
#endif

} // namespace

int main(int argc, char **argv) {
#ifdef TESSEL_HAVE_DNNL
  dnnl_single_thread(); // before the first oneDNN call
#endif
  tessel_set_num_threads(1);
  // Defaults first; flags on the command line come later and win.
  if (!bench::initialize_with_defaults(argc, argv,
                                       {"--benchmark_repetitions=5", "--benchmark_enable_random_interleaving=true",
                                        "--benchmark_report_aggregates_only=true", "--benchmark_min_time=0.2",
                                        "--benchmark_color=false"}))
    return 1;
#ifdef TESSEL_HAVE_DNNL
  try {
    cross_check();
  } catch (const dnnl::error &e) {
    std::printf("cross-check failed: oneDNN: %s\n", e.what());
  }
#endif
  bench::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\n== Summary: %s, f32 (medians; single-threaded; %s) ==\n", kSpec, Target::host().str().c_str());
  std::printf("Tessel trace: configs/traces%s\n", trace_path().substr(std::string("/configs/traces").size()).c_str());
  if (const char *isa = std::getenv("ONEDNN_MAX_CPU_ISA")) std::printf("oneDNN held to ONEDNN_MAX_CPU_ISA=%s\n", isa);
  std::printf("%-48s %10s %10s\n", "variant", "ms", "GFLOP/s");
  struct Row {
    const char *bench, *label;
  };
  const Row rows[] = {
      {"BM_Conv_TesselDefault", "Tessel default schedule (untuned)"},
      {"BM_Conv_TesselTrace", "Tessel trace (weight packed once)"}, // trace_path(), named above the table
      {"BM_Conv_OneDNN_AnyLayout", "oneDNN direct, format_tag::any (blocked)"},
      {"BM_Conv_OneDNN_Plain", "oneDNN direct, plain nchw/oihw"},
      {"BM_Conv_OneDNN_AnyLayoutWithReorders", "oneDNN any-layout + nchw<->blocked reorders"},
  };
  for (auto &row : rows) {
    auto g = reporter.gflops.find(row.bench);
    if (g == reporter.gflops.end())
      std::printf("%-48s %10s %10s\n", row.label, "-", "-");
    else
      std::printf("%-48s %10.3f %10.2f\n", row.label, reporter.ms[row.bench], g->second);
  }
  auto ratio = [&](const char *a, const char *b, const char *label) {
    auto x = reporter.gflops.find(a), y = reporter.gflops.find(b);
    if (x != reporter.gflops.end() && y != reporter.gflops.end() && y->second > 0)
      std::printf("%-48s %21.3fx\n", label, x->second / y->second);
  };
  ratio("BM_Conv_TesselTrace", "BM_Conv_OneDNN_AnyLayout", "ratio Tessel trace / oneDNN any-layout");
  ratio("BM_Conv_TesselTrace", "BM_Conv_OneDNN_Plain", "ratio Tessel trace / oneDNN nchw");
  ratio("BM_Conv_TesselTrace", "BM_Conv_OneDNN_AnyLayoutWithReorders", "ratio Tessel trace / oneDNN any + reorders");
  ratio("BM_Conv_TesselTrace", "BM_Conv_TesselDefault", "ratio Tessel trace / Tessel default");
#ifdef TESSEL_HAVE_DNNL
  for (auto &[layout, impl] : g_dnnl_impl)
    std::printf("oneDNN %-4s implementation: %s\n", layout.c_str(), impl.c_str());
  using GetThreads = int (*)();
  if (auto f = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "omp_get_max_threads")))
    std::printf("oneDNN (OpenMP) threads: %d\n", f());
#else
  std::printf("(oneDNN not found at configure time: scripts/setup installs libdnnl-dev)\n");
#endif
  benchmark::Shutdown();
  return 0;
}
