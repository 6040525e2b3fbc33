// Tuning end to end (search/tuner.h): real builds and measurements of small
// workloads, resuming, suites, all-failing tasks, bounded memory, the cost
// model's ranking, features and the HTML report.
#include "codegen/cpu_compiler.h"
#include "codegen/cuda_driver.h"
#include "cost_model/features.h"
#include "interp/interpreter.h"
#include "lower/gpu_kernels.h"
#include "lower/lower.h"
#include "schedules/trace.h"
#include "search/report.h"
#include "search/tuner.h"
#include "te/ops.h"
#include "te/text.h"
#include "temp_dir.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

using namespace tessel;
using db::RecordStatus;
using tessel::testing::TempDir;

namespace {

search::TuneTask task(const std::string &spec, double weight = 1) {
  return {spec, te::make_op_workload(spec).take(), weight};
}

search::TuneOptions quick(int trials) {
  search::TuneOptions o;
  o.trials = trials;
  o.batch = 8;
  o.run.repeat = 2;
  o.run.min_repeat_ms = 2;
  o.remeasure_rounds = 3;
  o.remeasure_top = 3;
  o.search.population = 32;
  return o;
}

int64_t records(const db::Database &db) { return db.stats()->records; }

// A tuning on this machine, into memory: the local builder and runner, the XGBoost model.
struct LocalTuning {
  std::unique_ptr<db::Database> db = db::make_memory_database();
  std::unique_ptr<measure::Builder> builder = measure::make_local_builder(Target::host());
  std::unique_ptr<measure::Runner> runner = measure::make_local_runner();
  std::unique_ptr<cost::CostModel> model = cost::make_xgboost_model();
  Expected<search::TuneReport> tune(const std::vector<search::TuneTask> &tasks, const search::TuneOptions &o) {
    return search::tune(tasks, o, *db, *builder, *runner, *model);
  }
};

TEST(Tune, SmallMatmulBeatsTheDefaultAndItsBestMatchesTheInterpreter) {
  LocalTuning local;
  auto &db = local.db;
  auto t = task("matmul:M=64,N=64,K=64");
  auto report = local.tune({t}, quick(64));
  ASSERT_TRUE(report) << report.error();
  ASSERT_EQ(report->tasks.size(), 1u);
  const auto &r = report->tasks[0];
  EXPECT_EQ(r.trials, 64);
  EXPECT_GT(r.default_seconds, 0);
  ASSERT_GT(r.best_seconds, 0) << r.message;
  EXPECT_LT(r.best_seconds, r.default_seconds) << "tuned beats the default schedule";
  EXPECT_GE(records(*db), 64) << "every trial is a record (plus the re-measured ones)";
  EXPECT_TRUE(report->database_error.empty()) << report->database_error;
  EXPECT_FALSE(r.curve.empty());

  // The best record, applied as builds apply it, matches the interpreter.
  auto best = db::apply_best(*db, t.workload, db::target_key(Target::host(), 1));
  ASSERT_TRUE(best) << best.error();
  auto lowered = lower::lower(best->schedule, "best");
  ASSERT_TRUE(lowered) << lowered.error();
  auto program = codegen::jit_compile(*lowered, Target::host());
  ASSERT_TRUE(program) << program.error();
  auto inputs = interp::random_inputs(t.workload, 7);
  auto outputs = interp::empty_outputs(t.workload);
  std::vector<void *> in, out;
  for (auto &a : inputs) in.push_back(a.data());
  for (auto &a : outputs) out.push_back(a.data());
  program->pack(in);
  program->run(in, out);
  auto expected = interp::interpret(t.workload, inputs);
  ASSERT_TRUE(expected);
  EXPECT_TRUE(interp::compare(outputs[0], (*expected)[0]).ok);
}

TEST(Tune, ResumingContinuesWithoutMeasuringAProgramTwice) {
  TempDir dir("tessel_test_tune");
  auto db = db::open_sqlite(dir.file("t.db")).take();
  auto builder = measure::make_local_builder(Target::host());
  auto runner = measure::make_local_runner();
  auto t = task("matmul:M=48,N=40,K=32");
  auto o = quick(16);
  o.remeasure_top = 0;
  {
    auto model = cost::make_xgboost_model();
    auto first = search::tune({t}, o, *db, *builder, *runner, *model);
    ASSERT_TRUE(first) << first.error();
    EXPECT_EQ(first->tasks[0].trials, 16);
  }
  int64_t after_first = records(*db);
  o.trials = 32;
  auto model = cost::make_xgboost_model();
  auto second = search::tune({t}, o, *db, *builder, *runner, *model);
  ASSERT_TRUE(second) << second.error();
  EXPECT_EQ(second->tasks[0].resumed, 16) << "the first run's programs are known";
  EXPECT_EQ(second->tasks[0].trials, 16) << "only the missing trials are measured";
  // No lowered program measured twice by the search (each run's baseline and final re-measurement aside).
  std::set<std::string> programs;
  int64_t searched = 0;
  ASSERT_TRUE(db->for_each([&](const db::Record &r) {
    if (r.message.rfind(search::kRemeasuredNote, 0) == 0 || r.message.rfind(search::kDefaultScheduleNote, 0) == 0)
      return true;
    auto s = sched::replay_json(t.workload, r.trace_json);
    EXPECT_TRUE(s) << s.error();
    programs.insert(cost::program_hash(lower::lower(*s, "x").take()));
    ++searched;
    return true;
  }));
  EXPECT_EQ(int64_t(programs.size()), searched);
  EXPECT_GT(records(*db), after_first);
}

TEST(Tune, TwoTaskSuiteTunesBoth) {
  LocalTuning local;
  auto report = local.tune({task("matmul:M=32,N=32,K=32", 2), task("softmax:M=16,N=64")}, quick(16));
  ASSERT_TRUE(report) << report.error();
  ASSERT_EQ(report->tasks.size(), 2u);
  for (auto &r : report->tasks) {
    EXPECT_EQ(r.trials, 16) << r.name;
    EXPECT_GT(r.best_seconds, 0) << r.name << ": " << r.message;
  }
}

TEST(Tune, TheDefaultScheduleCompetesInTheFinalRemeasurement) {
  // A task whose default costs little to re-measure: it is re-measured next to the best found, so the best
  // the database gives builds is never a kernel slower than the untuned one.
  LocalTuning local;
  auto &db = local.db;
  auto t = task("add:M=4,N=8");
  auto report = local.tune({t}, quick(8));
  ASSERT_TRUE(report) << report.error();
  ASSERT_GT(report->tasks[0].default_seconds, 0);
  std::string plain = sched::trace_to_json(sched::default_schedule(t.workload));
  int remeasured = 0, default_remeasured = 0;
  ASSERT_TRUE(db->for_each([&](const db::Record &r) {
    if (!db::is_remeasured(r)) return true;
    ++remeasured;
    default_remeasured += r.trace_json == plain;
    return true;
  }));
  EXPECT_GE(remeasured, 2);
  EXPECT_EQ(default_remeasured, 1);
}

// Runners and builders standing in for hardware, for the tuner's own behaviour.
class FailingRunner : public measure::Runner {
public:
  std::vector<measure::RunResult> run(const std::vector<measure::Artifact> &a, const measure::RunOptions &,
                                      double) override {
    std::vector<measure::RunResult> out;
    for (auto &x : a)
      out.push_back({x.candidate_id, RecordStatus::RuntimeError, "tensor intrinsic amx_bf16 needs amx-bf16"});
    calls += int(a.size());
    return out;
  }
  std::string describe() const override { return "failing"; }
  int calls = 0;
};

TEST(Tune, EveryCandidateFailingEndsWithAClearMessage) {
  auto db = db::make_memory_database();
  auto builder = measure::make_local_builder(Target::host());
  FailingRunner runner;
  auto model = cost::make_xgboost_model();
  auto report = search::tune({task("matmul:M=32,N=32,K=32")}, quick(200), *db, *builder, runner, *model);
  ASSERT_TRUE(report) << report.error();
  const auto &r = report->tasks[0];
  EXPECT_EQ(r.best_seconds, 0);
  EXPECT_NE(r.message.find("every candidate failed"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("amx-bf16"), std::string::npos) << r.message;
  EXPECT_LT(r.trials, 200) << "it gives up instead of spending every trial";
  EXPECT_EQ(records(*db), r.trials) << "the failures are recorded";
}

class InstantBuilder : public measure::Builder {
public:
  std::vector<measure::BuildResult> build(const std::vector<measure::Candidate> &c) override {
    std::vector<measure::BuildResult> out;
    for (auto &x : c) {
      measure::BuildResult r;
      r.candidate_id = x.id;
      r.artifact.candidate_id = x.id;
      out.push_back(r);
    }
    return out;
  }
};
// A deterministic time per candidate id: the search's bookkeeping, not the hardware, is under test.
class HashRunner : public measure::Runner {
public:
  std::vector<measure::RunResult> run(const std::vector<measure::Artifact> &a, const measure::RunOptions &,
                                      double) override {
    std::vector<measure::RunResult> out;
    for (auto &x : a) {
      double s = seconds(x.candidate_id);
      out.push_back({x.candidate_id, RecordStatus::Ok, "", {s, s}});
    }
    return out;
  }
  std::string describe() const override { return "hash"; }
  static double seconds(const std::string &id) {
    return 1e-4 * (1 + double(std::hash<std::string>()(id) % 1000) / 100.0);
  }
};

// The id the tuner gives a candidate of `trace` (workload hash / program hash): what HashRunner times it by.
std::string program_id(const te::Workload &w, const std::string &trace) {
  return w.hash_hex() + "/" + search::make_proposal(sched::replay_json(w, trace).take())->program_hash;
}

// The features of `w` under the trace steps `steps` (JSON objects, comma-separated).
std::vector<float> features_of(const te::Workload &w, const std::string &steps) {
  auto s = sched::replay_json(w, R"({"format":"tessel-trace","version":1,"steps":[)" + steps + "]}");
  EXPECT_TRUE(s) << s.error();
  if (!s) return std::vector<float>(cost::feature_names().size(), 0.f);
  return cost::program_features(lower::lower(*s, "k").take());
}
size_t feature_index(const std::string &name) {
  const auto &names = cost::feature_names();
  auto it = std::find(names.begin(), names.end(), name);
  EXPECT_NE(it, names.end()) << name;
  return size_t(it - names.begin());
}

long max_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST(Tune, MemoryStaysBoundedOverAThousandTrials) {
  auto db = db::make_memory_database();
  InstantBuilder builder;
  HashRunner runner;
  auto model = cost::make_xgboost_model();
  auto o = quick(100);
  o.batch = 25;
  o.remeasure_top = 0;
  auto t = task("matmul:M=256,N=256,K=256");
  auto warm = search::tune({t}, o, *db, builder, runner, *model); // allocators and caches warmed
  ASSERT_TRUE(warm) << warm.error();
  long before = max_rss_kib();
  o.trials = 1100;
  auto report = search::tune({t}, o, *db, builder, runner, *model);
  ASSERT_TRUE(report) << report.error();
  EXPECT_GE(report->tasks[0].trials + report->tasks[0].resumed, 1000);
  long grown_mib = (max_rss_kib() - before) / 1024;
  EXPECT_LT(grown_mib, 256) << "1,000 trials grew the tuner by " << grown_mib << " MiB";
}

// The search's proposals: new programs only, and a sampled one's choices (what mutation and crossover
// change) replay to exactly its trace, generation after generation.
TEST(Search, ProposalsAreNewAndTheirChoicesReplayToTheirTraces) {
  auto w = te::make_op_workload("conv2d:N=1,C=8,H=14,W=14,K=16,R=3,S=3,stride=1,pad=1").take();
  search::SearchOptions o;
  o.population = 48;
  o.generations = 3;
  o.crossover_share = 0.5; // plenty of crossovers too
  search::EvolutionarySearch search(Target::host(), o);
  sched::SpaceGenerator gen(Target::host());
  auto sketches = gen.sketches(w);
  auto model = cost::make_random_model(2);
  sched::Rng rng(4);
  std::set<std::string> measured;
  std::vector<search::Seed> seeds;
  int with_choices = 0;
  for (int round = 0; round < 3; ++round) {
    auto batch = search.propose(w, 16, seeds, measured, *model, rng);
    ASSERT_FALSE(batch.empty());
    for (auto &p : batch) {
      EXPECT_TRUE(measured.insert(p.program_hash).second) << "proposed twice: " << p.program_hash;
      if (p.origin.sketch < 0) continue;
      ++with_choices;
      ASSERT_LT(p.origin.sketch, int(sketches.size()));
      sched::Decisions d = p.origin.decisions;
      auto again = gen.resample(w, sketches[size_t(p.origin.sketch)], d, rng);
      ASSERT_TRUE(again.has_value()) << again.error();
      EXPECT_EQ(sched::trace_to_json(*again), p.trace_json);
      seeds.push_back({p.trace_json, p.origin}); // the next round evolves from them
    }
  }
  EXPECT_GT(with_choices, 16);
}

// Parents: the fastest few, and each other sketch's fastest, however slow (a sketch whose first samples measured
// slow still evolves).
TEST(Search, ParentsKeepTheFastestOfEverySketch) {
  std::vector<std::pair<double, search::Seed>> measured;
  for (int i = 0; i < 12; ++i) measured.push_back({1.0 + i, {"fast" + std::to_string(i), {0, {}}}});
  measured.push_back({50.0, {"slow sketch 1", {1, {}}}});
  measured.push_back({60.0, {"slower sketch 1", {1, {}}}});
  measured.push_back({0.5, {"a trace without choices", {}}});
  search::keep_parents(measured, 4);
  std::vector<std::string> kept;
  for (auto &[seconds, seed] : measured) kept.push_back(seed.trace_json);
  EXPECT_EQ(kept, (std::vector<std::string>{"a trace without choices", "fast0", "fast1", "fast2", "slow sketch 1"}));
}

// Exploration covers every sketch: when the model prefers one sketch's programs, each batch still holds a program of
// the other (depthwise 3x3 tuned to 0.45x oneDNN in suite runs whose search left its register-tiled sketch alone).
TEST(Search, EveryBatchExploresEverySketch) {
  auto w = te::make_op_workload("depthwise_conv2d:N=1,C=32,H=28,W=28,R=3,S=3,stride=1,pad=1").take();
  // Scores programs without a local (cache-stage) allocation higher: the tile+cache_write sketch loses every time.
  struct NoCacheStagePreferred : cost::CostModel {
    Status update(const std::vector<cost::Sample> &) override { return Status::ok(); }
    std::vector<double> predict(const std::vector<std::vector<float>> &features) const override {
      size_t local_alloc =
          size_t(std::find(cost::feature_names().begin(), cost::feature_names().end(), "local_alloc_bytes") -
                 cost::feature_names().begin());
      std::vector<double> out;
      for (auto &f : features) out.push_back(-f[local_alloc] + 1e-3 * f[0]);
      return out;
    }
    Status save(const std::string &) const override { return Status::ok(); }
    Status load(const std::string &) override { return Status::ok(); }
    std::string describe() const override { return "prefers no cache stage"; }
    size_t samples() const override { return 0; }
  } model;
  sched::SpaceGenerator gen(Target::host());
  ASSERT_EQ(gen.sketches(w).size(), 2u) << "tile, tile+cache_write";
  search::EvolutionarySearch search(Target::host(), {});
  sched::Rng rng(1);
  std::set<std::string> measured;
  for (int round = 0; round < 6; ++round) {
    auto batch = search.propose(w, 16, {}, measured, model, rng);
    ASSERT_EQ(batch.size(), 16u);
    std::set<int> sketches;
    for (auto &p : batch) sketches.insert(p.origin.sketch), measured.insert(p.program_hash);
    EXPECT_TRUE(sketches.count(0) && sketches.count(1)) << "round " << round;
  }
}

// A machine whose speed moves between rounds (every other round 40% faster, as a shared VM's did): with
// drift control the tuner's best is the truly fastest schedule it measured, not one that happened to be
// measured in a fast round. Builder and runner are stand-ins: each program's true time is fixed by its
// hash, the round's speed by how many rounds have run.
TEST(Tune, DriftControlKeepsTheTrulyFastestScheduleWhenTheMachineSpeedMoves) {
  struct DriftingRunner : HashRunner { // every other round 40% faster
    int rounds = 0;
    std::vector<measure::RunResult> run(const std::vector<measure::Artifact> &a, const measure::RunOptions &o,
                                        double best) override {
      double speed = rounds++ % 2 ? 0.6 : 1.0;
      auto out = HashRunner::run(a, o, best);
      for (auto &r : out)
        for (auto &t : r.run_seconds) t *= speed;
      return out;
    }
  };
  auto w = te::make_op_workload("matmul:M=64,N=64,K=64").take();
  for (uint64_t seed : {1, 2, 3})
    for (bool control : {true, false}) {
      auto db = db::make_memory_database();
      InstantBuilder builder; // candidate ids name the programs: workload hash / program hash
      DriftingRunner runner;
      auto model = cost::make_random_model(3);
      search::TuneOptions o = quick(96);
      o.remeasure_top = 0; // the search's own best, as it judged it
      o.control_drift = control;
      o.seed = seed;
      auto report = search::tune({task("matmul:M=64,N=64,K=64")}, o, *db, builder, runner, *model);
      ASSERT_TRUE(report) << report.error();
      const auto &r = report->tasks[0];
      auto true_seconds = [&](const std::string &trace) { return HashRunner::seconds(program_id(w, trace)); };
      double fastest = 1;
      auto recs = db->records_for_workload(w.hash_hex());
      ASSERT_TRUE(recs.has_value());
      for (auto &rec : *recs)
        if (rec.message.empty()) fastest = std::min(fastest, true_seconds(rec.trace_json));
      if (control) {
        EXPECT_DOUBLE_EQ(true_seconds(r.best_trace), fastest);
        EXPECT_NEAR(r.drift_max / r.drift_min, 1 / 0.6, 1e-9) << "the rounds' speeds, seen through the incumbent";
        std::string html = search::html_report(*report);
        EXPECT_NE(html.find("0.60&#8211;1.00&#215;"), std::string::npos) << "the report shows the speed's range";
      } else { // the records the search judged by are out of the true order: drift it had to see through
        std::vector<std::pair<double, double>> measured_true;
        for (auto &rec : *recs) measured_true.push_back({rec.median_seconds, true_seconds(rec.trace_json)});
        int inversions = 0;
        for (auto &a : measured_true)
          for (auto &b : measured_true) inversions += a.first < b.first && a.second > b.second;
        EXPECT_GT(inversions, 0) << "the stand-in shows no drift";
      }
    }
}

// Drift control measures in the frame of the machine's speed when the task began. When that was a slow
// moment (here the default schedule's measurement and the first round run 1.6x slower, then the machine is quiet),
// the curve is still stated in the terms of the final re-measurement: it ends at the incumbent's re-measured
// figure, not 1.6x below it.
TEST(Tune, TheCurveEndsAtTheReMeasuredFigureWhenTheFirstRoundRanSlow) {
  auto w = te::make_op_workload("matmul:M=64,N=64,K=64").take();
  // Each candidate's time is its program's, whatever the candidate is called (re-measurements rename them).
  struct ProgramBuilder : InstantBuilder {
    const te::Workload *w = nullptr;
    std::map<std::string, std::string> program; // candidate id -> program
    std::vector<measure::BuildResult> build(const std::vector<measure::Candidate> &c) override {
      for (auto &x : c) program[x.id] = program_id(*w, x.trace_json);
      return InstantBuilder::build(c);
    }
  };
  struct SlowStartRunner : HashRunner {
    const ProgramBuilder *builder = nullptr;
    int rounds = 0;
    std::vector<measure::RunResult> run(const std::vector<measure::Artifact> &a, const measure::RunOptions &o,
                                        double best) override {
      double slowdown = rounds++ < 2 ? 1.6 : 1.0; // the default schedule's call, then the first round
      auto out = HashRunner::run(a, o, best);
      for (size_t i = 0; i < out.size(); ++i) {
        double s = seconds(builder->program.at(a[i].candidate_id)) * slowdown;
        out[i].run_seconds = {s, s};
      }
      return out;
    }
  };
  auto db = db::make_memory_database();
  ProgramBuilder builder;
  builder.w = &w;
  SlowStartRunner runner;
  runner.builder = &builder;
  auto model = cost::make_random_model(3);
  auto report = search::tune({task("matmul:M=64,N=64,K=64")}, quick(64), *db, builder, runner, *model);
  ASSERT_TRUE(report) << report.error();
  const auto &r = report->tasks[0];
  double fastest = 1; // the incumbent: the truly fastest program the search measured
  auto recs = db->records_for_workload(w.hash_hex());
  ASSERT_TRUE(recs.has_value());
  for (auto &rec : *recs)
    if (rec.message.empty()) fastest = std::min(fastest, HashRunner::seconds(program_id(w, rec.trace_json)));
  ASSERT_FALSE(r.curve.empty());
  double expected = r.flops / fastest * 1e-9;
  EXPECT_NEAR(r.curve.back().best_gflops, expected, 1e-6 * expected) << "1.6x lower without the restatement";
}

// Single shots are noisy (here each within 15% of the program's time, at random), so a round's fastest is
// usually a lucky shot. Drift control must not take such a shot as the measure of the machine's speed: when every
// new best became the reference, each lucky shot made the next rounds look faster still, and the search's figures
// ran away from every program's true time (GEMM 1024^3 on a Zen 5 VM: 255 GFLOP/s while tuning, 179 re-measured).
TEST(Tune, DriftControlDoesNotRatchetOnLuckyShots) {
  struct NoisyRunner : HashRunner {
    std::mt19937 rng{7};
    std::vector<measure::RunResult> run(const std::vector<measure::Artifact> &a, const measure::RunOptions &o,
                                        double best) override {
      auto out = HashRunner::run(a, o, best);
      std::uniform_real_distribution<double> noise(0.85, 1.15);
      for (auto &r : out) {
        double s = r.run_seconds[0] * noise(rng);
        r.run_seconds = {s, s};
      }
      return out;
    }
  };
  auto w = te::make_op_workload("matmul:M=64,N=64,K=64").take();
  auto db = db::make_memory_database();
  InstantBuilder builder;
  NoisyRunner runner;
  auto model = cost::make_random_model(3);
  search::TuneOptions o = quick(320);
  o.remeasure_top = 0; // the search's own figure for its best: its single shot in the frame of drift control
  auto report = search::tune({task("matmul:M=64,N=64,K=64")}, o, *db, builder, runner, *model);
  ASSERT_TRUE(report) << report.error();
  const auto &r = report->tasks[0];
  double fastest = 1;
  auto recs = db->records_for_workload(w.hash_hex());
  ASSERT_TRUE(recs.has_value());
  for (auto &rec : *recs)
    if (rec.message.empty()) fastest = std::min(fastest, HashRunner::seconds(program_id(w, rec.trace_json)));
  // A lucky shot (0.85) seen through an unlucky reference (1.15 against its typical time) is the most the noise
  // can explain.
  EXPECT_GT(r.best_seconds, fastest * 0.85 / 1.15) << "the figure ran away from the fastest program's true time";
}

// For a GPU, every proposal is a kernel the builder accepts: trace-level mutations of seeds (records
// without their choices) move thread-bound splits and shared tiles too; on an H200 such candidates were
// 9 of 140 measured (a warp's 32 lanes split by 33, 4 MB of shared memory, a barrier under a condition).
TEST(Search, GpuProposalsAreKernelsTheBuilderAccepts) {
  auto h100 = Target::load("h100");
  ASSERT_TRUE(h100.has_value());
  auto w = te::make_op_workload("matmul:M=1024,N=1024,K=1024,dtype=f16").take();
  search::SearchOptions o;
  o.population = 64;
  search::EvolutionarySearch search(*h100, o);
  auto model = cost::make_random_model(5);
  sched::Rng rng(8);
  std::set<std::string> measured;
  std::vector<search::Seed> seeds;
  int proposed = 0;
  for (int round = 0; round < 4; ++round) {
    auto batch = search.propose(w, 32, seeds, measured, *model, rng);
    ASSERT_FALSE(batch.empty());
    for (auto &p : batch) {
      measured.insert(p.program_hash);
      auto s = sched::replay_json(w, p.trace_json);
      ASSERT_TRUE(s.has_value()) << s.error();
      auto lowered = lower::lower(*s, "k");
      ASSERT_TRUE(lowered.has_value()) << lowered.error();
      Status fits = lower::check_gpu_limits(lowered->kernel, *h100);
      EXPECT_TRUE(fits.is_ok()) << fits.message() << "\n" << p.trace_json;
      auto kernels = lower::lower_gpu_kernels(*lowered, *h100);
      EXPECT_TRUE(kernels.has_value()) << kernels.error() << "\n" << p.trace_json;
      seeds.push_back({p.trace_json, {}}); // as the database gives them: a trace, no choices
      ++proposed;
    }
  }
  EXPECT_GE(proposed, 100);
}

TEST(CostModel, RanksByWhatItLearnedAndTheRandomModelDoesNot) {
  // Throughput a known function of two features, on two tasks; trained on one, ranked on the other.
  std::mt19937 rng(3);
  auto make = [&](const std::string &task, int n) {
    std::vector<cost::Sample> s;
    for (int i = 0; i < n; ++i) {
      std::vector<float> f(cost::kProgramFeatures, 0.f);
      f[3] = float(rng() % 100) / 10.f, f[7] = float(rng() % 100) / 10.f, f[11] = float(rng() % 100) / 10.f;
      s.push_back({f, 1.0 + f[3] * 2 - f[7] + 0.01 * f[11], task});
    }
    return s;
  };
  auto train = make("a", 300), test = make("b", 200);
  std::vector<std::vector<float>> feats;
  for (auto &s : test) feats.push_back(s.features);
  for (auto objectives :
       std::vector<std::vector<cost::Objective>>{{cost::Objective::PairwiseRank},
                                                 {cost::Objective::WeightedSquared},
                                                 {cost::Objective::LogSquared},
                                                 {cost::Objective::PairwiseRank, cost::Objective::LogSquared}}) {
    cost::XgboostOptions o;
    o.objectives = objectives;
    auto model = cost::make_xgboost_model(o);
    ASSERT_TRUE(model->update(train));
    EXPECT_GT(cost::pairwise_accuracy(model->predict(feats), test), 0.85) << model->describe();
  }
  auto random = cost::make_random_model(1);
  double acc = cost::pairwise_accuracy(random->predict(feats), test);
  EXPECT_GT(acc, 0.4);
  EXPECT_LT(acc, 0.6);
}

// Programs that do more work per flop are never scored higher for it, even where the training records say so
// (here, by construction): the program-wide efficiency features' effect is held monotone (cost_model.h); the
// statements' own are not.
TEST(CostModel, MoreInstructionsPerFlopNeverRaiseTheScore) {
  size_t other = feature_index("s0_trip_count");
  for (std::string name : {"instructions_per_flop", "s0_instructions_per_flop"}) {
    size_t ipf = feature_index(name);
    std::mt19937 rng(8);
    std::vector<cost::Sample> samples;
    for (int i = 0; i < 200; ++i) {
      std::vector<float> f(cost::kProgramFeatures, 0.f);
      f[ipf] = float(rng() % 100) / 10.f, f[other] = float(rng() % 100) / 10.f;
      samples.push_back({f, 1.0 + f[ipf] + 0.1 * f[other], i % 2 ? "a" : "b"});
    }
    std::vector<std::vector<float>> probe(2, std::vector<float>(cost::kProgramFeatures, 0.f));
    probe[0][ipf] = 1.f, probe[1][ipf] = 9.f;
    probe[0][other] = probe[1][other] = 5.f;
    for (bool monotone : {true, false}) {
      cost::XgboostOptions o;
      o.monotone_efficiency = monotone;
      auto model = cost::make_xgboost_model(o);
      ASSERT_TRUE(model->update(samples));
      auto scores = model->predict(probe);
      if (monotone && name == "instructions_per_flop")
        EXPECT_LE(scores[1], scores[0]) << name << ": 9 instructions per flop scored above 1";
      else
        EXPECT_GT(scores[1], scores[0]) << name << (monotone ? "" : ", unconstrained")
                                        << ": learns what the records say";
    }
  }
}

TEST(CostModel, RefusesASavedModelOfOtherFeatures) {
  // A model saved by a Tessel whose programs had another feature count: loading it is a clear error.
  std::mt19937 rng(5);
  std::vector<cost::Sample> samples;
  for (int i = 0; i < 64; ++i)
    samples.push_back({std::vector<float>(7, float(rng() % 10)), double(1 + rng() % 5), "t"});
  auto other = cost::make_xgboost_model();
  ASSERT_TRUE(other->update(samples));
  TempDir dir("tessel_test_model");
  std::string path = (dir.path() / "old.cost_model.json").string();
  ASSERT_TRUE(other->save(path));
  Status st = cost::make_xgboost_model()->load(path);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("7 features"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("Delete the file"), std::string::npos) << st.message();
}

TEST(CostModel, SavedModelPredictsAsTheTrainedOneAndOtherFilesAreRefused) {
  std::mt19937 rng(6);
  std::vector<cost::Sample> samples;
  for (int i = 0; i < 96; ++i) {
    std::vector<float> f(cost::kProgramFeatures, 0.f);
    f[3] = float(rng() % 50), f[9] = float(rng() % 50);
    samples.push_back({f, 1.0 + f[3] - 0.5 * f[9] + 30, i % 2 ? "a" : "b"});
  }
  cost::XgboostOptions two;
  two.objectives = {cost::Objective::PairwiseRank, cost::Objective::LogSquared}; // two boosters, summed
  auto model = cost::make_xgboost_model(two);
  ASSERT_TRUE(model->update(samples));
  std::vector<std::vector<float>> feats;
  for (auto &s : samples) feats.push_back(s.features);
  TempDir dir("tessel_test_model");
  std::string path = (dir.path() / "m.cost_model.json").string();
  ASSERT_TRUE(model->save(path));
  auto loaded = cost::make_xgboost_model();
  ASSERT_TRUE(loaded->load(path));
  auto before = model->predict(feats), after = loaded->predict(feats);
  for (size_t i = 0; i < feats.size(); ++i) EXPECT_NEAR(before[i], after[i], 1e-5) << i;
  EXPECT_GT(cost::pairwise_accuracy(after, samples), 0.9);

  // A bare XGBoost model (what Tessels before the feature-version check saved), and another feature version.
  std::string bare = (dir.path() / "bare.json").string();
  std::ofstream(bare) << "{\"learner\": {}, \"version\": [1, 7, 4]}";
  Status st = cost::make_xgboost_model()->load(bare);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("Delete the file"), std::string::npos) << st.message();
  std::string text;
  {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  std::string key = "\"feature_version\":" + std::to_string(cost::kFeatureVersion);
  auto at = text.find(key);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, key.size(), "\"feature_version\":1");
  std::ofstream(path) << text;
  st = cost::make_xgboost_model()->load(path);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("version 1"), std::string::npos) << st.message();
  // A field of the wrong type is an error, not an exception.
  std::string typed = (dir.path() / "typed.json").string();
  std::ofstream(typed) << "{\"tessel_cost_model\": 1, \"features\": \"136\"}";
  st = cost::make_xgboost_model()->load(typed);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("malformed"), std::string::npos) << st.message();
}

