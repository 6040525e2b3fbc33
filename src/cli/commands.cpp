#include "cli/commands.h"
#include "cli/cli_util.h"

#include "codegen/cpu_compiler.h"
#include "codegen/cuda_driver.h"
#include "interp/interpreter.h"
#include "ir/printer.h"
#include "lower/lower.h"
#include "measure/timing.h"
#include "runtime/runtime.h"
#include "schedules/schedule.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "support/stats.h"
#include "te/ops.h"
#include "te/text.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace tessel::cli {

namespace {

// A C identifier naming the kernel: tessel_<operator>_<hash prefix>.
std::string kernel_name(const te::Workload &w) {
  std::string op = w.key.substr(0, w.key.find(':'));
  std::string name = "tessel_";
  for (char c : op) name += std::isalnum((unsigned char)c) ? c : '_';
  return name + "_" + w.hash_hex().substr(0, 8);
}

Expected<Target> load_target(const std::string &name) {
  auto t = Target::load(name);
  if (!t) return make_error(t.error());
  return t;
}

// The default schedule for `target`, or the replay of a trace file made for this workload.
Expected<sched::Schedule> load_schedule(const te::Workload &w, const std::string &trace_path, const Target &target,
                                        bool parallel_outer) {
  if (trace_path.empty()) return sched::default_schedule_for(w, target, parallel_outer);
  std::ifstream in(trace_path);
  if (!in) return make_error("cannot read trace file '" + trace_path + "'");
  std::stringstream text;
  text << in.rdbuf();
  auto s = sched::replay_json(w, text.str());
  if (!s) return make_error(trace_path + ": " + s.error());
  return s;
}

} // namespace

int cmd_ops() {
  for (auto &op : te::list_ops()) {
    std::cout << op.name << "  " << op.summary << "\n";
    for (auto &p : op.params)
      std::cout << "    " << p.name << (p.default_value.empty() ? " (required)" : "=" + p.default_value) << "  "
                << p.help << "\n";
    std::cout << "    example: " << op.example << "\n\n";
  }
  return 0;
}

int cmd_targets() {
  Target host = Target::host();
  std::cout << "host  (" << host.description << "): " << host.str() << "\n";
  for (auto &name : Target::list_available()) {
    if (name == "host") continue;
    auto t = Target::load(name);
    std::cout << name << "  " << (t ? t->str() : "error: " + t.error()) << "\n";
  }
  std::cout << "\nsearched: ";
  for (auto &d : Target::search_dirs()) std::cout << d << "  ";
  std::cout << "\n";
  return 0;
}

int cmd_space(const SpaceOptions &o) {
  if (o.samples < 0) return fail("--sample must be 0 or more");
  if (o.threads < 1) return fail("--threads must be 1 or more");
  auto w = te::load_workload(o.workload);
  if (!w) return fail(w.error());
  auto target = load_target(o.target);
  if (!target) return fail(target.error());
  sched::SpaceGenerator gen(*target, o.threads);
  if (target->is_cuda()) // samples must fit the device: threads, shared memory, registers
    gen.set_validator([t = *target](const sched::Schedule &s) {
      auto p = lower::lower(s, "k");
      return p ? lower::check_gpu_limits(p->kernel, t) : Status::error(p.error());
    });
  auto sketches = gen.sketches(*w);
  std::cout << "# " << sketches.size() << " sketch" << (sketches.size() == 1 ? "" : "es") << " for " << w->key << " on "
            << target->str() << "\n";
  for (size_t i = 0; i < sketches.size(); ++i) {
    std::cout << "sketch " << i << ": " << sketches[i].name << "\n";
    for (auto &r : sketches[i].rules) std::cout << "    " << r << "\n";
  }
  std::vector<size_t> chosen; // the sketches samples are drawn from, in turn
  for (size_t i = 0; i < sketches.size(); ++i)
    if (o.sketch.empty() || sketches[i].name == o.sketch) chosen.push_back(i);
  if (chosen.empty()) {
    std::string names;
    for (auto &k : sketches) names += (names.empty() ? "" : ", ") + k.name;
    return fail("--sketch: " + w->key + " has no sketch '" + o.sketch + "' on " + target->name + " (it has: " + names +
                ")");
  }
  if (!o.output.empty() && o.samples < 1) return fail("--output needs at least one sample (--sample 1)");
  sched::Rng rng(o.seed);
  for (int i = 0; i < o.samples; ++i) {
    size_t index = chosen[size_t(i) % chosen.size()];
    const sched::Sketch &k = sketches[index];
    auto s = gen.sample(*w, k, rng);
    if (!s) return fail(s.error());
    std::string json = sched::trace_to_json(*s);
    std::cout << "\n# sample " << i << " (sketch " << index << ": " << k.name << ", seed " << o.seed << ")\n"
              << json << "\n";
    if (i == 0 && !o.output.empty()) {
      std::ofstream out(o.output);
      out << json << "\n";
      if (!out) return fail("cannot write " + o.output);
      std::cerr << "wrote " << o.output << " (sample 0)\n";
    }
  }
  return 0;
}

