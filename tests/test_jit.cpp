// The runtime API for JIT use (jit/load_best.h), through libtessel.so as users link it:
// a record tuned here is compiled on first use, cached on disk, called, and checked
// against the reference interpreter; errors are values.
#include "jit/load_best.h"

#include "db/database.h"
#include "search/tuner.h"
#include "te/ops.h"
#include "temp_dir.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

using namespace tessel;

namespace {

const char *kSpec = "dense:M=16,N=48,K=32"; // W and bias constant: exercises packing

// A real (short) tuning run of kSpec into an SQLite database at `path`.
void tune_into(const std::string &path) {
  auto db = db::open_sqlite(path);
  ASSERT_TRUE(db) << db.error();
  auto builder = measure::make_local_builder(Target::host());
  auto runner = measure::make_local_runner();
  auto model = cost::make_random_model(1);
  search::TuneOptions o;
  o.trials = 8;
  o.batch = 8;
  o.run.repeat = 2;
  o.run.min_repeat_ms = 1;
  o.remeasure_top = 0;
  auto r = search::tune({{kSpec, te::make_op_workload(kSpec).take(), 1}}, o, **db, *builder, *runner, *model);
  ASSERT_TRUE(r) << r.error();
}

struct Buffers {
  std::vector<std::vector<float>> data;
  std::vector<void *> ptrs() {
    std::vector<void *> p;
    for (auto &d : data) p.push_back(d.data());
    return p;
  }
};

// X[16,32], W[48,32], bias[48] -> Y[16,48]
Buffers dense_buffers() {
  Buffers b{{std::vector<float>(16 * 32), std::vector<float>(48 * 32), std::vector<float>(48),
             std::vector<float>(16 * 48, -7.f)}};
  for (size_t t = 0; t < 3; ++t)
    for (size_t i = 0; i < b.data[t].size(); ++i) b.data[t][i] = float(int((i * 7 + t * 3) % 11) - 5) * 0.25f;
  return b;
}

float max_error_against_reference(Buffers &b) {
  std::vector<float> ref(16 * 48);
  Status s = reference(kSpec, {b.data[0].data(), b.data[1].data(), b.data[2].data()}, {ref.data()});
  EXPECT_TRUE(s) << s.message();
  float worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(ref[i] - b.data[3][i]));
  return worst;
}

} // namespace

TEST(Jit, LoadBestCompilesCachesAndMatchesTheInterpreter) {
  tessel::testing::TempDir dir("tessel_jit");
  std::string path = dir.file("t.db");
  tune_into(path);
  LoadOptions o;
  o.cache_dir = dir.file("cache");
  auto k = load_best(path, kSpec, "host", o);
  ASSERT_TRUE(k) << k.error();
  EXPECT_GT(k->record_id(), 0);
  EXPECT_GT(k->record_seconds(), 0);
  EXPECT_FALSE(k->from_cache());
  Buffers b = dense_buffers();
  ASSERT_TRUE((*k)(b.ptrs()));
  EXPECT_LT(max_error_against_reference(b), 1e-4f) << k->describe();

  // Second load: the same object from the disk cache, same results.
  auto again = load_best(path, kSpec, "host", o);
  ASSERT_TRUE(again) << again.error();
  EXPECT_TRUE(again->from_cache()) << again->describe();
  EXPECT_EQ(again->record_id(), k->record_id());
  Buffers c = dense_buffers();
  ASSERT_TRUE((*again)(c.ptrs()));
  EXPECT_EQ(b.data[3], c.data[3]);
  // New weights behind another pointer are packed again.
  Buffers d = dense_buffers();
  for (auto &v : d.data[1]) v *= -2;
  ASSERT_TRUE((*again)(d.ptrs()));
  EXPECT_LT(max_error_against_reference(d), 1e-4f);

  // Wrong calls are error values.
  Status bad = (*k)({b.data[0].data()});
  EXPECT_FALSE(bad);
  EXPECT_NE(bad.message().find("expected 3 inputs then 1 outputs"), std::string::npos) << bad.message();
}

TEST(Jit, NothingThatAppliesIsAClearErrorUnlessTheDefaultIsAllowed) {
  tessel::testing::TempDir dir("tessel_jit_none");
  LoadOptions o;
  o.cache_dir = dir.file("cache");
  auto missing = load_best(dir.file("missing.db"), kSpec, "host", o);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("no tuning database at"), std::string::npos) << missing.error();

  std::string path = dir.file("t.db");
  tune_into(path);
  auto other = load_best(path, "dense:M=16,N=48,K=40", "host", o);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().find("no ok record"), std::string::npos) << other.error();
  auto two_threads = load_best(path, kSpec, "host", [&] {
    LoadOptions t = o;
    t.threads = 2;
    return t;
  }());
  EXPECT_FALSE(two_threads) << "records tuned with 1 thread do not apply to 2";

  o.allow_default = true;
  auto fallback = load_best(path, "dense:M=16,N=48,K=40", "host", o);
  ASSERT_TRUE(fallback) << fallback.error();
  EXPECT_EQ(fallback->record_id(), 0);
  EXPECT_NE(fallback->note().find("no ok record"), std::string::npos);

  auto bad_target = load_best(path, kSpec, "h100", o);
  ASSERT_FALSE(bad_target);
  auto bad_workload = load_best(path, "dense:M=16", "host", o);
  ASSERT_FALSE(bad_workload);
}
