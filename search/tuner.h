// The tuning loop: for a set of tasks (weighted workloads), repeatedly pick a
// task (TaskScheduler), propose a batch (EvolutionarySearch under the cost
// model), build and run it (measure::Builder/Runner), record every result in
// the database and train the model on it. Resumable: what the database holds
// for a task on this target is measured already and seeds the search. At the
// end each task's best candidates are re-measured interleaved; that figure,
// not a single shot, is what it reports and stores.
#pragma once

#include "cost_model/cost_model.h"
#include "db/database.h"
#include "measure/measure.h"
#include "search/search.h"

#include <functional>

namespace tessel::search {

// Messages of records that are not search trials: each run's baseline, and the final figures.
constexpr const char *kDefaultScheduleNote = "default schedule (the baseline of speed-ups)";
constexpr const char *kRemeasuredNote = db::kRemeasuredNote;

struct TuneTask {
  std::string name; // for people: the spec or the file
  te::Workload workload;
  double weight = 1;
};

struct TuneOptions {
  Target target = Target::host();
  int threads = 1;
  int trials = 64;                // per task
  double time_budget_seconds = 0; // 0: none; otherwise stop starting rounds after it
  int batch = 16;                 // candidates measured per round
  int early_stop = 0;             // stop a task after this many trials without improvement (0: never)
  int remeasure_top = 5;          // re-measured interleaved at the end (with the default schedule when close)
  int remeasure_rounds = 10;
  // Each round also re-measures one schedule (the first round's fastest) and divides the round's figures by
  // how much the machine's speed moved since (records keep the raw figures). On a shared VM the speed
  // moved 1.1-1.5x within a run, and the search chased the fast moments.
  bool control_drift = true;
  uint64_t seed = 1;
  SearchOptions search;
  measure::RunOptions run;
  std::string config_json; // stored with the tuning run
  // Known-good traces (e.g. configs/traces/*.json) tried on every task whose steps they replay on:
  // measured in its first round, then evolved like any other.
  std::vector<std::string> library_traces;
};

struct CurvePoint {
  int trial;
  double seconds; // since the start of tuning
  double best_gflops;
};

struct TaskReport {
  std::string name, workload_key, workload_hash;
  double flops = 0;
  int trials = 0, resumed = 0, failures = 0; // resumed: measured by an earlier run
  double default_seconds = 0;                // the default schedule, measured in this run
  double best_seconds = 0;                   // re-measured interleaved (median of the rounds)
  double single_shot_seconds = 0;            // the search's best single measurement
  double drift_min = 1, drift_max = 1;       // the machine's speed over the run, against its first rounds
  std::string best_trace;
  std::string message; // why a task ended without a result, if it did
  std::vector<CurvePoint> curve;
  std::vector<std::pair<double, double>> predicted_vs_measured; // model score, normalized throughput
};

struct TuneReport {
  std::vector<TaskReport> tasks;
  double total_seconds = 0, compile_seconds = 0, measure_seconds = 0, model_seconds = 0, search_seconds = 0;
  int64_t run_id = 0;
  std::string target, cost_model;
  std::string database_error; // records the database could not take (kept pending there): say it
};

struct TuneProgress {
  std::string task;
  int task_trials, task_trial_limit, total_trials, total_trial_limit;
  double best_gflops, elapsed_seconds, eta_seconds;
};

// Errors: only when the database cannot be read or begin a run. Candidates that fail are
// records with their status; records it could not write are pending in `db` (database_error).
Expected<TuneReport> tune(const std::vector<TuneTask> &tasks, const TuneOptions &options, db::Database &db,
                          measure::Builder &builder, measure::Runner &runner, cost::CostModel &model,
                          const std::function<void(const TuneProgress &)> &progress = {});

// The model trained on every ok and failed record of `target` (any workload) in `db`: a warm start.
Status warm_start(cost::CostModel &model, const db::Database &db, const Target &target, int threads,
                  size_t *samples = nullptr);

} // namespace tessel::search
