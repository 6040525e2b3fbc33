// Schedule primitives, their legality checks, and traces.
#include "ir/printer.h"
#include "kernel_check.h"
#include "schedules/primitives.h"
#include "schedules/trace.h"
#include "te/ops.h"
#include "te/text.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>

#include <fstream>
#include <sstream>

using namespace tessel;
using tessel::testing::kernel_matches_interpreter;

namespace {

te::Workload spec(const std::string &s) { return tessel::testing::op_workload(s); }

te::Workload matmul_const_b(int64_t M, int64_t N, int64_t K) {
  std::string text = "input A: f32[" + std::to_string(M) + ", " + std::to_string(K) + "]\ninput B: f32[" +
                     std::to_string(K) + ", " + std::to_string(N) + "] const\nC[i, j] = sum(k: A[i, k] * B[k, j])\n";
  auto w = te::parse_workload(text);
  EXPECT_TRUE(w.has_value()) << (w ? "" : w.error());
  return *w;
}

#define OK(x) ASSERT_TRUE(x) << (x).message()
#define OKV(x) ASSERT_TRUE((x).has_value()) << (x).error()

// The register-tiled GEMM used by configs/traces: B packed to [N/nb, K, nb],
// C accumulated in a local mi x nb tile (unrolled rows, vectorized columns).
sched::Schedule tiled_gemm(const te::Workload &w, int64_t mi, int64_t nb, int64_t vec) {
  sched::Schedule s = sched::default_schedule(w);
  EXPECT_TRUE(sched::transform_layout(s, "B", 1, nb, {1, 0, 2}).has_value());
  auto local = sched::cache_write(s, "C", ir::MemoryScope::Local);
  EXPECT_TRUE(local.has_value());
  auto si = sched::split(s, "C", 0, mi);
  auto sj = sched::split(s, "C", 1, nb);
  EXPECT_TRUE(si.has_value() && sj.has_value());
  EXPECT_TRUE(sched::reorder(s, "C", {sj->outer, si->outer, si->inner, sj->inner}));
  EXPECT_TRUE(sched::vectorize(s, "C", sj->inner));
  EXPECT_TRUE(sched::parallel(s, "C", sj->outer));
  EXPECT_TRUE(sched::compute_at(s, *local, "C", si->outer));
  auto lj = sched::split(s, *local, 1, vec);
  EXPECT_TRUE(lj.has_value());
  EXPECT_TRUE(sched::reorder(s, *local, {2, 0, lj->outer, lj->inner}));
  EXPECT_TRUE(sched::unroll(s, *local, 0));
  EXPECT_TRUE(sched::unroll(s, *local, lj->outer));
  EXPECT_TRUE(sched::vectorize(s, *local, lj->inner));
  return s;
}

} // namespace

TEST(Schedules, TiledPackedGemmMatchesInterpreter) {
  te::Workload w = matmul_const_b(16, 64, 24);
  sched::Schedule s = tiled_gemm(w, 4, 32, 16);
  EXPECT_TRUE(kernel_matches_interpreter(s, 3));
  EXPECT_TRUE(kernel_matches_interpreter(s, 4, 2));
  auto p = lower::lower(s, "gemm");
  OKV(p);
  ASSERT_EQ(p->prepack.size(), 1u) << "B is constant: it is packed once, outside the kernel";
  std::string kernel = ir::to_string(p->kernel.body);
  EXPECT_NE(kernel.find("C_local = allocate f32[128] in local"), std::string::npos) << kernel;
}

TEST(Schedules, TiledGemmWithTailsMatchesInterpreter) {
  // Neither 13 nor 45 divides by the tiles; B's packed last block is zero-filled.
  te::Workload w = matmul_const_b(13, 45, 7);
  EXPECT_TRUE(kernel_matches_interpreter(tiled_gemm(w, 4, 32, 16), 5));
  te::Workload nonconst = spec("matmul:M=13,N=45,K=7"); // packing then runs inside the kernel
  sched::Schedule s = tiled_gemm(nonconst, 4, 16, 8);
  EXPECT_TRUE(kernel_matches_interpreter(s, 6));
  auto p = lower::lower(s, "g");
  OKV(p);
  EXPECT_TRUE(p->prepack.empty());
}