TEST(Features, FixedLengthDeterministicAndTellSchedulesApart) {
  auto w = te::make_op_workload("matmul:M=128,N=128,K=128").take();
  sched::SpaceGenerator gen(Target::host());
  sched::Rng rng(4);
  auto sketches = gen.sketches(w);
  std::set<std::vector<float>> distinct;
  for (int i = 0; i < 12; ++i) {
    auto s = gen.sample(w, sketches[size_t(i) % sketches.size()], rng);
    ASSERT_TRUE(s) << s.error();
    auto lowered = lower::lower(*s, "k").take();
    auto f = cost::program_features(lowered);
    EXPECT_EQ(f.size(), size_t(cost::kProgramFeatures));
    EXPECT_EQ(f, cost::program_features(lower::lower(*s, "k").take())) << "deterministic";
    for (float v : f) EXPECT_TRUE(std::isfinite(v));
    distinct.insert(f);
  }
  EXPECT_GE(distinct.size(), 8u) << "different schedules, different features";
  EXPECT_EQ(cost::feature_names().size(), size_t(cost::kProgramFeatures));
  auto plain = cost::program_features(lower::lower(sched::default_schedule(w), "k").take());
  EXPECT_GT(plain[8], 0) << "total flops are counted";
  const size_t gpu = 2 * cost::kStatementFeatures + 9; // gpu_blocks .. gpu_thread_x_extent
  for (size_t i = gpu; i < gpu + 7; ++i) EXPECT_EQ(plain[i], 0) << "CPU program, GPU slot " << i;
}

