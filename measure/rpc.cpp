// The fleet (measure/rpc.h): tracker, device server and RpcRunner on gRPC's
// synchronous API. The tracker's state (servers, queues, calls) sits under one
// mutex; each server's stream has a reader thread (results, heartbeats) and a
// writer loop (tasks from its outbox).
#include "measure/rpc.h"

#include "codegen/cuda_driver.h"

#include "measure.grpc.pb.h"
#include "measure/wire.h"
#include "measure/worker_process.h"
#include "support/host.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace tessel::measure {

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char *kTokenHeader = "x-tessel-token";

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

Log or_stderr(Log log) {
  if (log) return log;
  return [](const std::string &line) { std::cerr << line << "\n"; };
}

// Compares every byte whatever the first difference, so timing tells nothing about the token.
bool same_token(const std::string &a, const std::string &b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= (unsigned char)(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

bool is_loopback(const std::string &address) {
  std::string host = address.substr(0, address.rfind(':'));
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1";
}

Expected<std::string> read_file(const std::string &path, const std::string &what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot read the " + what + " " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<grpc::ChannelCredentials> client_credentials(const FleetSecurity &s, std::string &error) {
  if (s.tls_ca.empty()) return grpc::InsecureChannelCredentials();
  auto ca = read_file(s.tls_ca, "TLS CA certificate");
  if (!ca) {
    error = ca.error();
    return nullptr;
  }
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = *ca;
  return grpc::SslCredentials(o);
}

Expected<std::unique_ptr<wire::Tracker::Stub>> connect(const std::string &tracker, const FleetSecurity &s) {
  std::string error;
  auto creds = client_credentials(s, error);
  if (!creds) return make_error(error);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(int(detail::kMaxFrameBytes));
  args.SetMaxSendMessageSize(int(detail::kMaxFrameBytes));
  // Reconnect quickly after a tracker restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return wire::Tracker::NewStub(grpc::CreateCustomChannel(tracker, creds, args));
}

void authorize(grpc::ClientContext &ctx, const FleetSecurity &s) {
  if (!s.token.empty()) ctx.AddMetadata(kTokenHeader, s.token);
}

// ---------------------------------------------------------------------------
// Tracker

struct Call; // one tuner's Measure batch

struct Task {
  std::string task_id, candidate_id, tuner, key;
  wire::RunRequest request;
  std::weak_ptr<Call> call;
  int attempts = 0;
  Clock::time_point queued_at = Clock::now();
};
using TaskPtr = std::shared_ptr<Task>;

struct Call {
  std::set<std::string> pending; // candidate ids without a result yet
  std::deque<wire::MeasureResult> results;
  std::condition_variable cv;
};

struct ServerState {
  std::string id, key, hardware, peer, unavailable_reason;
  bool available = true, alive = true;
  int slots = 1;
  int64_t completed = 0;
  Clock::time_point heartbeat = Clock::now();
  std::deque<TaskPtr> outbox;
  std::map<std::string, TaskPtr> running; // by task id
  std::condition_variable cv;
  grpc::ServerContext *context = nullptr;
};

class TrackerImpl final : public Tracker, public wire::Tracker::Service {
public:
  explicit TrackerImpl(TrackerOptions o) : options_(std::move(o)), log_(or_stderr(options_.log)) {}
  ~TrackerImpl() override { shutdown(); }

  tessel::Status start() {
    if (!is_loopback(options_.listen) && options_.security.token.empty())
      return tessel::Status::error("refusing to listen on " + options_.listen +
                                   " without a token: device servers run the code they are sent; give --token-file "
                                   "(and TLS certificates), or listen on 127.0.0.1");
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (!options_.security.tls_cert.empty() || !options_.security.tls_key.empty()) {
      auto cert = read_file(options_.security.tls_cert, "TLS certificate");
      auto key = read_file(options_.security.tls_key, "TLS key");
      if (!cert) return tessel::Status::error(cert.error());
      if (!key) return tessel::Status::error(key.error());
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({*key, *cert});
      creds = grpc::SslServerCredentials(ssl);
    }
    grpc::ServerBuilder builder;
    builder.AddListeningPort(options_.listen, creds, &port_);
    builder.RegisterService(this);
    builder.SetMaxReceiveMessageSize(int(detail::kMaxFrameBytes));
    builder.SetMaxSendMessageSize(int(detail::kMaxFrameBytes));
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) return tessel::Status::error("cannot listen on " + options_.listen);
    address_ = options_.listen.substr(0, options_.listen.rfind(':')) + ":" + std::to_string(port_);
    monitor_ = std::thread([this] { monitor(); });
    log_("tracker: listening on " + address_ + (options_.security.token.empty() ? "" : " (token required)") +
         (options_.security.tls_cert.empty() ? "" : " (TLS)"));
    return tessel::Status::ok();
  }

  std::string address() const override { return address_; }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      for (auto &[id, s] : servers_) {
        s->alive = false;
        s->cv.notify_all();
        if (s->context) s->context->TryCancel();
      }
      for (auto &c : calls_) c->cv.notify_all();
    }
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (monitor_.joinable()) monitor_.join();
    done_cv_.notify_all();
  }

  void wait() override {
    std::unique_lock lock(mutex_);
    done_cv_.wait(lock, [&] { return stopping_; });
  }

  grpc::Status Serve(grpc::ServerContext *ctx,
                     grpc::ServerReaderWriter<wire::TrackerMessage, wire::ServerMessage> *stream) override {
    if (auto denied = check_token(ctx, "Serve")) return *denied;
    wire::ServerMessage first;
    if (!stream->Read(&first) || !first.has_hello())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a device server starts with hello");
    const auto &hello = first.hello();
    auto s = std::make_shared<ServerState>();
    s->id = hello.server_id().empty() ? ctx->peer() : hello.server_id();
    s->key = hello.key();
    s->hardware = hello.hardware();
    s->available = hello.available();
    s->unavailable_reason = hello.unavailable_reason();
    s->slots = std::max(1, hello.slots());
    s->peer = ctx->peer();
    s->context = ctx;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down");
      if (auto old = servers_.find(s->id); old != servers_.end()) drop(*old->second, "re-registered");
      servers_[s->id] = s;
    }
    wire::TrackerMessage welcome;
    welcome.set_welcome("tessel tracker " + address_);
    stream->Write(welcome);
    log_("tracker: server " + s->id + " registered for key " + s->key + " from " + s->peer +
         (s->available ? "" : " (unavailable: " + s->unavailable_reason + ")"));
    {
      std::lock_guard lock(mutex_);
      dispatch();
    }
    std::thread reader([&] {
      wire::ServerMessage m;
      while (stream->Read(&m)) {
        std::lock_guard lock(mutex_);
        s->heartbeat = Clock::now();
        if (m.has_result()) complete(*s, m.result());
      }
      std::lock_guard lock(mutex_);
      drop(*s, "its stream ended");
    });
    for (;;) {
      wire::TrackerMessage m;
      {
        std::unique_lock lock(mutex_);
        s->cv.wait(lock, [&] { return !s->alive || !s->outbox.empty(); });
        if (!s->alive) break;
        TaskPtr task = s->outbox.front();
        s->outbox.pop_front();
        // Copied under the lock: a drop elsewhere renames the task (task_id) when it re-queues it.
        m.mutable_task()->set_task_id(task->task_id);
        *m.mutable_task()->mutable_request() = task->request;
      }
      if (!stream->Write(m)) {
        std::lock_guard lock(mutex_);
        drop(*s, "a write to it failed");
        break;
      }
    }
    ctx->TryCancel(); // ends the reader's Read
    reader.join();
    std::lock_guard lock(mutex_);
    if (auto it = servers_.find(s->id); it != servers_.end() && it->second == s) servers_.erase(it);
    s->context = nullptr;
    return grpc::Status::OK;
  }

  grpc::Status Measure(grpc::ServerContext *ctx, const wire::MeasureRequest *req,
                       grpc::ServerWriter<wire::MeasureResult> *writer) override {
    if (auto denied = check_token(ctx, "Measure")) return *denied;
    auto call = std::make_shared<Call>();
    double queue_timeout = req->queue_timeout_seconds() > 0 ? req->queue_timeout_seconds() : 600;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down");
      int64_t call_id = ++next_call_;
      calls_.insert(call);
      for (int i = 0; i < req->requests_size(); ++i) {
        auto t = std::make_shared<Task>();
        t->candidate_id = req->requests(i).artifact().candidate_id();
        if (!call->pending.insert(t->candidate_id).second) continue; // the same candidate twice: once
        t->task_id = std::to_string(call_id) + "/" + std::to_string(i);
        t->tuner = req->tuner().empty() ? ctx->peer() : req->tuner();
        t->key = req->key();
        t->request = req->requests(i);
        t->call = call;
        queues_[t->key][t->tuner].push_back(t);
      }
      dispatch();
    }
    std::unique_lock lock(mutex_);
    while (!call->pending.empty() || !call->results.empty()) {
      bool gone = false;
      while (!call->results.empty() && !gone) {
        wire::MeasureResult r = std::move(call->results.front());
        call->results.pop_front();
        lock.unlock();
        gone = !writer->Write(r);
        lock.lock();
      }
      if (gone || call->pending.empty() || stopping_ || ctx->IsCancelled()) break;
      expire_queued(*call, req->key(), queue_timeout);
      call->cv.wait_for(lock, std::chrono::milliseconds(200));
    }
    calls_.erase(call);
    bool cancelled = !call->pending.empty();
    lock.unlock();
    if (cancelled && stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the tracker shut down");
    return grpc::Status::OK;
  }

  grpc::Status Status(grpc::ServerContext *ctx, const wire::StatusRequest *, wire::StatusReply *reply) override {
    if (auto denied = check_token(ctx, "Status")) return *denied;
    std::lock_guard lock(mutex_);
    reply->set_tracker(address_);
    std::map<std::string, std::pair<int, int>> per_key;
    for (auto &[id, s] : servers_) {
      auto *w = reply->add_servers();
      w->set_server_id(s->id);
      w->set_key(s->key);
      w->set_hardware(s->hardware);
      w->set_available(s->available);
      w->set_unavailable_reason(s->unavailable_reason);
      w->set_running(int(s->running.size() + s->outbox.size()));
      w->set_seconds_since_heartbeat(seconds_between(s->heartbeat, Clock::now()));
      w->set_completed(s->completed);
      w->set_peer(s->peer);
      per_key[s->key].second += int(s->running.size() + s->outbox.size());
    }
    for (auto &[key, tuners] : queues_)
      for (auto &[tuner, q] : tuners) per_key[key].first += int(q.size());
    for (auto &[key, counts] : per_key) {
      auto *q = reply->add_queues();
      q->set_key(key);
      q->set_queued(counts.first);
      q->set_running(counts.second);
    }
    return grpc::Status::OK;
  }