TEST(Schedules, ComputeAtAPaddingStage) {
  te::Workload w = spec("conv2d:N=1,C=3,H=10,W=9,K=4,R=3,S=3,stride=1,pad=1,layout=NCHW");
  sched::Schedule s = sched::default_schedule(w);
  ASSERT_EQ(s.stages[0].tensor->name, "pad");
  OK(sched::compute_at(s, "pad", "conv", 2)); // one output row at a time needs 3 padded rows
  EXPECT_TRUE(kernel_matches_interpreter(s));
  auto p = lower::lower(s, "k");
  OKV(p);
  std::string ir_text = ir::to_string(p->kernel.body);
  EXPECT_NE(ir_text.find("pad = allocate f32[99]"), std::string::npos) << ir_text; // 1 x 3 x 3 x 11
}

TEST(Schedules, CacheReadAndInlineInSoftmax) {
  te::Workload w = spec("softmax:M=5,N=33");
  sched::Schedule s = sched::default_schedule(w);
  auto c = sched::cache_read(s, "X", "exps", ir::MemoryScope::Local);
  OKV(c);
  EXPECT_TRUE(kernel_matches_interpreter(s));
  OK(sched::compute_inline(s, "exps"));
  EXPECT_TRUE(kernel_matches_interpreter(s));
}

// Padded rows change the buffer's layout, not the values; the IR says so.
TEST(Schedules, StoragePadChangesLayoutOnly) {
  te::Workload w = spec("matmul:M=12,N=20,K=9");
  sched::Schedule s = sched::default_schedule(w);
  auto c = sched::cache_read(s, "A", "C", ir::MemoryScope::Local);
  OKV(c);
  OK(sched::compute_at(s, *c, "C", 0));
  OK(sched::storage_pad(s, *c, 3));
  EXPECT_TRUE(kernel_matches_interpreter(s));
  auto p = lower::lower(s, "k");
  OKV(p);
  std::string ir = ir::to_string(p->kernel.body);
  EXPECT_NE(ir.find("A_local = allocate f32[12]"), std::string::npos) << ir; // one row of 9, padded by 3
  auto replayed = sched::replay_json(w, sched::trace_to_json(s));
  OKV(replayed);
  EXPECT_EQ(sched::trace_to_json(*replayed), sched::trace_to_json(s));
}

TEST(Schedules, SplitNpartsAndFuse) {
  te::Workload w = spec("batch_matmul:B=3,M=7,N=10,K=5");
  sched::Schedule s = sched::default_schedule(w);
  auto f = sched::fuse(s, "C", 0, 1);
  OKV(f);
  auto sp = sched::split_nparts(s, "C", *f, 4);
  OKV(sp);
  OK(sched::parallel(s, "C", sp->outer));
  EXPECT_TRUE(kernel_matches_interpreter(s, 1, 2));
}

TEST(Traces, JsonRoundTripReproducesIdenticalIR) {
  te::Workload w = matmul_const_b(16, 64, 24);
  sched::Schedule s = tiled_gemm(w, 4, 32, 16);
  std::string json = sched::trace_to_json(s);
  auto replayed = sched::replay_json(w, json);
  OKV(replayed);
  EXPECT_EQ(sched::trace_to_json(*replayed), json);
  auto a = lower::lower(s, "k"), b = lower::lower(*replayed, "k");
  OKV(a);
  OKV(b);
  EXPECT_EQ(ir::to_string(a->kernel.body), ir::to_string(b->kernel.body));
  EXPECT_EQ(ir::to_string(a->prepack[0].body), ir::to_string(b->prepack[0].body));
  // The same trace replayed on an equal workload built separately gives the same program.
  auto again = sched::replay_json(matmul_const_b(16, 64, 24), json);
  OKV(again);
  EXPECT_EQ(ir::to_string(lower::lower(*again, "k")->kernel.body), ir::to_string(a->kernel.body));
}

