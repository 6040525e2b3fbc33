// `tessel`: the command-line front end. Flags only; the work is in commands.cpp.
#include "cli/commands.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <unistd.h>

namespace {

// The last resort: errors are values everywhere, so an exception reaching here is
// a bug (or memory the checks did not foresee). One line and a non-zero exit, never an abort.
constexpr int kInternalError = 70; // EX_SOFTWARE
void report_internal_error(const char *what) {
  std::fprintf(stderr, "tessel: internal error: %s (a bug: please report it with the command line)\n", what);
}
int run_guarded(int (*body)(int, char **), int argc, char **argv) {
  try {
    return body(argc, argv);
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "tessel: error: out of memory (an allocation failed); use smaller shapes or free memory\n");
  } catch (const std::exception &e) {
    report_internal_error(e.what());
  } catch (...) {
    report_internal_error("unknown exception");
  }
  return kInternalError;
}

int tessel_main(int argc, char **argv);

} // namespace

int main(int argc, char **argv) {
  // An exception escaping another thread ends up here: still one line, still no abort.
  std::set_terminate([] {
    report_internal_error("uncaught exception outside the main thread");
    std::fflush(stderr);
    _exit(kInternalError);
  });
  return run_guarded(tessel_main, argc, argv);
}

namespace {

int tessel_main(int argc, char **argv) {
  using namespace tessel::cli;
  CLI::App app{"Tessel: a search-based auto-scheduler and kernel tuner for tensor programs.\n\n"
               "WORKLOAD is an operator spec OP:KEY=VAL,... (see `tessel ops`) or a path to a text workload file.\n"
               "Examples:\n"
               "  tessel ops\n"
               "  tessel run matmul:M=256,N=256,K=256\n"
               "  tessel show conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1 --ir\n"
               "  tessel compile softmax:M=128,N=1000 -o kernels\n"
               "  tessel db list",
               "tessel"};
  app.require_subcommand(1);

  auto *ops = app.add_subcommand("ops", "List the operator library and each operator's keys.\n"
                                        "Example:\n  tessel ops");

  app.add_subcommand("targets", "List the hardware targets (configs/targets/*.json and the detected host).\n"
                                "Example:\n  tessel targets");

  SpaceOptions space;
  auto *space_cmd = app.add_subcommand("space", "Print a workload's schedule space: its sketches (the structure the\n"
                                                "sketch rules give) and N sampled schedules as trace JSON.\n"
                                                "Examples:\n  tessel space matmul:M=512,N=512,K=512 --sample 2\n"
                                                "  tessel space dense:M=128,N=768,K=768 --target cpu-avx512 --seed 7\n"
                                                "  tessel space matmul:M=64,N=64,K=64,dtype=f16 --target h100 \\\n"
                                                "      --sketch gpu-tensorcore --sample 1 -o tc.json");
  space_cmd->add_option("workload", space.workload, "operator spec or workload file")->required();
  space_cmd->add_option("--target", space.target, "target name (see `tessel targets`) or JSON path")
      ->capture_default_str();
  space_cmd->add_option("--sample", space.samples, "how many schedules to sample")->capture_default_str();
  space_cmd->add_option("--seed", space.seed, "sampling seed (same seed, same samples)")->capture_default_str();
  space_cmd->add_option("--sketch", space.sketch, "sample only the sketch of this name (e.g. gpu-tensorcore)");
  space_cmd->add_option("-o,--output", space.output, "also write the first sampled trace to this file");
  space_cmd->add_option("--threads", space.threads, "the space for this many threads (as tune --threads)")
      ->capture_default_str();

  ShowOptions show;
  auto *show_cmd = app.add_subcommand("show", "Print a workload: its tensor expressions, schedule and loop IR;\n"
                                              "or the generated LLVM IR / assembly.\n"
                                              "Examples:\n  tessel show matmul:M=64,N=64,K=64\n"
                                              "  tessel show configs/workloads/softmax_128x256.te --llvm");
  show_cmd->add_option("workload", show.workload, "operator spec or workload file")->required();
  show_cmd->add_option("--trace", show.trace, "show this schedule trace (JSON) instead of the default schedule");
  show_cmd->add_option("--target", show.target, "target for --llvm/--asm")->capture_default_str();
  show_cmd->add_flag("--te", show.te, "tensor expressions (text form)");
  show_cmd->add_flag("--schedule", show.schedule, "the schedule's loops per stage");
  show_cmd->add_flag("--ir", show.ir, "lowered loop IR");
  show_cmd->add_flag("--llvm", show.llvm, "optimized LLVM IR");
  show_cmd->add_flag("--asm", show.assembly, "assembly for the host CPU");
  show_cmd->add_flag("--cuda", show.cuda, "the generated CUDA C++ (GPU targets)");
  show_cmd->add_flag("--resources", show.resources,
                     "compile the CUDA with NVRTC and print each kernel's launch, registers and memory");

  RunOptions run;
  auto *run_cmd =
      app.add_subcommand("run", "Compile the default schedule, run it on random inputs, verify it\n"
                                "against the reference interpreter, print time and GFLOP/s. On a GPU target\n"
                                "the default is a thread per output element of each stage.\n"
                                "Examples:\n  tessel run matmul:M=256,N=256,K=256\n"
                                "  tessel run conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1 --threads 2\n"
                                "  tessel run configs/workloads/matmul_1024_constb.te \\\n"
                                "      --trace configs/traces/matmul_1024_constb_avx512.json\n"
                                "  tessel run matmul:M=64,N=64,K=64,dtype=f16 --target h100 \\\n"
                                "      --trace tc.json --emulate-gpu   # a tensor-core schedule, on this CPU\n"
                                "  tessel run matmul:M=64,N=64,K=128,dtype=bf16 --target cpu-avx512-amx \\\n"
                                "      --trace amx.json --emulate-intrinsics\n"
                                "  tessel run matmul:M=512,N=512,K=512 --db tessel.db   # the tuned schedule");
  run_cmd->add_option("workload", run.workload, "operator spec or workload file")->required();
  run_cmd->add_option("--trace", run.trace, "run this schedule trace (JSON) instead of the default schedule");
  run_cmd->add_option("--target", run.target, "target (must be runnable on this machine)")->capture_default_str();
  run_cmd->add_option("--threads", run.threads, "threads for parallel loops")->capture_default_str();
  run_cmd->add_option("--repeat", run.repeats, "timing repeats (the median is reported)")->capture_default_str();
  run_cmd->add_option("--seed", run.seed, "seed of the random inputs")->capture_default_str();
  bool no_verify = false;
  run_cmd->add_flag("--emulate-gpu", run.emulate_gpu,
                    "run a GPU schedule's blocks and threads serially on this CPU to check it");
  run_cmd->add_flag("--emulate-intrinsics", run.emulate_intrinsics,
                    "run tensor intrinsics (AMX tiles, AVX-512 micro-kernels, WMMA) as portable emulations, to\n"
                    "check a schedule tensorized for hardware this machine lacks");
  run_cmd->add_flag("--no-verify", no_verify, "skip the comparison with the interpreter");
  run_cmd->add_option("--db", run.db,
                      "run the best record of this tuning database for the workload on --target with --threads\n"
                      "(exact target match; see `tessel db best`)");
  run_cmd->add_flag("--compatible", run.compatible,
                    "with --db: if no record matches the target exactly, use one of the same class (same x86-64\n"
                    "level and threads, another CPU model), and say so");

  CompileOptions compile;
  auto *compile_cmd = app.add_subcommand(
      "compile", "Build a kernel library for an application: the best record per workload in the tuning\n"
                 "database (else the default schedule, with a warning) becomes a kernel behind a stable C ABI.\n"
                 "Writes DIR/lib<NAME>.a, DIR/<NAME>.h, DIR/<NAME>.json (manifest) and one object per kernel;\n"
                 "link libtessel_runtime.a beside it. Kernels are named NAME_<op>_<hash>, or NAME_<label> for\n"
                 "LABEL@SPEC. Cross-compiles for any --target (objects only when the host lacks its ISA).\n"
                 "Examples:\n"
                 "  tessel compile matmul:M=512,N=512,K=512 --db tessel.db -o kernels\n"
                 "  tessel compile fc1@dense:M=1,N=512,K=784 fc2@dense:M=1,N=10,K=512 --name mlp -o mlp_kernels\n"
                 "  tessel compile configs/workloads/resnet50_conv.spec --require-tuned --target x86-64-v4 -o out\n"
                 "  tessel compile matmul:M=64,N=64,K=64 --target aarch64-neon -o arm");
  compile_cmd->add_option("workloads", compile.workloads, "operator specs (LABEL@SPEC), workload files, .spec suites")
      ->required();
  compile_cmd->add_option("-o,--output", compile.output, "output directory")->capture_default_str();
  compile_cmd->add_option("--name", compile.name, "library name and kernel symbol prefix")->capture_default_str();
  compile_cmd->add_option("--db", compile.db, "tuning database (default: $TESSEL_DB, else ./tessel.db if present)");
  compile_cmd->add_option("--target", compile.target, "target to compile for")->capture_default_str();
  compile_cmd->add_option("--threads", compile.threads, "the thread count the records were tuned with")
      ->capture_default_str();
  compile_cmd->add_flag("--compatible", compile.compatible,
                        "accept records of a compatible target (same x86-64 level and threads), announced");
  compile_cmd->add_flag("--require-tuned", compile.require_tuned,
                        "fail when a workload has no record that applies, instead of its default schedule");
  compile_cmd->add_option("--trace", compile.trace, "one workload: compile this schedule trace (JSON) instead");

  DbOptions dbo;
  auto *db_cmd = app.add_subcommand(
      "db", "Look into and maintain a tuning database (SQLite; schema and JSON Lines format: db/FORMAT.md).\n"
            "The database is --db PATH, else $TESSEL_DB, else ./tessel.db. It is plain SQLite too:\n"
            "  sqlite3 tessel.db 'select workload, target, median_us, gflops from best'\n"
            "Examples:\n  tessel db list\n  tessel db best matmul:M=512,N=512,K=512 --trace-out mm.json\n"
            "  tessel db export -o records.jsonl && tessel db --db other.db import records.jsonl");
  db_cmd->require_subcommand(1);
  db_cmd->fallthrough(); // `tessel db list --db x` as well as `tessel db --db x list`
  db_cmd->add_option("--db", dbo.db, "tuning database file (default: $TESSEL_DB, else ./tessel.db)");
  auto *db_list = db_cmd->add_subcommand("list", "One line per workload and target: records, ok records, the best\n"
                                                 "median time and its GFLOP/s.\n"
                                                 "Examples:\n  tessel db list\n  tessel db list --workload matmul "
                                                 "--limit 0");
  db_list->add_option("--workload", dbo.workload, "only workload keys containing this text");
  db_list->add_option("--limit", dbo.limit, "rows shown (0: all)")->capture_default_str();
  auto *db_best = db_cmd->add_subcommand(
      "best", "The best record of a workload on a target, checked as `tessel run --db` would apply it\n"
              "(workload hash, trace version, replay); prints its trace or writes it with --trace-out.\n"
              "Examples:\n  tessel db best matmul:M=512,N=512,K=512\n"
              "  tessel db best conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1 --threads 2 --top 5\n"
              "  tessel db best softmax:M=128,N=1000 --target cpu-avx2 --compatible --trace-out sm.json");
  db_best->add_option("workload", dbo.workload, "operator spec or workload file")->required();
  db_best->add_option("--target", dbo.target, "target the record must be for")->capture_default_str();
  db_best->add_option("--threads", dbo.threads, "thread count it was measured with")->capture_default_str();
  db_best->add_flag("--compatible", dbo.compatible, "accept the same target class on another CPU model (announced)");
  db_best->add_option("--top", dbo.top, "also list the N fastest records")->capture_default_str();
  db_best->add_option("--trace-out", dbo.trace_out, "write the best trace (JSON) to this file");
  auto *db_stats = db_cmd->add_subcommand("stats", "Counts of records, workloads, targets and runs; file size.\n"
                                                   "Example:\n  tessel db --db fleet.db stats");
  auto *db_export = db_cmd->add_subcommand("export", "Write every record as JSON Lines (db/FORMAT.md), one per line.\n"
                                                     "Examples:\n  tessel db export -o records.jsonl\n"
                                                     "  tessel db export | gzip > records.jsonl.gz");
  db_export->add_option("-o,--output", dbo.file, "output file (default: standard output)");
  auto *db_import = db_cmd->add_subcommand(
      "import", "Add the records of a JSON Lines file; identical records are stored once. Bad lines are\n"
                "reported with their line number, the rest imported; exits 1 if any line failed.\n"
                "Examples:\n  tessel db import records.jsonl\n  zcat records.jsonl.gz | tessel db import -");
  db_import->add_option("file", dbo.file, "JSON Lines file ('-': standard input)")->required();
  auto *db_merge = db_cmd->add_subcommand("merge", "Add every record of another tuning database (read-only to it);\n"
                                                   "identical records are stored once.\n"
                                                   "Example:\n  tessel db --db main.db merge fleet-node-3.db");
  db_merge->add_option("other", dbo.file, "the database to merge in")->required();
  auto *db_prune = db_cmd->add_subcommand("prune", "Keep the K fastest ok records per workload and target; delete\n"
                                                   "slower and failed ones.\n"
                                                   "Example:\n  tessel db prune --keep 10");
  db_prune->add_option("--keep", dbo.keep, "records kept per workload and target")->required();

  FleetOptions fleet;
  auto security_flags = [&](CLI::App *cmd, bool server_side) {
    cmd->add_option("--token-file", fleet.token_file,
                    "file holding the fleet's shared token (required to listen beyond 127.0.0.1)");
    if (server_side) {
      cmd->add_option("--tls-cert", fleet.tls_cert, "PEM certificate: serve TLS");
      cmd->add_option("--tls-key", fleet.tls_key, "PEM private key of --tls-cert");
    } else {
      cmd->add_option("--tls-ca", fleet.tls_ca, "PEM CA certificate: connect with TLS, checking the tracker's");
    }
  };
  auto *tracker_cmd = app.add_subcommand(
      "tracker", "Run the device fleet's tracker: device servers register with it by key and tuners submit\n"
                 "candidates to it (measure::make_rpc_runner). Loopback only unless --token-file is given.\n"
                 "Examples:\n  tessel tracker\n"
                 "  tessel tracker --listen 0.0.0.0:9190 --token-file fleet.token --tls-cert t.pem --tls-key t.key");
  tracker_cmd->add_option("--listen", fleet.listen, "address to listen on (port 0: any free port)")
      ->capture_default_str();
  security_flags(tracker_cmd, true);
  auto *server_cmd = app.add_subcommand(
      "server", "Run a device server: dials out to the tracker (no inbound port needed), registers this\n"
                "machine under KEY and measures what it is sent in an isolated runner. Reconnects by itself.\n"
                "Examples:\n  tessel server --key cpu-avx512\n"
                "  tessel server --tracker tracker.lab:9190 --key h100 --token-file fleet.token --tls-ca ca.pem");
  server_cmd->add_option("--tracker", fleet.tracker, "tracker address")->capture_default_str();
  server_cmd->add_option("--key", fleet.key, "device key: a target name (cpu-avx2, h100, ...) or a label")->required();
  server_cmd->add_option("--cpus", fleet.cpus, "pin the runner to these cores, e.g. 0,1");
  server_cmd->add_option("--max-run-seconds", fleet.max_run_seconds, "cap on one candidate's run time")
      ->capture_default_str();
  server_cmd->add_option("--id", fleet.server_id, "server name in `tessel fleet status` (default: host:pid)");
  security_flags(server_cmd, false);
  auto *fleet_cmd = app.add_subcommand("fleet", "Look at the device fleet.\nExample:\n  tessel fleet status");
  fleet_cmd->require_subcommand(1);
  auto *fleet_status = fleet_cmd->add_subcommand(
      "status", "Servers (key, hardware, load, last heartbeat) and queue depths of a tracker.\n"
                "Example:\n  tessel fleet status --tracker 127.0.0.1:9190");
  fleet_status->add_option("--tracker", fleet.tracker, "tracker address")->capture_default_str();
  security_flags(fleet_status, false);

  TuneOptions tune;
  auto *tune_cmd = app.add_subcommand(
      "tune", "Search the schedule space of workloads for their fastest kernels on a target, measuring\n"
              "candidates (locally, or on a device fleet) and recording every result in the tuning database.\n"
              "Resumable: running it again continues from what the database holds. At the end each task's best\n"
              "is re-measured interleaved with its runners-up, and that figure is reported and stored.\n"
              "Examples:\n  tessel tune matmul:M=512,N=512,K=512 --trials 64\n"
              "  tessel tune configs/workloads/resnet50_conv.spec --trials 256 --threads 2 --report r.html\n"
              "  tessel tune dense:M=128,N=768,K=768 --rpc tracker.lab:9190 --key cpu-avx512 --token-file t");
  tune_cmd->add_option("workloads", tune.workloads, "operator specs, .te files or .spec suite files")->required();
  tune_cmd->add_option("--target", tune.target, "target to tune for")->capture_default_str();
  tune_cmd->add_option("--trials", tune.trials, "measured candidates per task")->capture_default_str();
  tune_cmd->add_option("--time-budget", tune.time_budget, "seconds after which no new round starts (0: none)");
  tune_cmd->add_option("--db", tune.db, "tuning database (default: $TESSEL_DB, else ./tessel.db)");
  tune_cmd->add_option("--rpc", tune.rpc, "measure on the device fleet of this tracker (with --key)");
  tune_cmd->add_option("--key", tune.key, "device key on the fleet, e.g. cpu-avx512");
  tune_cmd->add_option("--token-file", tune.token_file, "the fleet's token file");
  tune_cmd->add_option("--tls-ca", tune.tls_ca, "PEM CA certificate of the tracker");
  tune_cmd->add_option("--seed", tune.seed, "search seed (same seed and machine: same search)")->capture_default_str();
  tune_cmd->add_option("--threads", tune.threads, "threads kernels run with")->capture_default_str();
  tune_cmd->add_option("--batch", tune.batch, "candidates measured per round")->capture_default_str();
  tune_cmd->add_option("--early-stop", tune.early_stop, "stop a task after N trials without improvement (0: never)");
  tune_cmd->add_option("--report", tune.report, "also write an HTML report here");
  tune_cmd->add_option("--cost-model", tune.cost_model, "xgboost or random (a baseline)")->capture_default_str();
  tune_cmd->add_option("--cost-model-from", tune.cost_model_from,
                       "also warm-start the model from this database's records, or\n"
                       "start from a saved model (a .json file: <db>.cost_model.json)");
  tune_cmd->add_flag("--no-trace-library", tune.no_trace_library,
                     "do not seed the search with the committed traces (configs/traces/*.json)");
  tune_cmd->add_flag("--no-drift-control", tune.no_drift_control,
                     "compare each round's figures as measured, without re-measuring the fastest schedule\n"
                     "each round to correct for the machine's speed moving");
  ReportOptions report;
  auto *report_cmd = app.add_subcommand(
      "report", "Write one self-contained HTML report of a tuning database: best GFLOP/s against trials and\n"
                "time per task (SVG), a table of tasks with their best kernels, the best traces.\n"
                "Examples:\n  tessel report -o report.html\n  tessel report --db fleet.db --threads 2 -o r.html");
  report_cmd->add_option("--db", report.db, "tuning database (default: $TESSEL_DB, else ./tessel.db)");
  report_cmd->add_option("-o,--output", report.output, "HTML file to write")->capture_default_str();
  report_cmd->add_option("--target", report.target, "the target whose records to show")->capture_default_str();
  report_cmd->add_option("--threads", report.threads, "the thread count whose records to show")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*ops) return cmd_ops();
  if (app.got_subcommand("targets")) return cmd_targets();
  if (*space_cmd) return cmd_space(space);
  if (*show_cmd) return cmd_show(show);
  if (*run_cmd) {
    run.verify = !no_verify;
    return cmd_run(run);
  }
  if (*compile_cmd) return cmd_compile(compile);
  if (*tune_cmd) return cmd_tune(tune);
  if (*report_cmd) return cmd_report(report);
  if (*tracker_cmd) return cmd_tracker(fleet);
  if (*server_cmd) return cmd_server(fleet);
  if (*fleet_status) return cmd_fleet_status(fleet);
  if (*db_cmd) {
    if (*db_list) return cmd_db_list(dbo);
    if (*db_best) return cmd_db_best(dbo);
    if (*db_stats) return cmd_db_stats(dbo);
    if (*db_export) return cmd_db_export(dbo);
    if (*db_import) return cmd_db_import(dbo);
    if (*db_merge) return cmd_db_merge(dbo);
    if (*db_prune) return cmd_db_prune(dbo);
  }
  return 2;
}

} // namespace