private:
  std::optional<grpc::Status> check_token(grpc::ServerContext *ctx, const char *what) {
    if (options_.security.token.empty()) return std::nullopt;
    auto found = ctx->client_metadata().find(kTokenHeader);
    std::string given =
        found == ctx->client_metadata().end() ? "" : std::string(found->second.data(), found->second.size());
    if (!given.empty() && same_token(given, options_.security.token)) return std::nullopt;
    log_(std::string("tracker: refused a ") + what + " call from " + ctx->peer() + ": " +
         (given.empty() ? "no token" : "wrong token"));
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "the tracker requires its token (--token-file)");
  }

  // Caller holds mutex_. Hands queued tasks to idle servers, tuners of a key taking turns.
  void dispatch() {
    for (auto &[id, s] : servers_) {
      if (!s->alive || !s->available) continue;
      auto q = queues_.find(s->key);
      if (q == queues_.end()) continue;
      auto &tuners = q->second;
      while (int(s->running.size()) < s->slots && !tuners.empty()) {
        auto &turn = next_tuner_[s->key];
        auto it = tuners.upper_bound(turn);
        if (it == tuners.end()) it = tuners.begin();
        turn = it->first;
        TaskPtr t = it->second.front();
        it->second.pop_front();
        if (it->second.empty()) tuners.erase(it);
        if (t->call.expired()) continue; // its tuner went away
        ++t->attempts;
        s->running[t->task_id] = t;
        s->outbox.push_back(t);
        s->cv.notify_all();
      }
    }
  }

  // Caller holds mutex_.
  void answer(Task &t, wire::RunReply reply, const std::string &server) {
    auto call = t.call.lock();
    if (!call || !call->pending.erase(t.candidate_id)) return; // answered already: exactly once
    wire::MeasureResult r;
    *r.mutable_reply() = std::move(reply);
    r.mutable_reply()->set_candidate_id(t.candidate_id);
    r.set_server_id(server);
    r.set_attempts(t.attempts);
    call->results.push_back(std::move(r));
    call->cv.notify_all();
  }

  void fail(Task &t, db::RecordStatus status, const std::string &why) {
    wire::RunReply reply;
    reply.set_status(std::string(db::to_string(status)));
    reply.set_message(why);
    answer(t, std::move(reply), "");
  }

  // Caller holds mutex_.
  void complete(ServerState &s, const wire::ServerMessage::Result &result) {
    auto it = s.running.find(result.task_id());
    if (it == s.running.end()) return; // re-queued meanwhile: the other attempt answers
    TaskPtr t = it->second;
    s.running.erase(it);
    ++s.completed;
    answer(*t, result.reply(), s.id);
    dispatch();
  }

  // Caller holds mutex_. The server is gone: its work goes back to the front of the queue.
  void drop(ServerState &s, const std::string &why) {
    if (!s.alive) return;
    s.alive = false;
    s.cv.notify_all();
    if (s.context) s.context->TryCancel();
    std::vector<TaskPtr> lost;
    for (auto &[id, t] : s.running) lost.push_back(t);
    s.running.clear();
    s.outbox.clear();
    log_("tracker: server " + s.id + " dropped (" + why + ")" +
         (lost.empty() ? "" : "; " + std::to_string(lost.size()) + " candidate(s) re-queued"));
    for (auto &t : lost) {
      if (t->attempts >= options_.max_attempts) {
        fail(*t, db::RecordStatus::RuntimeError,
             "lost with " + std::to_string(t->attempts) + " device servers in a row (it may crash them)");
        continue;
      }
      t->task_id += "#" + std::to_string(t->attempts);
      queues_[t->key][t->tuner].push_front(t);
    }
    dispatch();
  }

  // Caller holds mutex_. Tasks nobody took within the queue timeout, or that no available
  // server can ever take, are answered now.
  void expire_queued(Call &call, const std::string &key, double queue_timeout) {
    auto q = queues_.find(key);
    if (q == queues_.end()) return;
    bool any_available = false;
    std::string unavailable;
    for (auto &[id, s] : servers_) {
      if (s->key != key || !s->alive) continue;
      if (s->available)
        any_available = true;
      else
        unavailable = s->unavailable_reason;
    }
    for (auto tit = q->second.begin(); tit != q->second.end();) {
      auto &tasks = tit->second;
      for (auto it = tasks.begin(); it != tasks.end();) {
        Task &t = **it;
        bool mine = t.call.lock().get() == &call;
        bool expired = seconds_between(t.queued_at, Clock::now()) > queue_timeout;
        if (mine && (expired || (!any_available && !unavailable.empty()))) {
          if (!any_available && !unavailable.empty())
            fail(t, db::RecordStatus::RuntimeError,
                 "the device servers for key " + key + " lack its hardware: " + unavailable);
          else
            fail(t, db::RecordStatus::Timeout,
                 "no device server for key " + key + " took it within " + std::to_string(int(queue_timeout)) +
                     " s (queue time; run time is bounded on the server)");
          it = tasks.erase(it);
        } else {
          ++it;
        }
      }
      tit = tasks.empty() ? q->second.erase(tit) : std::next(tit);
    }
  }

  void monitor() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      done_cv_.wait_for(lock, std::chrono::milliseconds(250));
      for (auto &[id, s] : servers_)
        if (s->alive && seconds_between(s->heartbeat, Clock::now()) > options_.heartbeat_timeout_seconds)
          drop(*s, "no heartbeat for " + std::to_string(int(options_.heartbeat_timeout_seconds)) + " s");
    }
  }

  TrackerOptions options_;
  Log log_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
  std::thread monitor_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool stopping_ = false;
  int64_t next_call_ = 0;
  std::map<std::string, std::shared_ptr<ServerState>> servers_;
  std::map<std::string, std::map<std::string, std::deque<TaskPtr>>> queues_; // key -> tuner -> tasks
  std::map<std::string, std::string> next_tuner_;                            // key -> tuner served last
  std::set<std::shared_ptr<Call>> calls_;
};