TEST(Features, EfficiencyPerFlopSeesVectorsRegisterTilesAndCacheTiles) {
  // The naive loop nest (k innermost: B read down a column) against a register-tiled, vectorized one with B
  // packed: fewer instructions and loads per flop, less traffic into L1 and L2 per flop, all flops in vectors.
  auto w = te::make_op_workload("matmul:M=256,N=256,K=256").take();
  auto fast = features_of(w, R"({"op":"transform_layout","stage":"B","dim":1,"block":64,"perm":[1,0,2]},
    {"op":"cache_write","stage":"C","scope":"local"},
    {"op":"split_exact","stage":"C","loop":0,"factor":4},
    {"op":"split_exact","stage":"C","loop":1,"factor":64},
    {"op":"reorder","stage":"C","order":[4,2,3,5]},
    {"op":"compute_at","stage":"C_local","loop":2,"at":"C"},
    {"op":"reorder","stage":"C_local","order":[2,0,1]},
    {"op":"split_exact","stage":"C_local","loop":1,"factor":16},
    {"op":"vectorize","stage":"C_local","loop":4})");
  auto slow = cost::program_features(lower::lower(sched::default_schedule(w), "k").take());
  auto at = feature_index;
  // Both read what fits L2 at this size, and both keep C's element in registers across k (the naive loop's C[i, j]
  // is promoted too): their L2 traffic is the same.
  for (std::string per_flop : {"instructions_per_flop", "loads_per_flop", "l1_traffic_per_flop"})
    EXPECT_LT(fast[at("s0_" + per_flop)], slow[at("s0_" + per_flop)]) << "the update statement's " << per_flop;
  // Program-wide, packing B adds its own traffic: all of it fits L2 at this size, so only L1 must drop.
  for (const char *per_flop : {"instructions_per_flop", "loads_per_flop", "l1_traffic_per_flop"})
    EXPECT_LT(fast[at(per_flop)], slow[at(per_flop)]) << "program-wide " << per_flop;
  EXPECT_FLOAT_EQ(fast[at("vector_flop_share")], 1.f);
  EXPECT_FLOAT_EQ(slow[at("vector_flop_share")], 0.f);
}

