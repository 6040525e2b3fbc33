// tessel-worker: the process untrusted work happens in. The builder's and the
// runner's parent processes (measure/local_builder.cpp, local_runner.cpp) feed
// it framed requests on stdin and read framed replies on stdout. A kernel that
// crashes or hangs takes only this process down; the parent restarts it.
//   tessel-worker build             compile candidates into artifacts
//   tessel-worker run [--cpus 0,1]  run and time artifacts (pinned to those cores)
#include "codegen/cuda_driver.h"
#include "db/record.h"
#include "interp/interpreter.h"
#include "lower/lower.h"
#include "measure/timing.h"
#include "measure/wire.h"
#include "measure/worker_process.h"
#include "runtime/runtime.h"
#include "schedules/trace.h"
#include "te/text.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <sstream>

using namespace tessel;
using namespace tessel::measure;
using detail::Clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

wire::BuildReply build(const wire::BuildRequest &req) {
  wire::BuildReply reply;
  reply.set_candidate_id(req.candidate_id());
  auto start = Clock::now();
  auto fail = [&](const std::string &why) {
    reply.set_status("compile-error");
    reply.set_message(why);
    reply.set_compile_seconds(seconds_since(start));
    return reply;
  };
  auto target = Target::from_json(req.target_json(), "the builder's target");
  if (!target) return fail(target.error());
  auto w = te::parse_workload(req.workload_text(), "candidate " + req.candidate_id());
  if (!w) return fail(w.error());
  auto schedule = sched::replay_json(*w, req.trace_json());
  if (!schedule) return fail("trace: " + schedule.error());
  auto lowered = lower::lower(*schedule, "tessel_candidate");
  if (!lowered) return fail("lowering: " + lowered.error());
  Artifact a;
  a.candidate_id = req.candidate_id();
  a.workload_text = req.workload_text();
  a.workload_hash = w->hash_hex();
  a.target_json = req.target_json();
  if (target->is_cuda()) { // CUDA C++ through NVRTC; kernels over the device's limits are invalid
    auto cuda = codegen::compile_cuda_program(*lowered, *target);
    if (!cuda) return fail(cuda.error());
    if (!cuda->over_limits.empty()) {
      reply = fail(cuda->over_limits);
      reply.set_status("invalid");
      return reply;
    }
    if (req.max_artifact_bytes() > 0 && int64_t(cuda->code.cubin.size()) > req.max_artifact_bytes())
      return fail("cubin of " + std::to_string(cuda->code.cubin.size()) + " bytes exceeds the cap of " +
                  std::to_string(req.max_artifact_bytes()) + " bytes (BuilderOptions::max_artifact_bytes)");
    a.cuda = std::move(cuda->code);
    a.compile_seconds = seconds_since(start);
    *reply.mutable_artifact() = detail::to_wire(a);
    reply.set_status("ok");
    reply.set_compile_seconds(a.compile_seconds);
    return reply;
  }
  auto code = codegen::compile_object(*lowered, *target);
  if (!code) return fail(code.error());
  if (req.max_artifact_bytes() > 0 && int64_t(code->object.size()) > req.max_artifact_bytes())
    return fail("object code of " + std::to_string(code->object.size()) + " bytes exceeds the cap of " +
                std::to_string(req.max_artifact_bytes()) + " bytes (BuilderOptions::max_artifact_bytes)");
  a.code = code.take();
  a.compile_seconds = seconds_since(start);
  *reply.mutable_artifact() = detail::to_wire(a);
  reply.set_status("ok");
  reply.set_compile_seconds(a.compile_seconds);
  return reply;
}

// What a run needs, kept across requests: re-measuring a candidate (remeasure) must not link it again.
struct Loaded {
  codegen::CompiledProgram program;
  std::vector<interp::NDArray> inputs, outputs;
  std::vector<void *> in_ptrs, out_ptrs;
};

