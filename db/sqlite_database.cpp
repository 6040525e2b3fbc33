// The SQLite tuning database (schema: db/schema.cpp, tour: db/FORMAT.md).
// WAL mode, so readers never wait and several tuner processes can write one
// file; every write is one BEGIN IMMEDIATE transaction, retried while another
// writer holds the lock; a batch that cannot be written stays pending.
#include "db/detail.h"
#include "db/schema.h"
#include "support/version.h"
#include "te/text.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace tessel::db {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A cached statement bound for one use; reset when it goes out of scope. Bound
// strings must outlive it (SQLITE_STATIC: no copy per bind on the insert path).
// A statement that failed to prepare (a corrupt file) is null: step() fails.
class Use {
public:
  explicit Use(sqlite3_stmt *s) : s_(s) {}
  ~Use() {
    if (!s_) return;
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Use(const Use &) = delete;
  Use &operator=(const Use &) = delete;
  Use &text(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_STATIC);
    return *this;
  }
  Use &int64(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Use &real(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Use &null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  int step() { return s_ ? sqlite3_step(s_) : SQLITE_ERROR; }
  sqlite3_stmt *get() const { return s_; }

private:
  sqlite3_stmt *s_;
};

std::string column_text(sqlite3_stmt *s, int i) {
  const unsigned char *t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char *>(t), size_t(sqlite3_column_bytes(s, i))) : std::string();
}

// The columns read_record() expects, with w.id and t.id usable as constants by the caller.
constexpr const char *kRecordSelect =
    "SELECT r.id, w.key, w.structural_hash, w.text_form, t.canonical, t.compat, t.cpu_model, t.threads, r.run_id, "
    "r.trace, r.trace_version, r.run_seconds, r.median_seconds, r.min_seconds, r.cv, r.status, r.message, "
    "r.measured_at FROM records r JOIN workloads w ON w.id = r.workload_id JOIN targets t ON t.id = r.target_id ";

Record read_record(sqlite3_stmt *s) {
  Record r;
  r.id = sqlite3_column_int64(s, 0);
  r.workload_key = column_text(s, 1);
  r.workload_hash = column_text(s, 2);
  r.workload_text = column_text(s, 3);
  r.target.canonical = column_text(s, 4);
  r.target.compat = column_text(s, 5);
  r.target.cpu_model = column_text(s, 6);
  r.target.threads = sqlite3_column_int(s, 7);
  r.run_id = sqlite3_column_int64(s, 8);
  r.trace_json = column_text(s, 9);
  r.trace_version = sqlite3_column_int(s, 10);
  r.run_seconds = detail::parse_seconds(column_text(s, 11)).value_or(std::vector<double>{});
  r.median_seconds = sqlite3_column_double(s, 12);
  r.min_seconds = sqlite3_column_double(s, 13);
  r.cv = sqlite3_column_double(s, 14);
  std::string status = column_text(s, 15);
  r.status = parse_record_status(status).value_or(RecordStatus::Invalid);
  r.message = column_text(s, 16);
  r.timestamp = sqlite3_column_int64(s, 17);
  return r;
}

std::string new_run_uid() {
  std::random_device rd;
  uint64_t a = (uint64_t(rd()) << 32) ^ rd(),
           b = uint64_t(Clock::now().time_since_epoch().count()) ^ uint64_t(getpid());
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
  return out;
}

struct SqlError {
  int rc;
  std::string message;
};
using MaybeError = std::optional<SqlError>;

// Checks an existing file before SQLite may write to it: a file that is not a SQLite
// database, not a Tessel one, or from a newer schema is refused and left as it is.
Status preflight(const std::string &path, int lock_timeout_ms) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("cannot read " + path + ": " + std::strerror(errno));
  char header[16] = {};
  in.read(header, sizeof header);
  if (in.gcount() < 16 || std::memcmp(header, "SQLite format 3", 16) != 0)
    return Status::error(path + " is not a SQLite database (its first bytes are not \"SQLite format 3\"); refusing to "
                                "touch it (left unmodified)");
  // Read-only, with the same patience as writes: a writer that is creating or migrating the
  // file at this moment is waited for, never reported as "database is locked".
  int version = -1, rc = SQLITE_OK;
  std::vector<std::string> tables;
  std::string err;
  auto deadline = Clock::now() + std::chrono::milliseconds(lock_timeout_ms);
  for (int attempt = 0;; ++attempt) {
    version = -1;
    tables.clear();
    sqlite3 *probe = nullptr;
    rc = sqlite3_open_v2(path.c_str(), &probe, SQLITE_OPEN_READONLY, nullptr);
    if (rc == SQLITE_OK) {
      sqlite3_extended_result_codes(probe, 1);
      sqlite3_busy_timeout(probe, std::clamp(lock_timeout_ms, 1, 2000));
      sqlite3_stmt *s = nullptr;
      rc = sqlite3_prepare_v2(probe, "PRAGMA user_version", -1, &s, nullptr);
      int step = rc == SQLITE_OK ? sqlite3_step(s) : rc;
      if (step == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
      else if (rc == SQLITE_OK)
        rc = step;
      sqlite3_finalize(s);
      s = nullptr;
      if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(probe, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", -1, &s,
                                nullptr);
      step = SQLITE_DONE;
      while (rc == SQLITE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) tables.push_back(column_text(s, 0));
      if (rc == SQLITE_OK && step != SQLITE_DONE) rc = step;
      sqlite3_finalize(s);
    }
    if (rc != SQLITE_OK || version < 0) err = probe ? sqlite3_errmsg(probe) : sqlite3_errstr(rc);
    sqlite3_close_v2(probe);
    bool busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
    if (!busy || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + std::min(attempt, 20)));
  }
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
    return Status::error(path + " stayed locked by another writer for " + std::to_string(lock_timeout_ms / 1000) +
                         " s while opening it (OpenOptions::lock_timeout_ms)");
  if (rc != SQLITE_OK || version < 0)
    return Status::error(path + " is not a readable SQLite database (" + err +
                         "); refusing to touch it (left unmodified)");
  if (version > schema::kCurrentVersion)
    return Status::error(path + " has tuning-database schema version " + std::to_string(version) +
                         ", newer than this Tessel reads (" + std::to_string(schema::kCurrentVersion) +
                         "); upgrade Tessel to use it (the file was left unmodified)");
  bool has_meta = std::find(tables.begin(), tables.end(), "meta") != tables.end();
  if ((version == 0 && !tables.empty()) || (version > 0 && !has_meta)) {
    std::string list;
    for (size_t i = 0; i < tables.size() && i < 5; ++i) list += (i ? ", " : "") + tables[i];
    return Status::error(path + " is a SQLite database but not a Tessel tuning database (tables: " +
                         (list.empty() ? "none" : list) + "); refusing to touch it (left unmodified)");
  }
  return Status::ok();
}