TEST(Features, SeeOddVectorWidthsAndUnrolledRegisterTiles) {
  // matmul 64x224x64, j vectorized by 16 or by 14, and by 16 with a 4-row register tile unrolled inside k.
  auto w = te::make_op_workload("matmul:M=64,N=224,K=64").take();
  auto features = [&](const std::string &steps) { return features_of(w, steps); };
  auto vectorized = [](int lanes) {
    return R"({"op":"split_exact","stage":"C","loop":1,"factor":)" + std::to_string(lanes) +
           R"(},{"op":"reorder","stage":"C","order":[3,2,4]},{"op":"vectorize","stage":"C","loop":4})";
  };
  auto x16 = features(vectorized(16)), x14 = features(vectorized(14));
  auto tiled = features(R"({"op":"split_exact","stage":"C","loop":1,"factor":16},
    {"op":"split_exact","stage":"C","loop":0,"factor":4},
    {"op":"reorder","stage":"C","order":[5,3,2,6,4]},
    {"op":"unroll","stage":"C","loop":6},
    {"op":"vectorize","stage":"C","loop":4})");
  auto at = feature_index;
  // A 14-lane vector is three machine vectors (8 + 4 + 2), a 16-lane one is one.
  EXPECT_GT(x14[at("s0_instructions_per_flop")], x16[at("s0_instructions_per_flop")]);
  EXPECT_GT(x14[at("instructions_per_flop")], x16[at("instructions_per_flop")]);
  // The unrolled rows are four statements in the k loop's body sharing one load of B.
  EXPECT_FLOAT_EQ(x16[at("s0_body_statements")], 1.f);
  EXPECT_FLOAT_EQ(tiled[at("s0_body_statements")], float(std::log2(5.0)));
  EXPECT_GT(tiled[at("s0_body_flops")], x16[at("s0_body_flops")]);
  EXPECT_LT(tiled[at("s0_body_loads_per_flop")], x16[at("s0_body_loads_per_flop")]);
  EXPECT_LT(tiled[at("body_loads_per_flop")], x16[at("body_loads_per_flop")]);
  EXPECT_LT(tiled[at("loop_iterations_per_flop")], x16[at("loop_iterations_per_flop")]);
}