// ---------------------------------------------------------------------------
// Device server

// Whether this machine has the hardware `key` names, and the target it measures on.
std::pair<bool, std::string> hardware_for(const std::string &key) {
  auto t = Target::load(key);
  if (!t) return {true, ""}; // not a target name: a label for this host
  if (Status here = codegen::runnable_here(*t); !here) return {false, here.message()};
  return {true, ""};
}

// One connection's life: hello, then tasks until the stream ends. False: refused for good.
bool serve_once(const DeviceServerOptions &o, const std::atomic<bool> &stop, Runner &runner, const Log &log,
                std::string &refusal, bool &was_connected) {
  auto stub = connect(o.tracker, o.security);
  if (!stub) {
    refusal = stub.error();
    return false;
  }
  grpc::ClientContext ctx;
  authorize(ctx, o.security);
  auto stream = (*stub)->Serve(&ctx);
  std::mutex write_mutex;
  wire::ServerMessage hello;
  auto *h = hello.mutable_hello();
  h->set_server_id(o.server_id.empty() ? host_name() + ":" + std::to_string(getpid()) : o.server_id);
  h->set_key(o.key);
  Target host = Target::host();
  h->set_target_json(host.to_json());
  h->set_hardware(db::host_cpu_model() + ", " + std::to_string(host.cores) + " cores");
  auto [available, reason] = hardware_for(o.key);
  h->set_available(available);
  h->set_unavailable_reason(reason);
  h->set_slots(1);
  if (!stream->Write(hello)) {
    stream->Finish();
    return true;
  }
  wire::TrackerMessage m;
  if (!stream->Read(&m)) {
    grpc::Status st = stream->Finish();
    if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      refusal = "the tracker at " + o.tracker + " refused this server: " + st.error_message();
      return false;
    }
    return true;
  }
  was_connected = true;
  log("server: registered with " + o.tracker + " for key " + o.key +
      (available ? "" : " (unavailable here: " + reason + ")"));
  std::atomic<bool> done{false};
  std::thread beat([&] {
    while (!done && !stop) {
      std::this_thread::sleep_for(std::chrono::duration<double>(o.heartbeat_seconds));
      wire::ServerMessage b;
      b.set_heartbeat(true);
      std::lock_guard lock(write_mutex);
      if (done || !stream->Write(b)) break;
    }
    if (stop) ctx.TryCancel();
  });
  while (!stop && stream->Read(&m)) {
    if (!m.has_task()) continue;
    const auto &req = m.task().request();
    RunResult result;
    RunOptions opts = detail::from_wire(req.options());
    opts.timeout_seconds =
        std::min(opts.timeout_seconds > 0 ? opts.timeout_seconds : o.max_run_seconds, o.max_run_seconds);
    if (!available) {
      result.candidate_id = req.artifact().candidate_id();
      result.status = db::RecordStatus::RuntimeError;
      result.message = "server " + h->server_id() + " lacks the hardware for key " + o.key + ": " + reason;
    } else if (int64_t(req.artifact().object().size()) > o.max_artifact_bytes) {
      result.candidate_id = req.artifact().candidate_id();
      result.status = db::RecordStatus::Invalid;
      result.message = "artifact of " + std::to_string(req.artifact().object().size()) +
                       " bytes refused: this server's cap is " + std::to_string(o.max_artifact_bytes);
    } else {
      result = runner.run({detail::from_wire(req.artifact())}, opts, req.options().best_seconds()).front();
      result.measured_on = h->server_id() + " (" + result.measured_on + ")";
    }
    wire::ServerMessage reply;
    reply.mutable_result()->set_task_id(m.task().task_id());
    *reply.mutable_result()->mutable_reply() = detail::to_wire(result);
    std::lock_guard lock(write_mutex);
    if (!stream->Write(reply)) break;
  }
  done = true;
  ctx.TryCancel();
  beat.join();
  stream->Finish();
  return true;
}

