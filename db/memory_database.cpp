// The in-memory Database: the same behaviour as the SQLite one (validation,
// derived figures, dedup identity, ordering, pruning), for tests of the rooms
// that use a database. It never fails to write, so nothing is ever pending.
#include "db/detail.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_set>

namespace tessel::db {

namespace {

class MemoryDatabase final : public Database {
public:
  std::string describe() const override { return "in-memory database"; }

  Expected<int64_t> begin_run(RunInfo info) override {
    std::lock_guard lock(mutex_);
    if (!info.uid.empty())
      for (auto &[id, r] : runs_)
        if (r.uid == info.uid) return id;
    if (info.uid.empty()) info.uid = "memory-" + std::to_string(runs_.size() + 1);
    if (info.started_at == 0) info.started_at = detail::unix_now();
    if (info.config_json.empty()) info.config_json = "{}";
    int64_t id = int64_t(runs_.size()) + 1;
    runs_[id] = std::move(info);
    return id;
  }

  Status end_run(int64_t run_id) override {
    std::lock_guard lock(mutex_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) return Status::error("no tuning run " + std::to_string(run_id) + " in " + describe());
    it->second.ended_at = detail::unix_now();
    return Status::ok();
  }

  Expected<RunInfo> run(int64_t run_id) const override {
    std::lock_guard lock(mutex_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) return make_error("no tuning run " + std::to_string(run_id) + " in " + describe());
    return it->second;
  }

  Status commit(const std::vector<Record> &batch, CommitCounts *counts) override {
    std::lock_guard lock(mutex_);
    if (counts) *counts = {};
    if (Status st = detail::validate_batch(batch, describe(), [&](int64_t id) { return runs_.count(id) > 0; }); !st)
      return st;
    CommitCounts done;
    int64_t now = detail::unix_now();
    for (auto &in : batch) {
      Record r = in;
      detail::fill_derived(r, now);
      if (!hashes_.insert(detail::content_hash(r)).second) {
        ++done.duplicates;
        continue;
      }
      r.id = next_id_++;
      records_.push_back(std::move(r));
      ++done.stored;
    }
    if (counts) *counts = done;
    return Status::ok();
  }

  const std::vector<Record> &pending() const override { return pending_; }
  std::vector<Record> take_pending() override { return {}; }

  Expected<std::vector<Record>> top_k(const std::string &workload_hash, const TargetKey &target, int k,
                                      TargetMatch match) const override {
    if (k < 1) return make_error("top_k: k must be at least 1, not " + std::to_string(k));
    std::lock_guard lock(mutex_);
    std::vector<const Record *> found;
    for (auto &r : records_) {
      if (r.workload_hash != workload_hash || r.status != RecordStatus::Ok) continue;
      bool exact = r.target.canonical == target.canonical;
      if (exact || (match == TargetMatch::Compatible && r.target.compat == target.compat)) found.push_back(&r);
    }
    std::stable_sort(found.begin(), found.end(), [&](const Record *a, const Record *b) {
      bool ea = a->target.canonical == target.canonical, eb = b->target.canonical == target.canonical;
      if (ea != eb) return ea;
      if (a->median_seconds != b->median_seconds) return a->median_seconds < b->median_seconds;
      return a->id < b->id;
    });
    std::vector<Record> out;
    for (size_t i = 0; i < found.size() && int(i) < k; ++i) out.push_back(*found[i]);
    return out;
  }

  Expected<std::vector<Record>> records_for_workload(const std::string &workload_hash) const override {
    std::lock_guard lock(mutex_);
    std::vector<Record> out;
    for (auto &r : records_)
      if (r.workload_hash == workload_hash) out.push_back(r);
    // The SQLite order: target, status name, median, id.
    std::stable_sort(out.begin(), out.end(), [](const Record &a, const Record &b) {
      auto sa = to_string(a.status), sb = to_string(b.status);
      return std::tie(a.target.canonical, sa, a.median_seconds, a.id) <
             std::tie(b.target.canonical, sb, b.median_seconds, b.id);
    });
    return out;
  }

