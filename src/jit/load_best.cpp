#include "jit/load_best.h"

#include "codegen/cpu_compiler.h"
#include "db/database.h"
#include "interp/interpreter.h"
#include "runtime/runtime.h"
#include "support/hash.h"
#include "support/version.h"
#include "te/ops.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

namespace tessel {

namespace fs = std::filesystem;

struct Kernel::Impl {
  codegen::CompiledProgram program;
  std::string workload_key, note, target;
  int64_t record_id = 0;
  double record_seconds = 0;
  int threads = 1;
  bool from_cache = false;
  size_t inputs = 0, outputs = 0;
  std::vector<bool> constant;            // per input
  std::vector<const void *> packed_from; // per input: the pointer last packed
  std::mutex mu;
};

namespace {

std::string cache_root(const std::string &dir) {
  if (!dir.empty()) return dir;
  if (const char *d = std::getenv("TESSEL_CACHE_DIR"); d && *d) return d;
  if (const char *d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/tessel";
  if (const char *h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/tessel";
  return (fs::temp_directory_path() / "tessel-cache").string();
}

std::string read_file(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return in ? s.str() : std::string();
}

// Written beside and renamed: concurrent processes never read half an entry.
void write_file(const fs::path &p, const std::string &bytes) {
  fs::path tmp = p;
  tmp += "." + std::to_string(getpid()) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << bytes;
    if (!out.flush()) return; // a cache that cannot be written is only slower
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  if (ec) fs::remove(tmp, ec);
}

std::string code_to_json(const codegen::ObjectCode &c) {
  nlohmann::json j = {{"kernel", c.kernel}, {"packs", nlohmann::json::array()}, {"args", nlohmann::json::array()}};
  for (auto &p : c.packs) j["packs"].push_back({{"symbol", p.symbol}, {"input", p.input}, {"bytes", p.bytes}});
  for (auto &[src, idx] : c.args) j["args"].push_back({int(src), idx});
  return j.dump();
}

bool code_from_json(const std::string &text, codegen::ObjectCode &c) {
  try {
    auto j = nlohmann::json::parse(text);
    c.kernel = j.at("kernel").get<std::string>();
    for (auto &p : j.at("packs")) c.packs.push_back({p.at("symbol"), p.at("input"), p.at("bytes")});
    for (auto &a : j.at("args"))
      c.args.push_back({codegen::ObjectCode::Source(a.at(0).get<int>()), a.at(1).get<int>()});
    return true;
  } catch (const std::exception &) {
    return false;
  }
}

} // namespace

Expected<Kernel> load_best(const std::string &db_path, const std::string &workload, const std::string &target_name,
                           LoadOptions options) {
  if (options.threads < 1) return make_error("load_best: threads must be at least 1");
  auto w = te::load_workload(workload);
  if (!w) return make_error(w.error());
  auto target = Target::load(target_name);
  if (!target) return make_error(target.error());
  if (Status here = target->runnable_here(); !here) return make_error("load_best: " + here.message());

  auto impl = std::make_shared<Kernel::Impl>();
  impl->workload_key = w->key;
  impl->threads = options.threads;
  impl->target = target->name;
  std::optional<sched::Schedule> schedule;
  std::string identity; // what the compiled object depends on, besides versions and target
  std::error_code ec;
  if (!fs::exists(db_path, ec)) {
    impl->note = "no tuning database at " + db_path;
  } else {
    db::OpenOptions ro;
    ro.read_only = true;
    auto db = db::open_sqlite(db_path, ro);
    if (!db) return make_error(db.error());
    auto best = db::apply_best(**db, *w, db::target_key(*target, options.threads),
                               options.compatible ? db::TargetMatch::Compatible : db::TargetMatch::Exact);
    if (best) {
      impl->record_id = best->record.id;
      impl->record_seconds = best->record.median_seconds;
      impl->note = best->note;
      identity = "record " + std::to_string(best->record.id) + "\n" + best->record.trace_json;
      schedule = std::move(best->schedule);
    } else {
      impl->note = best.error();
    }
  }
  if (!schedule) {
    if (!options.allow_default)
      return make_error("load_best: " + impl->note + " (tune it, or set LoadOptions::allow_default)");
    schedule = sched::default_schedule(*w, options.threads > 1);
    identity = "default schedule";
  }
  auto lowered = lower::lower(*schedule, "tessel_jit_kernel");
  if (!lowered) return make_error(lowered.error());
  impl->inputs = lowered->inputs.size();
  impl->outputs = lowered->outputs.size();
  for (auto &t : lowered->inputs) impl->constant.push_back(t->is_constant);
  impl->packed_from.assign(impl->inputs, nullptr);

  fs::path dir = cache_root(options.cache_dir);
  std::string key = hex16(fnv1a(identity + "\n" + w->hash_hex() + "\n" + target->to_json() + "\n" + version() + "\n" +
                                codegen::llvm_version()));
  fs::path object_path = dir / (key + ".o"), meta_path = dir / (key + ".json");
  codegen::ObjectCode code;
  std::string cached = read_file(object_path);
  if (!cached.empty() && code_from_json(read_file(meta_path), code)) {
    code.object = std::move(cached);
    if (auto p = codegen::load_object(code, *target)) {
      impl->program = p.take();
      impl->from_cache = true;
    }
  }
  if (!impl->from_cache) {
    auto compiled = codegen::compile_object(*lowered, *target);
    if (!compiled) return make_error(compiled.error());
    auto p = codegen::load_object(*compiled, *target);
    if (!p) return make_error(p.error());
    impl->program = p.take();
    fs::create_directories(dir, ec);
    if (!ec) {
      write_file(object_path, compiled->object);
      write_file(meta_path, code_to_json(*compiled));
    }
  }
  Kernel k;
  k.impl_ = impl;
  return k;
}

Status Kernel::operator()(const std::vector<void *> &buffers) const {
  if (!impl_) return Status::error("tessel::Kernel: not loaded (use the value load_best returned)");
  Impl &k = *impl_;
  if (buffers.size() != k.inputs + k.outputs)
    return Status::error("tessel::Kernel " + k.workload_key + ": got " + std::to_string(buffers.size()) +
                         " buffers, expected " + std::to_string(k.inputs) + " inputs then " +
                         std::to_string(k.outputs) + " outputs");
  for (size_t i = 0; i < buffers.size(); ++i)
    if (!buffers[i])
      return Status::error("tessel::Kernel " + k.workload_key + ": buffer " + std::to_string(i) + " is null");
  std::vector<void *> in(buffers.begin(), buffers.begin() + long(k.inputs)),
      out(buffers.begin() + long(k.inputs), buffers.end());
  std::lock_guard<std::mutex> lock(k.mu);
  tessel_set_num_threads(k.threads);
  bool repack = false;
  for (size_t i = 0; i < k.inputs; ++i) repack |= k.constant[i] && k.packed_from[i] != in[i];
  if (repack || !k.program.has_prepack()) {
    k.program.pack(in);
    for (size_t i = 0; i < k.inputs; ++i) k.packed_from[i] = in[i];
  }
  k.program.run(in, out);
  return Status::ok();
}

const std::string &Kernel::workload_key() const { return impl_->workload_key; }
int64_t Kernel::record_id() const { return impl_->record_id; }
double Kernel::record_seconds() const { return impl_->record_seconds; }
bool Kernel::from_cache() const { return impl_->from_cache; }
const std::string &Kernel::note() const { return impl_->note; }
std::string Kernel::describe() const {
  if (!impl_) return "tessel::Kernel (not loaded)";
  std::string s = impl_->workload_key + " on " + impl_->target + ": " +
                  (impl_->record_id ? "record " + std::to_string(impl_->record_id) : std::string("default schedule")) +
                  (impl_->from_cache ? " (cached)" : " (compiled)");
  return impl_->note.empty() ? s : s + "; " + impl_->note;
}

Status reference(const std::string &workload, const std::vector<const void *> &inputs,
                 const std::vector<void *> &outputs) {
  auto w = te::load_workload(workload);
  if (!w) return Status::error(w.error());
  if (inputs.size() != w->inputs.size() || outputs.size() != w->outputs.size())
    return Status::error("tessel::reference " + w->key + ": expected " + std::to_string(w->inputs.size()) +
                         " inputs and " + std::to_string(w->outputs.size()) + " outputs");
  std::vector<interp::NDArray> in;
  for (size_t i = 0; i < inputs.size(); ++i) {
    in.emplace_back(w->inputs[i]->shape, w->inputs[i]->dtype);
    std::memcpy(in.back().data(), inputs[i], size_t(in.back().bytes()));
  }
  auto out = interp::interpret(*w, in);
  if (!out) return Status::error(out.error());
  for (size_t o = 0; o < outputs.size(); ++o) std::memcpy(outputs[o], (*out)[o].data(), size_t((*out)[o].bytes()));
  return Status::ok();
}

} // namespace tessel