class RunWorker {
public:
  wire::RunReply run(const wire::RunRequest &req) {
    const wire::Artifact &a = req.artifact();
    wire::RunReply reply;
    reply.set_candidate_id(a.candidate_id());
    reply.set_measured_on(db::host_cpu_model());
    auto fail = [&](db::RecordStatus status, const std::string &why) {
      reply.set_status(std::string(db::to_string(status)));
      reply.set_message(why);
      return reply;
    };
    RunOptions o = detail::from_wire(req.options());
    if (req.has_reference())
      references_[{req.reference().workload_hash(), req.reference().input_seed()}] = req.reference();
    if (!a.cubin().empty()) return run_cuda(a, o, reply);
    tessel_set_num_threads(std::max(1, o.threads));

    auto loaded = load(a, o.input_seed);
    if (!loaded) return fail(db::RecordStatus::RuntimeError, loaded.error());
    Loaded &k = **loaded;
    k.program.pack(k.in_ptrs);
    k.program.run(k.in_ptrs, k.out_ptrs);
    if (o.check)
      if (auto bad = check_outputs(a, o, k.outputs); bad.first != db::RecordStatus::Ok)
        return fail(bad.first, bad.second);
    time(k, o, req.options().best_seconds(), reply);
    reply.set_status("ok");
    return reply;
  }

private:
  // The first run's outputs against the interpreter's, sent by the parent: Ok, or the status and why.
  std::pair<db::RecordStatus, std::string> check_outputs(const wire::Artifact &a, const RunOptions &o,
                                                         const std::vector<interp::NDArray> &outputs) {
    auto ref = references_.find({a.workload_hash(), o.input_seed});
    if (ref == references_.end())
      return {db::RecordStatus::Invalid, "no reference outputs for workload " + a.workload_hash() +
                                             " were sent with the candidate (a runner bug)"};
    if (ref->second.outputs_size() != int(outputs.size()))
      return {db::RecordStatus::Invalid, "the reference has a different number of outputs"};
    for (size_t i = 0; i < outputs.size(); ++i) {
      interp::NDArray expected(outputs[i].shape(), outputs[i].dtype());
      const std::string &bytes = ref->second.outputs(int(i));
      if (int64_t(bytes.size()) != expected.bytes())
        return {db::RecordStatus::Invalid, "reference output " + std::to_string(i) + " has the wrong size"};
      std::memcpy(expected.data(), bytes.data(), bytes.size());
      interp::Comparison c = interp::compare(outputs[i], expected);
      if (!c.ok) return {db::RecordStatus::WrongResult, "output " + std::to_string(i) + ": " + c.message};
    }
    return {db::RecordStatus::Ok, ""};
  }

  // A CUDA artifact: run once, check, then time with CUDA events (one call per repeat: kernels are
  // launched asynchronously, so the events bracket exactly the program's launches).
  wire::RunReply run_cuda(const wire::Artifact &a, const RunOptions &o, wire::RunReply &reply) {
    auto fail = [&](db::RecordStatus status, const std::string &why) {
      reply.set_status(std::string(db::to_string(status)));
      reply.set_message(why);
      return reply;
    };
    auto target = Target::from_json(a.target_json(), "the artifact's target");
    if (!target) return fail(db::RecordStatus::RuntimeError, target.error());
    if (Status here = codegen::runnable_here(*target); !here)
      return fail(db::RecordStatus::RuntimeError, "compiled for a target this machine cannot run: " + here.message());
    auto w = te::parse_workload(a.workload_text(), "artifact " + a.candidate_id());
    if (!w) return fail(db::RecordStatus::RuntimeError, w.error());
    if (w->hash_hex() != a.workload_hash())
      return fail(db::RecordStatus::RuntimeError,
                  "the artifact's workload text hashes to " + w->hash_hex() + ", not " + a.workload_hash());
    Artifact artifact = detail::from_wire(a);
    auto inputs = interp::random_inputs(*w, o.input_seed);
    auto outputs = interp::empty_outputs(*w);
    std::vector<void *> args;
    std::vector<int64_t> bytes;
    for (auto [source, index] : artifact.cuda.args) {
      auto &set = source == codegen::ObjectCode::Source::Input ? inputs : outputs;
      if (index < 0 || size_t(index) >= set.size())
        return fail(db::RecordStatus::RuntimeError, "the artifact's kernel arguments do not fit its workload");
      args.push_back(set[size_t(index)].data()), bytes.push_back(set[size_t(index)].bytes());
    }
    codegen::CudaRunOptions ro;
    ro.warmup = o.warmup;
    ro.repeats = std::max(1, o.repeat);
    if (o.flush_cache) ro.flush_bytes = std::max<int64_t>(2 * target->l2_bytes, 1 << 20);
    auto seconds = codegen::run_cuda_program(artifact.cuda, args, bytes, ro);
    if (!seconds) return fail(db::RecordStatus::RuntimeError, seconds.error()); // the parent restarts us
    if (o.check)
      if (auto bad = check_outputs(a, o, outputs); bad.first != db::RecordStatus::Ok)
        return fail(bad.first, bad.second);
    if (auto dev = codegen::cuda_device()) reply.set_measured_on(dev->name);
    reply.set_calls_per_repeat(1);
    for (double s : *seconds) reply.add_run_seconds(s);
    reply.set_status("ok");
    return reply;
  }