  Expected<std::vector<TargetKey>> targets_for_workload(const std::string &workload_hash) const override {
    std::lock_guard lock(mutex_);
    std::map<std::pair<std::string, std::string>, TargetKey> seen;
    for (auto &r : records_)
      if (r.workload_hash == workload_hash && r.status == RecordStatus::Ok)
        seen.emplace(std::make_pair(r.target.canonical, r.target.cpu_model), r.target);
    std::vector<TargetKey> out;
    for (auto &[k, t] : seen) out.push_back(t);
    return out;
  }

  Status for_each(const std::function<bool(const Record &)> &fn) const override {
    // Index-based, with the lock released around `fn`, which may use this database.
    for (size_t i = 0;; ++i) {
      Record r;
      {
        std::lock_guard lock(mutex_);
        if (i >= records_.size()) return Status::ok();
        r = records_[i];
      }
      if (!fn(r)) return Status::ok();
    }
  }

  Expected<bool> contains(const Record &r) const override {
    Record copy = r;
    detail::fill_derived(copy, 1);
    std::lock_guard lock(mutex_);
    return hashes_.count(detail::content_hash(copy)) > 0;
  }

  Expected<Stats> stats() const override {
    std::lock_guard lock(mutex_);
    Stats s;
    s.records = int64_t(records_.size());
    std::unordered_set<std::string> workloads, targets;
    for (auto &r : records_) {
      s.ok_records += r.status == RecordStatus::Ok;
      workloads.insert(r.workload_hash + '\n' + r.workload_key + '\n' + r.workload_text);
      targets.insert(r.target.canonical + '\n' + r.target.cpu_model);
    }
    s.workloads = int64_t(workloads.size());
    s.targets = int64_t(targets.size());
    s.runs = int64_t(runs_.size());
    return s;
  }

  Expected<std::vector<Summary>> summaries() const override {
    std::lock_guard lock(mutex_);
    // Grouped as the SQLite tables are: a workload row per (hash, key, text), a target per (canonical, model).
    std::map<std::tuple<std::string, std::string, std::string, std::string, std::string>, Summary> groups;
    for (auto &r : records_) {
      auto [it, fresh] = groups.try_emplace(
          {r.workload_key, r.target.canonical, r.target.cpu_model, r.workload_hash, r.workload_text});
      Summary &m = it->second;
      if (fresh) m = {r.workload_key, r.workload_hash, r.target, 0, 0, 0, detail::flops_of(r.workload_text)};
      ++m.records;
      if (r.status != RecordStatus::Ok) continue;
      ++m.ok_records;
      if (m.best_median_seconds == 0 || r.median_seconds < m.best_median_seconds)
        m.best_median_seconds = r.median_seconds;
    }
    std::vector<Summary> out;
    for (auto &[key, m] : groups) out.push_back(m);
    return out;
  }

  Expected<PruneCounts> prune(int k) override {
    if (k < 1) return make_error("prune: k must be at least 1, not " + std::to_string(k));
    std::lock_guard lock(mutex_);
    PruneCounts counts;
    std::map<std::pair<std::string, std::string>, std::vector<const Record *>> groups;
    for (auto &r : records_)
      if (r.status == RecordStatus::Ok) groups[{r.workload_hash, r.target.canonical}].push_back(&r);
    std::unordered_set<int64_t> keep;
    for (auto &[key, group] : groups) {
      std::stable_sort(group.begin(), group.end(), [](const Record *a, const Record *b) {
        return a->median_seconds != b->median_seconds ? a->median_seconds < b->median_seconds : a->id < b->id;
      });
      for (size_t i = 0; i < group.size() && int(i) < k; ++i) keep.insert(group[i]->id);
    }
    std::vector<Record> kept;
    hashes_.clear();
    for (auto &r : records_) {
      if (keep.count(r.id)) {
        hashes_.insert(detail::content_hash(r));
        kept.push_back(std::move(r));
      } else {
        ++(r.status == RecordStatus::Ok ? counts.removed_slower : counts.removed_failed);
      }
    }
    records_ = std::move(kept);
    counts.kept = int64_t(records_.size());
    return counts;
  }

private:
  mutable std::mutex mutex_;
  std::vector<Record> records_; // id order
  std::unordered_set<std::string> hashes_;
  std::map<int64_t, RunInfo> runs_;
  std::vector<Record> pending_; // always empty: memory never fails to take a record
  int64_t next_id_ = 1;
};

} // namespace

std::unique_ptr<Database> make_memory_database() { return std::make_unique<MemoryDatabase>(); }

} // namespace tessel::db
