// Target keys: the exact identity a record is stored under and the coarser
// class the explicit compatible fallback accepts (db/FORMAT.md, "Targets").
#include "db/record.h"

#include <algorithm>
#include <fstream>
#include <set>

namespace tessel::db {

namespace {

std::string join(const std::vector<std::string> &v, const char *sep) {
  std::string out;
  for (auto &s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// The x86-64 micro-architecture level (psABI) the ISA list reaches; AMX on top,
// since AMX tiles change which schedules are worth having.
std::string x86_level(const std::set<std::string> &isa) {
  auto all = [&](std::initializer_list<const char *> fs) {
    return std::all_of(fs.begin(), fs.end(), [&](const char *f) { return isa.count(f) > 0; });
  };
  std::string level = "x86-64";
  if (all({"sse4.2", "popcnt"})) level = "x86-64-v2";
  if (level == "x86-64-v2" && all({"avx2", "fma"})) level = "x86-64-v3";
  if (level == "x86-64-v3" && all({"avx512f", "avx512bw", "avx512dq", "avx512vl"})) level = "x86-64-v4";
  if (isa.count("amx-tile")) level += "+amx";
  return level;
}

std::string read_cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    v.erase(v.find_last_not_of(" \t\r") + 1);
    return v;
  }
  return "";
}

} // namespace

TargetKey target_key(const Target &t, int threads) {
  TargetKey key;
  key.threads = threads;
  std::string arch = t.triple.substr(0, t.triple.find('-'));
  std::vector<std::string> isa = t.isa;
  std::sort(isa.begin(), isa.end());
  isa.erase(std::unique(isa.begin(), isa.end()), isa.end());
  std::string isa_list = join(isa, ",");
  if (t.is_cuda()) {
    std::string gpu = t.gpu ? t.gpu->arch : t.cpu;
    int sms = t.gpu ? t.gpu->sm_count : 0;
    key.canonical = "cuda arch=" + arch + " gpu=" + gpu + " sms=" + std::to_string(sms) +
                    " threads=" + std::to_string(threads) + " isa=" + isa_list;
    key.compat = "cuda gpu=" + gpu;
  } else {
    key.canonical = t.kind + " arch=" + arch + " cpu=" + t.cpu + " vector_bits=" + std::to_string(t.vector_bits) +
                    " threads=" + std::to_string(threads) + " isa=" + isa_list;
    bool x86 = arch == "x86_64" || arch == "i386" || arch == "i686";
    std::set<std::string> isa_set(isa.begin(), isa.end());
    // Outside x86 there is no agreed level: the same ISA list on another CPU is the compatible class.
    key.compat = t.kind + " arch=" + arch + (x86 ? " level=" + x86_level(isa_set) : " isa=" + isa_list) +
                 " threads=" + std::to_string(threads);
  }
  std::string model = t.name == "host" ? host_cpu_model() : "";
  key.cpu_model = model.empty() ? t.name : model;
  return key;
}

std::vector<std::string> isa_of(const TargetKey &key) {
  auto pos = key.canonical.find(" isa=");
  std::vector<std::string> out;
  if (pos == std::string::npos) return out;
  std::string list = key.canonical.substr(pos + 5);
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string host_cpu_model() {
  static const std::string model = [] { return read_cpu_model(); }();
  return model;
}

} // namespace tessel::db
