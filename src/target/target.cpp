#include "target/target.h"

#include "support/amx.h"

#include <llvm/ADT/SmallVector.h>
#include <llvm/ADT/StringMap.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>
#include <llvm/TargetParser/X86TargetParser.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

namespace tessel {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---------------------------------------------------------------------------
// Small helpers: splitting, suggestions, LLVM tables.

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    if (end > start) out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string join(const std::vector<std::string> &v, std::string_view sep) {
  std::string out;
  for (auto &s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for the closest candidate, or "" when nothing is close enough to be a typo.
template <typename Range>
std::string did_you_mean(std::string_view word, const Range &candidates, std::string_view prefix = "") {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto &c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = std::string(c);
  }
  // A third of the word (at least 2 edits) separates typos from different words.
  if (best.empty() || best_d == 0 || best_d > std::max<size_t>(2, word.size() / 3)) return "";
  return " (did you mean '" + std::string(prefix) + best + "'?)";
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

// LLVM's target registry, so triples, CPU names and features can be checked against the LLVM we compile with.
void init_llvm_targets() {
  static const bool done = [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargetMCs();
    return true;
  }();
  (void)done;
}

bool x86_cpu_known(const std::string &cpu) {
  return !cpu.empty() && llvm::X86::parseArchX86(cpu) != llvm::X86::CK_None;
}

// x86 ISA features LLVM's target parser knows (what clang's -m flags map to).
bool x86_feature_known(const std::string &f) {
  llvm::StringMap<bool> m;
  llvm::X86::updateImpliedFeatures(f, false, m); // disabling marks the feature itself; unknown ones mark nothing
  return m.count(f) > 0;
}

// Tuning flags (not ISA) live only in the X86 back end's tables, which LLVM 16 does not expose.
bool x86_tuning_flag(const std::string &f) {
  for (const char *p : {"prefer-", "fast-", "slow-", "tuning-", "false-deps-"})
    if (f.rfind(p, 0) == 0) return true;
  return false;
}

// Every x86 feature some CPU has, for suggestions.
const std::vector<std::string> &x86_feature_names() {
  static const std::vector<std::string> names = [] {
    llvm::SmallVector<llvm::StringRef, 64> cpus;
    llvm::X86::fillValidCPUArchList(cpus, /*Only64Bit=*/false);
    llvm::StringMap<bool> m;
    for (auto cpu : cpus) {
      llvm::SmallVector<llvm::StringRef, 64> fs;
      llvm::X86::getFeaturesForCPU(cpu, fs);
      for (auto f : fs) {
        m[f] = true;
        llvm::X86::updateImpliedFeatures(f, true, m);
      }
    }
    std::vector<std::string> v;
    for (auto &e : m) v.push_back(e.first().str());
    std::sort(v.begin(), v.end());
    return v;
  }();
  return names;
}

std::vector<std::string> x86_cpu_names() {
  llvm::SmallVector<llvm::StringRef, 64> cpus;
  llvm::X86::fillValidCPUArchList(cpus, /*Only64Bit=*/false);
  std::vector<std::string> v;
  for (auto c : cpus) v.push_back(c.str());
  return v;
}

// ---------------------------------------------------------------------------
// Host cache sizes.

int64_t parse_sysfs_size(std::string s) { // "48K", "2048K", "32M"
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.empty()) return 0;
  int64_t mult = 1;
  char u = s.back();
  if (u == 'K' || u == 'M' || u == 'G') {
    mult = u == 'K' ? 1024 : u == 'M' ? 1024 * 1024 : 1024LL * 1024 * 1024;
    s.pop_back();
  }
  char *end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  return end && *end == '\0' && v > 0 ? v * mult : 0;
}

std::string read_small_file(const fs::path &p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

// Size in bytes of cpu0's cache at `level` ("Data" or "Unified" type), from sysfs; 0 if unknown.
int64_t sysfs_cache_bytes(int level) {
  std::error_code ec;
  fs::path base = "/sys/devices/system/cpu/cpu0/cache";
  if (!fs::is_directory(base, ec)) return 0;
  for (auto it = fs::directory_iterator(base, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (it->path().filename().string().rfind("index", 0) != 0) continue;
    if (read_small_file(it->path() / "level") != std::to_string(level)) continue;
    std::string type = read_small_file(it->path() / "type");
    if (type != "Data" && type != "Unified") continue;
    return parse_sysfs_size(read_small_file(it->path() / "size"));
  }
  return 0;
}

int64_t host_cache_bytes(int level, int64_t fallback) {
  long v = -1;
  // glibc answers these from CPUID on x86; elsewhere it often says 0, hence sysfs next.
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
  v = sysconf(level == 1 ? _SC_LEVEL1_DCACHE_SIZE : level == 2 ? _SC_LEVEL2_CACHE_SIZE : _SC_LEVEL3_CACHE_SIZE);
#endif
  if (v > 0) return v;
  if (int64_t s = sysfs_cache_bytes(level)) return s;
  return fallback;
}

// ---------------------------------------------------------------------------
// Config reading. Inside the reader errors are thrown (tessel::Error) and load() turns them into values.

constexpr const char *kCpuFieldList = "triple, cpu, vector_bits, cores, fma_units, l1d_bytes, l2_bytes, l3_bytes";

const std::vector<std::string> kCommonFields = {"name", "kind", "description", "triple", "cpu", "features"};
const std::vector<std::string> kCpuOnlyFields = {"vector_bits", "cores", "fma_units", "l1d_bytes", "l3_bytes"};
const std::vector<std::string> kGpuFields = {"arch",
                                             "sm_count",
                                             "max_threads_per_block",
                                             "max_threads_per_sm",
                                             "max_blocks_per_sm",
                                             "warp_size",
                                             "shared_memory_per_block",
                                             "shared_memory_per_sm",
                                             "registers_per_sm",
                                             "max_registers_per_thread",
                                             "tensor_cores"};
const std::vector<std::string> kTensorCoreFields = {"m", "n", "k", "a_dtype", "c_dtype"};

// Input and accumulator types of warp-level MMA (PTX ISA "Matrix multiply-accumulate" / CUDA WMMA).
const std::map<std::string, std::vector<std::string>> kTensorCoreAccumulators = {
    {"f16", {"f16", "f32"}}, {"bf16", {"f32"}},        {"tf32", {"f32"}},       {"f64", {"f64"}},
    {"i8", {"i32"}},         {"u8", {"i32"}},          {"i4", {"i32"}},         {"u4", {"i32"}},
    {"b1", {"i32"}},         {"e4m3", {"f16", "f32"}}, {"e5m2", {"f16", "f32"}}};

std::string type_name(const json &v) {
  switch (v.type()) {
  case json::value_t::null: return "null";
  case json::value_t::boolean: return "a boolean";
  case json::value_t::number_integer:
  case json::value_t::number_unsigned: return "an integer";
  case json::value_t::number_float: return "a non-integer number";
  case json::value_t::string: return "a string";
  case json::value_t::array: return "an array";
  case json::value_t::object: return "an object";
  default: return "something else";
  }
}

std::string show(const json &v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 48 ? s.substr(0, 45) + "..." : s;
}

class Reader {
public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string &msg) const { throw Error(msg); }
  // "field 'gpu.sm_count' in x.json"
  std::string field(const std::string &path) const { return "field '" + path + "' in " + file_; }
  const std::string &file() const { return file_; }

  // Rejects keys outside `allowed`; `elsewhere` maps keys valid for the other kind to why they are wrong here.
  void check_fields(const json &obj, const std::string &prefix, const std::vector<std::string> &allowed,
                    const std::map<std::string, std::string> &elsewhere = {}) const {
    for (auto &[key, _] : obj.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      if (auto it = elsewhere.find(key); it != elsewhere.end()) fail(field(prefix + key) + " " + it->second);
      fail("unknown field '" + prefix + key + "' in " + file_ + did_you_mean(key, allowed, prefix));
    }
  }

  const json *find(const json &obj, const std::string &key) const {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  const json &require(const json &obj, const std::string &prefix, const std::string &key,
                      const std::string &why) const {
    const json *v = find(obj, key);
    if (!v) fail("missing required field '" + prefix + key + "' in " + file_ + why);
    return *v;
  }

  std::string string_value(const json &v, const std::string &path) const {
    if (!v.is_string()) fail(field(path) + " must be a string, got " + type_name(v) + " " + show(v));
    return v.get<std::string>();
  }

  // A positive integer no larger than `max`; JSON floats (even 512.0) are rejected so units stay exact.
  int64_t positive(const json &v, const std::string &path, int64_t max, const char *unit = "") const {
    if (!v.is_number_integer() && !v.is_number_unsigned())
      fail(field(path) + " must be a positive integer" + unit + ", got " + type_name(v) + " " + show(v));
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(max))
      fail(field(path) + " is too large: " + show(v) + " (at most " + std::to_string(max) + ")");
    int64_t x = v.get<int64_t>();
    if (x <= 0) fail(field(path) + " must be a positive integer" + unit + ", got " + std::to_string(x));
    if (x > max) fail(field(path) + " is too large: " + std::to_string(x) + " (at most " + std::to_string(max) + ")");
    return x;
  }

private:
  std::string file_;
};

constexpr int64_t kMaxInt = INT_MAX;
constexpr int64_t kMaxBytes = int64_t(1) << 50; // 1 PiB: anything above is a typo, not a cache

// Parses text as JSON, reporting duplicate keys (nlohmann silently keeps the last) and positions of syntax errors.
json parse_json(const std::string &text, const Reader &r) {
  struct Level {
    std::set<std::string> keys;
    std::string current;
  };
  std::vector<Level> stack;
  std::string duplicate;
  auto cb = [&](int, json::parse_event_t ev, json &parsed) {
    if (ev == json::parse_event_t::object_start)
      stack.emplace_back();
    else if (ev == json::parse_event_t::object_end && !stack.empty())
      stack.pop_back();
    else if (ev == json::parse_event_t::key && !stack.empty() && parsed.is_string()) {
      std::string key = parsed.get<std::string>();
      if (!stack.back().keys.insert(key).second && duplicate.empty()) {
        for (size_t i = 0; i + 1 < stack.size(); ++i) duplicate += stack[i].current + ".";
        duplicate += key;
      }
      stack.back().current = key;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text, cb);
  } catch (const json::parse_error &e) {
    // e.byte counts bytes read including the offending one; turn it into an editor's line:column.
    size_t idx = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    size_t line = 1, line_start = 0;
    for (size_t i = 0; i < idx; ++i)
      if (text[i] == '\n') ++line, line_start = i + 1;
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 2: " prefix.
    if (size_t col = what.find("column "); col != std::string::npos)
      if (size_t colon = what.find(": ", col); colon != std::string::npos) what = what.substr(colon + 2);
    r.fail("malformed JSON in " + r.file() + " at line " + std::to_string(line) + ", column " +
           std::to_string(idx - line_start + 1) + ": " + what);
  }
  if (!duplicate.empty())
    r.fail("duplicate field '" + duplicate + "' in " + r.file() + " (each field may appear once)");
  return doc;
}

// Checks triple, cpu and features against LLVM; fills defaults for CUDA.
void check_llvm_names(Target &t, const Reader &r, bool features_given) {
  llvm::Triple triple(t.triple);
  if (triple.getArch() == llvm::Triple::UnknownArch)
    r.fail(r.field("triple") + ": '" + t.triple + "' names no architecture LLVM knows (e.g. x86_64-pc-linux-gnu, " +
           "aarch64-unknown-linux-gnu, nvptx64-nvidia-cuda)");
  if (t.is_cuda() && !triple.isNVPTX())
    r.fail(r.field("triple") + ": a cuda target's triple must be nvptx64-nvidia-cuda, got '" + t.triple + "'");
  if (t.is_cpu() && triple.isNVPTX())
    r.fail(r.field("triple") + ": '" + t.triple + "' is a GPU triple; write \"kind\": \"cuda\" with a \"gpu\" block");

  if (triple.isX86()) {
    if (!x86_cpu_known(t.cpu))
      r.fail(r.field("cpu") + ": LLVM knows no x86 CPU '" + t.cpu + "'" + did_you_mean(t.cpu, x86_cpu_names()) +
             " (e.g. x86-64-v3, x86-64-v4, skylake-avx512, sapphirerapids, znver4)");
  } else {
    // Other architectures: ask the target's subtarget table when this LLVM has the target.
    init_llvm_targets();
    std::string err;
    if (const llvm::Target *lt = llvm::TargetRegistry::lookupTarget(t.triple, err)) {
      std::unique_ptr<llvm::MCSubtargetInfo> sti(lt->createMCSubtargetInfo(t.triple, "", ""));
      if (sti && !t.cpu.empty() && !sti->isCPUStringValid(t.cpu))
        r.fail(r.field("cpu") + ": LLVM knows no CPU '" + t.cpu + "' for " + t.triple);
    }
  }
  if (triple.isX86() && features_given)
    for (auto &f : split(t.features, ',')) {
      std::string name = f.substr(1);
      if (!x86_feature_known(name) && !x86_tuning_flag(name))
        r.fail(r.field("features") + ": LLVM knows no x86 feature '" + name + "'" +
               did_you_mean(name, x86_feature_names()));
    }
}

std::vector<std::string> read_features(const json &v, const Reader &r) {
  if (!v.is_array())
    r.fail(r.field("features") + " must be an array of strings like [\"+avx2\", \"+fma\"], got " + type_name(v));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string path = "features[" + std::to_string(i) + "]";
    std::string f = r.string_value(v[i], path);
    // A bare name means enabled, as in clang's -m flags; LLVM itself needs the sign.
    if (!f.empty() && f[0] != '+' && f[0] != '-') f = "+" + f;
    std::string name = f.substr(1);
    bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    });
    if (!ok) r.fail(r.field(path) + ": '" + f + "' is not a feature name; write \"+name\" or \"-name\" (lower case)");
    out.push_back(f);
  }
  return out;
}

