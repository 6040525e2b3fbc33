// The tuning database (db/database.h): behaviour shared by the SQLite and the
// in-memory implementations (parameterized), then what only a file has:
// several writer processes, a writer killed mid-batch, read-only and full
// files, files that are not ours or from a newer schema (refused, unmodified),
// and the committed version-1 fixture, migrated.
//
// The fixture tests/data/tessel_v1.db is written by the disabled test
// DbFixture.DISABLED_WriteV1Fixture (run it with --gtest_also_run_disabled_tests
// --gtest_filter='DbFixture.*' to regenerate; commit the result).
#include "db/database.h"
#include "db/detail.h"
#include "db/schema.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "te/ops.h"
#include "te/text.h"

#include "temp_dir.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace tessel;
namespace fs = std::filesystem;

namespace {

const fs::path kSourceDir = TESSEL_SOURCE_DIR;
const fs::path kFixture = kSourceDir / "tests" / "data" / "tessel_v1.db";

using TempDir = tessel::testing::TempDir;

std::string read_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string &path, const std::string &bytes) { std::ofstream(path, std::ios::binary) << bytes; }

Target load_target(const std::string &name) {
  auto t = Target::load((kSourceDir / "configs" / "targets" / (name + ".json")).string());
  if (!t) throw std::runtime_error(t.error());
  return *t;
}

te::Workload op(const std::string &spec) {
  auto w = te::make_op_workload(spec);
  if (!w) throw std::runtime_error(w.error());
  return *w;
}

// Real traces of `w`: its default schedule, then distinct samples of its schedule space.
std::vector<std::string> traces_of(const te::Workload &w, const Target &t, size_t n, uint64_t seed) {
  std::vector<std::string> out{sched::trace_to_json(sched::default_schedule(w))};
  sched::SpaceGenerator gen(t);
  auto sketches = gen.sketches(w);
  sched::Rng rng(seed);
  for (size_t i = 0; out.size() < n && i < 20 * n && !sketches.empty(); ++i) {
    auto s = gen.sample(w, sketches[i % sketches.size()], rng);
    if (!s) continue;
    std::string j = sched::trace_to_json(*s);
    if (std::find(out.begin(), out.end(), j) == out.end()) out.push_back(j);
  }
  return out;
}

// Workloads, targets and traces shared by the tests (built once: sampling takes a moment).
struct World {
  te::Workload mm64 = op("matmul:M=64,N=64,K=64");
  te::Workload mm32 = op("matmul:M=32,N=32,K=32");
  te::Workload softmax = op("softmax:M=4,N=16");
  Target avx2 = load_target("cpu-avx2");
  Target avx512 = load_target("cpu-avx512");
  db::TargetKey avx2_key = db::target_key(avx2, 1);
  db::TargetKey avx512_key = db::target_key(avx512, 1);
  db::TargetKey haswell_key; // another CPU of the avx2 target's x86-64-v3 class
  std::vector<std::string> mm64_traces = traces_of(mm64, avx2, 8, 7);
  std::vector<std::string> softmax_traces = traces_of(softmax, avx512, 2, 7);
  World() {
    Target haswell = avx2;
    haswell.name = "haswell-box";
    haswell.cpu = "haswell";
    haswell.derive_isa();
    haswell_key = db::target_key(haswell, 1);
  }
};
const World &world() {
  static const World w;
  return w;
}

// An ok record of `w` on `t`: three repeats with median `seconds`.
db::Record make_record(const te::Workload &w, const db::TargetKey &t, const std::string &trace, double seconds) {
  db::Record r;
  r.workload_key = w.key;
  r.workload_hash = w.hash_hex();
  r.workload_text = te::to_text(w);
  r.target = t;
  r.trace_json = trace;
  r.run_seconds = {seconds * 1.01, seconds, seconds * 0.99}; // median: seconds
  return r;
}

// `n` distinct records of mm64 on the avx2 target; `tag` keeps sets of them apart.
std::vector<db::Record> mm64_records(int n, int tag = 0, const db::TargetKey *target = nullptr) {
  const World &W = world();
  std::vector<db::Record> out;
  for (int i = 0; i < n; ++i)
    out.push_back(make_record(W.mm64, target ? *target : W.avx2_key, W.mm64_traces[size_t(i) % W.mm64_traces.size()],
                              1e-4 * (1 + tag) + 1e-7 * i));
  return out;
}

std::vector<db::Record> all_records(const db::Database &db) {
  std::vector<db::Record> out;
  Status st = db.for_each([&](const db::Record &r) {
    out.push_back(r);
    return true;
  });
  EXPECT_TRUE(st) << st.message();
  return out;
}

int64_t count(const db::Database &db) {
  auto s = db.stats();
  EXPECT_TRUE(s) << s.error();
  return s ? s->records : -1;
}

// Equal as stored content (ids and run ids belong to their database).
void expect_same_record(const db::Record &a, const db::Record &b) {
  EXPECT_EQ(a.workload_key, b.workload_key);
  EXPECT_EQ(a.workload_hash, b.workload_hash);
  EXPECT_EQ(a.workload_text, b.workload_text);
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.trace_json, b.trace_json);
  EXPECT_EQ(a.trace_version, b.trace_version);
  EXPECT_EQ(a.run_seconds, b.run_seconds);
  EXPECT_EQ(a.median_seconds, b.median_seconds);
  EXPECT_EQ(a.min_seconds, b.min_seconds);
  EXPECT_EQ(a.cv, b.cv);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.message, b.message);
  EXPECT_EQ(a.timestamp, b.timestamp);
}

bool contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

// Raw SQLite access, to look at a file as the sqlite3 tool would.
class RawDb {
public:
  explicit RawDb(const std::string &path, int flags = SQLITE_OPEN_READWRITE) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK)
      throw std::runtime_error("cannot open " + path);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  // The first column of every row, as text.
  std::vector<std::string> column(const std::string &sql) {
    sqlite3_stmt *s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    std::vector<std::string> out;
    while (sqlite3_step(s) == SQLITE_ROW) {
      const unsigned char *t = sqlite3_column_text(s, 0);
      out.push_back(t ? reinterpret_cast<const char *>(t) : "NULL");
    }
    sqlite3_finalize(s);
    return out;
  }
  std::string value(const std::string &sql) {
    auto c = column(sql);
    return c.empty() ? "" : c.front();
  }
  void exec(const std::string &sql) {
    if (auto st = db::schema::exec(db_, sql); !st) throw std::runtime_error(sql + ": " + st.message());
  }
  sqlite3 *get() { return db_; }

private:
  sqlite3 *db_ = nullptr;
};

// ---------------------------------------------------------------------------
// Both implementations.