TEST(Traces, VersionsAndWrongWorkloadsAreRefused) {
  te::Workload w = spec("matmul:M=8,N=8,K=8");
  sched::Schedule s = sched::default_schedule(w);
  ASSERT_TRUE(sched::split(s, "C", 0, 4).has_value());
  std::string json = sched::trace_to_json(s);
  std::string newer = json, older = json;
  newer.replace(newer.find("\"version\": 1"), 12, "\"version\": 9");
  older.replace(older.find("\"version\": 1"), 12, "\"version\": 0");
  auto r = sched::replay_json(w, newer);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("newer Tessel"), std::string::npos) << r.error();
  r = sched::replay_json(w, older);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("version 0 is not supported"), std::string::npos) << r.error();
  r = sched::replay_json(spec("matmul:M=8,N=8,K=16"), json);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("was made for workload matmul:M=8,N=8,K=8"), std::string::npos) << r.error();
  r = sched::replay_json(w, "{\"format\": \"tessel-trace\", \"version\": 1, \"steps\": [{\"op\": \"split\", "
                            "\"stage\": \"C\", \"loop\": 0}]}");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("step 1 (split on C): missing field \"factor\""), std::string::npos) << r.error();
  r = sched::replay_json(w, "{\"format\": \"tessel-trace\", \"version\": 1, \"steps\": [{\"op\": \"split\", "
                            "\"stage\": \"C\", \"loop\": 0, \"factor\": 0}]}");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("step 1 (split on C): split: factor must be positive"), std::string::npos) << r.error();
  EXPECT_FALSE(sched::replay_json(w, "not json").has_value());
  EXPECT_FALSE(
      sched::replay_json(
          w, "{\"format\": \"tessel-trace\", \"version\": 1, \"steps\": [{\"op\": \"warp\", \"stage\": \"C\"}]}")
          .has_value());
}

// Each illegal request gets an error naming what is wrong; nothing is applied.
TEST(Legality, IllegalPrimitivesAreRefusedWithClearErrors) {
  struct Case {
    const char *what;
    std::function<Status(sched::Schedule &)> apply;
    const char *message;
  };
  auto st = [](auto e) { return e.status(); };
  std::vector<Case> cases = {
      {"split factor 0", [&](auto &s) { return st(sched::split(s, "C", 0, 0)); }, "factor must be positive"},
      {"split factor > extent", [&](auto &s) { return st(sched::split(s, "C", 1, 99)); }, "exceeds the extent"},
      {"split unknown stage", [&](auto &s) { return st(sched::split(s, "Q", 0, 2)); }, "no stage named 'Q'"},
      {"split unknown loop", [&](auto &s) { return st(sched::split(s, "C", 7, 2)); }, "has no loop #7"},
      {"split twice",
       [&](auto &s) {
         (void)sched::split(s, "C", 0, 2);
         return st(sched::split(s, "C", 0, 2));
       },
       "already split or fused"},
      {"split_nparts 0", [&](auto &s) { return st(sched::split_nparts(s, "C", 0, 0)); }, "nparts must be positive"},
      {"fuse non-adjacent", [&](auto &s) { return st(sched::fuse(s, "C", 0, 2)); }, "not adjacent"},
      {"fuse spatial+reduce", [&](auto &s) { return st(sched::fuse(s, "C", 1, 2)); }, "spatial loop with reduction"},
      {"reorder twice-listed",
       [&](auto &s) {
         return sched::reorder(s, "C", {0, 0});
       },
       "listed twice"},
      {"reorder empty", [&](auto &s) { return sched::reorder(s, "C", {}); }, "no loops given"},
      {"vectorize reduction", [&](auto &s) { return sched::vectorize(s, "C", 2); }, "is a reduction"},
      {"parallel reduction", [&](auto &s) { return sched::parallel(s, "C", 2); }, "is a reduction"},
      {"vectorize too wide", [&](auto &s) { return sched::vectorize(s, "C", 0); }, "need 2..64 lanes"},
      {"two parallel loops",
       [&](auto &s) {
         (void)sched::parallel(s, "C", 0);
         return sched::parallel(s, "C", 1);
       },
       "already has parallel loop"},
      {"unroll too long", [&](auto &s) { return sched::unroll(s, "C", 0); }, "limited to 1024"},
      {"bind bad tag", [&](auto &s) { return sched::bind(s, "C", 0, "threadIdx.w"); }, "unknown thread tag"},
      {"bind reduction to blocks", [&](auto &s) { return sched::bind(s, "C", 2, "blockIdx.x"); },
       "cross-thread reduction"},
      {"bind same tag twice",
       [&](auto &s) {
         (void)sched::bind(s, "C", 0, "blockIdx.x");
         return sched::bind(s, "C", 1, "blockIdx.x");
       },
       "already bound"},
      {"inline reduction", [&](auto &s) { return sched::compute_inline(s, "C"); }, "is a reduction"},
      {"compute_at output", [&](auto &s) { return sched::compute_at(s, "C", "C", 0); }, "inside itself"},
      {"compute_at non-consumer",
       [&](auto &s) {
         (void)sched::cache_write(s, "C", ir::MemoryScope::Local);
         return sched::compute_at(s, "C_local", "C_local", 0);
       },
       "inside itself"},
      {"compute_at vectorized loop",
       [&](auto &s) {
         (void)sched::cache_write(s, "C", ir::MemoryScope::Local);
         auto sp = sched::split(s, "C", 1, 16);
         (void)sched::vectorize(s, "C", sp->inner);
         return sched::compute_at(s, "C_local", "C", sp->inner);
       },
       "can only be computed inside serial"},
      {"cache_write after split",
       [&](auto &s) {
         (void)sched::split(s, "C", 0, 2);
         return st(sched::cache_write(s, "C", ir::MemoryScope::Local));
       },
       "before transforming its loops"},
      {"cache_read of unread tensor",
       [&](auto &s) {
         (void)sched::cache_write(s, "C", ir::MemoryScope::Local);
         return st(sched::cache_read(s, "A", "C", ir::MemoryScope::Local));
       },
       "does not read A"},
      {"pad a global stage", [&](auto &s) { return sched::storage_pad(s, "C", 4); }, "only shared and local"},
      {"pad by nothing",
       [&](auto &s) {
         auto c = sched::cache_write(s, "C", ir::MemoryScope::Local);
         return c ? sched::storage_pad(s, *c, 0) : Status::error(c.error());
       },
       "expected 1..64"},
      {"layout of non-input", [&](auto &s) { return st(sched::transform_layout(s, "C", 0, 2, {})); },
       "is not an input"},
      {"layout bad perm",
       [&](auto &s) {
         return st(sched::transform_layout(s, "B", 1, 16, {0, 1, 1}));
       },
       "permutation"},
      {"layout bad block", [&](auto &s) { return st(sched::transform_layout(s, "B", 1, 0, {})); }, "block 0 must be"},
      {"layout bad dim", [&](auto &s) { return st(sched::transform_layout(s, "B", 5, 4, {})); },
       "dim 5 does not exist"},
  };
  te::Workload w = spec("matmul:M=2000,N=64,K=32");
  for (auto &c : cases) {
    sched::Schedule s = sched::default_schedule(w);
    Status r = c.apply(s);
    EXPECT_FALSE(r.is_ok()) << c.what;
    EXPECT_NE(r.message().find(c.message), std::string::npos) << c.what << ": " << r.message();
  }
  EXPECT_GE(cases.size(), 20u);
}