void read_cpu_fields(const json &doc, Target &t, const Reader &r) {
  const std::string why = std::string(" (a cpu target needs: ") + kCpuFieldList + ")";
  t.vector_bits = int(r.positive(r.require(doc, "", "vector_bits", why), "vector_bits", 2048, " (bits)"));
  if ((t.vector_bits & (t.vector_bits - 1)) != 0 || t.vector_bits < 64)
    r.fail(r.field("vector_bits") + " must be a power of two from 64 to 2048 (bits, not bytes), got " +
           std::to_string(t.vector_bits));
  t.cores = int(r.positive(r.require(doc, "", "cores", why), "cores", 1 << 20));
  t.fma_units = int(r.positive(r.require(doc, "", "fma_units", why), "fma_units", 16));
  t.l1d_bytes = r.positive(r.require(doc, "", "l1d_bytes", why), "l1d_bytes", kMaxBytes, " (bytes)");
  t.l2_bytes = r.positive(r.require(doc, "", "l2_bytes", why), "l2_bytes", kMaxBytes, " (bytes)");
  t.l3_bytes = r.positive(r.require(doc, "", "l3_bytes", why), "l3_bytes", kMaxBytes, " (bytes)");
}

TensorCoreShape read_tensor_core(const json &v, const std::string &prefix, const Reader &r) {
  std::string at = prefix.substr(0, prefix.size() - 1);
  if (!v.is_object())
    r.fail(r.field(at) + " must be an object like {\"m\": 16, \"n\": 16, \"k\": 16, \"a_dtype\": \"f16\", " +
           "\"c_dtype\": \"f32\"}, got " + type_name(v));
  r.check_fields(v, prefix, kTensorCoreFields);
  const std::string why = " (a tensor core shape needs m, n, k, a_dtype, c_dtype)";
  TensorCoreShape s;
  s.m = int(r.positive(r.require(v, prefix, "m", why), prefix + "m", 1024));
  s.n = int(r.positive(r.require(v, prefix, "n", why), prefix + "n", 1024));
  s.k = int(r.positive(r.require(v, prefix, "k", why), prefix + "k", 1024));
  s.a_dtype = r.string_value(r.require(v, prefix, "a_dtype", why), prefix + "a_dtype");
  s.c_dtype = r.string_value(r.require(v, prefix, "c_dtype", why), prefix + "c_dtype");
  std::vector<std::string> inputs;
  for (auto &[a, _] : kTensorCoreAccumulators) inputs.push_back(a);
  auto acc = kTensorCoreAccumulators.find(s.a_dtype);
  if (acc == kTensorCoreAccumulators.end())
    r.fail(r.field(prefix + "a_dtype") + ": unknown input dtype '" + s.a_dtype + "'" + did_you_mean(s.a_dtype, inputs) +
           "; known: " + join(inputs, ", "));
  if (std::find(acc->second.begin(), acc->second.end(), s.c_dtype) == acc->second.end())
    r.fail(r.field(prefix + "c_dtype") + ": " + s.a_dtype + " inputs accumulate in " + join(acc->second, " or ") +
           ", not '" + s.c_dtype + "'");
  return s;
}