class SqliteDatabase final : public Database {
public:
  SqliteDatabase(std::string path, OpenOptions options) : path_(std::move(path)), options_(options) {}
  ~SqliteDatabase() override {
    if (!pending_.empty())
      detail::rescue_pending(path_, pending_, [this](int64_t id) -> std::optional<RunInfo> {
        auto r = run(id);
        return r ? std::optional<RunInfo>(*r) : std::nullopt;
      });
    disconnect();
  }

  Status connect() {
    int flags = (options_.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX; // one connection per object, guarded by mutex_
    int rc = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string err = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      disconnect();
      return Status::error("cannot open database " + path_ + ": " + err);
    }
    sqlite3_extended_result_codes(db_, 1);
    // SQLite waits this long per attempt; begin_write() retries attempts up to lock_timeout_ms.
    sqlite3_busy_timeout(db_, std::clamp(options_.lock_timeout_ms, 1, 2000));
    file_read_only_ = sqlite3_db_readonly(db_, "main") == 1;
    if (!file_read_only_) {
      // 16 KiB pages for new files (a record is ~1.4 KB: fewer WAL frames per batch); existing
      // files keep theirs.
      if (auto e = exec_retrying("PRAGMA page_size = 16384")) return open_error(*e);
      if (auto e = exec_retrying("PRAGMA journal_mode = WAL")) return open_error(*e);
      if (auto e = exec_retrying("PRAGMA synchronous = NORMAL")) return open_error(*e);
    }
    if (auto e = exec_retrying("PRAGMA foreign_keys = ON")) return open_error(*e);
    // A 64 MiB page cache keeps the indexes of a million records in memory; a WAL of up to
    // WAL_MIB between checkpoints (each one an fsync, and index pages written once per
    // checkpoint however often they changed) lets tuners commit small batches cheaply.
    if (auto e = exec_retrying("PRAGMA cache_size = -65536")) return open_error(*e);
    if (!file_read_only_) {
      int64_t page = query_int("PRAGMA page_size").value_or(4096);
      constexpr int64_t wal_mib = 16;
      if (auto e = exec_retrying("PRAGMA wal_autocheckpoint = " + std::to_string(wal_mib * 1024 * 1024 / page) +
                                 "; PRAGMA journal_size_limit = " + std::to_string(wal_mib * 2 * 1024 * 1024)))
        return open_error(*e);
    }
    if (options_.max_bytes > 0) {
      int64_t page = query_int("PRAGMA page_size").value_or(4096);
      int64_t pages = std::max<int64_t>(1, options_.max_bytes / std::max<int64_t>(page, 1));
      if (auto e = exec_retrying("PRAGMA max_page_count = " + std::to_string(pages))) return open_error(*e);
    }
    return ensure_schema();
  }

  std::string describe() const override { return path_; }

