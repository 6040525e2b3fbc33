// Shared by the benchmark programs: a reporter that keeps the median of each
// benchmark for the summary tables, and reading the committed traces.
#pragma once

#include "target/target.h"

#include <benchmark/benchmark.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace tessel::bench {

// Collects the median (or the single run) per benchmark: GFLOP/s and milliseconds.
class SummaryReporter : public benchmark::ConsoleReporter {
public:
  SummaryReporter() : ConsoleReporter(OO_Tabular) {} // plain text: the output goes to logs and notes
  std::map<std::string, double> gflops, ms;          // "BM_Gemm_OpenBLAS/1024" -> median (ms: time unit)
  void ReportRuns(const std::vector<Run> &runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (auto &r : runs) {
      bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      if (!median && !single) continue;
      std::string name = r.run_name.str();
      for (const char *suffix : {"/iterations:", "/manual_time", "/real_time"}) // Iterations, Use*Time suffixes
        if (auto pos = name.find(suffix); pos != std::string::npos) name.erase(pos);
      auto it = r.counters.find("GFLOP/s");
      if (it != r.counters.end()) gflops[name] = it->second.value;
      ms[name] = r.GetAdjustedRealTime();
    }
  }
};

// The ISA whose committed traces (configs/traces/*_<isa>*.json) fit this host as
// Tessel sees it (TESSEL_MAX_CPU_ISA=avx2 holds an AVX-512 host to AVX2).
inline std::string host_trace_isa() { return Target::host().vector_bits >= 512 ? "avx512" : "avx2"; }

// Initializes Google Benchmark with `defaults` (e.g. "--benchmark_repetitions=5") before the command line's
// flags, which come later and win. False when the command line has a flag it does not know (it says which).
inline bool initialize_with_defaults(int argc, char **argv, std::vector<std::string> defaults) {
  std::vector<char *> args{argv[0]};
  for (auto &d : defaults) args.push_back(d.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  int nargs = int(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&nargs, args.data()); // keeps pointers into `args` only while parsing
  return !benchmark::ReportUnrecognizedArguments(nargs, args.data());
}

// The file's contents, or "" when it cannot be read.
inline std::string read_file(const std::string &path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace tessel::bench
