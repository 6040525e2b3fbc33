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
               "  tessel compile softmax:M=128,N=1000 -o softmax.o",
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

  RunOptions run;
  auto *run_cmd =
      app.add_subcommand("run", "Compile the default schedule, run it on random inputs, verify it\n"
                                "against the reference interpreter, print time and GFLOP/s.\n"
                                "Examples:\n  tessel run matmul:M=256,N=256,K=256\n"
                                "  tessel run conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1 --threads 2\n"
                                "  tessel run configs/workloads/matmul_1024_constb.te \\\n"
                                "      --trace configs/traces/matmul_1024_constb_avx512.json\n"
                                "  tessel run matmul:M=64,N=64,K=64,dtype=f16 --target h100 \\\n"
                                "      --trace tc.json --emulate-gpu   # a tensor-core schedule, on this CPU\n"
                                "  tessel run matmul:M=64,N=64,K=128,dtype=bf16 --target cpu-avx512-amx \\\n"
                                "      --trace amx.json --emulate-intrinsics");
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

  CompileOptions compile;
  auto *compile_cmd = app.add_subcommand("compile", "Emit an object file and a C header for a workload's kernel\n"
                                                    "(link with libtessel_runtime.a).\n"
                                                    "Example:\n  tessel compile matmul:M=512,N=512,K=512 -o mm.o");
  compile_cmd->add_option("workload", compile.workload, "operator spec or workload file")->required();
  compile_cmd->add_option("-o,--output", compile.output, "object file path (header written beside it as .h)");
  compile_cmd->add_option("--name", compile.name, "kernel symbol name");
  compile_cmd->add_option("--trace", compile.trace, "compile this schedule trace (JSON) instead of the default");
  compile_cmd->add_option("--target", compile.target, "target to compile for")->capture_default_str();

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
  return 2;
}

} // namespace
