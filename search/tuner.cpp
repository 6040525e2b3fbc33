#include "search/tuner.h"

#include "codegen/cpu_compiler.h"
#include "cost_model/features.h"
#include "lower/lower.h"
#include "schedules/trace.h"
#include "support/host.h"
#include "support/stats.h"
#include "support/version.h"
#include "te/text.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>

namespace tessel::search {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// How many of a task's fastest measured schedules each round's search starts from.
constexpr size_t kParentsKept = 8;

struct TaskState {
  TuneTask task;
  std::string text;          // te::to_text of the workload: what records and candidates carry
  std::string default_trace; // the default schedule's: the baseline, and a contender in the final re-measurement
  TaskProgress progress;
  TaskReport report;
  std::set<std::string> measured;                     // program hashes
  std::vector<Seed> seeds;                            // the database's best, the library's, similar workloads'
  std::vector<std::pair<double, Seed>> best_measured; // this run's fastest few (seconds, seed): evolution's parents
  int since_improvement = 0, failed_rounds = 0;
  std::string first_failure;
  std::vector<std::pair<double, double>> scored; // model score, measured throughput
  // One program, measured again in every round: how much the machine's speed moved since it was first
  // measured (drift). The round's figures are divided by that drift before they are compared, ranked or learned
  // from; records keep what was measured. The anchor is the first round's fastest (or a resumed task's earlier
  // best) and stays: a reference that moved to every new best would be that best's luckiest shot, and each
  // lucky shot would make the following rounds look faster still (the figures ratcheted up to 1.4x the
  // re-measured speed).
  std::optional<measure::Artifact> anchor;
  double anchor_seconds = 0; // its first figure: the frame
  bool anchor_tried = false; // a resumed task's earlier best was built (or tried) as the anchor
};

// A round's drift is trusted within these bounds; beyond them the anchor's figure is more likely a
// fluke than the machine's speed, and the round is taken as measured.
constexpr double kMaxDrift = 2.0;

db::Record record_of(const TaskState &t, const db::TargetKey &key, int64_t run_id, const std::string &trace) {
  db::Record r;
  r.workload_key = t.task.workload.key;
  r.workload_hash = t.task.workload.hash_hex();
  r.workload_text = t.text;
  r.target = key;
  r.run_id = run_id;
  r.trace_json = trace;
  return r;
}

// Lowered program hash and features of a stored trace; nullopt when it no longer replays.
std::optional<Proposal> proposal_of(const te::Workload &w, const std::string &trace) {
  auto s = sched::replay_json(w, trace);
  if (!s) return std::nullopt;
  return make_proposal(*s);
}

} // namespace

Status warm_start(cost::CostModel &model, const db::Database &db, const Target &target, int threads, size_t *samples) {
  db::TargetKey key = db::target_key(target, threads);
  std::map<std::string, std::optional<te::Workload>> workloads;
  std::vector<cost::Sample> out;
  constexpr size_t kMax = 4000; // enough to inform a new task; bounded time and memory
  Status walked = db.for_each([&](const db::Record &r) {
    if (r.target.canonical != key.canonical) return true;
    auto &w = workloads[r.workload_hash];
    if (!w) {
      auto parsed = te::parse_workload(r.workload_text, "record");
      if (!parsed || parsed->hash_hex() != r.workload_hash) return true; // stale: never used
      w = parsed.take();
    }
    auto p = proposal_of(*w, r.trace_json);
    if (!p) return true;
    double tp = r.status == db::RecordStatus::Ok && r.median_seconds > 0 ? w->flops() / r.median_seconds : 0;
    out.push_back({p->features, tp, r.workload_hash});
    return out.size() < kMax;
  });
  if (!walked) return walked;
  if (samples) *samples = out.size();
  return model.update(out);
}

