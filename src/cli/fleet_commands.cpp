// `tessel tracker`, `tessel server`, `tessel fleet status`: the device fleet
// (measure/rpc.h) from the command line.
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "measure/rpc.h"

#include <csignal>
#include <iostream>
#include <sstream>
#include <thread>

namespace tessel::cli {

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

void stop_on_signals() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

Expected<measure::FleetSecurity> security(const FleetOptions &o) {
  measure::FleetSecurity s;
  if (!o.token_file.empty()) {
    auto token = measure::read_token_file(o.token_file);
    if (!token) return make_error(token.error());
    s.token = *token;
  }
  s.tls_cert = o.tls_cert, s.tls_key = o.tls_key, s.tls_ca = o.tls_ca;
  if (s.tls_cert.empty() != s.tls_key.empty()) return make_error("--tls-cert and --tls-key go together");
  return s;
}

Expected<std::vector<int>> parse_cpus(const std::string &list) {
  std::vector<int> cpus;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      size_t used = 0;
      int c = std::stoi(item, &used);
      if (used != item.size() || c < 0) throw std::invalid_argument(item);
      cpus.push_back(c);
    } catch (const std::exception &) {
      return make_error("--cpus: '" + item + "' is not a core number (write e.g. --cpus 0,1)");
    }
  }
  return cpus;
}

} // namespace

int cmd_tracker(const FleetOptions &o) {
  auto sec = security(o);
  if (!sec) return fail(sec.error());
  measure::TrackerOptions t;
  t.listen = o.listen;
  t.security = *sec;
  auto tracker = measure::start_tracker(t);
  if (!tracker) return fail(tracker.error());
  stop_on_signals();
  std::cout << "tracker listening on " << (*tracker)->address() << " (Ctrl-C stops it)" << std::endl;
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*tracker)->shutdown();
  return 0;
}

int cmd_server(const FleetOptions &o) {
  if (o.key.empty()) return fail("--key is required (e.g. --key cpu-avx512, or --key host)");
  auto sec = security(o);
  if (!sec) return fail(sec.error());
  measure::DeviceServerOptions d;
  d.tracker = o.tracker;
  d.key = o.key;
  d.security = *sec;
  d.server_id = o.server_id;
  if (o.max_run_seconds <= 0) return fail("--max-run-seconds must be positive");
  d.max_run_seconds = o.max_run_seconds;
  if (!o.cpus.empty()) {
    auto cpus = parse_cpus(o.cpus);
    if (!cpus) return fail(cpus.error());
    d.runner.cpus = *cpus;
  }
  stop_on_signals();
  if (Status st = measure::run_device_server(d, g_stop); !st) return fail(st.message());
  return 0;
}

int cmd_fleet_status(const FleetOptions &o) {
  auto sec = security(o);
  if (!sec) return fail(sec.error());
  auto status = measure::fleet_status(o.tracker, *sec);
  if (!status) return fail(status.error());
  std::cout << "tracker " << status->tracker << ": " << status->servers.size() << " device server"
            << (status->servers.size() == 1 ? "" : "s") << "\n";
  if (!status->servers.empty()) {
    std::printf("%-28s %-14s %-40s %-8s %-9s %-10s %s\n", "server", "key", "hardware", "running", "completed",
                "heartbeat", "peer");
    for (auto &s : status->servers) {
      std::string hw = s.available ? s.hardware : "UNAVAILABLE: " + s.unavailable_reason;
      std::printf("%-28s %-14s %-40s %-8d %-9lld %-10s %s\n", s.id.c_str(), s.key.c_str(), hw.substr(0, 40).c_str(),
                  s.running, static_cast<long long>(s.completed), fmt("%.1f s ago", s.seconds_since_heartbeat).c_str(),
                  s.peer.c_str());
    }
  }
  if (!status->queues.empty()) {
    std::cout << "\nqueues\n";
    for (auto &q : status->queues)
      std::cout << "  " << q.key << ": " << q.queued << " queued, " << q.running << " running\n";
  }
  return 0;
}

} // namespace tessel::cli