class DbBehaviour : public ::testing::TestWithParam<std::string> {
protected:
  std::unique_ptr<db::Database> make() {
    if (GetParam() == "memory") return db::make_memory_database();
    auto d = db::open_sqlite(dir_.file("t" + std::to_string(n_++) + ".db"));
    if (!d) ADD_FAILURE() << d.error();
    return d ? d.take() : db::make_memory_database();
  }
  TempDir dir_;
  int n_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Backends, DbBehaviour, ::testing::Values("sqlite", "memory"),
                         [](const auto &info) { return info.param; });

TEST_P(DbBehaviour, CommitComputesFiguresAndTopKOrdersByMedian) {
  const World &W = world();
  auto db = make();
  auto r = make_record(W.mm64, W.avx2_key, W.mm64_traces[0], 0);
  r.run_seconds = {3e-3, 1e-3, 2e-3};
  auto even = make_record(W.mm64, W.avx2_key, W.mm64_traces[1], 0);
  even.run_seconds = {4e-3, 1e-3, 3e-3, 2e-3};
  auto failed = make_record(W.mm64, W.avx2_key, W.mm64_traces[2], 0);
  failed.status = db::RecordStatus::CompileError;
  failed.run_seconds = {};
  failed.message = "LLVM: invented error";
  db::CommitCounts counts;
  ASSERT_TRUE(db->commit({r, even, failed}, &counts));
  EXPECT_EQ(counts.stored, 3);
  auto top = db->top_k(W.mm64.hash_hex(), W.avx2_key, 10);
  ASSERT_TRUE(top) << top.error();
  ASSERT_EQ(top->size(), 2u) << "failed records are never candidates";
  EXPECT_DOUBLE_EQ((*top)[0].median_seconds, 2e-3);
  EXPECT_DOUBLE_EQ((*top)[0].min_seconds, 1e-3);
  EXPECT_NEAR((*top)[0].cv, 0.5, 1e-12); // sample stddev 1e-3 over mean 2e-3
  EXPECT_DOUBLE_EQ((*top)[1].median_seconds, 2.5e-3);
  EXPECT_GT((*top)[0].timestamp, 1600000000);
  EXPECT_GT((*top)[0].id, 0);
  auto best = db->best(W.mm64.hash_hex(), W.avx2_key);
  ASSERT_TRUE(best) << best.error();
  EXPECT_EQ(best->trace_json, W.mm64_traces[0]);
  auto one = db->top_k(W.mm64.hash_hex(), W.avx2_key, 1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size(), 1u);
  EXPECT_FALSE(db->top_k(W.mm64.hash_hex(), W.avx2_key, 0)) << "k = 0 is an error, not an empty answer";
  auto all = db->records_for_workload(W.mm64.hash_hex());
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 3u);
  auto stats = db->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->records, 3);
  EXPECT_EQ(stats->ok_records, 2);
  EXPECT_EQ(stats->workloads, 1);
  EXPECT_EQ(stats->targets, 1);
}

TEST_P(DbBehaviour, SummariesGroupByWorkloadAndTarget) {
  const World &W = world();
  auto db = make();
  auto failed = make_record(W.mm64, W.avx2_key, W.mm64_traces[0], 0);
  failed.status = db::RecordStatus::WrongResult;
  failed.run_seconds = {};
  failed.message = "max abs error 3.5";
  auto batch = mm64_records(4); // medians 1e-4 + 1e-7 i
  batch.push_back(failed);
  batch.push_back(make_record(W.softmax, W.avx512_key, W.softmax_traces[0], 2e-6));
  auto only_failed = failed;
  only_failed.target = W.avx512_key;
  batch.push_back(only_failed);
  ASSERT_TRUE(db->commit(batch));
  auto sums = db->summaries();
  ASSERT_TRUE(sums) << sums.error();
  ASSERT_EQ(sums->size(), 3u);
  // Ordered by workload key: "matmul:..." before "softmax:..."; then by target.
  const db::Summary &a = (*sums)[0], &b = (*sums)[1], &c = (*sums)[2];
  EXPECT_EQ(a.workload_key, W.mm64.key);
  EXPECT_EQ(a.target, W.avx2_key);
  EXPECT_EQ(a.records, 5);
  EXPECT_EQ(a.ok_records, 4);
  EXPECT_DOUBLE_EQ(a.best_median_seconds, 1e-4);
  EXPECT_DOUBLE_EQ(a.flops, W.mm64.flops());
  EXPECT_EQ(b.workload_key, W.mm64.key);
  EXPECT_EQ(b.target, W.avx512_key);
  EXPECT_EQ(b.ok_records, 0);
  EXPECT_EQ(b.best_median_seconds, 0) << "no ok record: no best";
  EXPECT_EQ(c.workload_key, W.softmax.key);
  EXPECT_EQ(c.workload_hash, W.softmax.hash_hex());
  EXPECT_DOUBLE_EQ(c.best_median_seconds, 2e-6);
}

TEST_P(DbBehaviour, IdenticalRecordsAreStoredOnce) {
  auto db = make();
  auto batch = mm64_records(10);
  db::CommitCounts counts;
  ASSERT_TRUE(db->commit(batch, &counts));
  EXPECT_EQ(counts.stored, 10);
  ASSERT_TRUE(db->commit(batch, &counts));
  EXPECT_EQ(counts.stored, 0);
  EXPECT_EQ(counts.duplicates, 10);
  EXPECT_EQ(count(*db), 10);
  auto in = db->contains(batch[3]);
  ASSERT_TRUE(in);
  EXPECT_TRUE(*in);
  auto other = batch[3];
  other.run_seconds[0] *= 1.5; // another measurement of the same trace is another record
  auto out = db->contains(other);
  ASSERT_TRUE(out);
  EXPECT_FALSE(*out);
}

TEST_P(DbBehaviour, InvalidRecordsRefuseTheBatchAndAreNotKept) {
  auto db = make();
  auto batch = mm64_records(3);
  batch[1].workload_hash = "not-a-hash";
  Status st = db->commit(batch);
  ASSERT_FALSE(st);
  EXPECT_TRUE(contains(st.message(), "record 2 of 3")) << st.message();
  EXPECT_TRUE(contains(st.message(), "16 lowercase hex")) << st.message();
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << "one line";
  EXPECT_TRUE(db->pending().empty());
  EXPECT_EQ(count(*db), 0);
  batch = mm64_records(1);
  batch[0].run_id = 12345;
  st = db->commit(batch);
  EXPECT_FALSE(st);
  EXPECT_TRUE(contains(st.message(), "run_id 12345")) << st.message();
}

TEST_P(DbBehaviour, ForEachVisitsEveryRecordInIdOrderAndCanStop) {
  auto db = make();
  ASSERT_TRUE(db->commit(mm64_records(700))); // more than one SQLite chunk
  auto all = all_records(*db);
  ASSERT_EQ(all.size(), 700u);
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].id, all[i].id);
  int seen = 0;
  ASSERT_TRUE(db->for_each([&](const db::Record &) { return ++seen < 5; }));
  EXPECT_EQ(seen, 5);
}