Expected<TuneReport> tune(const std::vector<TuneTask> &tasks, const TuneOptions &o, db::Database &db,
                          measure::Builder &builder, measure::Runner &runner, cost::CostModel &model,
                          const std::function<void(const TuneProgress &)> &progress) {
  auto start = Clock::now();
  TuneReport report;
  db::TargetKey key = db::target_key(o.target, o.threads);
  report.target = db::short_target(key);
  db::RunInfo info;
  info.config_json = o.config_json.empty() ? "{}" : o.config_json;
  info.host = host_name();
  info.tessel_version = tessel::version();
  info.llvm_version = codegen::llvm_version();
  auto run_id = db.begin_run(info);
  if (!run_id) return make_error(run_id.error());
  report.run_id = *run_id;
  measure::RunOptions run = o.run;
  run.threads = o.threads;
  SearchOptions search_options = o.search;
  search_options.threads = o.threads;
  EvolutionarySearch search(o.target, search_options);
  sched::Rng rng(o.seed);
  std::string db_error;

  auto commit = [&](const std::vector<db::Record> &records) {
    if (Status st = db.commit(records); !st) db_error = st.message();
  };

  std::vector<TaskState> states;
  for (auto &t : tasks) {
    TaskState s;
    s.task = t;
    s.text = te::to_text(t.workload);
    s.progress.weight = t.weight;
    s.progress.trial_limit = o.trials;
    s.report.name = t.name;
    s.report.workload_key = t.workload.key;
    s.report.workload_hash = t.workload.hash_hex();
    s.report.flops = t.workload.flops();
    // Resume: what this target already measured is not measured again, and trains the model.
    auto known = db.records_for_workload(t.workload.hash_hex());
    if (!known) return make_error(known.error());
    std::vector<cost::Sample> samples;
    std::set<std::string> searched;
    for (auto &r : *known) {
      if (r.target.canonical != key.canonical || r.workload_text != s.text) continue;
      auto p = proposal_of(t.workload, r.trace_json);
      if (!p) continue;
      s.measured.insert(p->program_hash);
      // Baselines and re-measurements are not trials; each searched program counts once.
      if (r.message.rfind(kDefaultScheduleNote, 0) == 0 || r.message.rfind(kRemeasuredNote, 0) == 0) continue;
      if (!searched.insert(p->program_hash).second) continue;
      ++s.report.resumed;
      bool ok = r.status == db::RecordStatus::Ok && r.median_seconds > 0;
      samples.push_back({p->features, ok ? s.report.flops / r.median_seconds : 0, s.report.workload_hash});
      if (ok && (s.progress.best_seconds == 0 || r.median_seconds < s.progress.best_seconds)) {
        s.progress.best_seconds = r.median_seconds;
        s.report.single_shot_seconds = r.median_seconds;
        s.report.best_trace = r.trace_json;
      }
    }
    s.progress.trials = s.report.resumed;
    if (auto top = db.top_k(t.workload.hash_hex(), key, 8))
      for (auto &r : *top) s.seeds.push_back({r.trace_json, {}});
    for (auto &trace : o.library_traces) s.seeds.push_back({trace, {}});
    // Similar workloads (the same operator, other shapes) tuned on this target: their best traces.
    std::string op = t.workload.key.substr(0, t.workload.key.find(':') + 1);
    if (auto sums = db.summaries())
      for (auto &m : *sums)
        if (s.seeds.size() < 16 + o.library_traces.size() && m.target.canonical == key.canonical &&
            m.workload_hash != t.workload.hash_hex() && m.workload_key.rfind(op, 0) == 0 && m.ok_records > 0)
          if (auto best = db.best(m.workload_hash, key)) s.seeds.push_back({best->trace_json, {}});
    if (Status st = model.update(samples); !st) return make_error(st.message());
    states.push_back(std::move(s));
  }

  // The default schedule of each task, measured in this run: what the speed-up is over.
  {
    std::vector<measure::Candidate> defaults;
    for (auto &s : states) {
      auto untuned = sched::default_schedule_for(s.task.workload, o.target);
      sched::Schedule plain = untuned ? untuned.take() : sched::default_schedule(s.task.workload);
      if (auto p = make_proposal(plain)) s.measured.insert(p->program_hash); // the search never repeats it
      s.default_trace = sched::trace_to_json(plain);
      defaults.push_back({"default/" + s.report.workload_hash, s.text, s.default_trace});
    }
    auto t0 = Clock::now();
    auto built = builder.build(defaults);
    report.compile_seconds += since(t0);
    std::vector<db::Record> records;
    for (size_t i = 0; i < built.size(); ++i) {
      if (built[i].status != db::RecordStatus::Ok) continue;
      // Default schedules can take seconds per call (a 1024^3 matmul: ~6 s): one timed call, no warm-up.
      measure::RunOptions once = run;
      once.warmup = 0, once.number = 1, once.repeat = 1;
      once.timeout_seconds = std::max(run.timeout_seconds, 120.0);
      t0 = Clock::now();
      auto r = runner.run({built[i].artifact}, once);
      report.measure_seconds += since(t0);
      if (r[0].status != db::RecordStatus::Ok || r[0].run_seconds.empty()) continue;
      states[i].report.default_seconds = median(r[0].run_seconds);
      db::Record rec = record_of(states[i], key, *run_id, defaults[i].trace_json);
      rec.run_seconds = r[0].run_seconds;
      rec.message = kDefaultScheduleNote;
      records.push_back(rec);
    }
    commit(records);
  }

  int total_limit = 0, total_done = 0;
  for (auto &s : states) total_limit += s.progress.trial_limit, total_done += s.progress.trials;
  for (auto &s : states) s.progress.done = s.progress.trials >= s.progress.trial_limit;

  for (;;) {
    std::vector<TaskProgress> view;
    for (auto &s : states) view.push_back(s.progress);
    int pick = next_task(view);
    if (pick < 0) break;
    if (o.time_budget_seconds > 0 && since(start) > o.time_budget_seconds) break;
    TaskState &s = states[size_t(pick)];
    int n = std::min(o.batch, s.progress.trial_limit - s.progress.trials);

    auto t0 = Clock::now();
    std::vector<Seed> seeds;
    for (auto &[secs, seed] : s.best_measured) seeds.push_back(seed);
    seeds.insert(seeds.end(), s.seeds.begin(), s.seeds.end());
    auto proposals = search.propose(s.task.workload, n, seeds, s.measured, model, rng);
    report.search_seconds += since(t0);
    if (proposals.empty()) {
      s.progress.done = true;
      if (s.progress.best_seconds == 0) s.report.message = "the schedule space offered no program to measure";
      continue;
    }
    std::vector<measure::Candidate> candidates;
    for (auto &p : proposals)
      candidates.push_back({s.report.workload_hash + "/" + p.program_hash, s.text, p.trace_json});
    t0 = Clock::now();
    auto built = builder.build(candidates);
    report.compile_seconds += since(t0);
    // A resumed task's best (an earlier run's) is built once to serve as this run's anchor.
    bool resumed_anchor = !s.anchor && !s.report.best_trace.empty() && o.control_drift && !s.anchor_tried;
    if (resumed_anchor) {
      s.anchor_tried = true;
      t0 = Clock::now();
      auto b = builder.build({{"anchor/" + s.report.workload_hash, s.text, s.report.best_trace}});
      report.compile_seconds += since(t0);
      if (!b.empty() && b[0].status == db::RecordStatus::Ok) s.anchor = b[0].artifact;
    }
    std::vector<measure::Artifact> artifacts;
    std::vector<size_t> which;
    bool control = o.control_drift && s.anchor.has_value();
    if (control) artifacts.push_back(*s.anchor); // first: measured, not recorded
    for (size_t i = 0; i < built.size(); ++i)
      if (built[i].status == db::RecordStatus::Ok) artifacts.push_back(built[i].artifact), which.push_back(i);
    t0 = Clock::now();
    auto measured = artifacts.size() <= size_t(control) ? std::vector<measure::RunResult>{}
                                                        : runner.run(artifacts, run, s.progress.best_seconds);
    report.measure_seconds += since(t0);
    double drift = 1; // the machine's speed now against the frame: figures are divided by it
    if (control && !measured.empty()) {
      const measure::RunResult anchor = measured.front();
      measured.erase(measured.begin());
      double now =
          anchor.status == db::RecordStatus::Ok && !anchor.run_seconds.empty() ? median(anchor.run_seconds) : 0;
      if (now > 0 && resumed_anchor) { // this run's frame starts here, with the earlier best's figure
        s.anchor_seconds = now;
        s.progress.best_seconds = now;
      } else if (now > 0 && s.anchor_seconds > 0 && now / s.anchor_seconds < kMaxDrift &&
                 s.anchor_seconds / now < kMaxDrift) {
        drift = now / s.anchor_seconds;
      }
      s.report.drift_min = std::min(s.report.drift_min, drift);
      s.report.drift_max = std::max(s.report.drift_max, drift);
    }

    std::vector<db::Record> records;
    std::vector<cost::Sample> samples;
    std::vector<measure::RunResult> results(proposals.size());
    for (size_t i = 0; i < built.size(); ++i)
      if (built[i].status != db::RecordStatus::Ok)
        results[i] = {built[i].candidate_id, built[i].status, built[i].message};
    for (size_t j = 0; j < measured.size(); ++j) results[which[j]] = measured[j];
    double before = s.progress.best_seconds;
    int ok_count = 0;
    int fastest = -1; // this round's
    double fastest_secs = 0;
    for (size_t i = 0; i < proposals.size(); ++i) {
      const auto &r = results[i];
      db::Record rec = record_of(s, key, *run_id, proposals[i].trace_json);
      rec.status = r.status;
      rec.message = r.message;
      rec.run_seconds = r.run_seconds;
      if (r.status == db::RecordStatus::Ok && r.run_seconds.empty()) rec.status = db::RecordStatus::Invalid;
      records.push_back(rec);
      s.measured.insert(proposals[i].program_hash);
      double secs = r.status == db::RecordStatus::Ok ? median(r.run_seconds) / drift : 0; // in the frame
      double tp = secs > 0 ? s.report.flops / secs : 0;
      samples.push_back({proposals[i].features, tp, s.report.workload_hash});
      if (built[i].status == db::RecordStatus::Ok && !built[i].artifact.cuda.empty()) { // the cubin's figures
        int regs = 0;
        int64_t local = 0;
        for (auto &k : built[i].artifact.cuda.kernels)
          regs = std::max(regs, k.registers), local = std::max(local, k.local_bytes);
        cost::set_cuda_resources(samples.back().features, regs, local);
      }
      if (secs > 0) {
        ++ok_count;
        if (!r.stopped_early) s.best_measured.push_back({secs, {proposals[i].trace_json, proposals[i].origin}});
        s.scored.push_back({proposals[i].score, tp});
        if (!r.stopped_early && (s.progress.best_seconds == 0 || secs < s.progress.best_seconds)) {
          s.progress.best_seconds = secs;
          s.report.single_shot_seconds = median(r.run_seconds); // as measured
          s.report.best_trace = proposals[i].trace_json;
        }
        if (!r.stopped_early && (fastest < 0 || secs < fastest_secs)) fastest = int(i), fastest_secs = secs;
      } else {
        ++s.report.failures;
        if (s.first_failure.empty()) s.first_failure = std::string(db::to_string(r.status)) + ": " + r.message;
      }
    }
    commit(records);
    if (o.control_drift && !s.anchor && fastest >= 0)
      s.anchor = built[fastest].artifact, s.anchor_seconds = fastest_secs;
    t0 = Clock::now();
    if (Status st = model.update(samples); !st) return make_error(st.message());
    report.model_seconds += since(t0);

    s.progress.trials += int(proposals.size());
    s.report.trials += int(proposals.size());
    total_done += int(proposals.size());
    s.progress.best_after_round.push_back(s.progress.best_seconds);
    bool improved = s.progress.best_seconds > 0 && (before == 0 || s.progress.best_seconds < before * 0.999);
    s.since_improvement = improved ? 0 : s.since_improvement + int(proposals.size());
    s.failed_rounds = ok_count == 0 ? s.failed_rounds + 1 : 0;
    keep_parents(s.best_measured, kParentsKept);
    double best_gflops = s.progress.best_seconds > 0 ? s.report.flops / s.progress.best_seconds * 1e-9 : 0;
    s.report.curve.push_back({s.progress.trials, since(start), best_gflops});
    if (s.progress.trials >= s.progress.trial_limit) s.progress.done = true;
    if (o.early_stop > 0 && s.since_improvement >= o.early_stop) s.progress.done = true;
    if (s.failed_rounds >= 3 && s.progress.best_seconds == 0) {
      s.progress.done = true;
      s.report.message =
          "every candidate failed (" + std::to_string(s.report.failures) + " of them); the first: " + s.first_failure;
    }
    if (progress) {
      double elapsed = since(start);
      int done_now = 0;
      for (auto &x : states) done_now += x.progress.done ? x.progress.trial_limit : x.progress.trials;
      double rate = total_done > 0 ? elapsed / double(total_done) : 0;
      progress({s.report.name, s.progress.trials, s.progress.trial_limit, done_now, total_limit, best_gflops, elapsed,
                rate * double(std::max(0, total_limit - done_now))});
    }
  }

  // The figure to report: each task's best re-measured interleaved with its runners-up.
  for (auto &s : states) {
    if (o.remeasure_top <= 0) {
      s.report.best_seconds = s.progress.best_seconds; // asked for no re-measurement: the single shot
      continue;
    }
    auto top = db.top_k(s.report.workload_hash, key, o.remeasure_top);
    if (!top || top->empty()) {
      if (s.report.message.empty()) s.report.message = "no ok record to re-measure";
      continue;
    }
    std::vector<measure::Candidate> candidates;
    std::set<std::string> traces;
    double best_single = 0;
    for (auto &r : *top) {
      if (traces.insert(r.trace_json).second)
        candidates.push_back({"remeasure/" + std::to_string(r.id), s.text, r.trace_json});
      if (r.median_seconds > 0 && (best_single == 0 || r.median_seconds < best_single)) best_single = r.median_seconds;
    }
    // The database's fastest figures may all come from one fast moment of the machine; this run's
    // fastest after drift correction compete too.
    for (size_t i = 0; i < s.best_measured.size() && int(i) < o.remeasure_top; ++i)
      if (traces.insert(s.best_measured[i].second.trace_json).second)
        candidates.push_back({"remeasure/run" + std::to_string(i), s.text, s.best_measured[i].second.trace_json});
    // The default schedule competes too when it may be as fast (its one cold call was within 2x of the best
    // single shot) or costs little to re-measure: the tuned kernel is then never slower than the untuned one.
    if (s.report.default_seconds > 0 && s.report.default_seconds <= std::max(2 * best_single, 1e-3) &&
        traces.insert(s.default_trace).second)
      candidates.push_back({"remeasure/default", s.text, s.default_trace});
    auto t0 = Clock::now();
    auto built = builder.build(candidates);
    report.compile_seconds += since(t0);
    std::vector<measure::Artifact> artifacts;
    std::vector<std::string> artifact_traces;
    for (size_t i = 0; i < built.size(); ++i)
      if (built[i].status == db::RecordStatus::Ok)
        artifacts.push_back(built[i].artifact), artifact_traces.push_back(candidates[i].trace_json);
    if (artifacts.empty()) continue;
    t0 = Clock::now();
    auto again = measure::remeasure(runner, artifacts, run, o.remeasure_rounds);
    report.measure_seconds += since(t0);
    std::vector<db::Record> records;
    double best = 0;
    const std::string incumbent_trace = s.report.best_trace; // the search's fastest, in the run's frame
    double incumbent_again = 0;
    for (size_t i = 0; i < again.size(); ++i) {
      if (again[i].status != db::RecordStatus::Ok || again[i].run_seconds.empty()) continue;
      db::Record rec = record_of(s, key, *run_id, artifact_traces[i]);
      rec.run_seconds = again[i].run_seconds;
      rec.message =
          std::string(kRemeasuredNote) + ": " + std::to_string(again[i].run_seconds.size()) + " interleaved rounds";
      records.push_back(rec);
      double m = median(again[i].run_seconds);
      if (artifact_traces[i] == incumbent_trace) incumbent_again = m;
      if (best == 0 || m < best) best = m, s.report.best_trace = artifact_traces[i];
    }
    commit(records);
    s.report.best_seconds = best;
    // Drift control's figures are in the frame of the machine's speed when the task began, which may have been a
    // slow or a fast moment: the curve is restated in the final re-measurement's terms, so that it ends at the
    // incumbent's re-measured figure and "trials to 95%" compares like with like.
    if (o.control_drift && incumbent_again > 0 && s.progress.best_seconds > 0)
      for (auto &c : s.report.curve) c.best_gflops *= s.progress.best_seconds / incumbent_again;
  }
  for (auto &s : states) {
    double best_tp = 0;
    for (auto &[score, tp] : s.scored) best_tp = std::max(best_tp, tp);
    for (auto &[score, tp] : s.scored)
      s.report.predicted_vs_measured.push_back({score, best_tp > 0 ? tp / best_tp : 0});
    report.tasks.push_back(std::move(s.report));
  }
  if (Status st = db.end_run(*run_id); !st && db_error.empty()) db_error = st.message();
  report.total_seconds = since(start);
  report.cost_model = model.describe();
  report.database_error = db_error;
  return report;
}

} // namespace tessel::search
