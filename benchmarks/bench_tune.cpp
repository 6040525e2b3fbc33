// The search's own costs and the cost model's quality, on this machine:
//  - features per second (lowering excluded and included);
//  - pairwise ranking accuracy on measured programs of a task the model was not
//    trained on (leave one task out; all pairs, and those more than 5% apart alone), for the default model, the random
//    model and, with --each-objective, each objective alone (rank:pairwise, Ansor's weighted squared error, log squared
//    error) and rank:pairwise + log squared error; from --db (e.g. tune_vs_vendor.db; repeat it to pool several
//    databases: a task is left out of all of them), else from candidates of three matmuls measured here; with
//    --sampled-db, also on programs a search without a model picked (a database `tessel tune --cost-model random`
//    filled): the spread of a space rather than the close calls near its best that a guided search measures;
//  - with --db, the noise ceiling: a sample of each task's records measured again, interleaved, and how
//    well the recorded figures rank the fresh ones (what no model can beat), the model scored against both;
//  - trials a warm-started tuning of a new matmul shape needs to reach 95% of its
//    final best, against a cold one, for several seeds (--seeds, default 3).
//   bench_tune [--db PATH]... [--sampled-db PATH]... [--trials N] [--seeds N] [--each-objective]
//   bench_tune [--db PATH]... --dump-features samples.csv   (writes the samples as CSV, runs nothing)
#include "bench_util.h"
#include "cost_model/features.h"
#include "lower/lower.h"
#include "schedules/trace.h"
#include "search/tuner.h"
#include "support/stats.h"
#include "te/ops.h"
#include "te/text.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>

using namespace tessel;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<std::string> g_dbs;
std::vector<std::string> g_sampled_dbs; // --sampled-db: records of a search without a model, also scored apart
std::string g_dump;                     // --dump-features FILE: the samples as CSV (task, throughput, features by name)
int g_trials = 64;
int g_seeds = 3;               // --seeds N: warm against cold starts, one pair of runs per seed
bool g_each_objective = false; // --each-objective: also each objective's model alone

// Where a sample came from: its workload and trace, to measure it again.
struct Origin {
  std::string workload_text, trace_json;
  double flops = 0;
};

// Samples from the databases' records on this host (one task per workload), or measured here; with `origins`,
// where each came from, and with `sampled`, whether it came from a --sampled-db (both parallel to the samples).
std::vector<cost::Sample> collect(std::vector<Origin> *origins = nullptr, std::vector<bool> *sampled = nullptr) {
  std::vector<cost::Sample> out;
  db::TargetKey key = db::target_key(Target::host(), 1);
  std::map<std::string, te::Workload> workloads;
  auto add = [&](const db::Record &r, bool from_sampled) {
    if (r.target.canonical != key.canonical) return;
    auto it = workloads.find(r.workload_hash);
    if (it == workloads.end()) {
      auto w = te::parse_workload(r.workload_text, "record");
      if (!w) return;
      it = workloads.emplace(r.workload_hash, w.take()).first;
    }
    auto s = sched::replay_json(it->second, r.trace_json);
    if (!s) return;
    auto lowered = lower::lower(*s, "k");
    if (!lowered) return;
    double tp = r.status == db::RecordStatus::Ok && r.median_seconds > 0 ? it->second.flops() / r.median_seconds : 0;
    out.push_back({cost::program_features(*lowered), tp, r.workload_key});
    if (origins) origins->push_back({r.workload_text, r.trace_json, it->second.flops()});
    if (sampled) sampled->push_back(from_sampled);
  };
  std::vector<std::pair<std::string, bool>> paths;
  for (auto &path : g_dbs) paths.push_back({path, false});
  for (auto &path : g_sampled_dbs) paths.push_back({path, true});
  for (auto &[path, is_sampled] : paths) {
    db::OpenOptions ro;
    ro.read_only = true;
    auto db = db::open_sqlite(path, ro);
    if (!db) {
      std::fprintf(stderr, "bench_tune: %s\n", db.error().c_str());
      continue;
    }
    (void)(*db)->for_each([&](const db::Record &r) {
      add(r, is_sampled);
      return true;
    });
  }
  if (!out.empty()) return out;
  if (!paths.empty()) std::fprintf(stderr, "bench_tune: no records of this host in --db; measuring candidates here\n");
  auto db = db::make_memory_database();
  auto builder = measure::make_local_builder(Target::host());
  auto runner = measure::make_local_runner();
  auto model = cost::make_random_model(3);
  search::TuneOptions o;
  o.trials = 96;
  o.batch = 32;
  o.remeasure_top = 0;
  o.run.repeat = 2;
  o.run.min_repeat_ms = 2;
  std::vector<search::TuneTask> tasks;
  for (const char *spec : {"matmul:M=128,N=128,K=128", "matmul:M=256,N=64,K=192", "dense:M=64,N=256,K=128"})
    tasks.push_back({spec, te::make_op_workload(spec).take(), 1});
  (void)search::tune(tasks, o, *db, *builder, *runner, *model);
  (void)db->for_each([&](const db::Record &r) {
    add(r, false);
    return true;
  });
  return out;
}