GpuLimits read_gpu(const json &v, const Reader &r) {
  if (!v.is_object()) r.fail(r.field("gpu") + " must be an object with the device limits, got " + type_name(v));
  r.check_fields(v, "gpu.", kGpuFields);
  const std::string why = " (the gpu block needs every limit; see configs/targets/README.md)";
  auto need = [&](const char *key) -> const json & { return r.require(v, "gpu.", key, why); };
  GpuLimits g;
  g.arch = r.string_value(need("arch"), "gpu.arch");
  bool arch_ok = g.arch.size() > 3 && g.arch.rfind("sm_", 0) == 0 &&
                 std::all_of(g.arch.begin() + 3, g.arch.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!arch_ok) r.fail(r.field("gpu.arch") + " must name a compute capability like \"sm_90\", got '" + g.arch + "'");
  g.sm_count = int(r.positive(need("sm_count"), "gpu.sm_count", kMaxInt));
  g.max_threads_per_block = int(r.positive(need("max_threads_per_block"), "gpu.max_threads_per_block", kMaxInt));
  g.max_threads_per_sm = int(r.positive(need("max_threads_per_sm"), "gpu.max_threads_per_sm", kMaxInt));
  g.max_blocks_per_sm = int(r.positive(need("max_blocks_per_sm"), "gpu.max_blocks_per_sm", kMaxInt));
  g.warp_size = int(r.positive(need("warp_size"), "gpu.warp_size", kMaxInt));
  g.shared_memory_per_block =
      r.positive(need("shared_memory_per_block"), "gpu.shared_memory_per_block", kMaxBytes, " (bytes)");
  g.shared_memory_per_sm = r.positive(need("shared_memory_per_sm"), "gpu.shared_memory_per_sm", kMaxBytes, " (bytes)");
  g.registers_per_sm = int(r.positive(need("registers_per_sm"), "gpu.registers_per_sm", kMaxInt));
  g.max_registers_per_thread =
      int(r.positive(need("max_registers_per_thread"), "gpu.max_registers_per_thread", kMaxInt));

  // Limits that contradict each other would let the schedule space propose launches no device accepts.
  if (g.warp_size != 32)
    r.fail(r.field("gpu.warp_size") + " must be 32 (every CUDA GPU), got " + std::to_string(g.warp_size));
  if (g.max_threads_per_block > g.max_threads_per_sm)
    r.fail(r.field("gpu.max_threads_per_block") + " (" + std::to_string(g.max_threads_per_block) +
           ") exceeds 'gpu.max_threads_per_sm' (" + std::to_string(g.max_threads_per_sm) + ")");
  if (g.max_threads_per_block % g.warp_size != 0)
    r.fail(r.field("gpu.max_threads_per_block") + " (" + std::to_string(g.max_threads_per_block) +
           ") must be a multiple of 'gpu.warp_size' (" + std::to_string(g.warp_size) + ")");
  if (g.shared_memory_per_block > g.shared_memory_per_sm)
    r.fail(r.field("gpu.shared_memory_per_block") + " (" + std::to_string(g.shared_memory_per_block) +
           " bytes) exceeds 'gpu.shared_memory_per_sm' (" + std::to_string(g.shared_memory_per_sm) + " bytes)");
  if (g.max_registers_per_thread > g.registers_per_sm)
    r.fail(r.field("gpu.max_registers_per_thread") + " (" + std::to_string(g.max_registers_per_thread) +
           ") exceeds 'gpu.registers_per_sm' (" + std::to_string(g.registers_per_sm) + ")");

  if (const json *tc = r.find(v, "tensor_cores")) {
    if (!tc->is_array()) r.fail(r.field("gpu.tensor_cores") + " must be an array of shapes, got " + type_name(*tc));
    for (size_t i = 0; i < tc->size(); ++i) {
      std::string prefix = "gpu.tensor_cores[" + std::to_string(i) + "].";
      TensorCoreShape s = read_tensor_core((*tc)[i], prefix, r);
      if (std::find(g.tensor_cores.begin(), g.tensor_cores.end(), s) != g.tensor_cores.end())
        r.fail(r.field(prefix.substr(0, prefix.size() - 1)) + " repeats " + s.str());
      g.tensor_cores.push_back(std::move(s));
    }
  }
  return g;
}