TEST_P(DbBehaviour, RunsAreRecordedAndFoundAgainByUid) {
  auto db = make();
  db::RunInfo info{R"({"trials": 64})", "tuner-host", "0.1.0", "16.0.6"};
  auto id = db->begin_run(info);
  ASSERT_TRUE(id) << id.error();
  auto batch = mm64_records(2);
  for (auto &r : batch) r.run_id = *id;
  ASSERT_TRUE(db->commit(batch));
  ASSERT_TRUE(db->end_run(*id));
  auto run = db->run(*id);
  ASSERT_TRUE(run) << run.error();
  EXPECT_EQ(run->config_json, info.config_json);
  EXPECT_EQ(run->host, "tuner-host");
  EXPECT_FALSE(run->uid.empty());
  EXPECT_GT(run->ended_at, 0);
  auto again = db->begin_run(*run);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *id) << "a known uid names the same run";
  EXPECT_FALSE(db->end_run(*id + 100));
  EXPECT_EQ(all_records(*db)[0].run_id, *id);
}

TEST_P(DbBehaviour, ApplyBestReplaysTheFastestTrace) {
  const World &W = world();
  auto db = make();
  std::vector<db::Record> batch;
  for (size_t i = 0; i < W.mm64_traces.size(); ++i)
    batch.push_back(make_record(W.mm64, W.avx2_key, W.mm64_traces[i], 1e-3 - 1e-4 * double(i)));
  ASSERT_TRUE(db->commit(batch));
  auto applied = db::apply_best(*db, W.mm64, W.avx2_key);
  ASSERT_TRUE(applied) << applied.error();
  EXPECT_EQ(applied->record.trace_json, W.mm64_traces.back());
  EXPECT_EQ(sched::trace_to_json(applied->schedule), W.mm64_traces.back()) << "replays to the same trace";
  EXPECT_TRUE(applied->note.empty()) << applied->note;
}

// A single-shot figure faster than the interleaved re-measurement of the tuner's best is not trusted
// over it: the re-measured record is the best (what builds and `run --db` apply).
TEST_P(DbBehaviour, ApplyBestPrefersReMeasuredFigures) {
  const World &W = world();
  auto db = make();
  ASSERT_GE(W.mm64_traces.size(), 3u);
  db::Record lucky = make_record(W.mm64, W.avx2_key, W.mm64_traces[0], 0.8e-3); // single shot
  db::Record confirmed = make_record(W.mm64, W.avx2_key, W.mm64_traces[1], 1.0e-3);
  confirmed.message = std::string(db::kRemeasuredNote) + ": 10 interleaved rounds";
  db::Record slower = make_record(W.mm64, W.avx2_key, W.mm64_traces[2], 1.2e-3);
  slower.message = confirmed.message;
  ASSERT_TRUE(db->commit({lucky, confirmed, slower}));
  auto applied = db::apply_best(*db, W.mm64, W.avx2_key);
  ASSERT_TRUE(applied) << applied.error();
  EXPECT_EQ(applied->record.trace_json, W.mm64_traces[1]);
  EXPECT_TRUE(db::is_remeasured(applied->record));
}

TEST_P(DbBehaviour, TargetsMatchExactlyUnlessTheFallbackIsAskedFor) {
  const World &W = world();
  auto db = make();
  ASSERT_NE(W.haswell_key.canonical, W.avx2_key.canonical);
  ASSERT_EQ(W.haswell_key.compat, W.avx2_key.compat);
  ASSERT_TRUE(db->commit({make_record(W.mm64, W.avx2_key, W.mm64_traces[1], 1e-4)}));

  auto other_level = db::apply_best(*db, W.mm64, W.avx512_key);
  ASSERT_FALSE(other_level);
  EXPECT_TRUE(contains(other_level.error(), "no ok record")) << other_level.error();
  EXPECT_TRUE(contains(other_level.error(), "cpu=x86-64-v3")) << "names the targets that have records";
  EXPECT_FALSE(db::apply_best(*db, W.mm64, W.avx512_key, db::TargetMatch::Compatible)) << "another level";

  auto exact = db::apply_best(*db, W.mm64, W.haswell_key);
  ASSERT_FALSE(exact) << "another CPU model is never applied by default";
  EXPECT_TRUE(contains(exact.error(), "TargetMatch::Compatible")) << exact.error();

  auto fallback = db::apply_best(*db, W.mm64, W.haswell_key, db::TargetMatch::Compatible);
  ASSERT_TRUE(fallback) << fallback.error();
  EXPECT_TRUE(contains(fallback->note, "compatible fallback")) << fallback->note;
  EXPECT_TRUE(contains(fallback->note, "x86-64-v3")) << fallback->note;
  EXPECT_EQ(fallback->record.target, W.avx2_key);

  db::TargetKey two_threads = db::target_key(W.avx2, 2);
  EXPECT_FALSE(db::apply_best(*db, W.mm64, two_threads, db::TargetMatch::Compatible)) << "thread count differs";

  // Exact records come first under the fallback, even when slower.
  ASSERT_TRUE(db->commit({make_record(W.mm64, W.haswell_key, W.mm64_traces[2], 5e-4)}));
  auto mixed = db->top_k(W.mm64.hash_hex(), W.haswell_key, 5, db::TargetMatch::Compatible);
  ASSERT_TRUE(mixed);
  ASSERT_EQ(mixed->size(), 2u);
  EXPECT_EQ((*mixed)[0].target, W.haswell_key);
  auto exact_now = db::apply_best(*db, W.mm64, W.haswell_key, db::TargetMatch::Compatible);
  ASSERT_TRUE(exact_now);
  EXPECT_TRUE(exact_now->note.empty()) << exact_now->note;
}

TEST_P(DbBehaviour, StaleHashIsNeverApplied) {
  const World &W = world();
  auto db = make();
  // Stored under mm64's hash, but its text form (re-parsed now) is another workload: as after
  // a change of the structural hash between versions.
  auto stale = make_record(W.mm64, W.avx2_key, W.mm64_traces[0], 1e-4);
  stale.workload_text = te::to_text(W.mm32);
  ASSERT_TRUE(db->commit({stale}));
  auto applied = db::apply_best(*db, W.mm64, W.avx2_key);
  ASSERT_FALSE(applied);
  EXPECT_TRUE(contains(applied.error(), "stale workload hash")) << applied.error();
  EXPECT_TRUE(contains(applied.error(), W.mm32.hash_hex())) << applied.error();
  // A good, slower record is used instead, and the note says why the faster one was not.
  ASSERT_TRUE(db->commit({make_record(W.mm64, W.avx2_key, W.mm64_traces[1], 2e-4)}));
  applied = db::apply_best(*db, W.mm64, W.avx2_key);
  ASSERT_TRUE(applied) << applied.error();
  EXPECT_EQ(applied->record.trace_json, W.mm64_traces[1]);
  EXPECT_TRUE(contains(applied->note, "stale workload hash")) << applied->note;
}

