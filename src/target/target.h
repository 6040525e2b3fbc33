// What a hardware target is. Today: the host CPU (detected) — ISA name,
// features, vector width, cores. GPU targets and configs/targets/*.json come
// with the schedule-space work.
#pragma once

#include <string>

namespace tessel {

struct Target {
  std::string name;      // "host", "cpu-avx512", ...
  std::string triple;    // "x86_64-pc-linux-gnu"
  std::string cpu;       // LLVM CPU name, e.g. "znver4"
  std::string features;  // LLVM feature string, e.g. "+avx512f,+fma,..."
  int vector_bits = 128; // widest vector unit the code generator should use
  int cores = 1;

  static Target host();
  std::string str() const; // one line for logs and reports
};

} // namespace tessel