// `expected_name`: the name load() looked up (the file's stem), or "" when loading by path.
Target read_target(const std::string &text, const std::string &file, const std::string &expected_name) {
  Reader r(file);
  json doc = parse_json(text, r);
  if (!doc.is_object())
    r.fail(file + " must hold one JSON object ({\"name\": ..., \"kind\": ...}), got " + type_name(doc));

  Target t;
  const json *kind = r.find(doc, "kind");
  if (!kind) r.fail("missing required field 'kind' in " + file + " (\"cpu\" or \"cuda\")");
  t.kind = r.string_value(*kind, "kind");
  if (!t.is_cpu() && !t.is_cuda())
    r.fail("unknown kind '" + t.kind + "' in " + file + ": field 'kind' must be \"cpu\" or \"cuda\"");

  std::vector<std::string> allowed = kCommonFields;
  std::map<std::string, std::string> elsewhere;
  allowed.push_back("l2_bytes");
  if (t.is_cpu()) {
    allowed.insert(allowed.end(), kCpuOnlyFields.begin(), kCpuOnlyFields.end());
    elsewhere["gpu"] = "applies only to cuda targets, but kind is 'cpu'";
  } else {
    allowed.push_back("gpu");
    for (auto &f : kCpuOnlyFields) elsewhere[f] = "applies only to cpu targets, but kind is 'cuda'";
  }
  r.check_fields(doc, "", allowed, elsewhere);

  std::string stem = fs::path(file).stem().string();
  t.name = stem;
  if (const json *n = r.find(doc, "name")) {
    t.name = r.string_value(*n, "name");
    if (!valid_name(t.name))
      r.fail(r.field("name") + " must be letters, digits, '-', '_' or '.' (not starting with '.'), got '" + t.name +
             "'");
    if (!expected_name.empty() && t.name != expected_name)
      r.fail(r.field("name") + " is '" + t.name + "' but the file is " + expected_name +
             ".json; load() finds targets by file name, so make them agree");
  }
  if (const json *d = r.find(doc, "description")) t.description = r.string_value(*d, "description");

  const json *features = r.find(doc, "features");
  if (features) t.features = join(read_features(*features, r), ",");

  if (t.is_cpu()) {
    const std::string why = std::string(" (a cpu target needs: ") + kCpuFieldList + ")";
    t.triple = r.string_value(r.require(doc, "", "triple", why), "triple");
    t.cpu = r.string_value(r.require(doc, "", "cpu", why), "cpu");
    read_cpu_fields(doc, t, r);
  } else {
    const json *g = r.find(doc, "gpu");
    if (!g)
      r.fail("missing required field 'gpu' in " + file +
             ": a cuda target needs a \"gpu\": {...} block with its limits (see configs/targets/README.md)");
    t.gpu = read_gpu(*g, r);
    // The triple and CPU of a CUDA target follow from its architecture; writing them is optional.
    t.triple = "nvptx64-nvidia-cuda";
    if (const json *tr = r.find(doc, "triple")) t.triple = r.string_value(*tr, "triple");
    t.cpu = t.gpu->arch;
    if (const json *c = r.find(doc, "cpu")) {
      t.cpu = r.string_value(*c, "cpu");
      if (t.cpu != t.gpu->arch)
        r.fail(r.field("cpu") + " ('" + t.cpu + "') disagrees with 'gpu.arch' ('" + t.gpu->arch + "')");
    }
    const std::string why = " (a cuda target needs the device's L2 size)";
    t.l2_bytes = r.positive(r.require(doc, "", "l2_bytes", why), "l2_bytes", kMaxBytes, " (bytes)");
  }
  check_llvm_names(t, r, features != nullptr);
  t.derive_isa();

  // Vectors wider than the ISA would be split by LLVM: correct but never what the config author meant.
  if (t.is_cpu() && llvm::Triple(t.triple).isX86()) {
    if (t.vector_bits >= 512 && !t.has_feature("avx512f"))
      r.fail(r.field("vector_bits") + " is " + std::to_string(t.vector_bits) +
             " but the target lacks avx512f; add \"+avx512f\" to features or use 256");
    if (t.vector_bits == 256 && !t.has_feature("avx"))
      r.fail(r.field("vector_bits") + " is 256 but the target lacks avx; add \"+avx2\" to features or use 128");
  }
  return t;
}

