// The values the tuning database stores: one measured record, the target it
// was measured on, the tuning run it came from. Plain data; db/database.h
// stores and finds them. Column-by-column meaning: db/FORMAT.md.
#pragma once

#include "schedules/trace.h"
#include "target/target.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessel::db {

enum class RecordStatus { Ok, CompileError, RuntimeError, Timeout, WrongResult, Invalid };
// "ok", "compile-error", "runtime-error", "timeout", "wrong-result", "invalid".
std::string_view to_string(RecordStatus s);
std::optional<RecordStatus> parse_record_status(std::string_view s);

// What a kernel was compiled for and measured on. `canonical` is the exact
// identity (kind, arch, LLVM CPU, vector bits, threads, sorted ISA list);
// `compat` the coarser class the explicit compatible fallback accepts (x86-64
// level + threads on CPUs, SM architecture on CUDA). See db/FORMAT.md.
struct TargetKey {
  std::string canonical;
  std::string compat;
  std::string cpu_model; // "model name" of the measuring host, else the target's name
  int threads = 1;
  bool operator==(const TargetKey &) const = default;
};
TargetKey target_key(const Target &t, int threads);
// The canonical key without its long ISA list, for people ("cpu arch=x86_64 cpu=znver4 vector_bits=512 threads=1").
std::string short_target(const TargetKey &t);
// The ISA list written into a canonical key ("avx2", "fma", ...), for checks of the fallback.
std::vector<std::string> isa_of(const TargetKey &key);
// This machine's CPU model ("AMD EPYC 9654 96-Core Processor"), "" when unknown.
std::string host_cpu_model();

enum class TargetMatch {
  Exact,      // same canonical key only (the default)
  Compatible, // exact records first, then records of the same `compat` class, announced as such
};

struct Record {
  int64_t id = 0;                                         // assigned by the database
  std::string workload_key, workload_hash, workload_text; // Workload::key, hash_hex(), te::to_text()
  TargetKey target;
  int64_t run_id = 0; // a begin_run() id, 0: none
  std::string trace_json;
  int trace_version = sched::kTraceFormatVersion;
  std::vector<double> run_seconds; // every repeat; median/min/cv are computed from them on commit
  double median_seconds = 0, min_seconds = 0, cv = 0;
  RecordStatus status = RecordStatus::Ok;
  std::string message;   // why it failed; for ok records empty or a note (e.g. kRemeasuredNote)
  int64_t timestamp = 0; // unix seconds; set on commit when 0
};

// The note of an ok record whose figure comes from an interleaved re-measurement (the tuner's end-of-run
// check of its best candidates): trusted over single-shot figures, which run optimistic under noise.
inline constexpr const char *kRemeasuredNote = "re-measured";
inline bool is_remeasured(const Record &r) {
  return r.status == RecordStatus::Ok && r.message.rfind(kRemeasuredNote, 0) == 0;
}

struct RunInfo {
  std::string config_json, host, tessel_version, llvm_version;
  // Set by the database: a unique id that survives export/import and merges, and the run's times.
  std::string uid;
  int64_t started_at = 0, ended_at = 0;
};

} // namespace tessel::db