  Expected<int64_t> begin_run(RunInfo info) override {
    std::lock_guard lock(mutex_);
    if (info.uid.empty()) info.uid = new_run_uid();
    if (info.started_at == 0) info.started_at = detail::unix_now();
    if (info.config_json.empty()) info.config_json = "{}";
    int64_t id = 0;
    auto e = write_transaction([&]() -> MaybeError {
      {
        Use ins(statement("INSERT INTO tuning_runs(uid, config, host, tessel_version, llvm_version, started_at, "
                          "ended_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(uid) DO NOTHING"));
        ins.text(1, info.uid).text(2, info.config_json).text(3, info.host).text(4, info.tessel_version);
        ins.text(5, info.llvm_version).int64(6, info.started_at);
        info.ended_at ? ins.int64(7, info.ended_at) : ins.null(7);
        if (ins.step() != SQLITE_DONE) return failure();
      }
      Use sel(statement("SELECT id FROM tuning_runs WHERE uid = ?1"));
      sel.text(1, info.uid);
      if (sel.step() != SQLITE_ROW) return failure();
      id = sqlite3_column_int64(sel.get(), 0);
      return std::nullopt;
    });
    if (e) return make_error("cannot record a tuning run in " + path_ + ": " + reason(*e));
    known_runs_.insert(id);
    return id;
  }

  Status end_run(int64_t run_id) override {
    std::lock_guard lock(mutex_);
    bool found = false;
    auto e = write_transaction([&]() -> MaybeError {
      Use upd(statement("UPDATE tuning_runs SET ended_at = ?2 WHERE id = ?1"));
      upd.int64(1, run_id).int64(2, detail::unix_now());
      if (upd.step() != SQLITE_DONE) return failure();
      found = sqlite3_changes(db_) > 0;
      return std::nullopt;
    });
    if (e) return Status::error("cannot end tuning run " + std::to_string(run_id) + " in " + path_ + ": " + reason(*e));
    if (!found) return Status::error("no tuning run " + std::to_string(run_id) + " in " + path_);
    return Status::ok();
  }

  Expected<RunInfo> run(int64_t run_id) const override {
    std::lock_guard lock(mutex_);
    Use sel(statement("SELECT uid, config, host, tessel_version, llvm_version, started_at, ended_at FROM tuning_runs "
                      "WHERE id = ?1"));
    sel.int64(1, run_id);
    int rc = sel.step();
    if (rc == SQLITE_DONE) return make_error("no tuning run " + std::to_string(run_id) + " in " + path_);
    if (rc != SQLITE_ROW) return make_error(read_error());
    RunInfo info;
    info.uid = column_text(sel.get(), 0);
    info.config_json = column_text(sel.get(), 1);
    info.host = column_text(sel.get(), 2);
    info.tessel_version = column_text(sel.get(), 3);
    info.llvm_version = column_text(sel.get(), 4);
    info.started_at = sqlite3_column_int64(sel.get(), 5);
    info.ended_at = sqlite3_column_int64(sel.get(), 6);
    return info;
  }

  Status commit(const std::vector<Record> &batch, CommitCounts *counts) override {
    std::lock_guard lock(mutex_);
    if (counts) *counts = {};
    if (Status st = detail::validate_batch(batch, path_, [&](int64_t id) { return run_exists(id); }); !st) return st;
    // Pending records first (their figures are filled in), then the batch, copied only if it fails.
    int64_t now = detail::unix_now();
    std::vector<Prepared> work;
    work.reserve(pending_.size() + batch.size());
    for (auto &r : pending_) work.push_back(prepare(r, r, now));
    for (auto &r : batch) {
      Record figures;
      figures.run_seconds = r.run_seconds;
      figures.median_seconds = r.median_seconds, figures.min_seconds = r.min_seconds, figures.cv = r.cv;
      figures.timestamp = r.timestamp;
      if (!r.run_seconds.empty() || r.timestamp == 0) detail::fill_derived(figures, now);
      work.push_back(prepare(r, figures, now));
    }
    if (work.empty()) return Status::ok();
    if (file_read_only_ && !options_.read_only && ::access(path_.c_str(), W_OK) == 0) reconnect();
    CommitCounts done;
    auto e = write_records(work, done);
    if (e) {
      std::vector<Record> kept;
      kept.reserve(work.size());
      for (auto &p : work) {
        kept.push_back(*p.record);
        kept.back().median_seconds = p.median, kept.back().min_seconds = p.min, kept.back().cv = p.cv;
        kept.back().timestamp = p.timestamp;
      }
      pending_ = std::move(kept);
      return Status::error(detail::kept_message(path_, reason(*e), pending_.size()));
    }
    pending_.clear();
    if (counts) *counts = done;
    return Status::ok();
  }

  const std::vector<Record> &pending() const override { return pending_; }

  std::vector<Record> take_pending() override {
    std::lock_guard lock(mutex_);
    std::vector<Record> out = std::move(pending_);
    pending_.clear();
    for (auto &r : out) r.run_id = 0; // it names a run of this database, not of the next one
    return out;
  }

