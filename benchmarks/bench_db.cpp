// The tuning database at the size users reach: 1,024,000 records (1,000
// matmul workloads x 2 targets x 512 records, real sampled traces) in a
// SQLite file built once per process in the temp directory. Measures batched
// insert throughput (batches of 64, one transaction each), best() and
// top_k(10) latency (median and p99 of single calls), apply_best (lookup +
// stale-hash check + replay) and bytes per record. Aims: >= 100,000
// records/s, <= 100 us p99 for best().
// Run: build/benchmarks/bench_db (building the file takes a while; it is removed at exit).
#include "bench_util.h"
#include "db/database.h"
#include "schedules/space.h"
#include "te/ops.h"
#include "te/text.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

using namespace tessel;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kWorkloads = 1000, kTargets = 2, kPerPair = 512, kBatch = 64;
constexpr size_t kTracesPerWorkload = 2;

// Rounds of 64 records per pair to build: 8 (1,024,000 records) unless $TESSEL_BENCH_DB_ROUNDS says
// fewer, for a quick look.
int build_rounds() {
  const char *env = std::getenv("TESSEL_BENCH_DB_ROUNDS");
  return env ? std::clamp(std::atoi(env), 1, kPerPair / kBatch) : kPerPair / kBatch;
}

struct Corpus {
  std::vector<te::Workload> workloads;
  std::vector<std::string> texts, hashes;
  std::vector<db::TargetKey> targets;
  std::vector<std::vector<std::string>> traces; // per workload: sampled schedules, as real records have
  size_t trace_count = 0;
  double trace_bytes = 0; // average
};

Corpus make_corpus() {
  Corpus c;
  for (int m = 1; m <= 10; ++m)
    for (int n = 1; n <= 10; ++n)
      for (int k = 1; k <= 10; ++k) {
        auto w = te::make_op_workload("matmul:M=" + std::to_string(16 * m) + ",N=" + std::to_string(16 * n) +
                                      ",K=" + std::to_string(16 * k));
        if (!w) throw std::runtime_error(w.error());
        c.texts.push_back(te::to_text(*w));
        c.hashes.push_back(w->hash_hex());
        c.workloads.push_back(w.take());
      }
  for (const char *name : {"cpu-avx2", "cpu-avx512"}) {
    auto t = Target::load(std::string(TESSEL_SOURCE_DIR) + "/configs/targets/" + name + ".json");
    if (!t) throw std::runtime_error(t.error());
    c.targets.push_back(db::target_key(*t, 1));
  }
  // Two sampled schedules per workload, so apply_best really replays what it finds.
  auto t = Target::load(std::string(TESSEL_SOURCE_DIR) + "/configs/targets/cpu-avx512.json");
  sched::SpaceGenerator gen(*t);
  sched::Rng rng(11);
  size_t total = 0;
  for (auto &w : c.workloads) {
    auto sketches = gen.sketches(w);
    std::vector<std::string> mine;
    for (int i = 0; mine.size() < kTracesPerWorkload && i < 20; ++i)
      if (auto s = gen.sample(w, sketches[size_t(i) % sketches.size()], rng)) mine.push_back(sched::trace_to_json(*s));
    if (mine.empty()) mine.push_back(sched::trace_to_json(sched::default_schedule(w)));
    for (auto &tr : mine) total += tr.size();
    c.trace_count += mine.size();
    c.traces.push_back(std::move(mine));
  }
  c.trace_bytes = double(total) / double(c.trace_count);
  return c;
}

const Corpus &corpus() {
  static const Corpus c = make_corpus();
  return c;
}

// Record `j` of a (workload, target) pair; `salt` makes records of later benchmarks new.
db::Record corpus_record(int pair, int64_t j, std::mt19937 &rng) {
  const Corpus &c = corpus();
  db::Record r;
  size_t w = size_t(pair % kWorkloads), t = size_t(pair / kWorkloads);
  r.workload_key = c.workloads[w].key;
  r.workload_hash = c.hashes[w];
  r.workload_text = c.texts[w];
  r.target = c.targets[t];
  r.trace_json = c.traces[w][size_t(j) % c.traces[w].size()];
  double base = 1e-5 * (1 + double(rng() % 100000) / 1000.0);
  r.run_seconds = {base * 1.01, base, base * 0.995, base * 1.003, base * (1 + 1e-9 * double(j))};
  return r;
}

struct Shared {
  std::string path = (fs::temp_directory_path() / ("tessel_bench_db_" + std::to_string(getpid()) + ".db")).string();
  std::unique_ptr<db::Database> db;
  int64_t committed = 0, built = 0, next_j = kPerPair; // records so far, after the build; next index per pair
  double build_seconds = 0;
  int64_t file_bytes = 0;
  std::vector<double> best_us, top_us, apply_us;
};
Shared &shared() {
  static Shared s;
  return s;
}