// Cache traffic (FEATURES.md 50-52, 130-132): a B tile that fits L1 stays there while the loop over the rows of A
// goes round it, and is brought once per (j.o, k.o) tile, not once per row.
TEST(Features, CacheTrafficKeepsATileResidentAcrossTheLoopThatLeavesItAlone) {
  auto w = te::make_op_workload("matmul:M=256,N=256,K=256").take();
  auto order = [&](const std::string &loops) { // after splitting j and k by 64: i 0, j.o 3, j.i 4, k.o 5, k.i 6
    return features_of(w, R"({"op":"split","stage":"C","loop":1,"factor":64},
      {"op":"split","stage":"C","loop":2,"factor":64},{"op":"reorder","stage":"C","order":[)" +
                              loops + "]}");
  };
  auto rows_inside = order("3,5,0,6,4"), rows_outside = order("0,3,5,6,4"); // the loop around (k.i, j.i): i; k.o
  for (std::string f : {"s0_l1_traffic_per_flop", "l1_traffic_per_flop"})
    EXPECT_LT(rows_inside[feature_index(f)] + 2, rows_outside[feature_index(f)])
        << f << ": 16 KB per tile, not per row";
}

// A fused loop outside (n.o.c.o.f..., split again with / and %) leaves the loops inside it their strides: the
// features of a tiled matmul are those of the unfused nest, not those of an index no analysis understands.
TEST(Features, AFusedLoopOutsideKeepsTheInnerLoopsStrides) {
  auto w = te::make_op_workload("matmul:M=256,N=256,K=256").take();
  const std::string tiled = R"({"op":"split_exact","stage":"C","loop":0,"factor":4},
    {"op":"split_exact","stage":"C","loop":1,"factor":64},{"op":"reorder","stage":"C","order":[3,5,2,4,6]})";
  auto unfused = features_of(w, tiled),
       fused = features_of(w, tiled + R"(,{"op":"fuse","stage":"C","outer":3,"inner":5})");
  for (std::string f : {"s0_working_set_1", "s0_working_set_2", "s0_working_set_3", "s0_read0_stride",
                        "s0_write_stride", "s0_l1_traffic_per_flop", "s0_l2_traffic_per_flop", "l1_traffic_per_flop"})
    EXPECT_FLOAT_EQ(fused[feature_index(f)], unfused[feature_index(f)]) << f;
  EXPECT_FLOAT_EQ(fused[feature_index("s0_write_affine")], 0.f) << "the fused loop's / and % remain";
}