TEST_P(DbBehaviour, NewerTraceVersionsAndBrokenTracesAreRefused) {
  const World &W = world();
  auto db = make();
  auto newer = make_record(W.mm64, W.avx2_key, W.mm64_traces[0], 1e-4);
  newer.trace_version = sched::kTraceFormatVersion + 1;
  std::string v1 = "\"version\": " + std::to_string(sched::kTraceFormatVersion);
  newer.trace_json.replace(newer.trace_json.find(v1), v1.size(),
                           "\"version\": " + std::to_string(sched::kTraceFormatVersion + 1));
  ASSERT_TRUE(db->commit({newer})) << "kept: a newer Tessel can still use it";
  auto applied = db::apply_best(*db, W.mm64, W.avx2_key);
  ASSERT_FALSE(applied);
  EXPECT_TRUE(contains(applied.error(), "newer Tessel")) << applied.error();

  auto db2 = make();
  auto broken = make_record(W.mm64, W.avx2_key,
                            "{\"format\": \"tessel-trace\", \"version\": 1, \"workload\": {\"key\": \"" + W.mm64.key +
                                "\", \"hash\": \"" + W.mm64.hash_hex() +
                                "\"}, \"steps\": [{\"op\":\"split\",\"stage\":\"C\",\"loop\":99,\"factor\":4}]}",
                            1e-4);
  ASSERT_TRUE(db2->commit({broken}));
  applied = db::apply_best(*db2, W.mm64, W.avx2_key);
  ASSERT_FALSE(applied);
  EXPECT_TRUE(contains(applied.error(), "no longer replays")) << applied.error();
  EXPECT_TRUE(contains(applied.error(), "step 1")) << applied.error();
}

TEST_P(DbBehaviour, NoRecordSaysSo) {
  const World &W = world();
  auto db = make();
  auto applied = db::apply_best(*db, W.mm64, W.avx2_key);
  ASSERT_FALSE(applied);
  EXPECT_TRUE(contains(applied.error(), W.mm64.key)) << applied.error();
  EXPECT_TRUE(contains(applied.error(), "tune it")) << applied.error();
}

TEST_P(DbBehaviour, PruneKeepsExactlyTheTopKPerWorkloadAndTarget) {
  const World &W = world();
  auto db = make();
  std::vector<db::Record> batch;
  std::mt19937 rng(5);
  for (auto *w : {&W.mm64, &W.softmax})
    for (auto *t : {&W.avx2_key, &W.avx512_key}) {
      std::vector<int> order(10);
      std::iota(order.begin(), order.end(), 1);
      std::shuffle(order.begin(), order.end(), rng); // distinct medians, committed out of order
      for (int i = 0; i < 10; ++i) {
        const auto &traces = w == &W.mm64 ? W.mm64_traces : W.softmax_traces;
        batch.push_back(make_record(*w, *t, traces[size_t(i) % traces.size()], 1e-5 * order[size_t(i)]));
      }
      for (int i = 0; i < 3; ++i) {
        auto f = make_record(*w, *t, W.mm64_traces[0], 0);
        f.status = db::RecordStatus::Timeout;
        f.run_seconds.clear();
        f.message = "timeout " + std::to_string(i);
        batch.push_back(f);
      }
    }
  ASSERT_TRUE(db->commit(batch));
  std::map<std::pair<std::string, std::string>, std::vector<double>> expected;
  for (auto *w : {&W.mm64, &W.softmax})
    for (auto *t : {&W.avx2_key, &W.avx512_key}) {
      auto top = db->top_k(w->hash_hex(), *t, 3);
      ASSERT_TRUE(top);
      for (auto &r : *top) expected[{w->hash_hex(), t->canonical}].push_back(r.median_seconds);
    }
  auto pruned = db->prune(3);
  ASSERT_TRUE(pruned) << pruned.error();
  EXPECT_EQ(pruned->kept, 12);
  EXPECT_EQ(pruned->removed_slower, 28);
  EXPECT_EQ(pruned->removed_failed, 12);
  EXPECT_EQ(count(*db), 12);
  for (auto *w : {&W.mm64, &W.softmax})
    for (auto *t : {&W.avx2_key, &W.avx512_key}) {
      auto top = db->top_k(w->hash_hex(), *t, 10);
      ASSERT_TRUE(top);
      std::vector<double> medians;
      for (auto &r : *top) medians.push_back(r.median_seconds);
      EXPECT_EQ(medians, (expected[{w->hash_hex(), t->canonical}])) << "exactly the 3 fastest remain";
    }
  EXPECT_FALSE(db->prune(0));
}

TEST_P(DbBehaviour, JsonlRoundTripIsEqualRecordForRecord) {
  const World &W = world();
  auto db = make();
  auto run = db->begin_run({R"({"trials": 8})", "host-a", "0.1.0", "16"});
  ASSERT_TRUE(run);
  auto batch = mm64_records(20);
  for (size_t i = 0; i < batch.size(); i += 2) batch[i].run_id = *run;
  auto failed = make_record(W.softmax, W.avx512_key, W.softmax_traces[0], 0);
  failed.status = db::RecordStatus::WrongResult;
  failed.run_seconds = {1.5e-6};
  failed.message = "max abs error 0.5 \"quoted\"\nsecond line";
  batch.push_back(failed);
  ASSERT_TRUE(db->commit(batch));
  std::string path = dir_.file("export.jsonl");
  auto exported = db::export_jsonl(*db, path);
  ASSERT_TRUE(exported) << exported.error();
  EXPECT_EQ(exported->exported, 21);
  std::string text = read_bytes(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 21) << "one record per line";

  auto copy = make();
  auto imported = db::import_jsonl(*copy, path);
  ASSERT_TRUE(imported) << imported.error();
  EXPECT_EQ(imported->imported, 21);
  EXPECT_EQ(imported->failed, 0);
  auto a = all_records(*db), b = all_records(*copy);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("record " + std::to_string(i));
    expect_same_record(a[i], b[i]);
    ASSERT_EQ(a[i].run_id != 0, b[i].run_id != 0);
    if (a[i].run_id) {
      auto ra = db->run(a[i].run_id), rb = copy->run(b[i].run_id);
      ASSERT_TRUE(ra && rb);
      EXPECT_EQ(ra->uid, rb->uid);
      EXPECT_EQ(ra->config_json, rb->config_json);
      EXPECT_EQ(ra->started_at, rb->started_at);
    }
  }
  auto again = db::import_jsonl(*copy, path);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->imported, 0);
  EXPECT_EQ(again->duplicates, 21);
  EXPECT_EQ(count(*copy), 21);
  auto stats = copy->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->runs, 1) << "the run is found again by its uid";
}