// A new shape tuned from a cold model and from one warm-started on other shapes, with one seed.
struct WarmColdRun {
  int cold_to_95 = 0, warm_to_95 = 0;  // trials to 95% of the better of the two re-measured finals; -1: never
  double cold_best = 0, warm_best = 0; // GFLOP/s, re-measured
};

struct Figures {
  double features_per_s = 0, lower_and_features_per_s = 0;
  std::map<std::string, double> accuracy;                    // model -> mean held-out pairwise accuracy
  std::map<std::string, double> later_accuracy;              // ... on each task's later half, trained on its first
  std::map<std::string, double> apart_accuracy;              // held out, pairs more than 5% apart only
  std::map<std::string, std::pair<double, double>> per_task; // task -> rank:pairwise held out, later half
  // --sampled-db: held out, on each task's programs picked without a model (all pairs; more than 5% apart; per task)
  std::map<std::string, double> sampled_accuracy, sampled_apart_accuracy, sampled_per_task;
  int tasks = 0, samples = 0, sampled_samples = 0;
  std::vector<WarmColdRun> warm_cold; // one per seed
} g;

void BM_Features(benchmark::State &state) {
  auto w = te::make_op_workload("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1").take();
  sched::SpaceGenerator gen(Target::host());
  sched::Rng rng(1);
  auto sketches = gen.sketches(w);
  std::vector<lower::LoweredProgram> programs;
  std::vector<sched::Schedule> schedules;
  for (int i = 0; programs.size() < 64 && i < 500; ++i)
    if (auto s = gen.sample(w, sketches[size_t(i) % sketches.size()], rng))
      if (auto p = lower::lower(*s, "k")) programs.push_back(p.take()), schedules.push_back(s.take());
  size_t n = 0;
  double t_features = 0, t_both = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    for (auto &p : programs) benchmark::DoNotOptimize(cost::program_features(p));
    t_features += since(t0);
    t0 = Clock::now();
    for (auto &s : schedules) benchmark::DoNotOptimize(cost::program_features(lower::lower(s, "k").take()));
    t_both += since(t0);
    n += programs.size();
  }
  g.features_per_s = double(n) / t_features;
  g.lower_and_features_per_s = double(n) / t_both;
}
BENCHMARK(BM_Features)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

const char *kDefaultModel = "xgboost (default)";

// Pairs closer than this are within what re-measuring moves: a coin flip for any model.
constexpr double kApart = 1.05;

