// The `tessel` subcommands. main.cpp parses flags (CLI11) into these option
// structs; each command calls the rooms below and prints. Exit codes: 0 ok,
// 1 failure (bad input, wrong result), 2 usage error.
#pragma once

#include <cstdint>
#include <string>

namespace tessel::cli {

int cmd_ops();

int cmd_targets();

struct SpaceOptions {
  std::string workload;
  std::string target = "host";
  int samples = 3;
  uint64_t seed = 1;
  std::string sketch; // sample only this sketch (by name)
  std::string output; // also write the first sampled trace to this file
};
int cmd_space(const SpaceOptions &o);

struct ShowOptions {
  std::string workload;
  std::string target = "host";
  std::string trace;
  bool te = false, ir = false, llvm = false, assembly = false, schedule = false;
};
int cmd_show(const ShowOptions &o);

struct RunOptions {
  std::string workload;
  std::string target = "host";
  std::string trace; // a trace JSON file; empty: the default schedule
  int threads = 1;
  int repeats = 5;
  uint64_t seed = 1;
  bool verify = true;
  bool emulate_gpu = false;        // run GPU-bound loops serially on this CPU (checks a GPU schedule)
  bool emulate_intrinsics = false; // run tensor intrinsics (AMX, ...) as portable emulations
};
int cmd_run(const RunOptions &o);

struct CompileOptions {
  std::string workload;
  std::string target = "host";
  std::string trace;
  std::string output; // object path; the header goes beside it (.h)
  std::string name;   // kernel symbol; default derived from the workload
};
int cmd_compile(const CompileOptions &o);

} // namespace tessel::cli
