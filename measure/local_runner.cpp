// The local runner: one persistent tessel-worker runs the candidates. A kernel
// that crashes or hangs kills only the worker: the candidate is recorded
// (runtime-error / timeout), the worker restarted, the batch continued. The
// interpreter's reference outputs are computed here once per workload and
// sent to each worker life once.
#include "interp/interpreter.h"
#include "measure/wire.h"
#include "measure/worker_process.h"
#include "te/text.h"

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

namespace tessel::measure {

namespace {

namespace fs = std::filesystem;

// Linking an artifact and making its inputs happen before its run time starts counting.
constexpr auto kStartGrace = std::chrono::seconds(60);

class LocalRunner final : public Runner {
public:
  explicit LocalRunner(LocalRunnerOptions o) : options_(std::move(o)), worker_(exe(), args()) {}

  std::string describe() const override { return "local runner (" + db::host_cpu_model() + ")"; }

  std::vector<RunResult> run(const std::vector<Artifact> &artifacts, const RunOptions &options,
                             double best_seconds) override {
    std::vector<RunResult> out;
    for (const Artifact &a : artifacts) out.push_back(run_one(a, options, best_seconds));
    return out;
  }

private:
  std::string exe() const { return options_.worker_exe.empty() ? default_worker_exe() : options_.worker_exe; }
  std::vector<std::string> args() const {
    std::vector<std::string> a = {"run"};
    if (!options_.cpus.empty()) {
      std::string list;
      for (int c : options_.cpus) list += (list.empty() ? "" : ",") + std::to_string(c);
      a.insert(a.end(), {"--cpus", list});
    }
    return a;
  }

  // The interpreter's outputs for the workload's inputs of `seed`, computed once.
  Expected<const wire::Reference *> reference(const Artifact &a, uint64_t seed) {
    auto key = std::make_pair(a.workload_hash, seed);
    if (auto it = references_.find(key); it != references_.end()) return &it->second;
    auto w = te::parse_workload(a.workload_text, "artifact " + a.candidate_id);
    if (!w) return make_error(w.error());
    if (Status fits = interp::check_run_fits_in_memory(*w, true); !fits) return make_error(fits.message());
    auto outputs = interp::interpret(*w, interp::random_inputs(*w, seed));
    if (!outputs) return make_error("reference interpreter: " + outputs.error());
    wire::Reference ref;
    ref.set_workload_hash(a.workload_hash);
    ref.set_input_seed(seed);
    for (auto &o : *outputs) ref.add_outputs(std::string(static_cast<const char *>(o.data()), size_t(o.bytes())));
    return &references_.emplace(key, std::move(ref)).first->second;
  }