// The default model's (with --each-objective, each objective's alone and two summed) and the random model's pairwise
// accuracy on `test` after training on `train`.
void score_models(const std::vector<cost::Sample> &train, const std::vector<cost::Sample> &test,
                  std::map<std::string, std::vector<double>> &acc,
                  std::map<std::string, std::vector<double>> *apart = nullptr) {
  std::vector<std::vector<float>> feats;
  for (auto &s : test) feats.push_back(s.features);
  std::vector<std::pair<std::string, cost::XgboostOptions>> models = {{kDefaultModel, {}}};
  if (g_each_objective)
    for (auto objectives :
         std::vector<std::vector<cost::Objective>>{{cost::Objective::PairwiseRank},
                                                   {cost::Objective::WeightedSquared},
                                                   {cost::Objective::LogSquared},
                                                   {cost::Objective::PairwiseRank, cost::Objective::LogSquared}}) {
      cost::XgboostOptions o;
      o.objectives = objectives;
      std::string name = "xgboost";
      for (size_t i = 0; i < objectives.size(); ++i) name += (i ? " + " : " ") + cost::objective_name(objectives[i]);
      models.push_back({name, o});
    }
  for (auto &[name, options] : models) {
    auto m = cost::make_xgboost_model(options);
    (void)m->update(train);
    auto scores = m->predict(feats);
    acc[name].push_back(cost::pairwise_accuracy(scores, test));
    if (apart) (*apart)[name].push_back(cost::pairwise_accuracy(scores, test, kApart));
  }
  auto random_scores = cost::make_random_model(7)->predict(feats);
  acc["random"].push_back(cost::pairwise_accuracy(random_scores, test));
  if (apart) (*apart)["random"].push_back(cost::pairwise_accuracy(random_scores, test, kApart));
}

std::map<std::string, double> means(const std::map<std::string, std::vector<double>> &acc) {
  std::map<std::string, double> out;
  for (auto &[name, v] : acc) {
    double sum = 0;
    for (double x : v) sum += x;
    out[name] = v.empty() ? 0 : sum / double(v.size());
  }
  return out;
}

// Writes g_dump, for analysis outside the benchmark.
void dump(const std::vector<cost::Sample> &samples) {
  FILE *f = std::fopen(g_dump.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "bench_tune: cannot write %s\n", g_dump.c_str());
    return;
  }
  std::fprintf(f, "task,throughput");
  for (auto &n : cost::feature_names()) std::fprintf(f, ",%s", n.c_str());
  std::fprintf(f, "\n");
  for (auto &s : samples) {
    std::fprintf(f, "\"%s\",%g", s.task.c_str(), s.throughput);
    for (float v : s.features) std::fprintf(f, ",%g", double(v));
    std::fprintf(f, "\n");
  }
  std::fclose(f);
}

// Two questions: how well a model ranks a task it never saw (leave one task out), and how well it ranks a
// task's later candidates having seen its earlier ones and the other tasks (what tuning asks of it). With
// --sampled-db the first is also asked of each task's programs picked without a model.
void BM_HeldOutRanking(benchmark::State &state) {
  std::vector<bool> sampled;
  auto samples = collect(nullptr, &sampled);
  std::map<std::string, int> per_task, sampled_per_task;
  for (size_t i = 0; i < samples.size(); ++i) ++(sampled[i] ? sampled_per_task : per_task)[samples[i].task];
  // Every other task's samples to train on; `task`'s own, from a --sampled-db or from the others, to test.
  auto split = [&](const std::string &task, bool from_sampled, std::vector<cost::Sample> &train,
                   std::vector<cost::Sample> &test) {
    for (size_t i = 0; i < samples.size(); ++i)
      if (samples[i].task != task)
        train.push_back(samples[i]);
      else if (sampled[i] == from_sampled)
        test.push_back(samples[i]);
  };
  for (auto _ : state) {
    std::map<std::string, std::vector<double>> held_out, later, apart, on_sampled, on_sampled_apart;
    for (auto &[task, count] : per_task) {
      if (count < 16) continue;
      std::vector<cost::Sample> train, test, early;
      split(task, false, train, test);
      score_models(train, test, held_out, &apart);
      g.per_task[task].first = held_out[kDefaultModel].back();
      // Records come in the order they were measured: the first half joins the training set.
      early.assign(test.begin(), test.begin() + long(test.size() / 2));
      train.insert(train.end(), early.begin(), early.end());
      test.erase(test.begin(), test.begin() + long(test.size() / 2));
      score_models(train, test, later);
      g.per_task[task].second = later[kDefaultModel].back();
    }
    for (auto &[task, count] : sampled_per_task) {
      if (count < 16) continue;
      std::vector<cost::Sample> train, test;
      split(task, true, train, test);
      score_models(train, test, on_sampled, &on_sampled_apart);
      g.sampled_per_task[task] = on_sampled[kDefaultModel].back();
    }
    g.accuracy = means(held_out);
    g.later_accuracy = means(later);
    g.apart_accuracy = means(apart);
    g.sampled_accuracy = means(on_sampled);
    g.sampled_apart_accuracy = means(on_sampled_apart);
  }
  g.sampled_samples = int(std::count(sampled.begin(), sampled.end(), true));
  g.samples = int(samples.size()) - g.sampled_samples;
  g.tasks = int(per_task.size());
}
BENCHMARK(BM_HeldOutRanking)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// How well any model could rank the records: up to 48 of each task's programs measured again here, 10
// interleaved rounds, against the figures tuning recorded (single shots, minutes apart). Pairs the two order
// differently are noise no model can learn; the default model (trained on the other tasks) is scored against
// both. Needs --db: it re-measures records.
struct Ceiling {
  double records_vs_again = 0, model_vs_records = 0, model_vs_again = 0;
  int programs = 0;
};
std::map<std::string, Ceiling> g_ceiling;