std::optional<std::string> read_text(const fs::path &p, std::string &error) {
  std::error_code ec;
  if (!fs::exists(p, ec)) {
    error = "target file '" + p.string() + "' does not exist";
    return std::nullopt;
  }
  if (fs::is_directory(p, ec)) {
    error = "target file '" + p.string() + "' is a directory";
    return std::nullopt;
  }
  auto size = fs::file_size(p, ec);
  // Target files are a few KiB; a huge one is a mistake (wrong path), not a target.
  if (!ec && size > (1u << 20)) {
    error = "target file '" + p.string() + "' is " + std::to_string(size) + " bytes; target files are under 1 MiB";
    return std::nullopt;
  }
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    error = "cannot read target file '" + p.string() + "'";
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Expected<Target> load_file(const fs::path &p, const std::string &expected_name) {
  std::string error;
  auto text = read_text(p, error);
  if (!text) return make_error(error);
  return catch_errors([&] { return read_target(*text, p.string(), expected_name); });
}

std::string json_string(const std::string &s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

// `"key": [a, b, ...]` on one line when it fits in 120 columns, else wrapped.
std::string json_array(const std::string &indent, const std::string &key, const std::vector<std::string> &items) {
  std::string one = indent + json_string(key) + ": [" + join(items, ", ") + "]";
  if (one.size() <= 118 || items.empty()) return one;
  std::string out = indent + json_string(key) + ": [\n";
  std::string line = indent + "  ";
  for (size_t i = 0; i < items.size(); ++i) {
    std::string item = items[i] + (i + 1 < items.size() ? "," : "");
    if (line.size() + item.size() + 1 > 118 && line.size() > indent.size() + 2) {
      out += line + "\n";
      line = indent + "  ";
    }
    line += (line.size() > indent.size() + 2 ? " " : "") + item;
  }
  return out + line + "\n" + indent + "]";
}

} // namespace

// ---------------------------------------------------------------------------

std::string TensorCoreShape::str() const {
  return "m" + std::to_string(m) + "n" + std::to_string(n) + "k" + std::to_string(k) + " " + a_dtype + "->" + c_dtype;
}

bool Target::has_feature(std::string_view f) const {
  if (f.empty()) return false;
  for (auto &tok : split(features, ','))
    if (tok.size() == f.size() + 1 && tok[0] == '+' && std::string_view(tok).substr(1) == f) return true;
  return std::binary_search(isa.begin(), isa.end(), f, std::less<>());
}

void Target::derive_isa() {
  llvm::StringMap<bool> on;
  bool x86 = llvm::Triple(triple).isX86();
  // On x86 the CPU name and each feature imply others (avx512bw -> avx512f -> avx2 ...): LLVM's tables say which.
  if (x86 && x86_cpu_known(cpu)) {
    llvm::SmallVector<llvm::StringRef, 64> fs;
    llvm::X86::getFeaturesForCPU(cpu, fs);
    for (auto f : fs) {
      on[f] = true;
      llvm::X86::updateImpliedFeatures(f, true, on);
    }
  }
  for (auto &tok : split(features, ',')) {
    if (tok.size() < 2 || (tok[0] != '+' && tok[0] != '-')) continue;
    bool enable = tok[0] == '+';
    std::string name = tok.substr(1);
    on[name] = enable;
    if (x86) llvm::X86::updateImpliedFeatures(name, enable, on);
  }
  isa.clear();
  for (auto &e : on)
    if (e.second) isa.push_back(e.first().str());
  std::sort(isa.begin(), isa.end());
}

namespace {

// TESSEL_MAX_CPU_ISA caps what host() reports, as ONEDNN_MAX_CPU_ISA does for
// oneDNN: one AVX-512 machine then also builds, runs and tests the code an
// AVX2-only or SSE4.2-only machine gets. It only takes features away.
struct IsaCap {
  const char *name, *cpu;       // the level's LLVM CPU name
  const char *defining_feature; // a host without it is below the level already: the cap changes nothing
  int vector_bits;
  std::vector<std::string_view> removed_prefixes; // features (and what implies them) switched off
};
const std::vector<IsaCap> &isa_caps() {
  static const std::vector<IsaCap> caps = {
      {"sse4.2", "x86-64-v2", "sse4.2", 128, {"avx", "amx", "evex512", "fma", "f16c", "vaes", "vpclmulqdq"}},
      {"avx2", "x86-64-v3", "avx2", 256, {"avx512", "amx", "avxvnni", "avxifma", "avxneconvert", "evex512"}},
      {"avx512", "x86-64-v4", "avx512f", 512, {"amx"}},
  };
  return caps;
}

} // namespace

std::optional<std::string> Target::host_isa_cap() {
  const char *env = std::getenv("TESSEL_MAX_CPU_ISA");
  if (!env || !*env) return std::nullopt;
  return std::string(env);
}

Target Target::host() {
  Target t;
  t.name = "host";
  t.kind = "cpu";
  t.triple = llvm::sys::getProcessTriple();
  t.cpu = llvm::sys::getHostCPUName().str();
  // Features come from CPUID, not the CPU name: names can be wrong on new parts.
  llvm::StringMap<bool> features;
  std::vector<std::string> on;
  const IsaCap *cap = nullptr;
  if (auto name = host_isa_cap()) {
    for (auto &c : isa_caps())
      if (*name == c.name) cap = &c;
    static bool warned = false;
    if (!cap && !warned && *name != "native") {
      warned = true;
      std::fprintf(stderr,
                   "tessel: warning: TESSEL_MAX_CPU_ISA='%s' is not one of sse4.2, avx2, avx512, native; "
                   "ignored\n",
                   name->c_str());
    }
  }
  bool detected = llvm::sys::getHostCPUFeatures(features);
  llvm::StringMap<bool> hardware = features;
  if (detected && cap) {
    std::vector<std::string> off;
    for (auto &f : features)
      for (auto prefix : cap->removed_prefixes)
        if (f.second && f.first().startswith(llvm::StringRef(prefix.data(), prefix.size())))
          off.push_back(f.first().str());
    for (auto &f : off) {
      features[f] = false;
      llvm::X86::updateImpliedFeatures(f, false, features);
    }
  }
  // AMX in CPUID is not enough: Linux must grant the tile state and the tiles must run.
  if (detected && features.lookup("amx-tile") && !amx_tiles_usable()) {
    features["amx-tile"] = false;
    llvm::X86::updateImpliedFeatures("amx-tile", false, features);
  }
  if (detected)
    for (auto &f : features) on.push_back((f.second ? "+" : "-") + f.first().str());
  std::sort(on.begin(), on.end());
  for (auto &f : on) t.features += (t.features.empty() ? "" : ",") + f;
  auto has = [&](const char *f) { return features.lookup(f); };
  t.vector_bits = has("avx512f") ? 512 : has("avx2") || has("avx") ? 256 : 128;
  // LLVM 16 calls CPUs newer than itself "generic" (e.g. AMD family 1Ah), which
  // also picks a generic scheduling model; the x86-64 level is a better guess.
  if (t.cpu == "generic" && llvm::StringRef(t.triple).startswith("x86_64"))
    t.cpu = has("avx512f") ? "x86-64-v4" : has("avx2") ? "x86-64-v3" : "x86-64-v2";
  t.cores = int(std::max(1u, std::thread::hardware_concurrency()));
  // Nothing reports FMA pipes; big cores with FMA have had two since Haswell/Zen 2 (some AVX-512 Xeons have one).
  t.fma_units = has("fma") ? 2 : 1;
  Target defaults;
  t.l1d_bytes = host_cache_bytes(1, defaults.l1d_bytes);
  t.l2_bytes = host_cache_bytes(2, defaults.l2_bytes);
  t.l3_bytes = host_cache_bytes(3, defaults.l3_bytes);
  t.description = "this machine, detected";
  if (cap) {
    t.description += std::string(", capped at ") + cap->name + " by TESSEL_MAX_CPU_ISA";
    if (detected && hardware.lookup(cap->defining_feature)) {
      // The CPU name implies its own features (derive_isa would add them back): name the level instead.
      t.cpu = cap->cpu;
      t.vector_bits = std::min(t.vector_bits, cap->vector_bits);
    }
  }
  t.derive_isa();
  return t;
}

std::vector<std::string> Target::search_dirs() {
  std::vector<fs::path> candidates;
  if (const char *env = std::getenv("TESSEL_TARGETS_DIR"))
    for (auto &d : split(env, ':')) candidates.emplace_back(d);
  candidates.emplace_back("configs/targets");
  // The build tree is <repo>/build/src/tessel and <repo>/build/tests/test_x, so the repository's configs are two
  // levels up; an install is <prefix>/bin/tessel with <prefix>/share/tessel/configs (or <prefix>/configs).
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && !exe.empty()) {
    candidates.push_back((exe.parent_path() / "../../configs/targets").lexically_normal());
    candidates.push_back((exe.parent_path() / "../configs/targets").lexically_normal());
    candidates.push_back((exe.parent_path() / "../share/tessel/configs/targets").lexically_normal());
  }
  std::vector<std::string> out;
  std::vector<fs::path> seen;
  for (auto &c : candidates) {
    if (!fs::is_directory(c, ec)) continue;
    fs::path canon = fs::weakly_canonical(c, ec);
    if (ec) canon = c;
    if (std::find(seen.begin(), seen.end(), canon) != seen.end()) continue;
    seen.push_back(canon);
    out.push_back(c.string());
  }
  return out;
}

