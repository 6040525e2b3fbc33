// `tessel compile`: the build step. The best record of each workload in the tuning
// database becomes a kernel behind a stable C ABI (codegen/kernel_library.h), all
// kernels one static library with one header and a JSON manifest.
#include "cli/cli_util.h"
#include "cli/commands.h"

#include "codegen/cpu_compiler.h"
#include "codegen/cuda_library.h"
#include "codegen/kernel_library.h"
#include "db/database.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "support/version.h"
#include "te/ops.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace tessel::cli {

namespace {

namespace fs = std::filesystem;

Status write_file(const fs::path &path, const std::string &bytes) {
  // Written beside and renamed, so a build never sees half a file.
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!(out << bytes) || !out.flush()) return Status::error("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::error("cannot write " + path.string() + ": " + ec.message());
  return Status::ok();
}

std::string symbol_for(const std::string &prefix, const te::SuiteEntry &e) {
  if (!e.label.empty()) return prefix + "_" + e.label;
  std::string op = e.workload.key.substr(0, e.workload.key.find(':'));
  std::string name = prefix + "_";
  for (char c : op) name += std::isalnum((unsigned char)c) ? c : '_';
  return name + "_" + e.workload.hash_hex().substr(0, 8);
}

std::string shapes(const std::vector<ir::Tensor> &ts) {
  std::string s;
  for (auto &t : ts) {
    s += (s.empty() ? "" : ", ") + t->name + " " + t->dtype.str() + "[";
    for (size_t d = 0; d < t->shape.size(); ++d) s += (d ? ", " : "") + std::to_string(t->shape[d]);
    s += "]" + std::string(t->is_constant ? " const" : "");
  }
  return s;
}

// lib<name>.a of one object per kernel, and the header of their C ABI.
Status write_cpu_library(const std::vector<codegen::LibraryKernel> &kernels, const Target &target,
                         const std::string &name, const fs::path &dir, const std::string &db_path) {
  std::vector<std::pair<std::string, std::string>> members;
  {
    ProgressBar bar("compiling");
    for (size_t i = 0; i < kernels.size(); ++i) {
      auto obj = codegen::library_object(kernels[i], target);
      if (!obj) return Status::error(kernels[i].name + ": " + obj.error());
      std::string file = kernels[i].name + ".o";
      if (Status s = write_file(dir / file, *obj); !s) return s;
      members.push_back({file, obj.take()});
      bar.update(double(i + 1) / double(kernels.size()));
    }
  }
  if (Status s = codegen::write_archive((dir / ("lib" + name + ".a")).string(), members); !s) return s;
  std::vector<std::string> doc = {"Target: " + target.str(),
                                  "Tessel " + version() + ", LLVM " + codegen::llvm_version()};
  if (!db_path.empty()) doc.push_back("Database: " + db_path);
  return write_file(dir / (name + ".h"), codegen::library_header(kernels, name, doc));
}

// One cubin per kernel, NAME_cuda.c (the cubins embedded, a launcher per kernel) and its header.
Status write_cuda_library(const std::vector<codegen::LibraryKernel> &kernels, const Target &target,
                          const std::string &name, const fs::path &dir) {
  std::vector<codegen::CudaLibraryKernel> cuda;
  {
    ProgressBar bar("compiling (NVRTC)");
    for (size_t i = 0; i < kernels.size(); ++i) {
      auto prog = codegen::compile_cuda_program(kernels[i].program, target);
      if (!prog) return Status::error(kernels[i].name + ": " + prog.error());
      if (!prog->over_limits.empty()) return Status::error(kernels[i].name + ": " + prog->over_limits);
      if (Status s = write_file(dir / (kernels[i].name + ".cubin"), prog->code.cubin); !s) return s;
      cuda.push_back(
          {kernels[i].name, prog.take(), kernels[i].program.inputs, kernels[i].program.outputs, kernels[i].doc});
      bar.update(double(i + 1) / double(kernels.size()));
    }
  }
  std::vector<std::string> doc = {"Target: " + target.str(), "Tessel " + version() + ", NVRTC"};
  if (Status s = write_file(dir / (name + ".h"), codegen::cuda_library_header(cuda, name, doc)); !s) return s;
  return write_file(dir / (name + "_cuda.c"), codegen::cuda_library_source(cuda, name));
}

} // namespace