void BM_NoiseCeiling(benchmark::State &state) {
  if (g_dbs.empty()) {
    state.SkipWithError("needs --db: it measures a database's records again");
    return;
  }
  std::vector<Origin> origins;
  auto samples = collect(&origins);
  std::map<std::string, std::vector<size_t>> by_task;
  for (size_t i = 0; i < samples.size(); ++i)
    if (samples[i].throughput > 0) by_task[samples[i].task].push_back(i);
  auto builder = measure::make_local_builder(Target::host());
  auto runner = measure::make_local_runner();
  measure::RunOptions run = search::TuneOptions{}.run;
  run.check = false; // the records were checked when tuned
  std::mt19937_64 rng(1);
  for (auto _ : state)
    for (auto &[task, indices] : by_task) {
      if (indices.size() < 16) continue;
      std::shuffle(indices.begin(), indices.end(), rng);
      if (indices.size() > 48) indices.resize(48);
      std::vector<measure::Candidate> candidates;
      for (size_t i : indices)
        candidates.push_back({std::to_string(i), origins[i].workload_text, origins[i].trace_json});
      auto built = builder->build(candidates);
      std::vector<measure::Artifact> artifacts;
      std::vector<size_t> which;
      for (size_t b = 0; b < built.size(); ++b)
        if (built[b].status == db::RecordStatus::Ok)
          artifacts.push_back(built[b].artifact), which.push_back(indices[b]);
      auto again = measure::remeasure(*runner, artifacts, run, 10);
      std::vector<cost::Sample> recorded, remeasured;
      std::vector<double> recorded_scores;
      for (size_t a = 0; a < again.size(); ++a) {
        if (again[a].status != db::RecordStatus::Ok || again[a].run_seconds.empty()) continue;
        recorded.push_back(samples[which[a]]);
        remeasured.push_back(samples[which[a]]);
        remeasured.back().throughput = origins[which[a]].flops / median(again[a].run_seconds);
        recorded_scores.push_back(recorded.back().throughput);
      }
      std::vector<cost::Sample> train;
      for (auto &s : samples)
        if (s.task != task) train.push_back(s);
      auto model = cost::make_xgboost_model();
      (void)model->update(train);
      std::vector<std::vector<float>> feats;
      for (auto &s : recorded) feats.push_back(s.features);
      auto scores = model->predict(feats);
      Ceiling &c = g_ceiling[task];
      c.programs = int(recorded.size());
      c.records_vs_again = cost::pairwise_accuracy(recorded_scores, remeasured);
      c.model_vs_records = cost::pairwise_accuracy(scores, recorded);
      c.model_vs_again = cost::pairwise_accuracy(scores, remeasured);
    }
}
BENCHMARK(BM_NoiseCeiling)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Trials until the running best is within 5% of `final_best`.
int trials_to_95(const search::TaskReport &r, double final_gflops) {
  for (auto &c : r.curve)
    if (c.best_gflops >= 0.95 * final_gflops) return c.trial;
  return -1;
}