// A stage read by several others can be computed inside a loop only once every reader is computed
// at that loop too: layernorm's mean (read by the variance and the output) per row, next to the
// variance. Any step that would leave a reader outside is refused, and the fused program is right.
TEST(Legality, ComputeAtNeedsEveryReaderAtTheSameLoop) {
  te::Workload w = spec("layernorm:M=4,N=8");
  sched::Schedule s = sched::default_schedule(w);
  ASSERT_EQ(s.stages.size(), 3u);
  std::string mean = s.stages[0].tensor->name, variance = s.stages[1].tensor->name, y = s.stages[2].tensor->name;
  Status r = sched::compute_at(s, mean, y, 0);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.message().find(variance + " reads it from outside"), std::string::npos) << r.message();
  EXPECT_EQ(s.stages[0].attach, sched::Attach::Root) << "a refused step leaves the schedule as it was";
  EXPECT_TRUE(s.trace.empty());

  OK(sched::compute_at(s, variance, y, 0));
  OK(sched::compute_at(s, mean, y, 0));
  EXPECT_TRUE(kernel_matches_interpreter(s));
  auto p = lower::lower(s, "k");
  OKV(p);
  std::string ir = ir::to_string(p->kernel.body);
  EXPECT_NE(ir.find(mean + " = allocate f32[1]"), std::string::npos) << ir; // one row's mean at a time

  // Moving the variance elsewhere would leave the mean's other reader outside its loop.
  auto sp = sched::split(s, y, 1, 4);
  OKV(sp);
  r = sched::compute_at(s, variance, y, sp->outer);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.message().find("compute " + variance + " at the same loop"), std::string::npos) << r.message();
  EXPECT_EQ(s.stages[1].attach_loop, 0);
  auto replayed = sched::replay_json(w, sched::trace_to_json(s));
  OKV(replayed);
  EXPECT_TRUE(kernel_matches_interpreter(*replayed));
}