  Expected<Loaded *> load(const wire::Artifact &a, uint64_t seed) {
    std::string key = a.candidate_id() + "#" + std::to_string(seed);
    for (auto it = cache_.begin(); it != cache_.end(); ++it)
      if (it->first == key) {
        cache_.splice(cache_.begin(), cache_, it); // most recently used first
        return &cache_.front().second;
      }
    auto target = Target::from_json(a.target_json(), "the artifact's target");
    if (!target) return make_error(target.error());
    if (Status here = target->runnable_here(); !here)
      return make_error("compiled for a target this machine cannot run: " + here.message());
    auto w = te::parse_workload(a.workload_text(), "artifact " + a.candidate_id());
    if (!w) return make_error(w.error());
    if (w->hash_hex() != a.workload_hash())
      return make_error("the artifact's workload text hashes to " + w->hash_hex() + ", not " + a.workload_hash());
    Artifact artifact = detail::from_wire(a);
    for (auto [source, index] : artifact.code.args) {
      size_t n = source == codegen::ObjectCode::Source::Input    ? w->inputs.size()
                 : source == codegen::ObjectCode::Source::Output ? w->outputs.size()
                                                                 : artifact.code.packs.size();
      if (index < 0 || size_t(index) >= n) return make_error("the artifact's kernel arguments do not fit its workload");
    }
    for (auto &p : artifact.code.packs)
      if (p.input < 0 || size_t(p.input) >= w->inputs.size())
        return make_error("the artifact's packing functions do not fit its workload");
    auto program = codegen::load_object(artifact.code, *target);
    if (!program) return make_error(program.error());
    Loaded k{program.take(), interp::random_inputs(*w, seed), interp::empty_outputs(*w), {}, {}};
    for (auto &t : k.inputs) k.in_ptrs.push_back(t.data());
    for (auto &t : k.outputs) k.out_ptrs.push_back(t.data());
    cache_.emplace_front(key, std::move(k));
    if (cache_.size() > kCached) cache_.pop_back();
    return &cache_.front().second;
  }

  void flush_caches() {
    if (flush_.empty()) {
      int64_t l3 = std::clamp<int64_t>(Target::host().l3_bytes, 8 << 20, 256 << 20);
      flush_.assign(size_t(2 * l3), 1);
    }
    ++flush_round_;
    for (size_t i = 0; i < flush_.size(); i += 64) flush_[i] = char(flush_round_ + i);
  }

  // The one timing protocol (measure/timing.h), with the cache flush and the hopeless cut-off.
  void time(Loaded &k, const RunOptions &o, double best_seconds, wire::RunReply &reply) {
    TimingOptions t;
    t.repeats = o.repeat;
    t.min_repeat_ms = o.min_repeat_ms;
    t.warmup_calls = o.warmup;
    t.number = o.number;
    if (o.flush_cache) t.before_repeat = [&] { flush_caches(); };
    if (o.hopeless_ratio > 0 && best_seconds > 0)
      t.stop_after_first = [&](double first) { return first > o.hopeless_ratio * best_seconds; };
    Timing timing = time_calls([&] { k.program.run(k.in_ptrs, k.out_ptrs); }, t);
    reply.set_calls_per_repeat(timing.calls_per_repeat);
    for (double s : timing.per_repeat_seconds) reply.add_run_seconds(s);
    reply.set_stopped_early(timing.stopped_early);
  }

  static constexpr size_t kCached = 32;
  std::list<std::pair<std::string, Loaded>> cache_;
  std::map<std::pair<std::string, uint64_t>, wire::Reference> references_;
  std::vector<char> flush_;
  int flush_round_ = 0;
};

bool pin(const std::string &list) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    char *end = nullptr;
    long cpu = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end || cpu < 0 || cpu >= CPU_SETSIZE) return false;
    CPU_SET(int(cpu), &set);
  }
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

} // namespace

int main(int argc, char **argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "build" && mode != "run") {
    std::fprintf(stderr, "tessel-worker: started by Tessel's builder and runner (usage: tessel-worker build | run "
                         "[--cpus 0,1]); it reads framed requests on stdin\n");
    return 2;
  }
  for (int i = 2; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--cpus" && !pin(argv[i + 1])) {
      std::fprintf(stderr, "tessel-worker: cannot pin to cores %s\n", argv[i + 1]);
      return 2;
    }
  RunWorker runner;
  auto forever = Clock::time_point::max();
  for (;;) {
    wire::WorkerRequest request;
    auto r = detail::read_frame(0, request, forever);
    if (r == detail::ReadResult::Closed) return 0; // the parent is gone
    if (r != detail::ReadResult::Message) return 3;
    wire::WorkerReply reply;
    try {
      if (request.has_build()) {
        *reply.mutable_build() = build(request.build());
      } else if (request.has_run()) {
        wire::WorkerReply started;
        started.set_started(request.run().artifact().candidate_id());
        if (!detail::write_frame(1, started)) return 4;
        *reply.mutable_run() = runner.run(request.run());
      } else {
        return 3;
      }
    } catch (const std::exception &e) { // our bug, not the candidate's: said as such
      std::string why = std::string("internal error in tessel-worker: ") + e.what();
      if (request.has_build()) {
        reply.mutable_build()->set_candidate_id(request.build().candidate_id());
        reply.mutable_build()->set_status("compile-error");
        reply.mutable_build()->set_message(why);
      } else {
        reply.mutable_run()->set_candidate_id(request.run().artifact().candidate_id());
        reply.mutable_run()->set_status("invalid");
        reply.mutable_run()->set_message(why);
      }
    }
    if (!detail::write_frame(1, reply)) return 4;
  }
}