// The copies of an unrolled register tile read one B vector: the program's cache traffic counts it once, as the
// rolled loop nest does.
TEST(Features, UnrolledCopiesShareWhatTheyRead) {
  auto w = te::make_op_workload("matmul:M=64,N=224,K=64").take();
  const std::string tiled = R"({"op":"split_exact","stage":"C","loop":1,"factor":16},
    {"op":"split_exact","stage":"C","loop":0,"factor":4},{"op":"reorder","stage":"C","order":[5,3,2,6,4]},
    {"op":"vectorize","stage":"C","loop":4})";
  auto rolled = features_of(w, tiled), unrolled = features_of(w, tiled + R"(,{"op":"unroll","stage":"C","loop":6})");
  // The unrolled copies' C rows stay in registers across k (lower::promote_accumulators), so the unrolled nest
  // moves less; counting B once per copy would make it move more.
  for (std::string f : {"l1_traffic_per_flop", "l2_traffic_per_flop"})
    EXPECT_LE(unrolled[feature_index(f)], rolled[feature_index(f)] + 0.1) << f;
}

TEST(Features, GpuProgramsDescribeTheirLaunchAndTheCubinReplacesEstimates) {
  auto w = te::make_op_workload("matmul:M=256,N=256,K=256").take();
  sched::SpaceGenerator gen(Target::load("h100").take());
  sched::Rng rng(5);
  auto sketches = gen.sketches(w);
  auto s = gen.sample(w, sketches[0], rng);
  ASSERT_TRUE(s) << s.error();
  auto lowered = lower::lower(*s, "k").take();
  auto f = cost::program_features(lowered);
  auto at = feature_index;
  lower::GpuResources r = lower::gpu_resources(lowered.kernel);
  EXPECT_GT(r.blocks, 1);
  EXPECT_FLOAT_EQ(f[at("gpu_blocks")], float(std::log2(1.0 + double(r.blocks))));
  EXPECT_FLOAT_EQ(f[at("gpu_threads_per_block")], float(std::log2(1.0 + double(r.threads_per_block))));
  EXPECT_FLOAT_EQ(f[at("gpu_registers_per_thread")], float(std::log2(1.0 + double(lower::estimated_registers(r)))));
  cost::set_cuda_resources(f, 96, 24);
  EXPECT_FLOAT_EQ(f[at("gpu_registers_per_thread")], float(std::log2(97.0)));
  EXPECT_FLOAT_EQ(f[at("gpu_local_bytes_per_thread")], float(std::log2(25.0)));
}