int cmd_compile(const CompileOptions &o) {
  if (!codegen::is_c_identifier(o.name))
    return fail("--name '" + o.name + "' is not a C identifier (letters, digits, '_'; not starting with a digit)");
  if (o.threads < 1) return fail("--threads must be at least 1, got " + std::to_string(o.threads));
  auto target = Target::load(o.target);
  if (!target) return fail(target.error());
  auto entries = te::load_workloads(o.workloads);
  if (!entries) return fail(entries.error());
  if (!o.trace.empty() && (entries->size() != 1 || !o.db.empty()))
    return fail("--trace gives the schedule of exactly one workload and replaces the database: give one workload "
                "and no --db");
  if (!o.trace.empty() && o.require_tuned) return fail("--require-tuned asks for database records; --trace gives none");

  // The database: --db must exist; the default one is used when it exists.
  std::unique_ptr<db::Database> db;
  std::string db_path = database_path(o.db);
  if (o.trace.empty()) {
    if (fs::exists(db_path)) {
      db::OpenOptions ro;
      ro.read_only = true;
      auto opened = db::open_sqlite(db_path, ro);
      if (!opened) return fail(opened.error());
      db = opened.take();
    } else if (!o.db.empty() || o.require_tuned) {
      return fail("no tuning database at " + db_path + (o.db.empty() ? " (the default; give --db PATH)" : ""));
    } else {
      std::cerr << "tessel: warning: no tuning database at " << db_path
                << ": every kernel gets its default (untuned) schedule; tune first or give --db PATH\n";
    }
  }
  db::TargetKey key = db::target_key(*target, o.threads);
  std::cout << "target    " << target->str() << " (records tuned with " << o.threads << " thread"
            << (o.threads > 1 ? "s" : "") << ", " << (o.compatible ? "compatible targets accepted" : "exact target")
            << ")\n";
  if (target->is_cuda())
    std::cout << "cuda      kernels are compiled by NVRTC for " << target->gpu->arch << "; the launchers (" << o.name
              << "_cuda.c) need the CUDA toolkit's headers and -lcuda\n";
  else if (Status here = target->runnable_here(); !here)
    std::cout << "cross     " << here.message() << ": objects are emitted, not run\n";

  std::set<std::string> names;
  std::vector<codegen::LibraryKernel> kernels;
  nlohmann::json manifest_kernels = nlohmann::json::array();
  std::vector<std::string> refused;
  int tuned = 0;
  for (auto &e : *entries) {
    std::string name = symbol_for(o.name, e);
    if (!names.insert(name).second) {
      if (e.label.empty()) continue; // the same workload twice: one kernel
      return fail("two workloads are both labelled '" + e.label + "'");
    }
    nlohmann::json m = {{"name", name},
                        {"workload_key", e.workload.key},
                        {"workload_hash", e.workload.hash_hex()},
                        {"record_id", nullptr},
                        {"median_seconds", nullptr}};
    std::string schedule_line;
    std::optional<sched::Schedule> schedule;
    if (!o.trace.empty()) {
      std::ifstream in(o.trace);
      std::stringstream text;
      text << in.rdbuf();
      if (!in) return fail("cannot read trace file '" + o.trace + "'");
      auto s = sched::replay_json(e.workload, text.str());
      if (!s) return fail(o.trace + ": " + s.error());
      schedule = s.take();
      schedule_line = "schedule: trace file " + fs::path(o.trace).filename().string();
      m["source"] = "trace";
    } else if (db) {
      auto best =
          db::apply_best(*db, e.workload, key, o.compatible ? db::TargetMatch::Compatible : db::TargetMatch::Exact);
      if (best) {
        schedule = std::move(best->schedule);
        ++tuned;
        const db::Record &r = best->record;
        schedule_line = "schedule: record " + std::to_string(r.id) + " of " + fs::path(db_path).filename().string() +
                        ", " + human_seconds(r.median_seconds) + " median on " + r.target.cpu_model;
        m["source"] = "record";
        m["record_id"] = r.id;
        m["median_seconds"] = r.median_seconds;
        m["record_target"] = r.target.canonical;
        m["measured_on"] = r.target.cpu_model;
        if (!best->note.empty()) {
          m["note"] = best->note;
          std::cout << "note      " << name << ": " << best->note << "\n";
        }
      } else if (o.require_tuned) {
        refused.push_back(name + " (" + e.workload.key + "): " + best.error());
        continue;
      } else {
        std::cerr << "tessel: warning: " << name << ": " << best.error() << "; using the default schedule\n";
        m["note"] = best.error();
      }
    }
    if (!schedule) {
      auto untuned = sched::default_schedule_for(e.workload, *target, o.threads > 1);
      if (!untuned) return fail(name + ": " + untuned.error());
      schedule = untuned.take();
      schedule_line = "schedule: default (untuned)";
      m["source"] = "default";
    }
    auto lowered = lower::lower(*schedule, "impl");
    if (!lowered) return fail(name + ": " + lowered.error());
    kernels.push_back(
        {name,
         lowered.take(),
         {"workload " + e.workload.key + " (hash " + e.workload.hash_hex() + ")",
          "inputs: " + shapes(e.workload.inputs), "outputs: " + shapes(e.workload.outputs), schedule_line}});
    manifest_kernels.push_back(m);
  }
  if (!refused.empty()) {
    std::string msg = "--require-tuned: " + std::to_string(refused.size()) + " workload" +
                      (refused.size() == 1 ? " has" : "s have") + " no record that applies:";
    for (auto &r : refused) msg += "\n  " + r;
    return fail(msg + "\n(tune them on this target, or drop --require-tuned to build their default schedules)");
  }

  fs::path dir = o.output;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail("cannot create output directory " + dir.string() + ": " + ec.message());
  if (target->is_cuda()) {
    if (Status st = write_cuda_library(kernels, *target, o.name, dir); !st) return fail(st.message());
  } else {
    if (Status st = write_cpu_library(kernels, *target, o.name, dir, db ? db_path : ""); !st) return fail(st.message());
  }
  nlohmann::json manifest = {{"library", o.name},
                             {"tessel_version", version()},
                             {"llvm_version", codegen::llvm_version()},
                             {"kind", target->is_cuda() ? "cuda" : "cpu"},
                             {"target", {{"name", target->name}, {"triple", target->triple}, {"cpu", target->cpu}}},
                             {"target_key", key.canonical},
                             {"threads", o.threads},
                             {"database", db ? db_path : ""},
                             {"kernels", manifest_kernels}};
  if (Status s = write_file(dir / (o.name + ".json"), manifest.dump(2) + "\n"); !s) return fail(s.message());

  for (auto &m : manifest_kernels)
    std::cout << "kernel    " << pad_right(m["name"].get<std::string>(), 34)
              << (m["source"] == "record" ? "record " + std::to_string(m["record_id"].get<int64_t>()) + ", " +
                                                human_seconds(m["median_seconds"].get<double>())
                                          : m["source"].get<std::string>())
              << "  " << m["workload_key"].get<std::string>() << "\n";
  std::string main_file = target->is_cuda() ? o.name + "_cuda.c" : "lib" + o.name + ".a";
  std::cout << "wrote     " << (dir / main_file).string() << ", " << (dir / (o.name + ".h")).string() << ", "
            << (dir / (o.name + ".json")).string() << " and " << kernels.size()
            << (target->is_cuda() ? " cubin" : " object") << (kernels.size() == 1 ? "" : "s") << " (" << tuned
            << " tuned, " << kernels.size() - size_t(tuned) << " default)\n";
  return 0;
}

} // namespace tessel::cli
