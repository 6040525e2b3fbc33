// The local builder: candidates compiled in parallel by tessel-worker processes
// (one per core, each with its own LLVM), a thread here per worker. A candidate
// that takes longer than the timeout, or crashes its worker (an LLVM or
// lowering bug), becomes a compile-error saying so; the worker is restarted.
#include "measure/wire.h"
#include "measure/worker_process.h"

#include <atomic>
#include <mutex>
#include <thread>

namespace tessel::measure {

namespace {

class LocalBuilder final : public Builder {
public:
  LocalBuilder(const Target &target, BuilderOptions o) : target_json_(target.to_json()), options_(o) {
    int n = o.workers > 0 ? o.workers : int(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 0; i < n; ++i)
      workers_.push_back(
          std::make_unique<detail::WorkerProcess>(default_worker_exe(), std::vector<std::string>{"build"}));
  }

  std::vector<BuildResult> build(const std::vector<Candidate> &candidates) override {
    std::vector<BuildResult> out(candidates.size());
    std::atomic<size_t> next{0};
    auto work = [&](detail::WorkerProcess &worker) {
      for (size_t i; (i = next++) < candidates.size();) out[i] = build_one(worker, candidates[i]);
    };
    size_t used = std::min(workers_.size(), candidates.size());
    std::vector<std::thread> threads;
    for (size_t w = 1; w < used; ++w) threads.emplace_back(work, std::ref(*workers_[w]));
    if (used > 0) work(*workers_[0]);
    for (auto &t : threads) t.join();
    return out;
  }

private:
  BuildResult build_one(detail::WorkerProcess &worker, const Candidate &c) {
    BuildResult result;
    result.candidate_id = c.id;
    auto start = detail::Clock::now();
    auto fail = [&](const std::string &why) {
      result.status = db::RecordStatus::CompileError;
      result.message = why;
      result.compile_seconds = std::chrono::duration<double>(detail::Clock::now() - start).count();
      return result;
    };
    if (Status st = worker.start(); !st) return fail(st.message());
    wire::WorkerRequest request;
    wire::BuildRequest *b = request.mutable_build();
    b->set_candidate_id(c.id);
    b->set_workload_text(c.workload_text);
    b->set_trace_json(c.trace_json);
    b->set_target_json(target_json_);
    b->set_max_artifact_bytes(options_.max_artifact_bytes);
    if (Status st = worker.send(request); !st) {
      worker.stop();
      return fail("the builder worker is gone: " + st.message());
    }
    wire::WorkerReply reply;
    auto limit =
        std::chrono::duration_cast<detail::Clock::duration>(std::chrono::duration<double>(options_.timeout_seconds));
    switch (worker.receive(reply, start + limit)) {
    case detail::ReadResult::Message:
      if (!reply.has_build() || reply.build().candidate_id() != c.id) break;
      result.message = reply.build().message();
      result.status = detail::status_from_wire(reply.build().status(), result.message);
      result.compile_seconds = reply.build().compile_seconds();
      if (result.status == db::RecordStatus::Ok) result.artifact = detail::from_wire(reply.build().artifact());
      return result;
    case detail::ReadResult::Timeout:
      worker.stop();
      return fail("compilation took longer than the timeout of " + std::to_string(options_.timeout_seconds) +
                  " s (BuilderOptions::timeout_seconds)");
    case detail::ReadResult::Closed: return fail("compilation crashed the builder worker (" + worker.death() + ")");
    case detail::ReadResult::Malformed: break;
    }
    worker.stop();
    return fail("the builder worker sent a malformed reply (restarted)");
  }

  std::string target_json_;
  BuilderOptions options_;
  std::vector<std::unique_ptr<detail::WorkerProcess>> workers_;
};

} // namespace

std::unique_ptr<Builder> make_local_builder(const Target &target, BuilderOptions options) {
  return std::make_unique<LocalBuilder>(target, options);
}

} // namespace tessel::measure
