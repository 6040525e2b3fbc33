// The device fleet on gRPC (measure.proto): a tracker keeps a queue per device
// key; device servers dial out to it (so they work behind NAT and firewalls)
// and run what it assigns in their own local runner; tuners submit batches
// through RpcRunner, the same Runner interface as the local one. A server that
// dies mid-batch has its candidates re-queued to others; each candidate's
// result reaches the tuner exactly once. Loopback only unless a shared token
// is set; TLS when certificates are given. Usage: measure/README.md.
#pragma once

#include "measure/measure.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tessel::measure {

struct FleetSecurity {
  std::string token;                     // shared secret; empty: none (loopback only)
  std::string tls_cert, tls_key, tls_ca; // PEM file paths; cert+key on the tracker, ca on its peers
};
// Reads a token file (whitespace trimmed); an empty or unreadable file is an error.
Expected<std::string> read_token_file(const std::string &path);

using Log = std::function<void(const std::string &line)>; // one line per event; default: stderr

struct TrackerOptions {
  std::string listen = "127.0.0.1:9190"; // port 0: any free port (see Tracker::address)
  FleetSecurity security;
  double heartbeat_timeout_seconds = 10; // a server silent this long is dropped, its work re-queued
  int max_attempts = 3;                  // servers a candidate may be lost with before it is failed
  Log log;
};

class Tracker {
public:
  virtual ~Tracker() = default;
  virtual std::string address() const = 0; // host:port it listens on
  virtual void shutdown() = 0;             // also done by the destructor
  virtual void wait() = 0;                 // until shutdown
};
// Refuses to listen beyond loopback without a token.
Expected<std::unique_ptr<Tracker>> start_tracker(TrackerOptions options);

struct DeviceServerOptions {
  std::string tracker; // host:port
  std::string key;     // "cpu-avx512", "h100", ...: a target name, or any label for the host
  FleetSecurity security;
  LocalRunnerOptions runner;
  double max_run_seconds = 120;            // per candidate, whatever a tuner asks
  int64_t max_artifact_bytes = 64ll << 20; // bigger artifacts are refused
  double heartbeat_seconds = 1;
  std::string server_id; // empty: host name + pid
  Log log;
};
// Serves until `stop` is set, reconnecting with backoff whenever the tracker goes away.
// Returns an error only when the tracker refuses it (a wrong token).
Status run_device_server(const DeviceServerOptions &options, const std::atomic<bool> &stop);

struct RpcRunnerOptions {
  std::string tracker, key;
  FleetSecurity security;
  std::string tuner;                  // for fair sharing between tuners; empty: host name + pid
  double queue_timeout_seconds = 600; // waiting for a server; run time is bounded on the server
};
std::unique_ptr<Runner> make_rpc_runner(RpcRunnerOptions options);

struct FleetStatus {
  struct Server {
    std::string id, key, hardware, peer, unavailable_reason;
    bool available = true;
    int running = 0;
    int64_t completed = 0;
    double seconds_since_heartbeat = 0;
  };
  struct Queue {
    std::string key;
    int queued = 0, running = 0;
  };
  std::string tracker;
  std::vector<Server> servers;
  std::vector<Queue> queues;
};
Expected<FleetStatus> fleet_status(const std::string &tracker, const FleetSecurity &security);

} // namespace tessel::measure