// ---------------------------------------------------------------------------
// RpcRunner

class RpcRunner final : public Runner {
public:
  explicit RpcRunner(RpcRunnerOptions o) : options_(std::move(o)) {
    if (options_.tuner.empty()) options_.tuner = host_name() + ":" + std::to_string(getpid());
  }
  std::string describe() const override { return "RPC runner (key " + options_.key + " at " + options_.tracker + ")"; }

  std::vector<RunResult> run(const std::vector<Artifact> &artifacts, const RunOptions &options,
                             double best_seconds) override {
    std::vector<RunResult> out(artifacts.size());
    std::map<std::string, std::vector<size_t>> where;
    for (size_t i = 0; i < artifacts.size(); ++i) {
      out[i].candidate_id = artifacts[i].candidate_id;
      where[artifacts[i].candidate_id].push_back(i);
    }
    std::set<std::string> answered;
    std::string failure;
    // A broken stream (tracker restart) resubmits what is unanswered; results are by candidate id.
    for (int attempt = 0; attempt < 3 && answered.size() < where.size(); ++attempt) {
      auto stub = connect(options_.tracker, options_.security);
      if (!stub) {
        failure = stub.error();
        break;
      }
      wire::MeasureRequest req;
      req.set_key(options_.key);
      req.set_tuner(options_.tuner);
      req.set_queue_timeout_seconds(options_.queue_timeout_seconds);
      for (auto &a : artifacts) {
        if (answered.count(a.candidate_id)) continue;
        auto *r = req.add_requests();
        *r->mutable_artifact() = detail::to_wire(a);
        *r->mutable_options() = detail::to_wire(options, best_seconds);
      }
      grpc::ClientContext ctx;
      authorize(ctx, options_.security);
      ctx.set_wait_for_ready(true);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30) +
                       std::chrono::duration_cast<std::chrono::seconds>(std::chrono::duration<double>(
                           options_.queue_timeout_seconds + double(artifacts.size()) * options.timeout_seconds * 2)));
      auto reader = (*stub)->Measure(&ctx, req);
      wire::MeasureResult result;
      while (reader->Read(&result)) {
        const std::string &id = result.reply().candidate_id();
        if (!where.count(id) || !answered.insert(id).second) continue; // exactly once
        RunResult r = detail::from_wire(result.reply());
        for (size_t i : where[id]) out[i] = r;
      }
      grpc::Status st = reader->Finish();
      if (!st.ok()) {
        failure = "the tracker at " + options_.tracker + " failed the batch: " + st.error_message();
        if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED) break;
      }
    }
    for (auto &[id, indices] : where)
      if (!answered.count(id))
        for (size_t i : indices) {
          out[i].status = db::RecordStatus::RuntimeError;
          out[i].message = failure.empty() ? "the fleet returned no result for it" : failure;
        }
    return out;
  }

