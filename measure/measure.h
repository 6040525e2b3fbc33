// Measurement: candidates (a workload and a schedule trace) are built into
// relocatable artifacts, then run and timed on real hardware. Generated code is
// untrusted, so both happen in worker processes (tessel-worker) that may crash,
// hang or scribble memory without taking the tuner along: such candidates are
// recorded with a status, the worker is restarted and the batch goes on.
// Runners: local (a worker on this machine) or RPC (a device fleet, measure/rpc.h).
#pragma once

#include "codegen/cpu_compiler.h"
#include "codegen/cuda_compiler.h"
#include "db/record.h"
#include "target/target.h"

#include <memory>
#include <string>
#include <vector>

namespace tessel::measure {

struct Candidate {
  std::string id; // unique within a tuning run: results are matched (and deduplicated) by it
  std::string workload_text;
  std::string trace_json;
};

struct Artifact {
  std::string candidate_id, workload_text, workload_hash;
  std::string target_json;  // what it was compiled for
  codegen::ObjectCode code; // CPU targets
  codegen::CudaCode cuda;   // CUDA targets
  double compile_seconds = 0;
};

struct BuildResult {
  std::string candidate_id;
  // Ok, CompileError (a timeout says so in message), or Invalid (a CUDA kernel over the target's limits)
  db::RecordStatus status = db::RecordStatus::Ok;
  std::string message;
  Artifact artifact; // when Ok
  double compile_seconds = 0;
};

struct BuilderOptions {
  int workers = 0;                         // 0: one per core
  double timeout_seconds = 30;             // per candidate
  int64_t max_artifact_bytes = 16ll << 20; // bigger objects are refused as compile errors
};

class Builder {
public:
  virtual ~Builder() = default;
  // One result per candidate, in order.
  virtual std::vector<BuildResult> build(const std::vector<Candidate> &candidates) = 0;
};
std::unique_ptr<Builder> make_local_builder(const Target &target, BuilderOptions options = {});

// The measurement protocol (TVM's, docs in measure/README.md): `warmup` calls, then
// `repeat` repeats of `number` calls each (0: as many as reach min_repeat_ms), every
// repeat's per-call time returned; the first call's outputs are checked.
struct RunOptions {
  int warmup = 1;
  int number = 0;
  int repeat = 5;
  double min_repeat_ms = 10;
  bool flush_cache = false;    // overwrite a buffer twice the last-level cache between repeats
  double timeout_seconds = 10; // per candidate, run time only (not time queued)
  double hopeless_ratio = 10;  // first run this many times the best so far: stop there (0: never)
  bool check = true;           // compare the first run's outputs with the interpreter's
  uint64_t input_seed = 1;
  int threads = 1; // for parallel loops (the thread count records are keyed by)
};

struct RunResult {
  std::string candidate_id;
  db::RecordStatus status = db::RecordStatus::Ok;
  std::string message;
  std::vector<double> run_seconds; // per-call seconds of each repeat
  bool stopped_early = false;      // hopeless: recorded from its first repeat
  std::string measured_on;         // CPU model / server
  int calls_per_repeat = 0;
};

class Runner {
public:
  virtual ~Runner() = default;
  // One result per artifact, in order. `best_seconds`: the task's best so far (0: none),
  // for the hopeless-candidate cut-off.
  virtual std::vector<RunResult> run(const std::vector<Artifact> &artifacts, const RunOptions &options,
                                     double best_seconds = 0) = 0;
  virtual std::string describe() const = 0;
};

struct LocalRunnerOptions {
  std::vector<int> cpus;  // pin the worker to these cores (empty: not pinned)
  std::string worker_exe; // empty: default_worker_exe()
};
std::unique_ptr<Runner> make_local_runner(LocalRunnerOptions options = {});

// The best candidates timed again, interleaved: `rounds` round-robin passes of one
// repeat each, so drift and noisy neighbours hit all of them alike; run_seconds holds
// one figure per round. The figures tuners report.
std::vector<RunResult> remeasure(Runner &runner, const std::vector<Artifact> &top, const RunOptions &options,
                                 int rounds = 10);

// $TESSEL_WORKER, else tessel-worker beside the running executable, else the build tree's.
std::string default_worker_exe();

} // namespace tessel::measure