TEST_P(DbBehaviour, MergeDedupesIdenticalRecords) {
  auto a = make(), b = make();
  auto records = mm64_records(100);
  ASSERT_TRUE(a->commit({records.begin(), records.begin() + 60}));
  ASSERT_TRUE(b->commit({records.begin() + 40, records.end()}));
  auto merged = db::merge(*a, *b);
  ASSERT_TRUE(merged) << merged.error();
  EXPECT_EQ(merged->read, 60);
  EXPECT_EQ(merged->added, 40);
  EXPECT_EQ(merged->duplicates, 20);
  EXPECT_EQ(count(*a), 100);
  auto twice = db::merge(*a, *b);
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->added, 0);
  EXPECT_EQ(twice->duplicates, 60);
  auto self = db::merge(*a, *a);
  ASSERT_TRUE(self) << self.error();
  EXPECT_EQ(self->added, 0);
  EXPECT_EQ(count(*a), 100);
}

// ---------------------------------------------------------------------------
// Plain values.

TEST(DbValues, StatusNamesRoundTrip) {
  for (auto s : {db::RecordStatus::Ok, db::RecordStatus::CompileError, db::RecordStatus::RuntimeError,
                 db::RecordStatus::Timeout, db::RecordStatus::WrongResult, db::RecordStatus::Invalid})
    EXPECT_EQ(db::parse_record_status(db::to_string(s)), s);
  EXPECT_EQ(db::to_string(db::RecordStatus::CompileError), "compile-error");
  EXPECT_FALSE(db::parse_record_status("OK"));
}

TEST(DbValues, TargetKeys) {
  const World &W = world();
  EXPECT_EQ(W.avx2_key.compat, "cpu arch=x86_64 level=x86-64-v3 threads=1");
  EXPECT_TRUE(W.avx2_key.canonical.rfind("cpu arch=x86_64 cpu=x86-64-v3 vector_bits=256 threads=1 isa=", 0) == 0)
      << W.avx2_key.canonical;
  auto isa = db::isa_of(W.avx2_key);
  EXPECT_TRUE(std::is_sorted(isa.begin(), isa.end()));
  EXPECT_NE(std::find(isa.begin(), isa.end(), "avx2"), isa.end());
  EXPECT_EQ(W.avx2_key.cpu_model, "cpu-avx2");
  EXPECT_EQ(W.avx512_key.compat, "cpu arch=x86_64 level=x86-64-v4 threads=1");
  EXPECT_EQ(db::target_key(load_target("cpu-avx512-amx"), 4).compat, "cpu arch=x86_64 level=x86-64-v4+amx threads=4");
  auto h100 = db::target_key(load_target("h100"), 1);
  EXPECT_EQ(h100.compat, "cuda gpu=sm_90");
  EXPECT_TRUE(contains(h100.canonical, "sms=132")) << h100.canonical;
  auto host = db::target_key(Target::host(), 1);
  EXPECT_EQ(host.cpu_model, db::host_cpu_model().empty() ? "host" : db::host_cpu_model());
}

// ---------------------------------------------------------------------------
// SQLite files.

TEST(SqliteDatabase, ReopenedFileHoldsTheSameRecordsAndAReadableBestView) {
  const World &W = world();
  TempDir dir;
  std::string path = dir.file("tessel.db");
  std::vector<db::Record> before;
  {
    auto db = db::open_sqlite(path);
    ASSERT_TRUE(db) << db.error();
    ASSERT_TRUE((*db)->commit(mm64_records(5)));
    ASSERT_TRUE((*db)->commit({make_record(W.softmax, W.avx512_key, W.softmax_traces[0], 2e-6)}));
    before = all_records(**db);
  }
  auto db = db::open_sqlite(path);
  ASSERT_TRUE(db) << db.error();
  auto after = all_records(**db);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) expect_same_record(before[i], after[i]);
  RawDb raw(path);
  EXPECT_EQ(raw.value("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.value("PRAGMA user_version"), std::to_string(db::schema::kCurrentVersion));
  auto workloads = raw.column("SELECT workload FROM best");
  EXPECT_EQ(workloads, (std::vector<std::string>{W.mm64.key, W.softmax.key})) << "one row per workload x target";
  // GFLOP/s of the fastest mm64 record: the workload's flops over its median.
  double gflops = std::stod(raw.value("SELECT gflops FROM best WHERE workload = '" + W.mm64.key + "'"));
  EXPECT_GT(W.mm64.flops(), 0);
  EXPECT_NEAR(gflops, W.mm64.flops() / 1e-4 / 1e9, 0.01);
  EXPECT_EQ(raw.value("SELECT median_us FROM best WHERE workload = '" + W.mm64.key + "'"), "100.0");
}

TEST(SqliteDatabase, FourProcessesWritingAtOnceLoseNothing) {
  TempDir dir;
  std::string path = dir.file("shared.db"); // not created yet: the writers also race to create it
  constexpr int kProcesses = 4, kRecords = 500, kBatch = 20;
  std::vector<std::vector<db::Record>> sets;
  for (int p = 0; p < kProcesses; ++p) sets.push_back(mm64_records(kRecords, p + 1));
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto db = db::open_sqlite(path);
      if (!db) {
        std::fprintf(stderr, "child %d: %s\n", p, db.error().c_str());
        _exit(2);
      }
      for (int i = 0; i < kRecords; i += kBatch) {
        std::vector<db::Record> batch(sets[size_t(p)].begin() + i, sets[size_t(p)].begin() + i + kBatch);
        if (Status st = (*db)->commit(batch); !st) {
          std::fprintf(stderr, "child %d: %s\n", p, st.message().c_str());
          _exit(3);
        }
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a writer failed (status " << status << ")";
  }
  auto db = db::open_sqlite(path);
  ASSERT_TRUE(db) << db.error();
  EXPECT_EQ(count(**db), kProcesses * kRecords);
  for (auto &set : sets)
    for (auto &r : set) {
      auto in = (*db)->contains(r);
      ASSERT_TRUE(in && *in);
    }
  EXPECT_EQ(RawDb(path).value("PRAGMA integrity_check"), "ok");
}

TEST(SqliteDatabase, WriterKilledMidBatchLeavesEveryCommittedBatch) {
  TempDir dir;
  std::string path = dir.file("killed.db");
  constexpr int kBatch = 64, kBatches = 400;
  auto records = mm64_records(kBatch * kBatches, 9);
  int acks[2];
  ASSERT_EQ(pipe(acks), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(acks[0]);
    auto db = db::open_sqlite(path);
    if (!db) _exit(2);
    for (int b = 0; b < kBatches; ++b) {
      std::vector<db::Record> batch(records.begin() + b * kBatch, records.begin() + (b + 1) * kBatch);
      if (!(*db)->commit(batch)) _exit(3);
      if (write(acks[1], &b, sizeof b) != sizeof b) _exit(4); // batch b is committed
    }
    _exit(0);
  }
  close(acks[1]);
  int last = -1, b = 0;
  while (last < 25 && read(acks[0], &b, sizeof b) == sizeof b) last = b;
  ASSERT_GE(last, 25) << "the writer stopped early";
  usleep(300); // most of a writer's time is inside a transaction: land the kill in one
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  while (read(acks[0], &b, sizeof b) == sizeof b) last = b; // acks sent before the kill
  close(acks[0]);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the writer finished before the kill; make kBatches larger";

  EXPECT_EQ(RawDb(path).value("PRAGMA integrity_check"), "ok");
  auto db = db::open_sqlite(path);
  ASSERT_TRUE(db) << db.error();
  int64_t n = count(**db);
  EXPECT_EQ(n % kBatch, 0) << "no half batch";
  EXPECT_GE(n, int64_t(last + 1) * kBatch) << "every acknowledged batch is present";
  for (int i = 0; i < (last + 1) * kBatch; ++i) {
    auto in = (*db)->contains(records[size_t(i)]);
    ASSERT_TRUE(in && *in) << "record " << i;
  }
  EXPECT_TRUE((*db)->commit(mm64_records(3, 77))) << "writable again";
}

TEST(SqliteDatabase, ReadOnlyKeepsRecordsPendingUntilWrittenElsewhere) {
  TempDir dir;
  std::string path = dir.file("ro.db");
  {
    auto db = db::open_sqlite(path);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->commit(mm64_records(5)));
  }
  std::string bytes = read_bytes(path);
  db::OpenOptions ro;
  ro.read_only = true;
  auto db = db::open_sqlite(path, ro);
  ASSERT_TRUE(db) << db.error();
  EXPECT_EQ(count(**db), 5) << "still readable";
  auto batch = mm64_records(64, 3);
  Status st = (*db)->commit(batch);
  ASSERT_FALSE(st);
  EXPECT_TRUE(contains(st.message(), "read-only")) << st.message();
  EXPECT_TRUE(contains(st.message(), "64 records kept in memory")) << st.message();
  EXPECT_TRUE(contains(st.message(), path)) << st.message();
  EXPECT_EQ((*db)->pending().size(), 64u);
  st = (*db)->commit(mm64_records(6, 4));
  ASSERT_FALSE(st);
  EXPECT_TRUE(contains(st.message(), "70 records kept")) << st.message();
  EXPECT_EQ((*db)->stats()->pending, 70);

  std::string exported = dir.file("rescue.jsonl");
  auto ex = db::export_jsonl(**db, exported);
  ASSERT_TRUE(ex) << ex.error();
  EXPECT_EQ(ex->exported, 75);
  EXPECT_EQ(ex->pending_included, 70);

  auto writable = db::open_sqlite(dir.file("rw.db"));
  ASSERT_TRUE(writable);
  ASSERT_TRUE((*writable)->commit((*db)->take_pending()));
  EXPECT_TRUE((*db)->pending().empty());
  EXPECT_EQ(count(**writable), 70);
  for (auto &r : batch) EXPECT_TRUE(*(*writable)->contains(r));
  db->reset();
  EXPECT_EQ(read_bytes(path), bytes) << "a read-only open writes nothing";
}

