// The schema: version 1 as first released, then one function per forward
// migration. Released steps never change: a file written by any earlier
// Tessel must open in every later one (tests/data/tessel_v1.db checks it).
#include "db/schema.h"

#include "db/detail.h"

#include <cmath>

namespace tessel::db::schema {

Status exec(sqlite3 *db, const std::string &sql) {
  char *err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::ok();
  std::string message = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return Status::error(message);
}

namespace {

Status set_version(sqlite3 *db, int version) {
  return exec(db, "PRAGMA user_version = " + std::to_string(version) +
                      ";\nINSERT INTO meta(key, value) VALUES ('schema_version', '" + std::to_string(version) +
                      "') ON CONFLICT(key) DO UPDATE SET value = excluded.value;");
}

// Version 2: the coefficient of variation of every record's repeats (filled in
// for existing records from their run_seconds), and the `best` view.
Status migrate_1_to_2(sqlite3 *db) {
  if (auto st = exec(db, "ALTER TABLE records ADD COLUMN cv REAL NOT NULL DEFAULT 0;"); !st) return st;
  sqlite3_stmt *read = nullptr, *write = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT id, run_seconds FROM records", -1, &read, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, "UPDATE records SET cv = ?2 WHERE id = ?1", -1, &write, nullptr);
  while (rc == SQLITE_OK) {
    int step = sqlite3_step(read);
    if (step == SQLITE_DONE) break;
    if (step != SQLITE_ROW) {
      rc = step;
      break;
    }
    const char *text = reinterpret_cast<const char *>(sqlite3_column_text(read, 1));
    Record r;
    r.run_seconds = detail::parse_seconds(text ? text : "").value_or(std::vector<double>{});
    detail::fill_derived(r, 1);
    if (r.cv == 0) continue;
    sqlite3_bind_int64(write, 1, sqlite3_column_int64(read, 0));
    sqlite3_bind_double(write, 2, r.cv);
    if (sqlite3_step(write) != SQLITE_DONE) rc = sqlite3_errcode(db);
    sqlite3_reset(write);
  }
  std::string err = rc == SQLITE_OK ? "" : sqlite3_errmsg(db);
  sqlite3_finalize(read);
  sqlite3_finalize(write);
  if (rc != SQLITE_OK) return Status::error("filling records.cv: " + err);
  // One row per workload x target: the fastest ok record. Driven by the pairs, so it stays fast
  // at millions of records (one index seek per pair).
  if (auto st = exec(db, R"sql(
CREATE VIEW best AS
SELECT w.key AS workload,
       CASE WHEN instr(t.canonical, ' isa=') > 0 THEN substr(t.canonical, 1, instr(t.canonical, ' isa=') - 1)
            ELSE t.canonical END AS target,
       t.cpu_model AS cpu_model,
       round(r.median_seconds * 1e6, 3) AS median_us,
       CASE WHEN w.flops > 0 AND r.median_seconds > 0 THEN round(w.flops / r.median_seconds / 1e9, 2) END AS gflops,
       round(r.cv, 4) AS cv,
       r.id AS record_id,
       w.structural_hash AS workload_hash,
       r.trace AS trace
FROM workloads w, targets t, records r
WHERE r.id = (SELECT b.id FROM records b
              WHERE b.workload_id = w.id AND b.target_id = t.id AND b.status = 'ok'
              ORDER BY b.median_seconds, b.id LIMIT 1)
ORDER BY w.key, t.canonical, t.cpu_model;
)sql");
      !st)
    return st;
  return set_version(db, 2);
}

} // namespace

Status create_v1(sqlite3 *db, const std::string &created_by) {
  auto st = exec(db, R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE workloads (
  id              INTEGER PRIMARY KEY,
  key             TEXT NOT NULL,  -- canonical key, for people: matmul:M=256,N=256,K=256,dtype=f32
  structural_hash TEXT NOT NULL,  -- Workload::hash_hex(): what lookups use
  text_form       TEXT NOT NULL,  -- te::to_text(): re-parsed to detect a stale hash
  flops           REAL,           -- per evaluation; NULL when unknown
  UNIQUE (structural_hash, key, text_form)
);
CREATE TABLE targets (
  id        INTEGER PRIMARY KEY,
  canonical TEXT NOT NULL,    -- exact identity: kind, arch, cpu, vector bits, threads, ISA list
  compat    TEXT NOT NULL,    -- class of the explicit compatible fallback
  cpu_model TEXT NOT NULL,    -- the machine that measured
  threads   INTEGER NOT NULL,
  UNIQUE (canonical, cpu_model)
);
CREATE INDEX targets_by_compat ON targets(compat);
CREATE TABLE tuning_runs (
  id             INTEGER PRIMARY KEY,
  uid            TEXT NOT NULL UNIQUE,  -- survives export/import and merges
  config         TEXT NOT NULL,         -- JSON
  host           TEXT NOT NULL,
  tessel_version TEXT NOT NULL,
  llvm_version   TEXT NOT NULL,
  started_at     INTEGER NOT NULL,      -- unix seconds
  ended_at       INTEGER
);
CREATE TABLE records (
  id             INTEGER PRIMARY KEY,
  workload_id    INTEGER NOT NULL REFERENCES workloads(id),
  target_id      INTEGER NOT NULL REFERENCES targets(id),
  run_id         INTEGER REFERENCES tuning_runs(id),
  -- An OR chain, not IN (...), which would build a temporary index for every inserted row.
  status         TEXT NOT NULL CHECK (status = 'ok' OR status = 'compile-error' OR status = 'runtime-error' OR
                                      status = 'timeout' OR status = 'wrong-result' OR status = 'invalid'),
  message        TEXT NOT NULL,
  median_seconds REAL NOT NULL,
  min_seconds    REAL NOT NULL,
  run_seconds    TEXT NOT NULL,     -- JSON array: every repeat
  trace_version  INTEGER NOT NULL,
  trace          TEXT NOT NULL,     -- JSON, schedules/TRACE_FORMAT.md
  measured_at    INTEGER NOT NULL,  -- unix seconds
  content_hash   TEXT NOT NULL UNIQUE  -- dedup identity, db/FORMAT.md
);
CREATE INDEX records_top_k ON records(workload_id, target_id, status, median_seconds);
)sql");
  if (!st) return st;
  sqlite3_stmt *meta = nullptr;
  int rc = sqlite3_prepare_v2(db, "INSERT INTO meta(key, value) VALUES (?1, ?2)", -1, &meta, nullptr);
  for (auto [k, v] : {std::pair<std::string, std::string>{"created_by", created_by},
                      {"created_at", std::to_string(detail::unix_now())}}) {
    if (rc != SQLITE_OK) break;
    sqlite3_bind_text(meta, 1, k.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(meta, 2, v.c_str(), -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(meta) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    sqlite3_reset(meta);
  }
  std::string err = rc == SQLITE_OK ? "" : sqlite3_errmsg(db);
  sqlite3_finalize(meta);
  if (rc != SQLITE_OK) return Status::error("writing meta: " + err);
  return set_version(db, 1);
}

const std::vector<Migration> &migrations() {
  static const std::vector<Migration> steps = {
      {1, "records.cv (coefficient of variation of the repeats) and the `best` view", migrate_1_to_2},
  };
  return steps;
}

} // namespace tessel::db::schema