std::vector<std::string> Target::list_available() {
  std::set<std::string> names;
  std::error_code ec;
  for (auto &dir : search_dirs())
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      const fs::path &p = it->path();
      if (p.extension() == ".json" && valid_name(p.stem().string()) && it->is_regular_file(ec))
        names.insert(p.stem().string());
    }
  names.erase("host");
  std::vector<std::string> out{"host"};
  out.insert(out.end(), names.begin(), names.end());
  return out;
}

Expected<Target> Target::from_json(const std::string &text, const std::string &where) {
  return catch_errors([&] { return read_target(text, where, ""); });
}

Expected<Target> Target::load(std::string_view name_or_path) {
  try {
    std::string arg(name_or_path);
    if (arg == "host") return host();
    bool is_path =
        arg.find('/') != std::string::npos || (arg.size() > 5 && arg.compare(arg.size() - 5, 5, ".json") == 0);
    std::error_code ec;
    // "cpu-avx2.json" with no such file here most likely means the shipped target, so look the name up.
    if (is_path && arg.find('/') == std::string::npos && !fs::exists(arg, ec))
      arg = arg.substr(0, arg.size() - 5);
    else if (is_path)
      return load_file(arg, "");
    auto available = list_available();
    if (!valid_name(arg))
      return make_error("bad target name '" + arg +
                        "': names are letters, digits, '-', '_' and '.'; available: " + join(available, ", "));
    auto dirs = search_dirs();
    for (auto &dir : dirs) {
      fs::path p = fs::path(dir) / (arg + ".json");
      if (fs::exists(p, ec)) return load_file(p, arg);
    }
    std::string where =
        dirs.empty() ? "no configs/targets directory found; set TESSEL_TARGETS_DIR" : "searched " + join(dirs, ", ");
    return make_error("unknown target '" + arg + "'" + did_you_mean(arg, available) +
                      "; available: " + join(available, ", ") + " (" + where + ")");
  } catch (const std::exception &e) {
    return make_error("cannot load target '" + std::string(name_or_path) + "': " + e.what());
  } catch (...) {
    return make_error("cannot load target '" + std::string(name_or_path) + "': unexpected error");
  }
}

