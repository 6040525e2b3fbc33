// `tessel db ...` and `tessel run --db` as users run them: the binary, on
// databases this test fills through db/database.h with records for this host
// (real sampled traces), a stale-hash record and another target's record that
// must never be applied, and files that are not tuning databases.
#include "db/database.h"
#include "run_tessel.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "te/ops.h"
#include "te/text.h"
#include "temp_dir.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <sstream>

using namespace tessel;
using tessel::testing::Outcome;
using tessel::testing::run_tessel;
using tessel::testing::TempDir;
using tessel::testing::TesselCall;
namespace fs = std::filesystem;

namespace {

const std::string kWorkload = "matmul:M=64,N=48,K=32";

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

std::string read_bytes(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

db::Record record_of(const te::Workload &w, const db::TargetKey &key, const std::string &trace, double seconds) {
  db::Record r;
  r.workload_key = w.key;
  r.workload_hash = w.hash_hex();
  r.workload_text = te::to_text(w);
  r.target = key;
  r.trace_json = trace;
  r.run_seconds = {seconds, seconds * 1.02, seconds * 0.99};
  return r;
}

// A database with, for kWorkload: a stale-hash record (fastest, never applicable), a record for
// another target (faster still, but another machine), the sampled best and a default schedule.
struct Filled {
  int64_t best_id = 0;
  std::string best_trace;
  int records = 0;
};
Filled fill(const std::string &path) {
  Filled f;
  auto w = te::make_op_workload(kWorkload).take();
  auto other = te::make_op_workload("matmul:M=32,N=48,K=32").take();
  Target host = Target::host();
  db::TargetKey key = db::target_key(host, 1);
  sched::SpaceGenerator gen(host);
  sched::Rng rng(3);
  auto sketches = gen.sketches(w);
  auto sampled = gen.sample(w, sketches.back(), rng);
  EXPECT_TRUE(sampled) << sampled.error();
  f.best_trace = sched::trace_to_json(*sampled);
  std::string plain = sched::trace_to_json(sched::default_schedule(w));

  db::Record stale = record_of(w, key, plain, 1e-7);
  stale.workload_text = te::to_text(other); // its text no longer hashes to its hash
  auto avx2 = Target::load(std::string(TESSEL_SOURCE_DIR) + "/configs/targets/cpu-avx2.json");
  EXPECT_TRUE(avx2) << avx2.error();
  db::TargetKey elsewhere = db::target_key(*avx2, 1);
  elsewhere.cpu_model = "some other machine";
  std::vector<db::Record> batch = {stale, record_of(w, elsewhere, plain, 1e-8), record_of(w, key, f.best_trace, 2e-5),
                                   record_of(w, key, plain, 5e-4)};
  auto d = db::open_sqlite(path);
  EXPECT_TRUE(d) << d.error();
  EXPECT_TRUE((*d)->commit(batch));
  auto best = (*d)->top_k(w.hash_hex(), key, 2);
  EXPECT_TRUE(best && best->size() == 2);
  f.best_id = (*best)[1].id; // [0] is the stale one
  f.records = int(batch.size());
  return f;
}

class CliDb : public ::testing::Test {
protected:
  Outcome tessel(const std::vector<std::string> &args, TesselCall call = {}) {
    call.env.insert(call.env.begin(), "TESSEL_DB"); // unset unless the test sets it
    Outcome o = run_tessel(args, std::chrono::seconds(120), dir.path(), call);
    EXPECT_TRUE(o.exited && !o.timed_out) << "signal or time-out: " << o.output;
    EXPECT_FALSE(has(o.output, "internal error")) << o.output;
    return o;
  }
  TempDir dir{"tessel_test_cli_db"};
};

TEST_F(CliDb, EverySubcommandHasHelpWithExamples) {
  for (std::string sub : {"", "list", "best", "stats", "export", "import", "merge", "prune"}) {
    std::vector<std::string> args = {"db"};
    if (!sub.empty()) args.push_back(sub);
    args.push_back("--help");
    Outcome o = tessel(args);
    EXPECT_EQ(o.code, 0) << sub;
    EXPECT_TRUE(has(o.output, "Example")) << sub << ": " << o.output;
  }
}

TEST_F(CliDb, RunAppliesTheFastestRecordThatReallyApplies) {
  std::string path = dir.file("t.db");
  Filled f = fill(path);
  Outcome o = tessel({"run", kWorkload, "--db", path, "--repeat", "1"});
  ASSERT_EQ(o.code, 0) << o.output;
  EXPECT_TRUE(has(o.output, "schedule  record " + std::to_string(f.best_id) + " of " + path)) << o.output;
  EXPECT_TRUE(has(o.output, "faster record(s) skipped")) << o.output;
  EXPECT_TRUE(has(o.output, "stale workload hash")) << o.output;
  EXPECT_TRUE(has(o.output, "verify    ok")) << o.output;

  // The same record through `db best`, its trace written out and run as a file.
  Outcome best = tessel({"db", "--db", path, "best", kWorkload, "--top", "3", "--trace-out", dir.file("best.json")});
  ASSERT_EQ(best.code, 0) << best.output;
  EXPECT_TRUE(has(best.output, "best      record " + std::to_string(f.best_id))) << best.output;
  EXPECT_EQ(read_bytes(dir.file("best.json")), f.best_trace + "\n");
  Outcome replay = tessel({"run", kWorkload, "--trace", dir.file("best.json"), "--repeat", "1"});
  EXPECT_EQ(replay.code, 0) << replay.output;
  EXPECT_TRUE(has(replay.output, "verify    ok")) << replay.output;
}

TEST_F(CliDb, NoApplicableRecordIsAOneLineErrorNamingWhatExists) {
  std::string path = dir.file("t.db");
  fill(path);
  Outcome none = tessel({"run", "softmax:M=4,N=16", "--db", path});
  EXPECT_EQ(none.code, 1);
  EXPECT_TRUE(has(none.output, "no ok record for workload softmax")) << none.output;
  // Records for 2 threads do not serve 1 and vice versa: the thread count is part of the target.
  Outcome threads = tessel({"run", kWorkload, "--db", path, "--threads", "2"});
  EXPECT_EQ(threads.code, 1);
  EXPECT_TRUE(has(threads.output, "threads=2")) << threads.output;
  Outcome both = tessel({"run", kWorkload, "--db", path, "--trace", "x.json"});
  EXPECT_EQ(both.code, 1);
  EXPECT_TRUE(has(both.output, "give one of them")) << both.output;
}

TEST_F(CliDb, DefaultLocationIsTesselDbThenTesselDbEnvThenFlag) {
  TesselCall here;
  here.in_dir = true;
  Outcome missing = tessel({"db", "stats"}, here);
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(has(missing.output, "no tuning database at tessel.db (the default)")) << missing.output;
  EXPECT_FALSE(fs::exists(dir.file("tessel.db"))) << "a read command must not create a database";

  Filled f = fill(dir.file("tessel.db"));
  Outcome local = tessel({"db", "stats"}, here);
  EXPECT_EQ(local.code, 0) << local.output;
  EXPECT_TRUE(has(local.output, "records    " + std::to_string(f.records))) << local.output;

  fs::create_directories(dir.file("elsewhere"));
  fill(dir.file("elsewhere/env.db"));
  TesselCall env = here;
  env.env.push_back("TESSEL_DB=" + dir.file("elsewhere/env.db"));
  Outcome from_env = tessel({"db", "stats"}, env);
  EXPECT_TRUE(has(from_env.output, "database   " + dir.file("elsewhere/env.db"))) << from_env.output;
  Outcome flag = tessel({"db", "--db", dir.file("tessel.db"), "stats"}, env);
  EXPECT_TRUE(has(flag.output, "database   " + dir.file("tessel.db"))) << flag.output;
}

TEST_F(CliDb, ExportImportMergePruneSayWhatTheyDid) {
  std::string a = dir.file("a.db"), b = dir.file("b.db"), c = dir.file("c.db");
  Filled f = fill(a);
  Outcome list = tessel({"db", "--db", a, "list"});
  ASSERT_EQ(list.code, 0) << list.output;
  EXPECT_TRUE(has(list.output, "matmul:M=64,N=48,K=32")) << list.output;

  Outcome out = tessel({"db", "--db", a, "export", "-o", dir.file("a.jsonl")});
  ASSERT_EQ(out.code, 0) << out.output;
  EXPECT_TRUE(has(out.output, "exported " + std::to_string(f.records) + " records")) << out.output;
  Outcome in = tessel({"db", "--db", b, "import", dir.file("a.jsonl")});
  ASSERT_EQ(in.code, 0) << in.output;
  EXPECT_TRUE(has(in.output, "imported " + std::to_string(f.records) + " records")) << in.output;
  // From standard input, into a database that has them all: every one a duplicate.
  TesselCall piped;
  piped.stdin_file = dir.file("a.jsonl");
  Outcome again = tessel({"db", "--db", b, "import", "-"}, piped);
  EXPECT_EQ(again.code, 0) << again.output;
  EXPECT_TRUE(has(again.output, "imported 0 records into " + b + " (" + std::to_string(f.records) + " already present"))
      << again.output;

  Outcome merged = tessel({"db", "--db", c, "merge", a});
  ASSERT_EQ(merged.code, 0) << merged.output;
  EXPECT_TRUE(has(merged.output, std::to_string(f.records) + " added, 0 already present")) << merged.output;
  Outcome twice = tessel({"db", "--db", c, "merge", b});
  EXPECT_TRUE(has(twice.output, "0 added, " + std::to_string(f.records) + " already present")) << twice.output;
  Outcome self = tessel({"db", "--db", c, "merge", c});
  EXPECT_EQ(self.code, 1);

  // Per (workload, target): the host pair keeps 1 of 3, the other machine's pair its only one.
  Outcome pruned = tessel({"db", "--db", c, "prune", "--keep", "1"});
  ASSERT_EQ(pruned.code, 0) << pruned.output;
  EXPECT_TRUE(has(pruned.output, "2 kept, 2 slower and 0 failed records removed")) << pruned.output;
  Outcome bad_keep = tessel({"db", "--db", c, "prune", "--keep", "0"});
  EXPECT_EQ(bad_keep.code, 1);
}

TEST_F(CliDb, BadJsonlLinesAreNamedAndTheRestImported) {
  std::string a = dir.file("a.db");
  fill(a);
  ASSERT_EQ(tessel({"db", "--db", a, "export", "-o", dir.file("a.jsonl")}).code, 0);
  std::string good = read_bytes(dir.file("a.jsonl"));
  std::string first = good.substr(0, good.find('\n') + 1);
  std::ofstream(dir.file("mixed.jsonl")) << first << "{not json\n" << good.substr(first.size());
  Outcome o = tessel({"db", "--db", dir.file("new.db"), "import", dir.file("mixed.jsonl")});
  EXPECT_EQ(o.code, 1) << "a failed line makes the import fail, after importing the rest";
  EXPECT_TRUE(has(o.output, "line 2")) << o.output;
  EXPECT_TRUE(has(o.output, "1 lines failed")) << o.output;
  Outcome stats = tessel({"db", "--db", dir.file("new.db"), "stats"});
  EXPECT_TRUE(has(stats.output, "records    4")) << stats.output;
}

TEST_F(CliDb, FilesThatAreNotTuningDatabasesAreRefusedUnmodified) {
  std::string text = dir.file("notes.txt");
  std::ofstream(text) << "these are not records\n";
  for (std::string sub : {"stats", "list"}) {
    Outcome o = tessel({"db", "--db", text, sub});
    EXPECT_EQ(o.code, 1);
    EXPECT_TRUE(has(o.output, "is not a SQLite database")) << o.output;
  }
  Outcome o = tessel({"db", "--db", text, "import", dir.file("nothing.jsonl")});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(read_bytes(text), "these are not records\n");

  std::string newer = dir.file("newer.db");
  fill(newer);
  sqlite3 *raw = nullptr;
  ASSERT_EQ(sqlite3_open(newer.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  std::string before = read_bytes(newer);
  Outcome n = tessel({"run", kWorkload, "--db", newer});
  EXPECT_EQ(n.code, 1);
  EXPECT_TRUE(has(n.output, "schema version 99, newer than this Tessel reads")) << n.output;
  EXPECT_EQ(read_bytes(newer), before);
}

} // namespace