// Every committed hand-written trace (scripts/bench times them against OpenBLAS
// and oneDNN) replays on its workload and computes the right thing at full size,
// on any host: a trace for an ISA this host lacks runs its tensor intrinsics
// through their emulations (the rest of the kernel is compiled for this host).
namespace {
struct CommittedTrace {
  std::string file, text;
  std::unique_ptr<sched::Schedule> schedule;
};
std::vector<CommittedTrace> committed_traces(const std::string &prefix, const te::Workload &w) {
  std::string dir = std::string(TESSEL_SOURCE_DIR) + "/configs/traces";
  std::vector<CommittedTrace> out;
  for (auto &e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || e.path().extension() != ".json") continue;
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    auto s = sched::replay_json(w, text.str());
    EXPECT_TRUE(s.has_value()) << name << ": " << (s ? "" : s.error());
    if (s) out.push_back({name, text.str(), std::make_unique<sched::Schedule>(s.take())});
  }
  std::sort(out.begin(), out.end(), [](auto &a, auto &b) { return a.file < b.file; });
  return out;
}
// All traces of one workload against one interpreter run (the interpreter is the slow part at full size).
void expect_correct_on_this_host(const std::vector<CommittedTrace> &traces, const te::Workload &w) {
  auto inputs = interp::random_inputs(w, 2);
  auto expected = interp::interpret(w, inputs);
  ASSERT_TRUE(expected.has_value()) << expected.error();
  for (auto &t : traces) {
    std::string lacking = tessel::testing::intrinsics_host_lacks(*t.schedule);
    if (!lacking.empty())
      std::cout << "[ note     ] " << t.file << ": emulating " << lacking << " (not on this host)\n";
    EXPECT_TRUE(tessel::testing::kernel_matches(*t.schedule, inputs, *expected, 1, false, !lacking.empty())) << t.file;
  }
}
} // namespace

TEST(Traces, CommittedGemmTracesAreCorrect) {
  auto w = te::load_workload(std::string(TESSEL_SOURCE_DIR) + "/configs/workloads/matmul_1024_constb.te");
  OKV(w);
  auto traces = committed_traces("matmul_1024_constb_", *w);
  ASSERT_GE(traces.size(), 3u) << "the AVX-512, AVX-512 tensorized and AVX2 tensorized GEMM traces";
  expect_correct_on_this_host(traces, *w);
}

// The conv traces pack the constant weight once, outside the kernel.
TEST(Traces, CommittedConvTracesAreCorrect) {
  te::Workload w = spec("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,layout=NCHW");
  auto traces = committed_traces("conv2d_resnet50_3x3_64_", w);
  ASSERT_GE(traces.size(), 2u) << "the AVX-512 and AVX2 conv traces";
  for (auto &t : traces) {
    auto p = lower::lower(*t.schedule, "conv");
    OKV(p);
    ASSERT_EQ(p->prepack.size(), 1u) << t.file << ": the weight is packed once, outside the kernel";
  }
  expect_correct_on_this_host(traces, w);
}

// The depthwise seed: 8 lanes, 4 output rows unrolled around register accumulators, the 3 x 3 taps innermost.
// Searches fell into 56-lane programs that store every tap (35-47 GFLOP/s against 86-89, AMD EPYC Zen 4) unless
// they started from it.
TEST(Traces, CommittedDepthwiseTraceIsCorrectAndReplaysOnOtherLayers) {
  te::Workload w = spec("depthwise_conv2d:N=1,C=128,H=56,W=56,R=3,S=3,pad=1");
  auto traces = committed_traces("depthwise_conv2d_3x3_", w);
  ASSERT_EQ(traces.size(), 1u);
  expect_correct_on_this_host(traces, w);
  // As the tuner seeds a task with it: its steps replayed on another layer (MobileNet-V2's first, fewer channels
  // here), not its identity. Where its tile factors exceed a layer's loops (outputs under 56 x 56) it does not
  // replay, and the tuner leaves it out.
  te::Workload other_layer = spec("depthwise_conv2d:N=1,C=8,H=112,W=112,R=3,S=3,pad=1");
  auto parsed = sched::parse_trace(traces[0].text);
  OKV(parsed);
  auto replayed = sched::replay(other_layer, parsed->steps);
  OKV(replayed);
  std::vector<CommittedTrace> other;
  other.push_back({traces[0].file, traces[0].text, std::make_unique<sched::Schedule>(replayed.take())});
  expect_correct_on_this_host(other, other_layer);
}