  Expected<std::vector<Record>> top_k(const std::string &workload_hash, const TargetKey &target, int k,
                                      TargetMatch match) const override {
    if (k < 1) return make_error("top_k: k must be at least 1, not " + std::to_string(k));
    std::lock_guard lock(mutex_);
    auto wids = ids("SELECT id FROM workloads WHERE structural_hash = ?1", workload_hash, "");
    if (!wids) return make_error(wids.error());
    if (wids->empty()) return std::vector<Record>{};
    auto exact = ids("SELECT id FROM targets WHERE canonical = ?1", target.canonical, "");
    if (!exact) return make_error(exact.error());
    std::vector<std::pair<int64_t, bool>> tids;
    for (int64_t t : *exact) tids.push_back({t, true});
    if (match == TargetMatch::Compatible) {
      auto compat =
          ids("SELECT id FROM targets WHERE compat = ?1 AND canonical != ?2", target.compat, target.canonical);
      if (!compat) return make_error(compat.error());
      for (int64_t t : *compat) tids.push_back({t, false});
    }
    std::vector<std::pair<bool, Record>> found;
    for (int64_t w : *wids)
      for (auto [t, is_exact] : tids) {
        // w.id/t.id as constants keep the plan on the records_top_k index: k rows read, no sort.
        static const std::string sql = std::string(kRecordSelect) +
                                       "WHERE r.workload_id = ?1 AND r.target_id = ?2 AND w.id = ?1 AND t.id = ?2 "
                                       "AND r.status = 'ok' ORDER BY r.median_seconds, r.id LIMIT ?3";
        Use q(statement(sql.c_str()));
        q.int64(1, w).int64(2, t).int64(3, k);
        int rc;
        while ((rc = q.step()) == SQLITE_ROW) found.push_back({is_exact, read_record(q.get())});
        if (rc != SQLITE_DONE) return make_error(read_error());
      }
    std::stable_sort(found.begin(), found.end(), [](auto &a, auto &b) {
      if (a.first != b.first) return a.first;
      if (a.second.median_seconds != b.second.median_seconds) return a.second.median_seconds < b.second.median_seconds;
      return a.second.id < b.second.id;
    });
    std::vector<Record> out;
    for (size_t i = 0; i < found.size() && int(i) < k; ++i) out.push_back(std::move(found[i].second));
    return out;
  }

  Expected<std::vector<Record>> records_for_workload(const std::string &workload_hash) const override {
    std::lock_guard lock(mutex_);
    static const std::string sql =
        std::string(kRecordSelect) +
        "WHERE w.structural_hash = ?1 ORDER BY t.canonical, r.status, r.median_seconds, r.id";
    Use q(statement(sql.c_str()));
    q.text(1, workload_hash);
    std::vector<Record> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(read_record(q.get()));
    if (rc != SQLITE_DONE) return make_error(read_error());
    return out;
  }

