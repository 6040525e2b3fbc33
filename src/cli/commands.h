// The `tessel` subcommands. main.cpp parses flags (CLI11) into these option
// structs; each command calls the rooms below and prints. Exit codes: 0 ok,
// 1 failure (bad input, wrong result), 2 usage error.
#pragma once

#include "schedules/schedule.h"
#include "support/error.h"
#include "target/target.h"
#include "te/workload.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessel::cli {

int cmd_ops();

int cmd_targets();

struct SpaceOptions {
  std::string workload;
  std::string target = "host";
  int samples = 3;
  uint64_t seed = 1;
  std::string sketch; // sample only this sketch (by name)
  std::string output; // also write the first sampled trace to this file
  int threads = 1;    // the space for schedules run on this many threads (as `tune --threads`)
};
int cmd_space(const SpaceOptions &o);

struct ShowOptions {
  std::string workload;
  std::string target = "host";
  std::string trace;
  bool te = false, ir = false, llvm = false, assembly = false, schedule = false;
  bool cuda = false;      // the generated CUDA C++ (GPU targets)
  bool resources = false; // compile it with NVRTC and print each kernel's registers and memory
};
int cmd_show(const ShowOptions &o);

struct RunOptions {
  std::string workload;
  std::string target = "host";
  std::string trace; // a trace JSON file; empty: the default schedule
  int threads = 1;
  int repeats = 5;
  uint64_t seed = 1;
  bool verify = true;
  bool emulate_gpu = false;        // run GPU-bound loops serially on this CPU (checks a GPU schedule)
  bool emulate_intrinsics = false; // run tensor intrinsics (AMX, ...) as portable emulations
  std::string db;                  // run the best record of this tuning database instead
  bool compatible = false;         // with db: accept records of the same target class (announced)
};
int cmd_run(const RunOptions &o);

// `tessel compile`: a kernel library (static archive, objects, C header, JSON manifest)
// of the best record per workload in the database, for applications to link.
struct CompileOptions {
  std::vector<std::string> workloads; // specs (LABEL@SPEC names a kernel), .te files, .spec suites
  std::string target = "host";
  std::string db;          // empty: $TESSEL_DB, else ./tessel.db when it exists
  int threads = 1;         // the thread count the records were tuned with
  bool compatible = false; // accept records of a compatible target (announced)
  bool require_tuned = false;
  std::string trace;                     // one workload only: this schedule instead of the database's
  std::string output = "tessel_kernels"; // directory
  std::string name = "tessel_kernels";   // library name and symbol prefix
};
int cmd_compile(const CompileOptions &o);

// `tessel db SUBCOMMAND`; db empty: $TESSEL_DB, else ./tessel.db.
struct DbOptions {
  std::string db;
  std::string workload;        // best; list: show only keys containing it
  std::string target = "host"; // best
  int threads = 1;             // best: the thread count the record was measured with
  bool compatible = false;     // best: the announced compatible fallback
  int top = 1;                 // best: also list the top N
  std::string trace_out;       // best: write the trace here
  std::string file;            // export -o FILE (empty: stdout), import FILE, merge OTHER
  int keep = 0;                // prune
  int limit = 50;              // list: rows shown, 0: all
};
int cmd_db_list(const DbOptions &o);
int cmd_db_best(const DbOptions &o);
int cmd_db_stats(const DbOptions &o);
int cmd_db_export(const DbOptions &o);
int cmd_db_import(const DbOptions &o);
int cmd_db_merge(const DbOptions &o);
int cmd_db_prune(const DbOptions &o);

// `tessel tracker`, `tessel server`, `tessel fleet status` (measure/rpc.h).
struct FleetOptions {
  std::string listen = "127.0.0.1:9190";  // tracker
  std::string tracker = "127.0.0.1:9190"; // server, fleet status
  std::string key;                        // server
  std::string token_file, tls_cert, tls_key, tls_ca;
  std::string cpus; // server: pin its runner, "0,1"
  double max_run_seconds = 120;
  std::string server_id;
};
int cmd_tracker(const FleetOptions &o);
int cmd_server(const FleetOptions &o);
int cmd_fleet_status(const FleetOptions &o);

// `tessel tune WORKLOAD|SUITE...` (search/tuner.h).
struct TuneOptions {
  std::vector<std::string> workloads; // specs, .te files, .spec suites
  std::string target = "host";
  int trials = 64; // per task
  double time_budget = 0;
  std::string db;
  std::string rpc, key, token_file, tls_ca;
  uint64_t seed = 1;
  int threads = 1;
  int batch = 16;
  int early_stop = 0;
  std::string report;
  std::string cost_model = "xgboost";
  std::string cost_model_from;
  bool no_trace_library = false; // do not seed with configs/traces/*.json
  bool no_drift_control = false; // search::TuneOptions::control_drift off
};
int cmd_tune(const TuneOptions &o);

// `tessel report`: an HTML report of a tuning database.
struct ReportOptions {
  std::string db, output = "report.html", target = "host";
  int threads = 1;
};
int cmd_report(const ReportOptions &o);

// The schedule of the best record of `w` on `target` in the database at `path` (replayed and
// checked by db::apply_best); prints which record it is. Shared by run and the commands after it.
Expected<sched::Schedule> schedule_from_database(const std::string &path, const te::Workload &w, const Target &target,
                                                 int threads, bool compatible);

} // namespace tessel::cli