void BM_WarmVersusCold(benchmark::State &state) {
  auto builder = measure::make_local_builder(Target::host());
  auto runner = measure::make_local_runner();
  search::TuneOptions o;
  o.trials = g_trials;
  o.batch = 8;
  o.run.repeat = 2;
  // Each run's figure is its top 3 re-measured interleaved, and its curve is restated in those terms, so the two
  // starts are compared on re-measured speeds rather than on single shots.
  o.remeasure_top = 3;
  o.remeasure_rounds = 5;
  search::TuneTask fresh{"matmul:M=384,N=384,K=384", te::make_op_workload("matmul:M=384,N=384,K=384").take(), 1};
  for (auto _ : state) {
    // The warm model's history: other matmul shapes measured here first, into a scratch database.
    auto history = db::make_memory_database();
    {
      search::TuneOptions h = o;
      h.trials = 48;
      h.remeasure_top = 0;
      auto rnd = cost::make_random_model(5);
      std::vector<search::TuneTask> others;
      for (const char *spec : {"matmul:M=256,N=256,K=256", "matmul:M=512,N=256,K=384"})
        others.push_back({spec, te::make_op_workload(spec).take(), 1});
      (void)search::tune(others, h, *history, *builder, *runner, *rnd);
    }
    // One cold and one warm run per seed, their order alternating so that a slow spell of the machine falls on
    // both starts alike.
    for (int seed = 1; seed <= g_seeds; ++seed) {
      o.seed = uint64_t(seed);
      WarmColdRun run;
      auto tune_one = [&](bool warm) -> Expected<search::TuneReport> {
        auto model = cost::make_xgboost_model();
        if (warm) (void)search::warm_start(*model, *history, Target::host(), 1);
        auto scratch = db::make_memory_database();
        return search::tune({fresh}, o, *scratch, *builder, *runner, *model);
      };
      bool warm_first = seed % 2 == 0;
      auto first = tune_one(warm_first), second = tune_one(!warm_first);
      if (!first || !second || first->tasks[0].best_seconds <= 0 || second->tasks[0].best_seconds <= 0) {
        state.SkipWithError("tuning failed");
        return;
      }
      const search::TaskReport &cold = (warm_first ? second : first)->tasks[0];
      const search::TaskReport &warm = (warm_first ? first : second)->tasks[0];
      double flops = fresh.workload.flops();
      run.cold_best = flops / cold.best_seconds * 1e-9;
      run.warm_best = flops / warm.best_seconds * 1e-9;
      double final_best = std::max(run.cold_best, run.warm_best);
      run.cold_to_95 = trials_to_95(cold, final_best);
      run.warm_to_95 = trials_to_95(warm, final_best);
      g.warm_cold.push_back(run);
    }
  }
}
BENCHMARK(BM_WarmVersusCold)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