std::string Target::to_json() const {
  std::vector<std::string> lines;
  auto add = [&](const std::string &key, const std::string &value) {
    lines.push_back("  " + json_string(key) + ": " + value);
  };
  add("name", json_string(name));
  add("kind", json_string(kind));
  if (!description.empty()) add("description", json_string(description));
  add("triple", json_string(triple));
  add("cpu", json_string(cpu));
  std::vector<std::string> feats;
  for (auto &f : split(features, ',')) feats.push_back(json_string(f));
  lines.push_back(json_array("  ", "features", feats));
  if (is_cuda()) {
    add("l2_bytes", std::to_string(l2_bytes));
    if (gpu) {
      const GpuLimits &g = *gpu;
      std::vector<std::string> tc;
      for (auto &s : g.tensor_cores)
        tc.push_back("{\"m\": " + std::to_string(s.m) + ", \"n\": " + std::to_string(s.n) +
                     ", \"k\": " + std::to_string(s.k) + ", \"a_dtype\": " + json_string(s.a_dtype) +
                     ", \"c_dtype\": " + json_string(s.c_dtype) + "}");
      std::vector<std::pair<const char *, std::string>> fields = {
          {"arch", json_string(g.arch)},
          {"sm_count", std::to_string(g.sm_count)},
          {"max_threads_per_block", std::to_string(g.max_threads_per_block)},
          {"max_threads_per_sm", std::to_string(g.max_threads_per_sm)},
          {"max_blocks_per_sm", std::to_string(g.max_blocks_per_sm)},
          {"warp_size", std::to_string(g.warp_size)},
          {"shared_memory_per_block", std::to_string(g.shared_memory_per_block)},
          {"shared_memory_per_sm", std::to_string(g.shared_memory_per_sm)},
          {"registers_per_sm", std::to_string(g.registers_per_sm)},
          {"max_registers_per_thread", std::to_string(g.max_registers_per_thread)},
          // One shape per line: a dozen of them would be a hundred lines in nlohmann's pretty form.
          {"tensor_cores", tc.empty() ? "[]" : "[\n      " + join(tc, ",\n      ") + "\n    ]"},
      };
      std::vector<std::string> body;
      for (auto &[key, value] : fields) body.push_back("    \"" + std::string(key) + "\": " + value);
      lines.push_back("  \"gpu\": {\n" + join(body, ",\n") + "\n  }");
    }
  } else {
    add("vector_bits", std::to_string(vector_bits));
    add("cores", std::to_string(cores));
    add("fma_units", std::to_string(fma_units));
    add("l1d_bytes", std::to_string(l1d_bytes));
    add("l2_bytes", std::to_string(l2_bytes));
    add("l3_bytes", std::to_string(l3_bytes));
  }
  return "{\n" + join(lines, ",\n") + "\n}\n";
}