// The 1M-record database, built once, as tuners fill it: each batch of 64 is one
// measurement round of one workload on one target, rounds of all pairs interleaved.
void build_database() {
  Shared &s = shared();
  if (s.db) return;
  corpus();
  auto db = db::open_sqlite(s.path);
  if (!db) throw std::runtime_error(db.error());
  s.db = db.take();
  std::mt19937 rng(1);
  std::vector<db::Record> batch;
  // Only commit() is timed: making the records is the tuner's work, not the database's.
  Clock::duration in_commit{};
  for (int round = 0, rounds = build_rounds(); round < rounds; ++round)
    for (int pair = 0; pair < kWorkloads * kTargets; ++pair) {
      batch.clear();
      for (int i = 0; i < kBatch; ++i) batch.push_back(corpus_record(pair, round * kBatch + i, rng));
      auto start = Clock::now();
      Status st = s.db->commit(batch);
      in_commit += Clock::now() - start;
      if (!st) throw std::runtime_error(st.message());
      s.committed += kBatch;
      if (s.committed % 200000 < kBatch)
        std::fprintf(stderr, "bench_db: %lld records written\n", static_cast<long long>(s.committed));
    }
  s.build_seconds = std::chrono::duration<double>(in_commit).count();
  s.built = s.committed;
  s.file_bytes = s.db->stats()->file_bytes;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

// One more round of one pair per batch, on the built database.
void BM_InsertBatch64(benchmark::State &state) {
  build_database();
  Shared &s = shared();
  std::mt19937 rng(2);
  std::vector<db::Record> batch(kBatch);
  for (auto _ : state) {
    state.PauseTiming(); // the tuner's work, not the database's
    int pair = int(rng() % (kWorkloads * kTargets));
    for (auto &r : batch) r = corpus_record(pair, s.next_j++, rng);
    state.ResumeTiming();
    if (Status st = s.db->commit(batch); !st) state.SkipWithError(st.message().c_str());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_InsertBatch64)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The worst case: 64 records of 64 different workloads per batch (random pages of every index).
void BM_InsertBatch64Scattered(benchmark::State &state) {
  build_database();
  Shared &s = shared();
  std::mt19937 rng(4);
  std::vector<db::Record> batch(kBatch);
  for (auto _ : state) {
    state.PauseTiming();
    for (auto &r : batch) r = corpus_record(int(rng() % (kWorkloads * kTargets)), s.next_j++, rng);
    state.ResumeTiming();
    if (Status st = s.db->commit(batch); !st) state.SkipWithError(st.message().c_str());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_InsertBatch64Scattered)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Single calls timed one by one: the latency distribution, not just the mean.
template <typename Call> void time_calls(benchmark::State &state, std::vector<double> &us, Call call) {
  build_database();
  std::mt19937 rng(3);
  us.clear();
  for (auto _ : state) {
    const Corpus &c = corpus();
    size_t w = rng() % c.workloads.size(), t = rng() % c.targets.size();
    auto start = Clock::now();
    bool ok = call(c.workloads[w], c.targets[t]);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (!ok) state.SkipWithError("lookup failed");
  }
  state.counters["p50_us"] = percentile(us, 0.5);
  state.counters["p99_us"] = percentile(us, 0.99);
}

void BM_BestLookup(benchmark::State &state) {
  time_calls(state, shared().best_us, [](const te::Workload &w, const db::TargetKey &t) {
    return shared().db->best(w.hash_hex(), t).has_value();
  });
}
BENCHMARK(BM_BestLookup)->Iterations(20000)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_TopK10(benchmark::State &state) {
  time_calls(state, shared().top_us, [](const te::Workload &w, const db::TargetKey &t) {
    auto top = shared().db->top_k(w.hash_hex(), t, 10);
    return top && top->size() == 10;
  });
}
BENCHMARK(BM_TopK10)->Iterations(20000)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_ApplyBest(benchmark::State &state) {
  time_calls(state, shared().apply_us, [](const te::Workload &w, const db::TargetKey &t) {
    return db::apply_best(*shared().db, w, t).has_value();
  });
}
BENCHMARK(BM_ApplyBest)->Iterations(2000)->Unit(benchmark::kMicrosecond)->UseRealTime();

} // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  bench::SummaryReporter reporter;
  int status = 0;
  try {
    benchmark::RunSpecifiedBenchmarks(&reporter);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "bench_db: %s\n", e.what());
    status = 1;
  }
  Shared &s = shared();
  if (s.db) {
    auto stats = s.db->stats();
    std::printf("\n== Summary (tuning database: SQLite %s, WAL; %lld records, %d workloads x %d targets) ==\n",
                sqlite3_libversion(), static_cast<long long>(stats ? stats->records : 0), kWorkloads, kTargets);
    std::printf("%-52s %14s %12s\n", "measure", "value", "aim");
    std::printf("%-52s %14.0f %12s\n", "insert records/s, batches of 64, while building",
                double(s.built) / s.build_seconds, ">= 100000");
    for (auto [name, label] :
         {std::pair<const char *, const char *>{"BM_InsertBatch64", "insert records/s, after the build"},
          {"BM_InsertBatch64Scattered", "insert records/s, after, 64 workloads per batch"}}) {
      auto it = reporter.ms.find(name);
      if (it != reporter.ms.end()) std::printf("%-52s %14.0f %12s\n", label, kBatch / (it->second * 1e-6), "");
    }
    std::printf("%-52s %14.1f %12s\n", "best() latency median, us", percentile(s.best_us, 0.5), "");
    std::printf("%-52s %14.1f %12s\n", "best() latency p99, us", percentile(s.best_us, 0.99), "<= 100");
    std::printf("%-52s %14.1f %12s\n", "top_k(10) latency p99, us", percentile(s.top_us, 0.99), "");
    std::printf("%-52s %14.1f %12s\n", "apply_best (lookup, hash check, replay) median, us",
                percentile(s.apply_us, 0.5), "");
    std::printf("%-52s %14.0f %12s\n", "bytes per record (file / records built)",
                double(s.file_bytes) / double(s.built), "");
    std::printf("%-52s %14.0f %12s\n", "  of which trace JSON, average", corpus().trace_bytes, "");
    s.db.reset();
  }
  for (const char *suffix : {"", "-wal", "-shm"}) fs::remove(s.path + suffix);
  benchmark::Shutdown();
  return status;
}
