#include "target/target.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace tessel {

Target Target::host() {
  Target t;
  t.name = "host";
  t.triple = llvm::sys::getProcessTriple();
  t.cpu = llvm::sys::getHostCPUName().str();
  // Features come from CPUID, not the CPU name: names can be wrong on new parts.
  llvm::StringMap<bool> features;
  std::vector<std::string> on;
  if (llvm::sys::getHostCPUFeatures(features))
    for (auto &f : features) on.push_back((f.second ? "+" : "-") + f.first().str());
  std::sort(on.begin(), on.end());
  for (auto &f : on) t.features += (t.features.empty() ? "" : ",") + f;
  auto has = [&](const char *f) { return features.lookup(f); };
  t.vector_bits = has("avx512f") ? 512 : has("avx2") || has("avx") ? 256 : 128;
  t.cores = int(std::max(1u, std::thread::hardware_concurrency()));
  return t;
}

std::string Target::str() const {
  return name + " (" + cpu + ", " + std::to_string(vector_bits) + "-bit vectors, " + std::to_string(cores) +
         " cores)";
}

} // namespace tessel