private:
  RpcRunnerOptions options_;
};

} // namespace

Expected<std::string> read_token_file(const std::string &path) {
  auto text = read_file(path, "token file");
  if (!text) return make_error(text.error());
  std::string t = *text;
  t.erase(0, t.find_first_not_of(" \t\r\n"));
  t.erase(t.find_last_not_of(" \t\r\n") + 1);
  if (t.empty()) return make_error("token file " + path + " is empty (write a long random secret into it)");
  return t;
}

Expected<std::unique_ptr<Tracker>> start_tracker(TrackerOptions options) {
  auto t = std::make_unique<TrackerImpl>(std::move(options));
  if (Status st = t->start(); !st) return make_error(st.message());
  return std::unique_ptr<Tracker>(std::move(t));
}

Status run_device_server(const DeviceServerOptions &o, const std::atomic<bool> &stop) {
  Log log = or_stderr(o.log);
  auto runner = make_local_runner(o.runner);
  double backoff = 0.2;
  bool announced_wait = false;
  while (!stop) {
    std::string refusal;
    bool connected = false;
    if (!serve_once(o, stop, *runner, log, refusal, connected)) return Status::error(refusal);
    if (stop) break;
    if (connected) {
      log("server: lost the tracker at " + o.tracker + "; reconnecting");
      backoff = 0.2, announced_wait = false;
    } else if (!announced_wait) {
      log("server: waiting for the tracker at " + o.tracker);
      announced_wait = true;
    }
    for (double slept = 0; slept < backoff && !stop; slept += 0.05)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    backoff = std::min(backoff * 2, 5.0);
  }
  return Status::ok();
}

std::unique_ptr<Runner> make_rpc_runner(RpcRunnerOptions options) {
  return std::make_unique<RpcRunner>(std::move(options));
}

Expected<FleetStatus> fleet_status(const std::string &tracker, const FleetSecurity &security) {
  auto stub = connect(tracker, security);
  if (!stub) return make_error(stub.error());
  grpc::ClientContext ctx;
  authorize(ctx, security);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  wire::StatusRequest req;
  wire::StatusReply reply;
  grpc::Status st = (*stub)->Status(&ctx, req, &reply);
  if (!st.ok()) return make_error("tracker " + tracker + ": " + st.error_message());
  FleetStatus out;
  out.tracker = reply.tracker();
  for (auto &s : reply.servers())
    out.servers.push_back({s.server_id(), s.key(), s.hardware(), s.peer(), s.unavailable_reason(), s.available(),
                           s.running(), s.completed(), s.seconds_since_heartbeat()});
  for (auto &q : reply.queues()) out.queues.push_back({q.key(), q.queued(), q.running()});
  return out;
}

} // namespace tessel::measure
