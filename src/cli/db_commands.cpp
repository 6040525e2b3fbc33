// `tessel db ...` and the database side of `tessel run --db`: the tuning
// database (db/database.h) for people. Read commands never create a file.
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "db/database.h"
#include "support/memory.h"
#include "te/ops.h"
#include "te/text.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace tessel::cli {

namespace {

namespace fs = std::filesystem;

// Opens the database a command names. Read commands need an existing file: a typo in
// --db must not leave an empty database behind.
Expected<std::unique_ptr<db::Database>> open_database(const std::string &flag, bool must_exist) {
  std::string path = database_path(flag);
  if (must_exist && !fs::exists(path))
    return make_error("no tuning database at " + path +
                      (flag.empty() ? std::string(std::getenv("TESSEL_DB") ? " (from TESSEL_DB)" : " (the default)") +
                                          "; give one with --db PATH or TESSEL_DB, or tune into it first"
                                    : "; check the path"));
  return db::open_sqlite(path);
}

std::string utc_date(int64_t unix_seconds) {
  std::time_t t = std::time_t(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

// "sapphirerapids, 512-bit, 1 thread" / "sm_90, 132 SMs, 1 thread": the canonical key's words that
// tell targets apart at a glance (`tessel db best` prints the whole key).
std::string compact_target(const db::TargetKey &key) {
  auto word = [&](const std::string &name) {
    auto pos = key.canonical.find(" " + name + "=");
    if (pos == std::string::npos) return std::string();
    pos += name.size() + 2;
    return key.canonical.substr(pos, key.canonical.find(' ', pos) - pos);
  };
  std::string threads = std::to_string(key.threads) + (key.threads == 1 ? " thread" : " threads");
  if (!word("gpu").empty()) return word("gpu") + ", " + word("sms") + " SMs, " + threads;
  return word("cpu") + ", " + word("vector_bits") + "-bit, " + threads;
}

Expected<db::TargetKey> key_for(const std::string &target_name, int threads) {
  if (threads < 1) return make_error("--threads must be at least 1, got " + std::to_string(threads));
  auto t = Target::load(target_name);
  if (!t) return make_error(t.error());
  return db::target_key(*t, threads);
}

} // namespace

Expected<sched::Schedule> schedule_from_database(const std::string &path, const te::Workload &w, const Target &target,
                                                 int threads, bool compatible) {
  auto db = open_database(path, /*must_exist=*/true);
  if (!db) return make_error(db.error());
  auto best = db::apply_best(**db, w, db::target_key(target, threads),
                             compatible ? db::TargetMatch::Compatible : db::TargetMatch::Exact);
  if (!best) return make_error(best.error());
  std::cout << "schedule  record " << best->record.id << " of " << (*db)->describe() << ": "
            << human_seconds(best->record.median_seconds) << " median when measured on "
            << best->record.target.cpu_model << ", " << utc_date(best->record.timestamp) << " ("
            << best->schedule.trace.size() << " steps)\n";
  if (!best->note.empty()) std::cout << "note      " << best->note << "\n";
  return std::move(best->schedule);
}

int cmd_db_list(const DbOptions &o) {
  if (o.limit < 0) return fail("--limit must be 0 (no limit) or more, got " + std::to_string(o.limit));
  auto db = open_database(o.db, true);
  if (!db) return fail(db.error());
  auto sums = (*db)->summaries();
  if (!sums) return fail(sums.error());
  std::vector<db::Summary> shown;
  for (auto &m : *sums)
    if (o.workload.empty() || m.workload_key.find(o.workload) != std::string::npos) shown.push_back(m);
  std::cout << (*db)->describe() << ": " << sums->size() << " workload x target pair" << (sums->size() == 1 ? "" : "s");
  if (!o.workload.empty()) std::cout << ", " << shown.size() << " matching '" << o.workload << "'";
  std::cout << "\n";
  if (shown.empty()) {
    std::cout << (sums->empty() ? "(empty: `tessel tune` fills it, `tessel db import FILE` brings records in)\n"
                                : "(nothing matches)\n");
    return 0;
  }
  std::cout << pad_right("workload", 40) << pad_right("target", 32) << pad_right("machine", 28)
            << pad_right("records", 8) << pad_right("ok", 7) << pad_right("best", 10) << "GFLOP/s\n";
  size_t n = 0;
  for (auto &m : shown) {
    if (o.limit > 0 && n++ >= size_t(o.limit)) {
      std::cout << "... " << shown.size() - size_t(o.limit) << " more (--limit 0 shows all)\n";
      break;
    }
    std::cout << pad_right(m.workload_key, 40) << pad_right(compact_target(m.target), 32)
              << pad_right(m.target.cpu_model, 28) << pad_right(std::to_string(m.records), 8)
              << pad_right(std::to_string(m.ok_records), 7) << pad_right(human_seconds(m.best_median_seconds), 10)
              << gflops(m.flops, m.best_median_seconds) << "\n";
  }
  return 0;
}

int cmd_db_best(const DbOptions &o) {
  if (o.top < 1) return fail("--top must be at least 1, got " + std::to_string(o.top));
  auto w = te::load_workload(o.workload);
  if (!w) return fail(w.error());
  auto key = key_for(o.target, o.threads);
  if (!key) return fail(key.error());
  auto db = open_database(o.db, true);
  if (!db) return fail(db.error());
  auto match = o.compatible ? db::TargetMatch::Compatible : db::TargetMatch::Exact;
  // apply_best checks what top_k only finds: the stored hash, the trace version, that it replays.
  auto best = db::apply_best(**db, *w, *key, match);
  if (!best) return fail(best.error());
  const db::Record &r = best->record;
  std::cout << "workload  " << w->key << "  (hash " << w->hash_hex() << ")\n"
            << "target    " << db::short_target(*key) << "\n"
            << "best      record " << r.id << ": " << human_seconds(r.median_seconds) << " median, "
            << human_seconds(r.min_seconds) << " min, cv " << fmt("%.3f", r.cv) << " over " << r.run_seconds.size()
            << " repeats, " << gflops(w->flops(), r.median_seconds) << " GFLOP/s\n"
            << "measured  on " << r.target.cpu_model << ", " << utc_date(r.timestamp)
            << (r.run_id ? ", tuning run " + std::to_string(r.run_id) : std::string()) << "\n"
            << "schedule  " << best->schedule.trace.size() << " steps (trace format version " << r.trace_version
            << ")\n";
  if (!best->note.empty()) std::cout << "note      " << best->note << "\n";
  if (o.top > 1) {
    auto top = (*db)->top_k(w->hash_hex(), *key, o.top, match);
    if (!top) return fail(top.error());
    std::cout << "top " << top->size() << ":\n";
    for (auto &t : *top)
      std::cout << "  record " << pad_right(std::to_string(t.id), 8) << pad_right(human_seconds(t.median_seconds), 10)
                << pad_right(gflops(w->flops(), t.median_seconds) + " GFLOP/s", 16) << t.target.cpu_model << "\n";
  }
  if (!o.trace_out.empty()) {
    std::ofstream out(o.trace_out, std::ios::binary);
    out << r.trace_json << "\n";
    out.close();
    if (!out) return fail("cannot write " + o.trace_out);
    std::cout << "wrote     " << o.trace_out << " (replay it: tessel run " << o.workload << " --trace " << o.trace_out
              << ")\n";
  } else {
    std::cout << "\n" << r.trace_json << "\n";
  }
  return 0;
}

int cmd_db_stats(const DbOptions &o) {
  auto db = open_database(o.db, true);
  if (!db) return fail(db.error());
  auto s = (*db)->stats();
  if (!s) return fail(s.error());
  std::cout << "database   " << (*db)->describe() << "\n"
            << "records    " << s->records << " (" << s->ok_records << " ok, " << s->records - s->ok_records
            << " failed: compile/runtime errors, timeouts, wrong results)\n"
            << "workloads  " << s->workloads << "\n"
            << "targets    " << s->targets << " (target x measuring machine)\n"
            << "runs       " << s->runs << " tuning runs\n"
            << "file       " << human_bytes(double(s->file_bytes));
  if (s->records > 0) std::cout << ", " << s->file_bytes / s->records << " bytes per record";
  std::cout << "\n";
  return 0;
}

int cmd_db_export(const DbOptions &o) {
  auto db = open_database(o.db, true);
  if (!db) return fail(db.error());
  std::string path = o.file.empty() ? "-" : o.file;
  ProgressBar bar("exporting");
  auto counts = db::export_jsonl(**db, path, [&](double f) { bar.update(f); });
  if (!counts) return fail(counts.error());
  std::cerr << "exported " << counts->exported << " records from " << (*db)->describe() << " to "
            << (path == "-" ? "standard output" : path) << "\n";
  return 0;
}

int cmd_db_import(const DbOptions &o) {
  auto db = open_database(o.db, false);
  if (!db) return fail(db.error());
  ProgressBar bar("importing");
  auto counts = db::import_jsonl(**db, o.file, [&](double f) { bar.update(f); });
  if (!counts) return fail(counts.error());
  constexpr size_t kShown = 20;
  for (size_t i = 0; i < counts->errors.size() && i < kShown; ++i)
    std::cerr << "tessel: error: " << o.file << ": " << counts->errors[i] << "\n";
  if (counts->errors.size() > kShown)
    std::cerr << "tessel: error: ... and " << counts->errors.size() - kShown << " more failed lines\n";
  std::cout << "imported " << counts->imported << " records into " << (*db)->describe() << " (" << counts->duplicates
            << " already present, " << counts->failed << " lines failed)\n";
  return counts->failed > 0 ? 1 : 0;
}

int cmd_db_merge(const DbOptions &o) {
  if (fs::exists(o.file) && fs::exists(database_path(o.db)) && fs::equivalent(o.file, database_path(o.db)))
    return fail("merge: " + o.file + " is the database itself; name another database");
  db::OpenOptions read_only;
  read_only.read_only = true;
  auto from = db::open_sqlite(o.file, read_only);
  if (!from) return fail(from.error());
  auto db = open_database(o.db, false);
  if (!db) return fail(db.error());
  ProgressBar bar("merging");
  auto counts = db::merge(**db, **from, [&](double f) { bar.update(f); });
  if (!counts) return fail(counts.error());
  std::cout << "merged " << o.file << " into " << (*db)->describe() << ": " << counts->read << " records read, "
            << counts->added << " added, " << counts->duplicates << " already present\n";
  return 0;
}

int cmd_db_prune(const DbOptions &o) {
  if (o.keep < 1) return fail("--keep must be at least 1, got " + std::to_string(o.keep));
  auto db = open_database(o.db, true);
  if (!db) return fail(db.error());
  auto counts = (*db)->prune(o.keep);
  if (!counts) return fail(counts.error());
  std::cout << "pruned " << (*db)->describe() << " to the " << o.keep
            << " fastest ok records per workload and target: " << counts->kept << " kept, " << counts->removed_slower
            << " slower and " << counts->removed_failed << " failed records removed\n";
  return 0;
}

} // namespace tessel::cli
