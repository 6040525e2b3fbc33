// Measurement costs and honesty, in one run on this machine:
//  - per-candidate overhead of the local runner (a worker process) and of RPC on
//    loopback (tracker + one device server), next to the kernel's own run time;
//  - builder throughput on this machine's cores, and compile time per candidate;
//  - coefficient of variation of 30 measurements of one kernel, without and with
//    a cache flush between them;
//  - spread of single-shot timings against the interleaved re-measurement.
// Run: build/benchmarks/bench_measure (scripts/bench runs it and prints the summary).
#include "bench_util.h"
#include "measure/rpc.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "support/stats.h"
#include "te/ops.h"
#include "te/text.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

using namespace tessel;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<measure::Candidate> candidates(const std::string &spec, int n, uint64_t seed) {
  te::Workload w = te::make_op_workload(spec).take();
  std::vector<measure::Candidate> out;
  sched::SpaceGenerator gen(Target::host());
  sched::Rng rng(seed);
  auto sketches = gen.sketches(w);
  for (int i = 0; int(out.size()) < n && i < 50 * n; ++i)
    if (auto s = gen.sample(w, sketches[size_t(i) % sketches.size()], rng))
      out.push_back({spec + "#" + std::to_string(i), te::to_text(w), sched::trace_to_json(*s)});
  return out;
}

std::vector<measure::Artifact> build(const std::vector<measure::Candidate> &c) {
  std::vector<measure::Artifact> out;
  for (auto &r : measure::make_local_builder(Target::host())->build(c))
    if (r.status == db::RecordStatus::Ok) out.push_back(r.artifact);
  if (out.empty()) throw std::runtime_error("no candidate built");
  return out;
}

// The fastest of some sampled candidates of `spec`: a realistic kernel to time.
measure::Artifact good_kernel(const std::string &spec) {
  auto arts = build(candidates(spec, 8, 3));
  auto runner = measure::make_local_runner();
  measure::RunOptions o;
  o.repeat = 3;
  auto results = runner->run(arts, o);
  size_t best = 0;
  for (size_t i = 0; i < results.size(); ++i)
    if (results[i].status == db::RecordStatus::Ok &&
        (results[best].status != db::RecordStatus::Ok ||
         median(results[i].run_seconds) < median(results[best].run_seconds)))
      best = i;
  return arts[best];
}

struct Figures {
  std::map<std::string, double> kernel_ms, local_ms, local_cached_ms, rpc_ms, rpc_cached_ms;
  double build_per_s = 0, compile_ms_median = 0, compile_ms_p90 = 0;
  int build_candidates = 0, workers = 0;
  double cv_plain = 0, cv_flush = 0;
  double spread_single = 0, spread_interleaved = 0;
} figures;

const char *kSmall = "matmul:M=64,N=64,K=64";
const char *kMedium = "matmul:M=256,N=256,K=256";

// Wall time per candidate of run(), one candidate per call, against the kernel's own time:
// number = repeat = 1, no warm-up, so the overhead is the runner's alone.
void overhead(benchmark::State &state, measure::Runner &runner, const measure::Artifact &kernel,
              std::map<std::string, double> &out, std::map<std::string, double> *cached, const std::string &spec) {
  measure::RunOptions o;
  o.warmup = 0, o.number = 1, o.repeat = 1;
  runner.run({kernel}, o); // reference computed, worker started
  std::vector<double> wall, kernel_s, fresh_wall;
  int i = 0;
  for (auto _ : state) {
    measure::Artifact a = kernel;
    bool fresh = cached && i++ % 2 == 0; // a new candidate id: linked again in the worker
    if (fresh) a.candidate_id += "-fresh-" + std::to_string(i);
    auto t0 = Clock::now();
    auto r = runner.run({a}, o);
    double s = seconds_since(t0);
    if (r[0].status != db::RecordStatus::Ok) state.SkipWithError(r[0].message.c_str());
    (fresh ? fresh_wall : wall).push_back(s);
    if (!r[0].run_seconds.empty()) kernel_s.push_back(r[0].run_seconds[0]);
  }
  out[spec] = median(fresh_wall.empty() ? wall : fresh_wall) * 1e3;
  if (cached) (*cached)[spec] = median(wall) * 1e3;
  figures.kernel_ms[spec] = median(kernel_s) * 1e3;
}