  Expected<std::vector<TargetKey>> targets_for_workload(const std::string &workload_hash) const override {
    std::lock_guard lock(mutex_);
    Use q(statement("SELECT t.canonical, t.compat, t.cpu_model, t.threads FROM targets t WHERE EXISTS ("
                    "SELECT 1 FROM workloads w JOIN records r ON r.workload_id = w.id WHERE w.structural_hash = ?1 "
                    "AND r.target_id = t.id AND r.status = 'ok') ORDER BY t.canonical, t.cpu_model"));
    q.text(1, workload_hash);
    std::vector<TargetKey> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW)
      out.push_back(
          {column_text(q.get(), 0), column_text(q.get(), 1), column_text(q.get(), 2), sqlite3_column_int(q.get(), 3)});
    if (rc != SQLITE_DONE) return make_error(read_error());
    return out;
  }

  Status for_each(const std::function<bool(const Record &)> &fn) const override {
    // In chunks, with the lock and the read transaction released between them: `fn` may
    // use this database (merge into itself) and a long walk does not hold up checkpoints.
    int64_t last = 0;
    for (;;) {
      std::vector<Record> chunk;
      {
        std::lock_guard lock(mutex_);
        static const std::string sql = std::string(kRecordSelect) + "WHERE r.id > ?1 ORDER BY r.id LIMIT 512";
        Use q(statement(sql.c_str()));
        q.int64(1, last);
        int rc;
        while ((rc = q.step()) == SQLITE_ROW) chunk.push_back(read_record(q.get()));
        if (rc != SQLITE_DONE) return Status::error(read_error());
      }
      if (chunk.empty()) return Status::ok();
      last = chunk.back().id;
      for (auto &r : chunk)
        if (!fn(r)) return Status::ok();
    }
  }

  Expected<bool> contains(const Record &r) const override {
    Record copy = r;
    detail::fill_derived(copy, 1);
    std::string hash = detail::content_hash(copy);
    std::lock_guard lock(mutex_);
    Use q(statement("SELECT 1 FROM records WHERE content_hash = ?1"));
    q.text(1, hash);
    int rc = q.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return make_error(read_error());
    return rc == SQLITE_ROW;
  }

  Expected<Stats> stats() const override {
    std::lock_guard lock(mutex_);
    Stats s;
    std::pair<const char *, int64_t *> queries[] = {
        {"SELECT count(*) FROM records", &s.records},
        {"SELECT count(*) FROM records WHERE status = 'ok'", &s.ok_records},
        {"SELECT count(*) FROM workloads", &s.workloads},
        {"SELECT count(*) FROM targets", &s.targets},
        {"SELECT count(*) FROM tuning_runs", &s.runs},
    };
    for (auto [sql, out] : queries) {
      auto v = query_int(sql);
      if (!v) return make_error(read_error());
      *out = *v;
    }
    s.pending = int64_t(pending_.size());
    s.file_bytes = query_int("PRAGMA page_count").value_or(0) * query_int("PRAGMA page_size").value_or(0);
    return s;
  }

  Expected<std::vector<Summary>> summaries() const override {
    std::lock_guard lock(mutex_);
    Use q(statement("SELECT w.key, w.structural_hash, t.canonical, t.compat, t.cpu_model, t.threads, count(*), "
                    "sum(r.status = 'ok'), min(CASE WHEN r.status = 'ok' THEN r.median_seconds END), w.flops "
                    "FROM records r JOIN workloads w ON w.id = r.workload_id JOIN targets t ON t.id = r.target_id "
                    "GROUP BY r.workload_id, r.target_id ORDER BY w.key, t.canonical, t.cpu_model"));
    std::vector<Summary> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
      sqlite3_stmt *s = q.get();
      Summary m;
      m.workload_key = column_text(s, 0);
      m.workload_hash = column_text(s, 1);
      m.target = {column_text(s, 2), column_text(s, 3), column_text(s, 4), sqlite3_column_int(s, 5)};
      m.records = sqlite3_column_int64(s, 6);
      m.ok_records = sqlite3_column_int64(s, 7);
      m.best_median_seconds = sqlite3_column_double(s, 8); // NULL reads as 0
      m.flops = sqlite3_column_double(s, 9);
      out.push_back(std::move(m));
    }
    if (rc != SQLITE_DONE) return make_error(read_error());
    return out;
  }

  Expected<PruneCounts> prune(int k) override {
    if (k < 1) return make_error("prune: k must be at least 1, not " + std::to_string(k));
    std::lock_guard lock(mutex_);
    PruneCounts counts;
    auto e = write_transaction([&]() -> MaybeError {
      if (auto e = exec_once("DELETE FROM records WHERE status != 'ok'")) return e;
      counts.removed_failed = sqlite3_changes(db_);
      if (auto e = exec_once("DELETE FROM records WHERE id IN (SELECT id FROM (SELECT r.id, ROW_NUMBER() OVER ("
                             "PARTITION BY w.structural_hash, t.canonical ORDER BY r.median_seconds, r.id) AS rank "
                             "FROM records r JOIN workloads w ON w.id = r.workload_id JOIN targets t ON t.id = "
                             "r.target_id) WHERE rank > " +
                             std::to_string(k) + ")"))
        return e;
      counts.removed_slower = sqlite3_changes(db_);
      auto kept = query_int("SELECT count(*) FROM records");
      if (!kept) return failure();
      counts.kept = *kept;
      return std::nullopt;
    });
    if (e) return make_error("cannot prune " + path_ + ": " + reason(*e));
    return counts;
  }