int cmd_show(const ShowOptions &o) {
  auto w = te::load_workload(o.workload);
  if (!w) return fail(w.error());
  auto loaded = load_target(o.target);
  if (!loaded) return fail(loaded.error());
  Target target = *loaded;
  // Without a trace a GPU target shows its untuned mapping (a thread per element), as `run` runs it.
  auto sc = load_schedule(*w, o.trace, target, false);
  if (!sc) return fail(sc.error());
  sched::Schedule s = sc.take();
  bool any = o.te || o.ir || o.llvm || o.assembly || o.schedule || o.cuda || o.resources;
  if (o.te || !any) {
    std::cout << "# workload " << w->key << "  (hash " << w->hash_hex() << ", " << w->flops() << " flop)\n";
    std::cout << te::to_text(*w);
  }
  if (o.schedule || !any)
    std::cout << "\n# schedule (" << (o.trace.empty() ? "default" : o.trace) << ")\n" << sched::describe(s);
  auto f = lower::lower(s, kernel_name(*w));
  if (!f) return fail(f.error());
  if (o.ir || !any) {
    for (auto &pf : f->prepack)
      std::cout << "\n# loop IR: " << pf.name << " (packs a constant, run once)\n" << ir::to_string(pf.body);
    std::cout << "\n# loop IR\n" << ir::to_string(f->kernel.body);
  }
  if ((o.llvm || o.assembly) && !target.is_cpu())
    return fail("target " + target.name + " is a GPU: its code is CUDA C++ (--cuda; --resources compiles it)");
  if ((o.cuda || o.resources) && !target.is_cuda())
    return fail("--cuda and --resources need a GPU target (e.g. --target h100); " + target.name + " is a CPU");
  if (o.cuda || o.resources) {
    auto cuda = codegen::generate_cuda(*f, target);
    if (!cuda) return fail(cuda.error());
    if (o.cuda) std::cout << cuda->source;
    if (o.resources) {
      auto report = codegen::cuda_resource_report(*cuda, target);
      if (!report) return fail(report.error());
      std::cout << *report;
    }
  }
  if (o.llvm) {
    auto text = codegen::emit_llvm_ir(*f, target);
    if (!text) return fail(text.error());
    std::cout << *text;
  }
  if (o.assembly) {
    auto text = codegen::emit_assembly(*f, target);
    if (!text) return fail(text.error());
    std::cout << *text;
  }
  return 0;
}

