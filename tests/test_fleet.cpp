// The device fleet on 127.0.0.1 (measure/rpc.h): a tracker in this process,
// device servers as real `tessel server` processes (they only dial out), tuners
// through RpcRunner. A server kill -9'd mid-batch, restarted servers and
// trackers, tokens right, wrong and missing, TLS, absent hardware.
#include "db/database.h"
#include "measure/rpc.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "te/ops.h"
#include "te/text.h"
#include "temp_dir.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>

using namespace tessel;
using db::RecordStatus;
using tessel::testing::TempDir;

namespace {

using Clock_ = std::chrono::steady_clock::time_point;

// A `tessel` child process, killed (SIGKILL) when this goes out of scope.
class Child {
public:
  Child(const std::vector<std::string> &args, const std::string &log) {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1), dup2(fd, 2);
      std::vector<std::string> copy = args;
      std::vector<char *> argv;
      std::string exe = TESSEL_EXE;
      argv.push_back(exe.data());
      for (auto &a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(exe.c_str(), argv.data());
      _exit(127);
    }
  }
  ~Child() { kill9(); }
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // Exit code once it ends by itself within `seconds`, else -1.
  int wait_exit(double seconds) {
    for (double t = 0; t < seconds; t += 0.05) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

private:
  pid_t pid_ = -1;
};

std::string read_all(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Compiled candidates of a small matmul, each with its own id.
std::vector<measure::Artifact> artifacts(int n) {
  te::Workload w = te::make_op_workload("matmul:M=64,N=64,K=64").take();
  std::vector<measure::Candidate> c;
  sched::SpaceGenerator gen(Target::host());
  sched::Rng rng(9);
  auto sketches = gen.sketches(w);
  for (int i = 0; int(c.size()) < n && i < 20 * n; ++i)
    if (auto s = gen.sample(w, sketches[size_t(i) % sketches.size()], rng))
      c.push_back({"c" + std::to_string(c.size()), te::to_text(w), sched::trace_to_json(*s)});
  while (int(c.size()) < n) // the space may repeat itself: the default schedule under more ids
    c.push_back({"c" + std::to_string(c.size()), te::to_text(w), sched::trace_to_json(sched::default_schedule(w))});
  std::vector<measure::Artifact> out;
  for (auto &r : measure::make_local_builder(Target::host())->build(c)) {
    EXPECT_EQ(r.status, RecordStatus::Ok) << r.message;
    out.push_back(r.artifact);
  }
  return out;
}

measure::RunOptions slow_enough(double ms) {
  measure::RunOptions o;
  o.repeat = 3;
  o.min_repeat_ms = ms; // each candidate takes about 3 * ms on its server
  o.timeout_seconds = 30;
  return o;
}

class Fleet : public ::testing::Test {
protected:
  void start_tracker(measure::FleetSecurity security = {}, std::string listen = "127.0.0.1:0") {
    measure::TrackerOptions o;
    o.listen = listen;
    o.security = security;
    o.heartbeat_timeout_seconds = 3;
    o.log = [this](const std::string &line) {
      std::lock_guard lock(log_mutex);
      tracker_log += line + "\n";
    };
    auto t = measure::start_tracker(o);
    ASSERT_TRUE(t) << t.error();
    tracker = t.take();
  }
  std::unique_ptr<Child> server(const std::string &id, const std::string &key = "host",
                                std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"server", "--tracker", tracker->address(), "--key", key, "--id", id};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Child>(args, dir.file(id + ".log"));
  }
  // Waits until the tracker lists `n` servers.
  bool wait_for_servers(size_t n, measure::FleetSecurity s = {}, double seconds = 20) {
    for (double t = 0; t < seconds; t += 0.1) {
      auto st = measure::fleet_status(tracker->address(), s);
      if (st && st->servers.size() == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  measure::RpcRunnerOptions rpc(const std::string &key = "host") {
    measure::RpcRunnerOptions o;
    o.tracker = tracker->address();
    o.key = key;
    o.queue_timeout_seconds = 60;
    return o;
  }

  TempDir dir{"tessel_test_fleet"};
  // Declared before the tracker, so they outlive it: its threads log until it has shut down.
  std::mutex log_mutex;
  std::string tracker_log;
  std::unique_ptr<measure::Tracker> tracker;
};

TEST_F(Fleet, ServerKilledMidBatchLosesNothingAndNothingIsMeasuredTwice) {
  start_tracker();
  auto batch = artifacts(12);
  auto s1 = server("s1"), s2 = server("s2"), s3 = server("s3");
  ASSERT_TRUE(wait_for_servers(3));
  std::vector<measure::RunResult> results;
  std::thread tuner([&] { results = measure::make_rpc_runner(rpc())->run(batch, slow_enough(60)); });
  // Kill s2 once the fleet is busy (each server runs one candidate at a time).
  bool killed = false;
  for (double t = 0; t < 30 && !killed; t += 0.05) {
    auto st = measure::fleet_status(tracker->address(), {});
    if (st)
      for (auto &s : st->servers)
        if (s.id == "s2" && s.running > 0 && s.completed >= 1) {
          s2->kill9();
          killed = true;
        }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  tuner.join();
  ASSERT_TRUE(killed) << "s2 never got work";
  ASSERT_EQ(results.size(), batch.size());
  std::set<std::string> ids;
  auto records = db::make_memory_database();
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].candidate_id, batch[i].candidate_id);
    EXPECT_EQ(results[i].status, RecordStatus::Ok) << results[i].candidate_id << ": " << results[i].message;
    EXPECT_EQ(results[i].run_seconds.size(), 3u);
    ids.insert(results[i].candidate_id);
    db::Record r;
    r.workload_key = "matmul:M=64,N=64,K=64";
    r.workload_hash = batch[i].workload_hash;
    r.workload_text = batch[i].workload_text;
    r.target = db::target_key(Target::host(), 1);
    r.trace_json = "{\"candidate\": \"" + results[i].candidate_id + "\"}";
    r.run_seconds = results[i].run_seconds;
    ASSERT_TRUE(records->commit({r}));
  }
  EXPECT_EQ(ids.size(), batch.size());
  EXPECT_EQ(records->stats()->records, int64_t(batch.size())) << "every candidate stored once";
  std::lock_guard lock(log_mutex);
  EXPECT_NE(tracker_log.find("server s2 dropped"), std::string::npos) << tracker_log;
}

TEST_F(Fleet, TunersSharingAServerTakeTurns) {
  start_tracker();
  auto batch = artifacts(9);
  auto s1 = server("only");
  ASSERT_TRUE(wait_for_servers(1));
  std::vector<measure::Artifact> first(batch.begin(), batch.begin() + 6), second(batch.begin() + 6, batch.end());
  Clock_ first_done, second_done;
  std::thread a([&] {
    auto o = rpc();
    o.tuner = "tuner-a";
    auto r = measure::make_rpc_runner(o)->run(first, slow_enough(40));
    for (auto &x : r) EXPECT_EQ(x.status, RecordStatus::Ok) << x.message;
    first_done = std::chrono::steady_clock::now();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300)); // tuner-a's batch is queued and running
  std::thread b([&] {
    auto o = rpc();
    o.tuner = "tuner-b";
    auto r = measure::make_rpc_runner(o)->run(second, slow_enough(40));
    for (auto &x : r) EXPECT_EQ(x.status, RecordStatus::Ok) << x.message;
    second_done = std::chrono::steady_clock::now();
  });
  a.join();
  b.join();
  EXPECT_LT(second_done, first_done) << "the later tuner's 3 candidates were not held behind the earlier one's 6";
}

TEST_F(Fleet, TokensAreRequiredWhenSetAndWrongOnesRefused) {
  measure::FleetSecurity good;
  good.token = "a-long-shared-secret";
  start_tracker(good);
  std::ofstream(dir.file("good.token")) << good.token << "\n";
  std::ofstream(dir.file("wrong.token")) << "not-the-secret\n";

  auto bad = server("intruder", "host", {"--token-file", dir.file("wrong.token")});
  EXPECT_EQ(bad->wait_exit(15), 1) << read_all(dir.file("intruder.log"));
  EXPECT_NE(read_all(dir.file("intruder.log")).find("refused"), std::string::npos);
  auto none = server("anonymous");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto ok = server("member", "host", {"--token-file", dir.file("good.token")});
  ASSERT_TRUE(wait_for_servers(1, good)) << read_all(dir.file("member.log"));
  auto st = measure::fleet_status(tracker->address(), good);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->servers[0].id, "member");

  EXPECT_FALSE(measure::fleet_status(tracker->address(), {})) << "no token: refused";
  measure::FleetSecurity wrong;
  wrong.token = "not-the-secret";
  EXPECT_FALSE(measure::fleet_status(tracker->address(), wrong));
  auto batch = artifacts(1);
  auto o = rpc();
  o.security = wrong;
  auto refused = measure::make_rpc_runner(o)->run(batch, slow_enough(1));
  EXPECT_EQ(refused[0].status, RecordStatus::RuntimeError);
  EXPECT_NE(refused[0].message.find("token"), std::string::npos) << refused[0].message;
  o.security = good;
  auto measured = measure::make_rpc_runner(o)->run(batch, slow_enough(1));
  EXPECT_EQ(measured[0].status, RecordStatus::Ok) << measured[0].message;
  std::lock_guard lock(log_mutex);
  EXPECT_NE(tracker_log.find("wrong token"), std::string::npos) << tracker_log;
  EXPECT_NE(tracker_log.find("no token"), std::string::npos) << tracker_log;
}

TEST_F(Fleet, RestartedServersReRegisterAndARestartedTrackerRegainsThem) {
  start_tracker();
  auto s1 = server("s1"), s2 = server("s2");
  ASSERT_TRUE(wait_for_servers(2));
  s1->kill9();
  ASSERT_TRUE(wait_for_servers(1)) << "a dead server is dropped";
  s1 = server("s1");
  ASSERT_TRUE(wait_for_servers(2)) << "a restarted server registers again";

  std::string address = tracker->address();
  tracker->shutdown();
  tracker.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  start_tracker({}, address);
  ASSERT_TRUE(wait_for_servers(2)) << "servers reconnect to a restarted tracker";
  auto results = measure::make_rpc_runner(rpc())->run(artifacts(2), slow_enough(1));
  for (auto &r : results) EXPECT_EQ(r.status, RecordStatus::Ok) << r.message;
}

TEST_F(Fleet, AbsentHardwareIsSaidAtRegistrationAndItsWorkRefused) {
  start_tracker();
  auto gpu = server("gpu-box", "h100");
  ASSERT_TRUE(wait_for_servers(1));
  auto st = measure::fleet_status(tracker->address(), {});
  ASSERT_TRUE(st);
  EXPECT_FALSE(st->servers[0].available);
  auto results = measure::make_rpc_runner(rpc("h100"))->run(artifacts(1), slow_enough(1));
  EXPECT_EQ(results[0].status, RecordStatus::RuntimeError);
  EXPECT_NE(results[0].message.find("lack its hardware"), std::string::npos) << results[0].message;
  EXPECT_EQ(gpu->wait_exit(0.2), -1) << "the server keeps running";
}

TEST_F(Fleet, ListeningBeyondLoopbackNeedsAToken) {
  measure::TrackerOptions o;
  o.listen = "0.0.0.0:0";
  auto t = measure::start_tracker(o);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().find("without a token"), std::string::npos) << t.error();
}

TEST_F(Fleet, TlsWithCertificates) {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "openssl is not installed";
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext "
                    "subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
                    dir.file("key.pem") + " -out " + dir.file("cert.pem") + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  measure::FleetSecurity tls;
  tls.tls_cert = dir.file("cert.pem");
  tls.tls_key = dir.file("key.pem");
  start_tracker(tls);
  measure::FleetSecurity client;
  client.tls_ca = dir.file("cert.pem");
  auto s = server("tls-server", "host", {"--tls-ca", dir.file("cert.pem")});
  ASSERT_TRUE(wait_for_servers(1, client)) << read_all(dir.file("tls-server.log"));
  EXPECT_FALSE(measure::fleet_status(tracker->address(), {})) << "plaintext to a TLS tracker fails";
  auto o = rpc();
  o.security = client;
  auto results = measure::make_rpc_runner(o)->run(artifacts(1), slow_enough(1));
  EXPECT_EQ(results[0].status, RecordStatus::Ok) << results[0].message;
}

} // namespace