TEST(Report, IsWellFormedAndHoldsThePlotsAndTheTable) {
  LocalTuning local;
  auto &db = local.db;
  auto report = local.tune({task("matmul:M=32,N=48,K=16")}, quick(24));
  ASSERT_TRUE(report) << report.error();
  TempDir dir("tessel_test_report");
  for (auto html : {search::html_report(*report),
                    search::html_report(search::report_from_database(*db, Target::host(), 1).take())}) {
    std::string path = dir.file("r.html");
    std::ofstream(path) << html;
    EXPECT_EQ(std::system(("xmllint --noout " + path + " 2>" + dir.file("err.txt")).c_str()), 0)
        << std::ifstream(dir.file("err.txt")).rdbuf();
    EXPECT_NE(html.find("best GFLOP/s vs trials"), std::string::npos);
    EXPECT_NE(html.find("best GFLOP/s vs seconds"), std::string::npos);
    EXPECT_NE(html.find("<polyline"), std::string::npos);
    EXPECT_NE(html.find("matmul:M=32,N=48,K=16"), std::string::npos);
    EXPECT_NE(html.find("&#215;"), std::string::npos) << "a speed-up over the default";
  }
  std::string live = search::html_report(*report);
  EXPECT_NE(live.find("predicted vs measured"), std::string::npos);
  EXPECT_NE(live.find("Where the time went"), std::string::npos);
}

} // namespace