// A GPU schedule compiled by NVRTC and run through the CUDA driver, verified and timed with CUDA events.
static int run_on_gpu(const te::Workload &w, const Target &target, const RunOptions &o) {
  std::cout << "workload  " << w.key << "  (hash " << w.hash_hex() << ")\n";
  std::cout << "target    " << target.str() << "\n";
  auto loaded_schedule = o.db.empty() ? load_schedule(w, o.trace, target, false)
                                      : schedule_from_database(o.db, w, target, 1, o.compatible);
  if (!loaded_schedule) return fail(loaded_schedule.error());
  sched::Schedule schedule = loaded_schedule.take();
  std::cout << "schedule  "
            << (o.trace.empty() ? o.db.empty() ? "default (untuned: a thread per output element)" : o.db : o.trace)
            << "\n";
  auto f = lower::lower(schedule, kernel_name(w));
  if (!f) return fail(f.error());
  auto program = codegen::compile_cuda_program(*f, target);
  if (!program) return fail(program.error());
  std::cout << "compile   " << fmt("%.1f", program->binary.compile_seconds * 1e3) << " ms (NVRTC, " << target.gpu->arch
            << ", " << program->usage.size() << " kernel" << (program->usage.size() == 1 ? "" : "s") << ")\n";
  for (auto &u : program->usage)
    std::cout << "kernel    " << u.name << ": grid " << u.grid[0] << "x" << u.grid[1] << "x" << u.grid[2] << ", block "
              << u.block[0] << "x" << u.block[1] << "x" << u.block[2] << ", " << u.registers << " registers, "
              << u.shared_bytes << " B shared, " << u.local_bytes << " B local\n";
  if (!program->over_limits.empty()) return fail("the schedule does not fit: " + program->over_limits);
  std::string why;
  if (!codegen::cuda_driver_available(&why))
    return fail("cannot run it here: " + why + " (check the schedule on this CPU with --emulate-gpu)");
  auto dev = codegen::cuda_device();
  if (!dev) return fail(dev.error());
  std::cout << "device    " << dev->name << " (" << dev->arch() << ", " << dev->sm_count << " SMs)\n";
  if (Status here = codegen::runnable_here(target); !here) return fail(here.message());
  std::vector<interp::NDArray> inputs = interp::random_inputs(w, o.seed), outputs = interp::empty_outputs(w);
  std::vector<void *> args;
  std::vector<int64_t> bytes;
  for (auto [source, i] : program->code.args) {
    interp::NDArray &a = source == codegen::ObjectCode::Source::Input ? inputs[size_t(i)] : outputs[size_t(i)];
    args.push_back(a.data()), bytes.push_back(a.bytes());
  }
  codegen::CudaRunOptions ropt;
  ropt.repeats = o.repeats;
  ropt.flush_bytes = target.l2_bytes;
  auto seconds = codegen::run_cuda_program(program->code, args, bytes, ropt);
  if (!seconds) return fail(seconds.error());
  int rc = 0;
  if (o.verify) {
    auto expected = interp::interpret(w, inputs);
    if (!expected) return fail("reference interpreter: " + expected.error());
    for (size_t i = 0; i < outputs.size(); ++i) {
      interp::Comparison c = interp::compare(outputs[i], (*expected)[i]);
      std::cout << "verify    " << (c.ok ? "ok: " : "FAILED for ") << w.outputs[i]->name << ": "
                << (c.ok ? "matches the reference interpreter (max abs error " + fmt("%.3g", c.max_abs_error) + ")"
                         : c.message)
                << "\n";
      rc |= !c.ok;
    }
  }
  double median = tessel::median(*seconds);
  std::cout << "time      " << fmt("%.4f", median * 1e3) << " ms median of " << seconds->size()
            << " (CUDA events, L2 flushed between repeats)\n";
  std::cout << "perf      " << fmt("%.2f", w.flops() / median * 1e-9) << " GFLOP/s on " << dev->name << "\n";
  return rc;
}