TEST(SqliteDatabase, FullDiskFailsTheBatchCleanlyAndRescuesItAtClose) {
  TempDir dir;
  std::string path = dir.file("full.db");
  auto small = mm64_records(10);
  auto big = mm64_records(400, 5);
  db::OpenOptions capped;
  {
    auto db = db::open_sqlite(path);
    ASSERT_TRUE(db) << db.error();
    ASSERT_TRUE((*db)->commit(small));
    capped.max_bytes = (*db)->stats()->file_bytes + 64 * 1024; // a "disk" with 64 KiB left
  }
  {
    auto db = db::open_sqlite(path, capped);
    ASSERT_TRUE(db) << db.error();
    Status st = (*db)->commit(big);
    ASSERT_FALSE(st) << "400 traces (~400 KB) do not fit in 64 KiB";
    EXPECT_TRUE(contains(st.message(), "is full")) << st.message();
    EXPECT_TRUE(contains(st.message(), "400 records kept in memory")) << st.message();
    EXPECT_EQ(count(**db), 10) << "the failed batch left nothing behind";
    // Leaving scope with records pending writes them to a rescue file next to the database.
  }
  EXPECT_EQ(RawDb(path).value("PRAGMA integrity_check"), "ok");
  std::vector<fs::path> rescues;
  for (auto &e : fs::directory_iterator(dir.path()))
    if (contains(e.path().filename().string(), ".pending-")) rescues.push_back(e.path());
  ASSERT_EQ(rescues.size(), 1u);
  auto fresh = db::open_sqlite(dir.file("fresh.db"));
  ASSERT_TRUE(fresh);
  auto imported = db::import_jsonl(**fresh, rescues[0].string());
  ASSERT_TRUE(imported) << imported.error();
  EXPECT_EQ(imported->imported, 400);
  for (auto &r : big) EXPECT_TRUE(*(*fresh)->contains(r));
}

TEST(SqliteDatabase, FilesThatAreNotTesselDatabasesAreRefusedUnmodified) {
  TempDir dir;
  std::mt19937 rng(1);
  std::string random(8192, '\0');
  for (auto &c : random) c = char(rng());
  std::string fake_header = std::string("SQLite format 3", 16) + random.substr(0, 4080);
  std::vector<std::pair<std::string, std::string>> files = {
      {"notes.db", "hello, this is not a database\n"}, {"random.db", random}, {"fake_header.db", fake_header}};
  for (auto &[name, bytes] : files) write_bytes(dir.file(name), bytes);
  {
    RawDb other(dir.file("other_app.db"), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    other.exec("CREATE TABLE people(name TEXT); INSERT INTO people VALUES ('ada');");
  }
  files.push_back({"other_app.db", read_bytes(dir.file("other_app.db"))});
  for (auto &[name, bytes] : files) {
    SCOPED_TRACE(name);
    std::string path = dir.file(name);
    for (bool read_only : {false, true}) {
      db::OpenOptions o;
      o.read_only = read_only;
      auto db = db::open_sqlite(path, o);
      ASSERT_FALSE(db);
      EXPECT_TRUE(contains(db.error(), path)) << db.error();
      EXPECT_TRUE(contains(db.error(), "left unmodified")) << db.error();
      EXPECT_EQ(db.error().find('\n'), std::string::npos) << db.error();
    }
    EXPECT_EQ(read_bytes(path), bytes) << "byte for byte";
  }
}

TEST(SqliteDatabase, NewerSchemaIsRefusedNamingBothVersions) {
  TempDir dir;
  std::string path = dir.file("future.db");
  {
    auto db = db::open_sqlite(path);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->commit(mm64_records(3)));
  }
  RawDb(path).exec("PRAGMA user_version = 99");
  std::string bytes = read_bytes(path);
  for (bool read_only : {false, true}) {
    db::OpenOptions o;
    o.read_only = read_only;
    auto db = db::open_sqlite(path, o);
    ASSERT_FALSE(db);
    EXPECT_TRUE(contains(db.error(), "version 99")) << db.error();
    EXPECT_TRUE(contains(db.error(), "(" + std::to_string(db::schema::kCurrentVersion) + ")")) << db.error();
    EXPECT_TRUE(contains(db.error(), "upgrade Tessel")) << db.error();
  }
  EXPECT_EQ(read_bytes(path), bytes);
}