int main(int argc, char **argv) {
  std::vector<char *> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--db" && i + 1 < argc)
      g_dbs.push_back(argv[++i]);
    else if (a == "--sampled-db" && i + 1 < argc)
      g_sampled_dbs.push_back(argv[++i]);
    else if (a == "--dump-features" && i + 1 < argc)
      g_dump = argv[++i];
    else if (a == "--each-objective")
      g_each_objective = true;
    else if (a == "--trials" && i + 1 < argc)
      g_trials = std::max(8, std::atoi(argv[++i]));
    else if (a == "--seeds" && i + 1 < argc)
      g_seeds = std::max(1, std::atoi(argv[++i]));
    else
      rest.push_back(argv[i]);
  }
  if (!g_dump.empty()) { // the samples only, for analysis outside: no benchmark runs
    dump(collect());
    return 0;
  }
  int n = int(rest.size());
  benchmark::Initialize(&n, rest.data());
  bench::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n== Summary (search and cost model; %s) ==\n", Target::host().str().c_str());
  if (g.features_per_s > 0) // BM_Features ran
    std::printf("features: %.0f programs/s (lowering excluded), %.0f programs/s with lowering\n", g.features_per_s,
                g.lower_and_features_per_s);
  std::printf("held-out pairwise ranking accuracy (%d samples, %d tasks, each left out in turn; aim >= 0.8):\n",
              g.samples, g.tasks);
  for (auto &[name, a] : g.accuracy) std::printf("  %-28s %.3f\n", name.c_str(), a);
  std::printf("the same, only pairs more than 5%% apart (closer ones are within re-measurement noise):\n");
  for (auto &[name, a] : g.apart_accuracy) std::printf("  %-28s %.3f\n", name.c_str(), a);
  std::printf("within a task: each task's later half, trained on its first half and the other tasks:\n");
  for (auto &[name, a] : g.later_accuracy) std::printf("  %-28s %.3f\n", name.c_str(), a);
  std::printf("per task, the default model (held out / later half):\n");
  for (auto &[task, a] : g.per_task) std::printf("  %-60s %.3f / %.3f\n", task.c_str(), a.first, a.second);
  if (!g.sampled_per_task.empty()) {
    std::printf("held out, on programs picked without a model (--sampled-db: %d samples, %zu tasks; all pairs / more\n"
                "than 5%% apart), trained on every other task's records:\n",
                g.sampled_samples, g.sampled_per_task.size());
    for (auto &[name, a] : g.sampled_accuracy)
      std::printf("  %-28s %.3f / %.3f\n", name.c_str(), a, g.sampled_apart_accuracy[name]);
    for (auto &[task, a] : g.sampled_per_task) std::printf("  %-60s %.3f\n", task.c_str(), a);
  }
  if (!g_ceiling.empty()) {
    std::printf(
        "noise ceiling: each task's programs measured again (10 interleaved rounds) against the recorded figures;\n"
        "  the recorded figures rank the fresh ones at: (a model's ceiling), and the default model held out ranks\n"
        "  the records / the fresh figures at:\n");
    double sums[3] = {0, 0, 0};
    for (auto &[task, c] : g_ceiling) {
      std::printf("  %-60s %2d programs  records %.3f  model %.3f / %.3f\n", task.c_str(), c.programs,
                  c.records_vs_again, c.model_vs_records, c.model_vs_again);
      sums[0] += c.records_vs_again, sums[1] += c.model_vs_records, sums[2] += c.model_vs_again;
    }
    double n = double(g_ceiling.size());
    std::printf("  %-60s              records %.3f  model %.3f / %.3f\n", "mean", sums[0] / n, sums[1] / n,
                sums[2] / n);
  }
  if (!g.warm_cold.empty()) {
    std::printf(
        "new shape matmul 384^3, %d trials, cold start against warm (other matmul shapes), per seed: trials to\n"
        "95%% of the better re-measured final (never: %d+), and each run's re-measured best:\n",
        g_trials, g_trials + 1);
    auto trials = [](int t) { return t < 0 ? std::string("never") : std::to_string(t); };
    std::vector<double> cold, warm;
    int warm_ahead = 0, cold_ahead = 0;
    for (size_t i = 0; i < g.warm_cold.size(); ++i) {
      const WarmColdRun &r = g.warm_cold[i];
      std::printf("  seed %zu: cold %5s (%.1f GFLOP/s)  warm %5s (%.1f GFLOP/s)\n", i + 1, trials(r.cold_to_95).c_str(),
                  r.cold_best, trials(r.warm_to_95).c_str(), r.warm_best);
      double c = r.cold_to_95 < 0 ? g_trials + 1 : r.cold_to_95, w = r.warm_to_95 < 0 ? g_trials + 1 : r.warm_to_95;
      cold.push_back(c), warm.push_back(w);
      warm_ahead += w < c, cold_ahead += c < w;
    }
    std::printf("  median: cold %.0f, warm %.0f trials; warm ahead in %d of %zu seeds, cold in %d\n", median(cold),
                median(warm), warm_ahead, g.warm_cold.size(), cold_ahead);
  }
  benchmark::Shutdown();
  return 0;
}