void BM_LocalRunnerOverhead(benchmark::State &state) {
  static auto runner = measure::make_local_runner();
  std::string spec = state.range(0) ? kMedium : kSmall;
  overhead(state, *runner, good_kernel(spec), figures.local_ms, &figures.local_cached_ms, spec);
}
BENCHMARK(BM_LocalRunnerOverhead)->Arg(0)->Arg(1)->Iterations(60)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RpcRunnerOverhead(benchmark::State &state) {
  measure::TrackerOptions t;
  t.listen = "127.0.0.1:0";
  t.log = [](const std::string &) {};
  auto tracker = measure::start_tracker(t);
  if (!tracker) {
    state.SkipWithError(tracker.error().c_str());
    return;
  }
  std::atomic<bool> stop{false};
  measure::DeviceServerOptions d;
  d.tracker = (*tracker)->address();
  d.key = "host";
  d.log = [](const std::string &) {};
  std::thread server([&] { (void)measure::run_device_server(d, stop); });
  measure::RpcRunnerOptions r;
  r.tracker = (*tracker)->address();
  r.key = "host";
  auto runner = measure::make_rpc_runner(r);
  std::string spec = state.range(0) ? kMedium : kSmall;
  overhead(state, *runner, good_kernel(spec), figures.rpc_ms, &figures.rpc_cached_ms, spec);
  stop = true;
  server.join();
}
BENCHMARK(BM_RpcRunnerOverhead)->Arg(0)->Arg(1)->Iterations(40)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_BuilderThroughput(benchmark::State &state) {
  auto c = candidates(kMedium, 32, 11);
  auto builder = measure::make_local_builder(Target::host());
  builder->build({c[0]}); // workers started
  std::vector<double> compile_ms;
  double seconds = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto results = builder->build(c);
    seconds += seconds_since(t0);
    for (auto &r : results) compile_ms.push_back(r.compile_seconds * 1e3);
  }
  figures.build_candidates = int(c.size());
  figures.workers = int(std::max(1u, std::thread::hardware_concurrency()));
  figures.build_per_s = double(c.size()) * double(state.iterations()) / seconds;
  figures.compile_ms_median = median(compile_ms);
  std::sort(compile_ms.begin(), compile_ms.end());
  figures.compile_ms_p90 = compile_ms[size_t(0.9 * double(compile_ms.size() - 1))];
}
BENCHMARK(BM_BuilderThroughput)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

// 30 measurements (one repeat each) of one kernel, without and with a cache flush.
void BM_Variation(benchmark::State &state) {
  auto runner = measure::make_local_runner();
  auto kernel = good_kernel(kMedium);
  measure::RunOptions o;
  o.repeat = 1;
  o.flush_cache = state.range(0) != 0;
  for (auto _ : state) {
    std::vector<double> v;
    for (int i = 0; i < 30; ++i) v.push_back(runner->run({kernel}, o)[0].run_seconds.at(0));
    (o.flush_cache ? figures.cv_flush : figures.cv_plain) = coefficient_of_variation(v);
  }
}
BENCHMARK(BM_Variation)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// What decides a tuner's ranking is the ratio between candidates. Four candidates: each timed
// 10 times in a row (single shots, as a first pass sees them: candidate j's i-th timing is far
// in time from candidate 0's), against remeasure()'s 10 interleaved rounds (all of round i
// close together). Spread: median over candidates 1..3 of the CV of the i-th ratio to candidate 0.
void BM_Interleaving(benchmark::State &state) {
  auto runner = measure::make_local_runner();
  auto arts = build(candidates(kMedium, 4, 21));
  measure::RunOptions o;
  o.repeat = 1;
  auto ratio_spread = [](const std::vector<std::vector<double>> &t) {
    std::vector<double> spreads;
    for (size_t j = 1; j < t.size(); ++j) {
      std::vector<double> ratios;
      for (size_t i = 0; i < t[j].size() && i < t[0].size(); ++i) ratios.push_back(t[j][i] / t[0][i]);
      spreads.push_back(coefficient_of_variation(ratios));
    }
    return median(spreads);
  };
  for (auto _ : state) {
    std::vector<std::vector<double>> single;
    for (auto &a : arts) {
      std::vector<double> v;
      for (int i = 0; i < 10; ++i) v.push_back(runner->run({a}, o)[0].run_seconds.at(0));
      single.push_back(v);
    }
    std::vector<std::vector<double>> interleaved;
    for (auto &r : measure::remeasure(*runner, arts, o, 10)) interleaved.push_back(r.run_seconds);
    figures.spread_single = ratio_spread(single);
    figures.spread_interleaved = ratio_spread(interleaved);
  }
}
BENCHMARK(BM_Interleaving)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  bench::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  Target host = Target::host();
  std::printf("\n== Summary (measurement; %s; medians) ==\n", host.str().c_str());
  std::printf("%-26s %10s %12s %12s %12s %12s\n", "per candidate (ms)", "kernel", "local new", "local held", "RPC new",
              "RPC held");
  for (auto &[spec, k] : figures.kernel_ms) {
    auto get = [](const std::map<std::string, double> &m, const std::string &s) {
      auto it = m.find(s);
      return it == m.end() ? 0.0 : it->second;
    };
    std::printf("%-26s %10.3f %12.3f %12.3f %12.3f %12.3f\n", spec.c_str(), k, get(figures.local_ms, spec),
                get(figures.local_cached_ms, spec), get(figures.rpc_ms, spec), get(figures.rpc_cached_ms, spec));
  }
  std::printf("(new: a candidate the worker links first; held: one it holds already, as remeasure() sees; RPC:\n"
              " tracker and one device server on loopback; each includes the first run's check and one timed run)\n");
  if (figures.build_candidates)
    std::printf("builder: %.1f candidates/s with %d workers (%d matmul 256^3 candidates); compile per candidate "
                "median %.1f ms, p90 %.1f ms (aim <= 50 ms)\n",
                figures.build_per_s, figures.workers, figures.build_candidates, figures.compile_ms_median,
                figures.compile_ms_p90);
  std::printf("CV of 30 single-repeat measurements of one kernel: %.2f%% plain, %.2f%% with cache flush\n",
              figures.cv_plain * 100, figures.cv_flush * 100);
  std::printf("spread of candidate/candidate ratios over 10 timings (median CV, 4 candidates): %.2f%% single shots "
              "in a row, %.2f%% interleaved (remeasure)\n",
              figures.spread_single * 100, figures.spread_interleaved * 100);
  benchmark::Shutdown();
  return 0;
}
