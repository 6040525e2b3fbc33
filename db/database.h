// The tuning database: measured records per workload and target, the fastest
// ones found again in later tuning runs and builds. SQLite on disk (WAL, safe
// for several tuner processes at once) or in memory (tests of other rooms).
// Nothing is lost: a batch that cannot be written stays pending in memory.
// Schema, JSON Lines format, target matching, migrations: db/FORMAT.md.
#pragma once

#include "db/record.h"
#include "schedules/schedule.h"
#include "support/error.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tessel::db {

struct CommitCounts {
  int64_t stored = 0, duplicates = 0; // duplicates: identical records already present (FORMAT.md, identity)
};
struct Stats {
  int64_t records = 0, ok_records = 0, workloads = 0, targets = 0, runs = 0, pending = 0, file_bytes = 0;
};
// One workload on one target (and measuring machine): what `tessel db list` and reports show.
struct Summary {
  std::string workload_key, workload_hash;
  TargetKey target;
  int64_t records = 0, ok_records = 0;
  double best_median_seconds = 0; // 0: no ok record
  double flops = 0;               // per evaluation; 0 when unknown
};

class Database {
public:
  virtual ~Database() = default;
  virtual std::string describe() const = 0; // "/path/tessel.db" or "in-memory database"

  virtual Expected<int64_t> begin_run(RunInfo info) = 0; // info.uid of an existing run: returns its id
  virtual Status end_run(int64_t run_id) = 0;
  virtual Expected<RunInfo> run(int64_t run_id) const = 0;

  // One transaction per call, together with any pending records. Invalid records refuse the
  // whole batch (nothing kept: fix the caller). A write failure (read-only, full disk, locked)
  // keeps every record pending in memory and says so; the next commit retries them.
  virtual Status commit(const std::vector<Record> &batch, CommitCounts *counts = nullptr) = 0;
  virtual const std::vector<Record> &pending() const = 0;
  virtual std::vector<Record> take_pending() = 0; // e.g. to commit them to another database

  // Ok records only, fastest median first (exact-target records first under Compatible).
  virtual Expected<std::vector<Record>> top_k(const std::string &workload_hash, const TargetKey &target, int k,
                                              TargetMatch match = TargetMatch::Exact) const = 0;
  Expected<Record> best(const std::string &workload_hash, const TargetKey &target,
                        TargetMatch match = TargetMatch::Exact) const;
  // Every record of the workload (any status, any target), and the targets with ok records for it.
  virtual Expected<std::vector<Record>> records_for_workload(const std::string &workload_hash) const = 0;
  virtual Expected<std::vector<TargetKey>> targets_for_workload(const std::string &workload_hash) const = 0;
  // Every stored record in id order (pending ones excluded); `fn` returns false to stop.
  virtual Status for_each(const std::function<bool(const Record &)> &fn) const = 0;
  virtual Expected<bool> contains(const Record &r) const = 0; // an identical record is stored
  virtual Expected<Stats> stats() const = 0;
  // Ordered by workload key, then target; pending records excluded.
  virtual Expected<std::vector<Summary>> summaries() const = 0;
  // Keeps the k fastest ok records per workload and target; deletes slower and failed ones.
  struct PruneCounts {
    int64_t kept = 0, removed_slower = 0, removed_failed = 0;
  };
  virtual Expected<PruneCounts> prune(int k) = 0;
};

struct OpenOptions {
  bool read_only = false;
  int lock_timeout_ms = 60000; // how long a commit waits for other writers before keeping its batch pending
  int64_t max_bytes = 0;       // 0: no cap; otherwise writes past it fail as a full disk does
};
// Creates the file when missing; migrates an older schema; refuses, unmodified, files that are
// not Tessel databases or come from a newer schema.
Expected<std::unique_ptr<Database>> open_sqlite(const std::string &path, OpenOptions options = {});
std::unique_ptr<Database> make_memory_database();

// The best record of `w` on `target`, replayed into a schedule; or why none applies (no record
// for this target, trace version refused, stale workload hash, trace no longer replays). Best:
// re-measured figures (kRemeasuredNote) before single-shot ones, each fastest first.
struct AppliedBest {
  Record record;
  sched::Schedule schedule;
  std::string note; // non-empty when the compatible fallback or a slower record was used: say it
};
Expected<AppliedBest> apply_best(const Database &db, const te::Workload &w, const TargetKey &target,
                                 TargetMatch match = TargetMatch::Exact);

// Interchange (db/FORMAT.md): JSON Lines, one record per line; pending records are exported too.
struct ExportCounts {
  int64_t exported = 0, pending_included = 0;
};
struct ImportCounts {
  int64_t imported = 0, duplicates = 0, failed = 0;
  std::vector<std::string> errors; // "line 7: ..." per failed line
};
struct MergeCounts {
  int64_t read = 0, added = 0, duplicates = 0;
};
// `path` "-" is standard output (export) or input (import). `progress` gets the fraction done.
using Progress = std::function<void(double fraction)>;
Expected<ExportCounts> export_jsonl(const Database &db, const std::string &path, const Progress &progress = {});
Expected<ImportCounts> import_jsonl(Database &db, const std::string &path, const Progress &progress = {});
Expected<MergeCounts> merge(Database &into, const Database &from, const Progress &progress = {});

} // namespace tessel::db