  RunResult run_one(const Artifact &a, const RunOptions &o, double best_seconds) {
    RunResult result;
    result.candidate_id = a.candidate_id;
    result.measured_on = db::host_cpu_model();
    auto fail = [&](db::RecordStatus s, const std::string &why) {
      result.status = s;
      result.message = why;
      return result;
    };
    if (Status st = worker_.start(); !st) return fail(db::RecordStatus::RuntimeError, st.message());
    if (worker_.restarts() != worker_life_) worker_life_ = worker_.restarts(), sent_.clear();

    wire::WorkerRequest request;
    wire::RunRequest *run = request.mutable_run();
    *run->mutable_artifact() = detail::to_wire(a);
    *run->mutable_options() = detail::to_wire(o, best_seconds);
    auto key = std::make_pair(a.workload_hash, o.input_seed);
    if (o.check && !sent_.count(key)) {
      auto ref = reference(a, o.input_seed);
      if (!ref) return fail(db::RecordStatus::Invalid, ref.error());
      *run->mutable_reference() = **ref;
    }
    if (Status st = worker_.send(request); !st) {
      worker_.stop();
      return fail(db::RecordStatus::RuntimeError, "the runner worker is gone: " + st.message());
    }
    if (o.check) sent_.insert(key);

    wire::WorkerReply reply;
    auto r = worker_.receive(reply, detail::Clock::now() + kStartGrace);
    if (r == detail::ReadResult::Message && reply.has_started()) {
      auto limit =
          std::chrono::duration_cast<detail::Clock::duration>(std::chrono::duration<double>(o.timeout_seconds));
      r = worker_.receive(reply, detail::Clock::now() + limit);
    }
    switch (r) {
    case detail::ReadResult::Message:
      if (!reply.has_run() || reply.run().candidate_id() != a.candidate_id) {
        worker_.stop();
        return fail(db::RecordStatus::RuntimeError, "the runner worker answered out of turn (restarted)");
      }
      // A CUDA error can leave the worker's context unusable (sticky): the next candidate gets a fresh worker.
      if (!a.cuda.empty() && reply.run().status() != "ok") worker_.stop();
      return detail::from_wire(reply.run());
    case detail::ReadResult::Timeout:
      worker_.stop();
      return fail(db::RecordStatus::Timeout,
                  "ran longer than the timeout of " + std::to_string(o.timeout_seconds) +
                      " s (RunOptions::timeout_seconds); the worker was killed and restarted");
    case detail::ReadResult::Closed:
      return fail(db::RecordStatus::RuntimeError,
                  "the kernel crashed its runner process (" + worker_.death() + "); the worker was restarted");
    case detail::ReadResult::Malformed: break;
    }
    worker_.stop();
    return fail(db::RecordStatus::RuntimeError, "the runner worker sent a malformed reply (restarted)");
  }

  LocalRunnerOptions options_;
  detail::WorkerProcess worker_;
  int worker_life_ = -1;
  std::map<std::pair<std::string, uint64_t>, wire::Reference> references_;
  std::set<std::pair<std::string, uint64_t>> sent_; // references this worker life holds
};

} // namespace

std::unique_ptr<Runner> make_local_runner(LocalRunnerOptions options) {
  return std::make_unique<LocalRunner>(std::move(options));
}

std::vector<RunResult> remeasure(Runner &runner, const std::vector<Artifact> &top, const RunOptions &options,
                                 int rounds) {
  RunOptions once = options;
  once.repeat = 1;
  once.hopeless_ratio = 0;
  std::vector<RunResult> out(top.size());
  for (size_t i = 0; i < top.size(); ++i) out[i].candidate_id = top[i].candidate_id;
  for (int round = 0; round < std::max(1, rounds); ++round) {
    // Checked in the first round only: later rounds time the same code on the same inputs.
    once.check = options.check && round == 0;
    std::vector<Artifact> still;
    std::vector<size_t> index;
    for (size_t i = 0; i < top.size(); ++i)
      if (out[i].status == db::RecordStatus::Ok) still.push_back(top[i]), index.push_back(i);
    if (still.empty()) break;
    auto results = runner.run(still, once);
    for (size_t j = 0; j < results.size() && j < index.size(); ++j) {
      RunResult &r = out[index[j]];
      if (results[j].status != db::RecordStatus::Ok) {
        r = results[j];
        continue;
      }
      r.run_seconds.insert(r.run_seconds.end(), results[j].run_seconds.begin(), results[j].run_seconds.end());
      r.measured_on = results[j].measured_on;
      r.calls_per_repeat = results[j].calls_per_repeat;
    }
  }
  return out;
}

std::string default_worker_exe() {
  if (const char *env = std::getenv("TESSEL_WORKER"); env && *env) return env;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    // Beside the executable (an installed tessel), or in the build tree's measure/ (build/src/tessel,
    // build/tests/test_x, build/benchmarks/bench_x).
    for (fs::path p :
         {self.parent_path() / "tessel-worker", self.parent_path().parent_path() / "measure" / "tessel-worker"})
      if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return TESSEL_WORKER_BUILD_PATH;
}

} // namespace tessel::measure