std::string Target::str() const {
  if (is_cuda() && gpu)
    return name + " (" + gpu->arch + ", " + std::to_string(gpu->sm_count) + " SMs, " +
           std::to_string(gpu->shared_memory_per_block / 1024) + " KiB shared memory per block)";
  return name + " (" + cpu + ", " + std::to_string(vector_bits) + "-bit vectors, " + std::to_string(cores) + " cores)";
}

Status Target::runnable_here() const {
  if (is_cuda())
    return Status::error(
        "target " + name + " is a CUDA GPU, which Tessel's runners do not measure yet (`tessel run --target " + name +
        "` compiles a schedule with NVRTC and runs it where a GPU is; `tessel show --cuda` prints it)");
  Target h = host();
  if (h.triple.substr(0, h.triple.find('-')) != triple.substr(0, triple.find('-')))
    return Status::error("target " + name + " is for " + triple + "; this machine is " + h.triple);
  std::string missing;
  for (auto &f : isa)
    if (std::find(h.isa.begin(), h.isa.end(), f) == h.isa.end()) missing += (missing.empty() ? "" : ", ") + f;
  if (!missing.empty())
    return Status::error("target " + name + " needs " + missing + ", which this machine (" + h.cpu +
                         ") lacks; pick another --target (see `tessel targets`) or use --target host");
  return Status::ok();
}

} // namespace tessel