TEST(SqliteDatabase, UnwritablePathsSayWhy) {
  TempDir dir;
  write_bytes(dir.file("plain_file"), "x");
  auto under_file = db::open_sqlite(dir.file("plain_file") + "/t.db");
  ASSERT_FALSE(under_file);
  EXPECT_TRUE(contains(under_file.error(), "is not a directory")) << under_file.error();
  auto no_dir = db::open_sqlite(dir.file("missing/t.db"));
  ASSERT_FALSE(no_dir);
  EXPECT_TRUE(contains(no_dir.error(), "does not exist")) << no_dir.error();
  db::OpenOptions ro;
  ro.read_only = true;
  auto missing = db::open_sqlite(dir.file("absent.db"), ro);
  ASSERT_FALSE(missing);
  EXPECT_TRUE(contains(missing.error(), "does not exist")) << missing.error();
  EXPECT_FALSE(fs::exists(dir.file("absent.db"))) << "a read-only open creates nothing";
  auto dir_as_db = db::open_sqlite(dir.path().string());
  ASSERT_FALSE(dir_as_db);
  EXPECT_TRUE(contains(dir_as_db.error(), "is a directory")) << dir_as_db.error();
  auto memory = db::make_memory_database();
  ASSERT_TRUE(memory->commit(mm64_records(2)));
  auto ex = db::export_jsonl(*memory, dir.file("missing/out.jsonl"));
  ASSERT_FALSE(ex);
  EXPECT_TRUE(contains(ex.error(), "cannot write")) << ex.error();
  auto im = db::import_jsonl(*memory, dir.file("missing/in.jsonl"));
  ASSERT_FALSE(im);
  EXPECT_TRUE(contains(im.error(), "cannot read")) << im.error();
}

TEST(Jsonl, MalformedLinesAreReportedAndTheRestImported) {
  TempDir dir;
  auto source = db::make_memory_database();
  auto good = mm64_records(2);
  ASSERT_TRUE(source->commit(good));
  ASSERT_TRUE(db::export_jsonl(*source, dir.file("good.jsonl")));
  std::istringstream lines(read_bytes(dir.file("good.jsonl")));
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  auto edit = [&](const std::string &from, const std::string &to) {
    std::string s = first;
    auto pos = s.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    return s.replace(pos, from.size(), to);
  };
  std::string text = first + "\n" +                                                         // 1 ok
                     "{not json\n" +                                                        // 2
                     edit("\"trace\":", "\"trace_was\":") + "\n" +                          // 3 missing field
                     edit("\"status\":\"ok\"", "\"status\":\"great\"") + "\n" +             // 4 unknown status
                     edit("\"version\":1", "\"version\":99") + "\n" +                       // 5 newer line format
                     "\n" +                                                                 // 6 blank: skipped
                     edit("\"hash\":\"" + good[0].workload_hash, "\"hash\":\"xyz") + "\n" + // 7 bad hash
                     edit("\"threads\":1", "\"threads\":\"one\"") + "\n" +                  // 8 wrong type
                     second + "\n";                                                         // 9 ok
  write_bytes(dir.file("mixed.jsonl"), text);
  auto into = db::make_memory_database();
  auto result = db::import_jsonl(*into, dir.file("mixed.jsonl"));
  ASSERT_TRUE(result) << result.error();
  EXPECT_EQ(result->imported, 2);
  EXPECT_EQ(result->failed, 6);
  ASSERT_EQ(result->errors.size(), 6u);
  std::vector<std::string> expected = {"line 2: not valid JSON",           "line 3: missing field \"trace\"",
                                       "line 4: unknown status \"great\"", "line 5: record format version 99",
                                       "line 7: workload_hash 'xyz",       "line 8: \"target.threads\" must be"};
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(result->errors[i].rfind(expected[i], 0), 0u) << result->errors[i];
  EXPECT_EQ(count(*into), 2);
}

TEST(SqliteDatabase, CompatibleFallbackRefusesIntrinsicsTheTargetLacks) {
  // A bf16 matmul tensorized onto avx512_bf16_dot on an AVX-512 CPU that has it, asked
  // for by one of the same x86-64-v4 class that does not.
  Target with_bf16 = load_target("cpu-avx512");
  with_bf16.name = "avx512-bf16-box";
  with_bf16.features += ",+avx512bf16";
  with_bf16.derive_isa();
  Target without = load_target("cpu-avx512");
  auto key_with = db::target_key(with_bf16, 1), key_without = db::target_key(without, 1);
  ASSERT_EQ(key_with.compat, key_without.compat);
  te::Workload w = op("matmul:M=64,N=64,K=64,dtype=bf16");
  sched::SpaceGenerator gen(with_bf16);
  std::string trace;
  sched::Rng rng(3);
  for (auto &sketch : gen.sketches(w))
    for (int i = 0; sketch.tensorize && trace.empty() && i < 20; ++i)
      if (auto s = gen.sample(w, sketch, rng)) {
        std::string j = sched::trace_to_json(*s);
        if (contains(j, "avx512_bf16_dot")) trace = j;
      }
  ASSERT_FALSE(trace.empty()) << "the space offers no avx512_bf16_dot sketch for a bf16 matmul";
  auto db = db::make_memory_database();
  ASSERT_TRUE(db->commit({make_record(w, key_with, trace, 1e-5)}));
  EXPECT_TRUE(db::apply_best(*db, w, key_with));
  auto applied = db::apply_best(*db, w, key_without, db::TargetMatch::Compatible);
  ASSERT_FALSE(applied);
  EXPECT_TRUE(contains(applied.error(), "needs avx512bf16")) << applied.error();
}

// ---------------------------------------------------------------------------
// The committed version-1 fixture: every later Tessel must open it.