int cmd_run(const RunOptions &o) {
  if (o.threads < 1) return fail("--threads must be at least 1, got " + std::to_string(o.threads));
  if (o.repeats < 1) return fail("--repeat must be at least 1, got " + std::to_string(o.repeats));
  if (!o.db.empty() && !o.trace.empty()) return fail("--db and --trace both choose the schedule: give one of them");
  if (o.compatible && o.db.empty()) return fail("--compatible applies to records of a database: give --db PATH too");
  auto w = te::load_workload(o.workload);
  if (!w) return fail(w.error());
  auto loaded = load_target(o.target);
  if (!loaded) return fail(loaded.error());
  if (loaded->is_cuda() && !o.emulate_gpu) return run_on_gpu(*w, *loaded, o);
  // Emulation checks a schedule made for other hardware on this CPU: it compiles for the host.
  bool emulated = (o.emulate_gpu && loaded->is_cuda()) || (o.emulate_intrinsics && loaded->is_cpu());
  if (Status here = loaded->runnable_here(); !here && !emulated)
    return fail(here.message() + (loaded->is_cuda() ? " (check a GPU schedule here with --emulate-gpu)"
                                                    : " (check its schedules here with --emulate-intrinsics)"));
  Target target = emulated ? Target::host() : *loaded;
  if (o.emulate_gpu)
    std::cout << "emulate   GPU-bound loops run serially on this CPU (a correctness check, not a timing)\n";
  if (o.emulate_intrinsics)
    std::cout << "emulate   tensor intrinsics run as portable emulations (a correctness check, not a timing)\n";
  std::cout << "workload  " << w->key << "  (hash " << w->hash_hex() << ")\n";
  std::cout << "target    " << target.str() << ", " << o.threads << " thread" << (o.threads > 1 ? "s" : "") << "\n";
  // Records are keyed by the target they were tuned for, also when emulated here.
  auto loaded_schedule = o.db.empty() ? load_schedule(*w, o.trace, target, o.threads > 1)
                                      : schedule_from_database(o.db, *w, *loaded, o.threads, o.compatible);
  if (!loaded_schedule) return fail(loaded_schedule.error());
  sched::Schedule schedule = loaded_schedule.take();
  if (!o.trace.empty())
    std::cout << "schedule  " << o.trace << " (" << schedule.trace.size() << " steps)\n";
  else if (o.db.empty())
    std::cout << "schedule  default (untuned)\n";

  if (Status fits = interp::check_run_fits_in_memory(*w, o.verify); !fits) return fail(fits.message());

  auto t0 = std::chrono::steady_clock::now();
  auto f = lower::lower(schedule, kernel_name(*w));
  if (!f) return fail(f.error());
  if (o.emulate_gpu) *f = lower::emulate_gpu_on_cpu(*f);
  if (o.emulate_intrinsics) *f = lower::emulate_intrinsics(*f);
  auto program = codegen::jit_compile(*f, target);
  if (!program) return fail(program.error());
  double compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "compile   " << fmt("%.1f", compile_ms) << " ms (lower, LLVM -O3, JIT)\n";

  tessel_set_num_threads(o.threads);
  std::vector<interp::NDArray> inputs = interp::random_inputs(*w, o.seed);
  std::vector<interp::NDArray> outputs = interp::empty_outputs(*w);
  std::vector<void *> in_ptrs, out_ptrs;
  for (auto &a : inputs) in_ptrs.push_back(a.data());
  for (auto &a : outputs) out_ptrs.push_back(a.data());
  auto p0 = std::chrono::steady_clock::now();
  program->pack(in_ptrs);
  if (program->has_prepack())
    std::cout << "pack      "
              << fmt("%.3f", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - p0).count())
              << " ms, once, ahead of time (constant inputs re-laid-out; excluded from the kernel time)\n";
  program->run(in_ptrs, out_ptrs);

  int rc = 0;
  if (o.verify) {
    ProgressBar bar("verifying against the reference interpreter");
    auto expected = interp::interpret(*w, inputs, [&](double f) { bar.update(f); });
    if (!expected) return fail("reference interpreter: " + expected.error());
    for (size_t i = 0; i < outputs.size(); ++i) {
      interp::Comparison c = interp::compare(outputs[i], (*expected)[i]);
      if (!c.ok) {
        std::cout << "verify    FAILED for output " << w->outputs[i]->name << ": " << c.message << "\n";
        rc = 1;
      } else {
        std::cout << "verify    ok: " << w->outputs[i]->name << " matches the reference interpreter (max abs error "
                  << fmt("%.3g", c.max_abs_error) << ")\n";
      }
    }
  } else {
    std::cout << "verify    skipped (--no-verify)\n";
  }

  measure::TimingOptions topt;
  topt.repeats = o.repeats;
  measure::Timing t;
  {
    ProgressBar bar("timing");
    t = measure::time_calls([&] { program->run(in_ptrs, out_ptrs); }, topt);
  }
  std::cout << "time      " << fmt("%.4f", t.median_seconds * 1e3) << " ms median of " << o.repeats << " (min "
            << fmt("%.4f", t.min_seconds * 1e3) << ", max " << fmt("%.4f", t.max_seconds * 1e3) << ", "
            << t.calls_per_repeat << " calls each)\n";
  std::cout << "perf      " << fmt("%.2f", w->flops() / t.median_seconds * 1e-9) << " GFLOP/s"
            << (emulated ? " (of the emulation on this CPU, not of " + loaded->name + ")" : std::string()) << "\n";
  return rc;
}

} // namespace tessel::cli
