// `tessel tune` and `tessel report`: the tuning loop (search/tuner.h) for people.
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "codegen/cuda_driver.h"
#include "measure/rpc.h"
#include "search/report.h"
#include "search/tuner.h"
#include "te/ops.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace tessel::cli {

namespace {

namespace fs = std::filesystem;

Expected<std::vector<search::TuneTask>> load_tasks(const std::vector<std::string> &args) {
  auto entries = te::load_workloads(args);
  if (!entries) return make_error(entries.error());
  std::vector<search::TuneTask> tasks;
  for (auto &e : *entries) tasks.push_back({e.name, std::move(e.workload), e.weight});
  return tasks;
}

// Re-measured this much slower than the best single shot: say the machine was noisy (quiet machines stay
// within 0-15%, as TVM's single-shot bests were found to be on ours).
constexpr double kNoisyRatio = 1.2;

} // namespace

int cmd_tune(const TuneOptions &o) {
  if (o.trials < 1) return fail("--trials must be at least 1, got " + std::to_string(o.trials));
  if (o.threads < 1) return fail("--threads must be at least 1, got " + std::to_string(o.threads));
  if (o.batch < 1) return fail("--batch must be at least 1, got " + std::to_string(o.batch));
  if (o.rpc.empty() != o.key.empty()) return fail("--rpc and --key go together (the tracker and the device key)");
  if (o.cost_model != "xgboost" && o.cost_model != "random")
    return fail("--cost-model must be xgboost or random, not '" + o.cost_model + "'");
  auto tasks = load_tasks(o.workloads);
  if (!tasks) return fail(tasks.error());
  auto target = Target::load(o.target);
  if (!target) return fail(target.error());
  if (o.rpc.empty())
    if (Status here = codegen::runnable_here(*target); !here)
      return fail(here.message() + " (measure on a device fleet with --rpc ADDR --key KEY)");
  std::string db_path = database_path(o.db);
  auto db = db::open_sqlite(db_path);
  if (!db) return fail(db.error());

  auto builder = measure::make_local_builder(*target);
  std::unique_ptr<measure::Runner> runner;
  if (o.rpc.empty()) {
    runner = measure::make_local_runner();
  } else {
    measure::RpcRunnerOptions r;
    r.tracker = o.rpc;
    r.key = o.key;
    if (!o.token_file.empty()) {
      auto token = measure::read_token_file(o.token_file);
      if (!token) return fail(token.error());
      r.security.token = *token;
    }
    r.security.tls_ca = o.tls_ca;
    runner = measure::make_rpc_runner(r);
  }
  cost::XgboostOptions xo;
  xo.seed = o.seed;
  auto model = o.cost_model == "random" ? cost::make_random_model(o.seed) : cost::make_xgboost_model(xo);
  // Warm start: this target's records in the database, and in --cost-model-from.
  size_t warm = 0;
  if (Status st = search::warm_start(*model, **db, *target, o.threads, &warm); !st) return fail(st.message());
  if (fs::path(o.cost_model_from).extension() == ".json") {
    // A saved model (`<db>.cost_model.json`, written at the end of every xgboost run): it
    // scores the first rounds; the first retraining replaces it with one trained on records.
    if (o.cost_model != "xgboost") return fail("--cost-model-from FILE.json needs --cost-model xgboost");
    if (Status st = model->load(o.cost_model_from); !st) return fail("--cost-model-from: " + st.message());
    std::cout << "model    loaded " << o.cost_model_from << "\n";
  } else if (!o.cost_model_from.empty()) {
    db::OpenOptions ro;
    ro.read_only = true;
    auto other = db::open_sqlite(o.cost_model_from, ro);
    if (!other) return fail("--cost-model-from: " + other.error());
    size_t more = 0;
    if (Status st = search::warm_start(*model, **other, *target, o.threads, &more); !st) return fail(st.message());
    warm += more;
  }

  search::TuneOptions t;
  // The trace library: configs/traces next to each configs/targets directory Tessel searches (CPU traces).
  size_t library = 0;
  if (!o.no_trace_library && target->is_cpu())
    for (auto &dir : Target::search_dirs()) {
      std::error_code ec;
      for (auto &entry : fs::directory_iterator(fs::path(dir).parent_path() / "traces", ec))
        if (entry.path().extension() == ".json") {
          std::ifstream in(entry.path());
          std::stringstream text;
          text << in.rdbuf();
          t.library_traces.push_back(text.str());
          ++library;
        }
      if (library) break;
    }
  t.target = *target;
  t.threads = o.threads;
  t.trials = o.trials;
  t.time_budget_seconds = o.time_budget;
  t.batch = o.batch;
  t.control_drift = !o.no_drift_control;
  t.seed = o.seed;
  t.early_stop = o.early_stop;
  t.run.repeat = 3; // candidates: enough to rank; the best are re-measured interleaved at the end
  t.config_json = "{\"trials\": " + std::to_string(o.trials) + ", \"batch\": " + std::to_string(o.batch) +
                  ", \"seed\": " + std::to_string(o.seed) + ", \"threads\": " + std::to_string(o.threads) +
                  ", \"cost_model\": \"" + o.cost_model + "\", \"runner\": \"" + runner->describe() + "\"}";
  std::cout << "tuning   " << tasks->size() << " task" << (tasks->size() == 1 ? "" : "s") << " on " << target->str()
            << ", " << o.threads << " thread" << (o.threads == 1 ? "" : "s") << "\n"
            << "database " << db_path << "\n"
            << "measure  " << runner->describe() << "\n"
            << "seeds    "
            << (library ? std::to_string(library) + " committed traces (configs/traces; --no-trace-library)"
                        : std::string("none from a trace library"))
            << "\n"
            << "model    " << model->describe()
            << (warm ? " (warm start from " + std::to_string(warm) + " records)" : "") << std::endl;
  ProgressBar bar("tune");
  std::string last_line;
  auto report = search::tune(*tasks, t, **db, *builder, *runner, *model, [&](const search::TuneProgress &p) {
    bar.what = "tune " + std::to_string(p.total_trials) + "/" + std::to_string(p.total_trial_limit) + " " +
               p.task.substr(0, 32) + " best " + fmt("%.1f", p.best_gflops) + " GFLOP/s, " +
               fmt("%.0f s", p.elapsed_seconds) + ", ETA " + fmt("%.0f s", p.eta_seconds);
    bar.update(double(p.total_trials) / double(std::max(1, p.total_trial_limit)));
    if (!bar.tty) { // logs get a line per round instead
      std::string line = "  " + p.task + ": " + std::to_string(p.task_trials) + "/" +
                         std::to_string(p.task_trial_limit) + " trials, best " + fmt("%.2f", p.best_gflops) +
                         " GFLOP/s";
      if (line != last_line) std::cout << line << std::endl; // flushed: logs follow along
      last_line = line;
    }
  });
  bar.update(1);
  if (!report) return fail(report.error());
  std::cout << "\n"
            << pad_right("task", 44) << pad_right("trials", 8) << pad_right("default", 12) << pad_right("tuned", 12)
            << "speed-up   (GFLOP/s; tuned = median of " << t.remeasure_rounds << " interleaved rounds)\n";
  int failed_tasks = 0;
  for (auto &r : report->tasks) {
    std::string speedup =
        r.default_seconds > 0 && r.best_seconds > 0 ? fmt("%.1fx", r.default_seconds / r.best_seconds) : "-";
    std::cout << pad_right(r.name, 44) << pad_right(std::to_string(r.trials + r.resumed), 8)
              << pad_right(gflops(r.flops, r.default_seconds, "%.2f"), 12)
              << pad_right(gflops(r.flops, r.best_seconds, "%.2f"), 12) << speedup << "\n";
    if (!r.message.empty()) std::cout << "    " << r.message << "\n";
    // Single-shot figures come from moments apart; interleaved ones from the same moments. Far apart, the
    // machine's speed moved while tuning (seen: 1.1-1.5x on a shared VM), and the search chased that.
    if (r.best_seconds > 0 && r.single_shot_seconds > 0 && r.best_seconds > kNoisyRatio * r.single_shot_seconds)
      std::cout << "    note: re-measured " << fmt("%.2fx", r.best_seconds / r.single_shot_seconds)
                << " slower than the search's best single measurement ("
                << gflops(r.flops, r.single_shot_seconds, "%.2f")
                << " GFLOP/s): this machine's speed varied while tuning (other load?); re-tune on a quiet one\n";
    if (r.drift_max / r.drift_min > 1.1)
      std::cout
          << "    the machine's speed moved " << fmt("%.2f", 1 / r.drift_max) << "-" << fmt("%.2f", 1 / r.drift_min)
          << "x during tuning (its first round's fastest schedule, re-measured each round); figures were corrected\n";
    if (r.best_seconds <= 0) ++failed_tasks;
  }
  std::cout << "time     " << fmt("%.1f s", report->total_seconds) << " (compile "
            << fmt("%.1f", report->compile_seconds) << ", measure " << fmt("%.1f", report->measure_seconds)
            << ", model " << fmt("%.1f", report->model_seconds) << ", search " << fmt("%.1f", report->search_seconds)
            << ")\n";
  if (!report->database_error.empty()) std::cerr << "tessel: error: " << report->database_error << "\n";
  for (auto &r : report->tasks)
    if (r.best_seconds > 0) {
      std::cout << "run it   tessel run " << r.name << " --db " << db_path
                << (o.threads > 1 ? " --threads " + std::to_string(o.threads) : "") << "\n";
      break;
    }
  if (!o.report.empty()) {
    std::ofstream out(o.report);
    out << search::html_report(*report);
    if (!out) return fail("cannot write " + o.report);
    std::cout << "report   " << o.report << "\n";
  }
  if (o.cost_model == "xgboost") (void)model->save(db_path + ".cost_model.json");
  return failed_tasks == int(report->tasks.size()) || !report->database_error.empty() ? 1 : 0;
}

int cmd_report(const ReportOptions &o) {
  std::string path = database_path(o.db);
  if (!fs::exists(path)) return fail("no tuning database at " + path + " (give --db PATH)");
  auto db = db::open_sqlite(path);
  if (!db) return fail(db.error());
  auto target = Target::load(o.target);
  if (!target) return fail(target.error());
  auto report = search::report_from_database(**db, *target, o.threads);
  if (!report) return fail(report.error());
  std::ofstream out(o.output);
  out << search::html_report(*report);
  if (!out) return fail("cannot write " + o.output);
  std::cout << "wrote " << o.output << " (" << report->tasks.size() << " tasks on " << report->target << ")\n";
  return 0;
}

} // namespace tessel::cli