private:
  void disconnect() {
    for (auto &[sql, s] : statements_) sqlite3_finalize(s);
    statements_.clear();
    if (db_) sqlite3_close_v2(db_);
    db_ = nullptr;
  }

  // The file became writable (permissions fixed): a fresh read-write connection.
  void reconnect() {
    disconnect();
    workload_ids_.clear();
    target_ids_.clear();
    if (!connect()) file_read_only_ = true;
  }

  Status open_error(const SqlError &e) {
    disconnect();
    return Status::error("cannot open database " + path_ + ": " + e.message);
  }

  Status ensure_schema() {
    auto version = query_int("PRAGMA user_version");
    // A writer switching the file to WAL or creating it blocks this read for a moment: wait it out.
    auto deadline = Clock::now() + std::chrono::milliseconds(options_.lock_timeout_ms);
    for (int attempt = 0; !version && is_busy(sqlite3_extended_errcode(db_)) && Clock::now() < deadline; ++attempt) {
      backoff(attempt);
      version = query_int("PRAGMA user_version");
    }
    if (!version) return Status::error("cannot read the schema version of " + path_ + ": " + read_error());
    if (*version == schema::kCurrentVersion) return Status::ok();
    if (*version > schema::kCurrentVersion)
      return Status::error(path_ + " has tuning-database schema version " + std::to_string(*version) +
                           ", newer than this Tessel reads (" + std::to_string(schema::kCurrentVersion) +
                           "); upgrade Tessel to use it");
    if (options_.read_only || file_read_only_)
      return Status::error(path_ + (*version == 0
                                        ? " is empty: not a tuning database yet, and a read-only open cannot create one"
                                        : " has schema version " + std::to_string(*version) +
                                              "; migrating it to version " + std::to_string(schema::kCurrentVersion) +
                                              " needs a writable open (once; the migration keeps every record)"));
    std::string failure_text;
    auto e = write_transaction([&]() -> MaybeError {
      // Another process may have created or migrated the file meanwhile: decide inside the lock.
      auto v = query_int("PRAGMA user_version");
      if (!v) return failure();
      if (*v == 0) {
        auto tables = query_int("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'");
        if (!tables) return failure();
        if (*tables > 0) {
          failure_text = path_ + " is a SQLite database but not a Tessel tuning database; refusing to touch it";
          return SqlError{SQLITE_MISUSE, failure_text};
        }
        if (auto st = schema::create_v1(db_, "tessel " + tessel::version()); !st)
          return SqlError{SQLITE_ERROR, "creating schema version 1: " + st.message()};
        v = 1;
      }
      for (auto &m : schema::migrations()) {
        if (m.from != *v) continue;
        if (auto st = m.run(db_); !st)
          return SqlError{SQLITE_ERROR, "migrating from schema version " + std::to_string(m.from) + " to " +
                                            std::to_string(m.from + 1) + " (" + m.what + "): " + st.message()};
        v = m.from + 1;
      }
      if (*v != schema::kCurrentVersion)
        return SqlError{SQLITE_ERROR, "no migration from schema version " + std::to_string(*v)};
      return std::nullopt;
    });
    if (e) {
      std::string why = failure_text.empty() ? reason(*e) : failure_text;
      disconnect();
      return Status::error(failure_text.empty() ? "cannot set up " + path_ + ": " + why + " (nothing was changed)"
                                                : why);
    }
    return Status::ok();
  }

  // Keyed by the SQL text's address: every call site passes the same literal (or static string).
  sqlite3_stmt *statement(const char *sql) const {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second;
    sqlite3_stmt *s = nullptr;
    // On failure (a corrupt file) the statement is null and its use reports sqlite3_errmsg.
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
      sqlite3_finalize(s);
      return nullptr;
    }
    statements_.emplace(sql, s);
    return s;
  }

  SqlError failure() const { return {sqlite3_extended_errcode(db_), sqlite3_errmsg(db_)}; }
  std::string read_error() const { return "reading " + path_ + ": " + sqlite3_errmsg(db_); }

  std::optional<int64_t> query_int(const std::string &sql) const {
    sqlite3_stmt *s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return std::nullopt;
    std::optional<int64_t> v;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }

  Expected<std::vector<int64_t>> ids(const char *sql, const std::string &a, const std::string &b) const {
    Use q(statement(sql));
    q.text(1, a);
    if (!b.empty()) q.text(2, b);
    std::vector<int64_t> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(sqlite3_column_int64(q.get(), 0));
    if (rc != SQLITE_DONE) return make_error(read_error());
    return out;
  }

  bool run_exists(int64_t id) {
    if (known_runs_.count(id)) return true;
    Use q(statement("SELECT 1 FROM tuning_runs WHERE id = ?1"));
    q.int64(1, id);
    if (q.step() != SQLITE_ROW) return false;
    known_runs_.insert(id);
    return true;
  }

  MaybeError exec_once(const std::string &sql) {
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) return failure();
    return std::nullopt;
  }

  bool is_busy(int rc) const { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

  // Runs `sql`, waiting out other connections (busy) up to the lock timeout.
  MaybeError exec_retrying(const std::string &sql) {
    auto deadline = Clock::now() + std::chrono::milliseconds(options_.lock_timeout_ms);
    for (int attempt = 0;; ++attempt) {
      int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) return std::nullopt;
      if (!is_busy(rc) || Clock::now() >= deadline) return failure();
      backoff(attempt);
    }
  }

  static void backoff(int attempt) {
    // Randomized, so writers that collided do not collide again in lockstep.
    thread_local std::minstd_rand rng(std::random_device{}());
    int cap = std::min(50, 1 << std::min(attempt, 6));
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + int(rng() % unsigned(cap))));
  }

  // BEGIN IMMEDIATE (the write lock up front, so no deadlock between two upgrading readers),
  // `body`, COMMIT; rolled back on any failure.
  MaybeError write_transaction(const std::function<MaybeError()> &body) {
    if (options_.read_only) return SqlError{SQLITE_READONLY, "opened read-only"};
    auto deadline = Clock::now() + std::chrono::milliseconds(options_.lock_timeout_ms);
    for (int attempt = 0;; ++attempt) {
      int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) break;
      if (!is_busy(rc)) return failure();
      if (Clock::now() >= deadline) return SqlError{SQLITE_BUSY, "locked"};
      backoff(attempt);
    }
    MaybeError e = body();
    for (int attempt = 0; !e; ++attempt) {
      int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) return std::nullopt;
      if (!is_busy(rc) || Clock::now() >= deadline)
        e = failure();
      else
        backoff(attempt);
    }
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return e;
  }

  std::string reason(const SqlError &e) const {
    switch (e.rc & 0xff) {
    case SQLITE_READONLY: return options_.read_only ? "is opened read-only" : "is read-only (" + e.message + ")";
    case SQLITE_FULL:
      return options_.max_bytes > 0 ? "is full (no space left on the disk, or its size cap of " +
                                          std::to_string(options_.max_bytes) + " bytes is reached)"
                                    : "is full (no space left on the disk)";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "stayed locked by another writer for " + std::to_string(options_.lock_timeout_ms / 1000) +
             " s (OpenOptions::lock_timeout_ms)";
    case SQLITE_IOERR: return "could not be written (I/O error: " + e.message + ")";
    default: return "could not be written (" + e.message + ")";
    }
  }

  // A record ready to insert: its figures (computed once) and identity, without a copy of its strings.
  struct Prepared {
    const Record *record;
    double median, min, cv;
    int64_t timestamp;
    std::string seconds, hash;
  };
  static Prepared prepare(const Record &r, const Record &figures, int64_t now) {
    Prepared p{&r,
               figures.median_seconds,
               figures.min_seconds,
               figures.cv,
               figures.timestamp ? figures.timestamp : now,
               detail::format_seconds(r.run_seconds),
               ""};
    p.hash = detail::content_hash(r, p.seconds, p.median);
    return p;
  }

  struct WorkloadRow {
    std::string key, text;
    int64_t id;
  };
  struct TargetRow {
    std::string cpu_model;
    int64_t id;
  };

  MaybeError write_records(const std::vector<Prepared> &work, CommitCounts &counts) {
    // Parsed before the transaction: the flops of workloads new to this connection, for GFLOP/s.
    std::vector<double> flops(work.size(), 0.0);
    for (size_t i = 0; i < work.size(); ++i) {
      const Record &r = *work[i].record;
      if (i > 0 && same_workload(r, *work[i - 1].record)) {
        flops[i] = flops[i - 1];
        continue;
      }
      if (!find_workload(workload_ids_, r)) flops[i] = detail::flops_of(r.workload_text);
    }
    // Rows created inside the transaction join the caches only once it commits.
    std::unordered_map<std::string, std::vector<WorkloadRow>> new_workloads;
    std::unordered_map<std::string, std::vector<TargetRow>> new_targets;
    CommitCounts done;
    auto e = write_transaction([&]() -> MaybeError {
      int64_t wid = 0, tid = 0;
      for (size_t i = 0; i < work.size(); ++i) {
        const Prepared &p = work[i];
        const Record &r = *p.record;
        if (i == 0 || !same_workload(r, *work[i - 1].record)) {
          auto found = find_workload(workload_ids_, r);
          if (!found) found = find_workload(new_workloads, r);
          if (found) {
            wid = *found;
          } else {
            {
              Use ins(statement("INSERT INTO workloads(key, structural_hash, text_form, flops) VALUES (?1, ?2, ?3, ?4) "
                                "ON CONFLICT(structural_hash, key, text_form) DO NOTHING"));
              ins.text(1, r.workload_key).text(2, r.workload_hash).text(3, r.workload_text);
              flops[i] > 0 ? ins.real(4, flops[i]) : ins.null(4);
              if (ins.step() != SQLITE_DONE) return failure();
            }
            Use sel(statement("SELECT id FROM workloads WHERE structural_hash = ?1 AND key = ?2 AND text_form = ?3"));
            sel.text(1, r.workload_hash).text(2, r.workload_key).text(3, r.workload_text);
            if (sel.step() != SQLITE_ROW) return failure();
            wid = sqlite3_column_int64(sel.get(), 0);
            new_workloads[r.workload_hash].push_back({r.workload_key, r.workload_text, wid});
          }
        }
        if (i == 0 || !same_target(r, *work[i - 1].record)) {
          auto found = find_target(target_ids_, r);
          if (!found) found = find_target(new_targets, r);
          if (found) {
            tid = *found;
          } else {
            {
              Use ins(statement("INSERT INTO targets(canonical, compat, cpu_model, threads) VALUES (?1, ?2, ?3, ?4) "
                                "ON CONFLICT(canonical, cpu_model) DO NOTHING"));
              ins.text(1, r.target.canonical).text(2, r.target.compat).text(3, r.target.cpu_model);
              ins.int64(4, r.target.threads);
              if (ins.step() != SQLITE_DONE) return failure();
            }
            Use sel(statement("SELECT id FROM targets WHERE canonical = ?1 AND cpu_model = ?2"));
            sel.text(1, r.target.canonical).text(2, r.target.cpu_model);
            if (sel.step() != SQLITE_ROW) return failure();
            tid = sqlite3_column_int64(sel.get(), 0);
            new_targets[r.target.canonical].push_back({r.target.cpu_model, tid});
          }
        }
        std::string_view status = to_string(r.status);
        Use ins(statement("INSERT INTO records(workload_id, target_id, run_id, status, message, median_seconds, "
                          "min_seconds, cv, run_seconds, trace_version, trace, measured_at, content_hash) VALUES "
                          "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
                          "ON CONFLICT(content_hash) DO NOTHING"));
        ins.int64(1, wid).int64(2, tid);
        r.run_id ? ins.int64(3, r.run_id) : ins.null(3);
        ins.text(4, status).text(5, r.message).real(6, p.median).real(7, p.min).real(8, p.cv);
        ins.text(9, p.seconds).int64(10, r.trace_version).text(11, r.trace_json).int64(12, p.timestamp);
        ins.text(13, p.hash);
        if (ins.step() != SQLITE_DONE) return failure();
        (sqlite3_changes(db_) ? done.stored : done.duplicates) += 1;
      }
      return std::nullopt;
    });
    if (e) return e;
    for (auto &[hash, rows] : new_workloads)
      for (auto &row : rows) workload_ids_[hash].push_back(std::move(row));
    for (auto &[canonical, rows] : new_targets)
      for (auto &row : rows) target_ids_[canonical].push_back(std::move(row));
    counts = done;
    return std::nullopt;
  }

  static bool same_workload(const Record &a, const Record &b) {
    return a.workload_hash == b.workload_hash && a.workload_key == b.workload_key && a.workload_text == b.workload_text;
  }
  static bool same_target(const Record &a, const Record &b) {
    return a.target.canonical == b.target.canonical && a.target.cpu_model == b.target.cpu_model;
  }
  static std::optional<int64_t> find_workload(const std::unordered_map<std::string, std::vector<WorkloadRow>> &rows,
                                              const Record &r) {
    auto it = rows.find(r.workload_hash);
    if (it != rows.end())
      for (auto &row : it->second)
        if (row.key == r.workload_key && row.text == r.workload_text) return row.id;
    return std::nullopt;
  }
  static std::optional<int64_t> find_target(const std::unordered_map<std::string, std::vector<TargetRow>> &rows,
                                            const Record &r) {
    auto it = rows.find(r.target.canonical);
    if (it != rows.end())
      for (auto &row : it->second)
        if (row.cpu_model == r.target.cpu_model) return row.id;
    return std::nullopt;
  }

  std::string path_;
  OpenOptions options_;
  sqlite3 *db_ = nullptr;
  bool file_read_only_ = false; // opened read-write, but SQLite could only read the file
  mutable std::mutex mutex_;
  mutable std::unordered_map<const char *, sqlite3_stmt *> statements_;
  std::vector<Record> pending_;
  // Row ids of workloads (by hash) and targets (by canonical key) this connection wrote or found
  // (rows are never deleted).
  std::unordered_map<std::string, std::vector<WorkloadRow>> workload_ids_;
  std::unordered_map<std::string, std::vector<TargetRow>> target_ids_;
  std::unordered_set<int64_t> known_runs_;
};

} // namespace