// Tuning for a GPU drives the whole loop (GPU sketches, features, model, NVRTC builds, the runner):
// where a GPU is, the tuned kernel beats the default; where none is, every candidate is built, none is
// run, and the task ends saying why instead of spending its trials.
TEST(Tune, CudaTargetBuildsWithNvrtcAndRunsWhereAGpuIs) {
  std::string why;
  if (!codegen::nvrtc_available(&why)) GTEST_SKIP() << "NVRTC is not available here: " << why;
  auto db = db::make_memory_database();
  auto h100 = Target::load("h100");
  ASSERT_TRUE(h100.has_value());
  auto builder = measure::make_local_builder(*h100);
  auto runner = measure::make_local_runner();
  auto model = cost::make_xgboost_model();
  search::TuneOptions o = quick(48);
  o.target = *h100;
  auto report = search::tune({task("matmul:M=64,N=64,K=64")}, o, *db, *builder, *runner, *model);
  ASSERT_TRUE(report) << report.error();
  const auto &r = report->tasks[0];
  if (codegen::runnable_here(*h100)) {
    EXPECT_GT(r.best_seconds, 0) << r.message;
  } else {
    EXPECT_EQ(r.best_seconds, 0);
    EXPECT_NE(r.message.find("every candidate failed"), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("cannot run"), std::string::npos) << r.message;
    EXPECT_LT(r.trials, 48);
  }
  EXPECT_GT(report->compile_seconds, 0);
}