TEST(SqliteDatabase, MigratesTheCommittedVersion1Fixture) {
  const World &W = world();
  ASSERT_TRUE(fs::exists(kFixture)) << kFixture;
  std::string fixture_bytes = read_bytes(kFixture.string());
  EXPECT_LT(fixture_bytes.size(), 64u * 1024);
  TempDir dir;
  std::string path = dir.file("from_v1.db");
  fs::copy_file(kFixture, path);
  {
    RawDb raw(path, SQLITE_OPEN_READONLY);
    ASSERT_EQ(raw.value("PRAGMA user_version"), "1") << "the fixture must stay a version-1 file";
    ASSERT_EQ(raw.value("SELECT count(*) FROM sqlite_master WHERE name = 'best'"), "0");
  }
  db::OpenOptions ro;
  ro.read_only = true;
  auto refused = db::open_sqlite(path, ro);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(contains(refused.error(), "needs a writable open")) << refused.error();

  auto db = db::open_sqlite(path);
  ASSERT_TRUE(db) << db.error();
  auto stats = (*db)->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->records, 5);
  EXPECT_EQ(stats->ok_records, 4);
  EXPECT_EQ(stats->runs, 1);
  {
    RawDb raw(path);
    EXPECT_EQ(raw.value("PRAGMA user_version"), std::to_string(db::schema::kCurrentVersion));
    EXPECT_EQ(raw.value("SELECT value FROM meta WHERE key = 'schema_version'"),
              std::to_string(db::schema::kCurrentVersion));
    EXPECT_EQ(raw.value("SELECT count(*) FROM best"), "2");
    EXPECT_EQ(raw.value("SELECT count(*) FROM records WHERE status = 'ok' AND cv > 0"), "4") << "cv filled in";
    EXPECT_EQ(raw.value("PRAGMA integrity_check"), "ok");
  }
  // Its records are found and replay today.
  auto targets = (*db)->targets_for_workload(W.mm64.hash_hex());
  ASSERT_TRUE(targets);
  ASSERT_EQ(targets->size(), 1u);
  auto applied = db::apply_best(**db, W.mm64, targets->front());
  ASSERT_TRUE(applied) << applied.error();
  EXPECT_DOUBLE_EQ(applied->record.median_seconds, 2e-4);
  EXPECT_EQ(applied->record.run_seconds, (std::vector<double>{2.1e-4, 2e-4, 1.9e-4}));
  // The key this Tessel computes for the same target still finds them. A change of the canonical
  // form (or of derive_isa's list) orphans every stored record from exact lookups: that needs a
  // migration of the targets table, not a silent change.
  EXPECT_EQ(W.avx2_key.canonical, targets->front().canonical)
      << "the canonical target key changed; existing databases would stop matching exactly";
  EXPECT_TRUE(db::apply_best(**db, W.mm64, W.avx2_key, db::TargetMatch::Compatible));
  EXPECT_TRUE((*db)->commit(mm64_records(2, 40))) << "writable after migration";
  EXPECT_EQ(read_bytes(kFixture.string()), fixture_bytes) << "the committed fixture is never opened in place";
}

// Writes tests/data/tessel_v1.db as Tessel 0.1 did: schema version 1 and its plain inserts.
TEST(DbFixture, DISABLED_WriteV1Fixture) {
  const World &W = world();
  fs::create_directories(kFixture.parent_path());
  fs::remove(kFixture);
  RawDb raw(kFixture.string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  raw.exec("PRAGMA page_size = 1024; PRAGMA journal_mode = DELETE; BEGIN;");
  ASSERT_TRUE(db::schema::create_v1(raw.get(), "tessel 0.1.0 (tests/test_db.cpp fixture generator)"));
  raw.exec("UPDATE meta SET value = '1700000000' WHERE key = 'created_at';"
           "INSERT INTO tuning_runs(id, uid, config, host, tessel_version, llvm_version, started_at, ended_at) "
           "VALUES (1, 'fixture-run-0001', '{\"trials\": 16}', 'fixture-host', '0.1.0', '16.0.6', 1700000000, "
           "1700000100);");
  auto quote = [](const std::string &s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  };
  struct Row {
    const te::Workload *w;
    const db::TargetKey *t;
    std::string trace;
    std::vector<double> seconds;
    db::RecordStatus status;
    std::string message;
  };
  std::vector<Row> rows = {
      {&W.mm64, &W.avx2_key, W.mm64_traces[0], {3.1e-4, 3e-4, 2.9e-4}, db::RecordStatus::Ok, ""},
      {&W.mm64, &W.avx2_key, W.mm64_traces[1], {2.1e-4, 2e-4, 1.9e-4}, db::RecordStatus::Ok, ""},
      {&W.mm64, &W.avx2_key, W.mm64_traces[2], {2.6e-4, 2.5e-4, 2.4e-4}, db::RecordStatus::Ok, ""},
      {&W.mm64, &W.avx2_key, W.mm64_traces[3], {}, db::RecordStatus::CompileError, "fixture: an invented error"},
      {&W.softmax, &W.avx512_key, W.softmax_traces[0], {2e-6, 2.2e-6, 2.1e-6}, db::RecordStatus::Ok, ""},
  };
  std::map<std::string, int> workload_ids, target_ids;
  for (auto &row : rows) {
    if (!workload_ids.count(row.w->key)) {
      int id = int(workload_ids.size()) + 1;
      workload_ids[row.w->key] = id;
      raw.exec("INSERT INTO workloads VALUES (" + std::to_string(id) + ", " + quote(row.w->key) + ", " +
               quote(row.w->hash_hex()) + ", " + quote(te::to_text(*row.w)) + ", " +
               db::detail::format_double(row.w->flops()) + ")");
    }
    if (!target_ids.count(row.t->canonical)) {
      int id = int(target_ids.size()) + 1;
      target_ids[row.t->canonical] = id;
      raw.exec("INSERT INTO targets VALUES (" + std::to_string(id) + ", " + quote(row.t->canonical) + ", " +
               quote(row.t->compat) + ", " + quote(row.t->cpu_model) + ", " + std::to_string(row.t->threads) + ")");
    }
    db::Record r = make_record(*row.w, *row.t, row.trace, 0);
    r.run_seconds = row.seconds;
    r.status = row.status;
    r.message = row.message;
    r.run_id = 1;
    db::detail::fill_derived(r, 1700000050);
    raw.exec("INSERT INTO records(workload_id, target_id, run_id, status, message, median_seconds, min_seconds, "
             "run_seconds, trace_version, trace, measured_at, content_hash) VALUES (" +
             std::to_string(workload_ids[row.w->key]) + ", " + std::to_string(target_ids[row.t->canonical]) + ", 1, " +
             quote(std::string(db::to_string(r.status))) + ", " + quote(r.message) + ", " +
             db::detail::format_double(r.median_seconds) + ", " + db::detail::format_double(r.min_seconds) + ", " +
             quote(db::detail::format_seconds(r.run_seconds)) + ", " + std::to_string(r.trace_version) + ", " +
             quote(r.trace_json) + ", " + std::to_string(r.timestamp) + ", " + quote(db::detail::content_hash(r)) +
             ")");
  }
  raw.exec("COMMIT; VACUUM;");
}

} // namespace