Expected<std::unique_ptr<Database>> open_sqlite(const std::string &path, OpenOptions options) {
  if (path.empty()) return make_error("open_sqlite: empty path");
  std::error_code ec;
  auto status = fs::status(path, ec);
  bool exists = fs::exists(status);
  if (exists && fs::is_directory(status)) return make_error(path + " is a directory, not a tuning database file");
  if (exists && fs::file_size(path, ec) > 0 && !ec) {
    if (auto st = preflight(path, options.lock_timeout_ms); !st) return make_error(st.message());
  } else if (!exists) {
    if (options.read_only) return make_error(path + " does not exist (a read-only open never creates a database)");
    fs::path parent = fs::path(path).parent_path();
    if (parent.empty()) parent = ".";
    auto pstatus = fs::status(parent, ec);
    if (!fs::exists(pstatus))
      return make_error("cannot create database " + path + ": directory " + parent.string() + " does not exist");
    if (!fs::is_directory(pstatus))
      return make_error("cannot create database " + path + ": " + parent.string() + " is not a directory");
    if (::access(parent.c_str(), W_OK) != 0)
      return make_error("cannot create database " + path + ": directory " + parent.string() + " is not writable");
  }
  auto db = std::make_unique<SqliteDatabase>(path, options);
  if (auto st = db->connect(); !st) return make_error(st.message());
  return std::unique_ptr<Database>(std::move(db));
}

} // namespace tessel::db
