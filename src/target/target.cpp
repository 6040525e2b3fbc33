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
  // LLVM 16 calls CPUs newer than itself "generic" (e.g. AMD family 1Ah), which
  // also picks a generic scheduling model; the x86-64 level is a better guess.
  if (t.cpu == "generic" && llvm::StringRef(t.triple).startswith("x86_64"))
    t.cpu = has("avx512f") ? "x86-64-v4" : has("avx2") ? "x86-64-v3" : "x86-64-v2";
  t.cores = int(std::max(1u, std::thread::hardware_concurrency()));
  return t;
}

std::string Target::str() const {
  return name + " (" + cpu + ", " + std::to_string(vector_bits) + "-bit vectors, " + std::to_string(cores) +
         " cores)";
}

} // namespace tessel
