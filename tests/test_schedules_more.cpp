// rfactor, reverse_compute_at and the auto-unroll pragma.
#include "ir/printer.h"
#include "kernel_check.h"
#include "schedules/intrinsics.h"
#include "schedules/primitives.h"
#include "schedules/trace.h"
#include "te/ops.h"
#include "te/text.h"

#include <gtest/gtest.h>

using namespace tessel;
using tessel::testing::kernel_matches_interpreter;

namespace {
te::Workload op(const std::string &s) { return tessel::testing::op_workload(s); }
std::string lowered(const sched::Schedule &s) { return ir::to_string(lower::lower(s, "k")->kernel.body); }
} // namespace

TEST(Rfactor, PartialSumsVectorizeAndReplay) {
  te::Workload w = op("matmul:M=3,N=2,K=64");
  sched::Schedule s = sched::default_schedule(w);
  auto sp = sched::split(s, "C", 2, 16);
  ASSERT_TRUE(sp.has_value());
  auto rf = sched::rfactor(s, "C", sp->inner);
  ASSERT_TRUE(rf.has_value()) << rf.error();
  EXPECT_EQ(*rf, "C_rf");
  // The partial-sum index is now a spatial loop: it can be vectorized.
  ASSERT_TRUE(sched::reorder(s, "C_rf", {1, 2, 3, 0}));
  ASSERT_TRUE(sched::vectorize(s, "C_rf", 0));
  EXPECT_TRUE(kernel_matches_interpreter(s));
  EXPECT_NE(lowered(s).find("ramp("), std::string::npos);
  auto r = sched::replay_json(w, sched::trace_to_json(s));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(lowered(*r), lowered(s));
}

TEST(Rfactor, PartialsLastAreContiguousVectorsAndReplay) {
  te::Workload w = op("layernorm:M=5,N=64");
  sched::Schedule s = sched::default_schedule(w);
  auto sp = sched::split(s, "mean", 1, 16);
  ASSERT_TRUE(sp.has_value());
  auto rf = sched::rfactor(s, "mean", sp->inner, /*partials_last=*/true);
  ASSERT_TRUE(rf.has_value()) << rf.error();
  const sched::Stage *R = s.find(*rf);
  ASSERT_NE(R, nullptr);
  EXPECT_EQ(R->tensor->shape, (std::vector<int64_t>{5, 16})); // rows, then the partials
  // Loops: i, the partials, k.o; the partials innermost and vectorized: dense vectors, no gathers.
  ASSERT_TRUE(sched::reorder(s, *rf, {0, 2, 1}));
  ASSERT_TRUE(sched::vectorize(s, *rf, 1));
  std::string ir = lowered(s);
  EXPECT_NE(ir.find("mean_rf[ramp((i * 16), 1, 16)]"), std::string::npos) << ir;
  EXPECT_TRUE(kernel_matches_interpreter(s));
  std::string json = sched::trace_to_json(s);
  EXPECT_NE(json.find("\"rfactor_last\""), std::string::npos);
  auto r = sched::replay_json(w, json);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(lowered(*r), lowered(s));
}

TEST(Rfactor, WholeAxisOfAMaxReduction) {
  te::Workload w = op("softmax:M=4,N=24");
  sched::Schedule s = sched::default_schedule(w);
  std::string first = s.stages[0].tensor->name; // the row maximum
  auto rf = sched::rfactor(s, first, 1);
  ASSERT_TRUE(rf.has_value()) << rf.error();
  EXPECT_TRUE(kernel_matches_interpreter(s));
}

TEST(Rfactor, Illegal) {
  te::Workload w = op("matmul:M=3,N=2,K=60");
  sched::Schedule s = sched::default_schedule(w);
  EXPECT_NE(sched::rfactor(s, "C", 0).error().find("not a reduction loop"), std::string::npos);
  auto sp = sched::split(s, "C", 2, 7);
  ASSERT_TRUE(sp.has_value());
  EXPECT_NE(sched::rfactor(s, "C", sp->inner).error().find("does not divide"), std::string::npos);
  te::Workload r = op("relu:M=2,N=2");
  sched::Schedule t = sched::default_schedule(r);
  EXPECT_NE(sched::rfactor(t, t.stages[0].tensor->name, 0).error().find("not a reduction"), std::string::npos);
}

TEST(ReverseComputeAt, EpilogueFollowsEachTile) {
  te::Workload w = op("dense:M=8,N=24,K=10"); // matmul, then Y = matmul + bias
  sched::Schedule s = sched::default_schedule(w);
  std::string mm = s.stages[0].tensor->name, y = s.stages[1].tensor->name;
  auto si = sched::split(s, mm, 0, 4);
  auto sj = sched::split(s, mm, 1, 8);
  ASSERT_TRUE(si.has_value() && sj.has_value());
  ASSERT_TRUE(sched::reorder(s, mm, {si->outer, sj->outer, si->inner, sj->inner}));
  Status st = sched::reverse_compute_at(s, y, mm, sj->outer);
  ASSERT_TRUE(st) << st.message();
  EXPECT_TRUE(kernel_matches_interpreter(s));
  auto r = sched::replay_json(w, sched::trace_to_json(s));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(lowered(*r), lowered(s));
}

TEST(ReverseComputeAt, Illegal) {
  te::Workload w = op("dense:M=8,N=24,K=10");
  sched::Schedule s = sched::default_schedule(w);
  std::string mm = s.stages[0].tensor->name, y = s.stages[1].tensor->name;
  Status st = sched::reverse_compute_at(s, y, mm, 2); // the reduction loop k
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("unfinished values"), std::string::npos) << st.message();
  st = sched::reverse_compute_at(s, mm, y, 0);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("is a reduction"), std::string::npos) << st.message();
}

TEST(AutoUnroll, UnrollsSmallInnerLoops) {
  te::Workload w = op("matmul:M=8,N=8,K=4");
  sched::Schedule s = sched::default_schedule(w);
  ASSERT_TRUE(sched::auto_unroll(s, "C", 0, 64));
  std::string ir_text = lowered(s);
  EXPECT_EQ(ir_text.find("for (j"), std::string::npos) << "j x k = 32 iterations fit in 64: unrolled\n" << ir_text;
  EXPECT_NE(ir_text.find("for (i"), std::string::npos);
  EXPECT_TRUE(kernel_matches_interpreter(s));
  sched::Schedule t = sched::default_schedule(w);
  EXPECT_FALSE(sched::auto_unroll(t, "C", 0, 100000));
}

TEST(CacheWriteLayout, BlockedAccumulatorMatchesInterpreter) {
  te::Workload w = op("conv2d:N=1,C=3,H=6,W=6,K=32,R=3,S=3,stride=1,pad=1,layout=NCHW");
  sched::Schedule s = sched::default_schedule(w);
  sched::Layout nchw16c{1, 16, {}};
  auto local = sched::cache_write(s, "conv", ir::MemoryScope::Local, &nchw16c);
  ASSERT_TRUE(local.has_value()) << local.error();
  const sched::Stage *c = s.find(*local);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->tensor->shape, (std::vector<int64_t>{1, 2, 6, 6, 16})); // NCHW16c
  // Tile the copy, compute the accumulator per tile, vectorize its 16 channels.
  ASSERT_TRUE(sched::compute_at(s, *local, "conv", 2));
  ASSERT_TRUE(sched::vectorize(s, *local, 4));
  EXPECT_TRUE(kernel_matches_interpreter(s));
  auto r = sched::replay_json(w, sched::trace_to_json(s));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(lowered(*r), lowered(s));
  // A pure transpose (block 1) of a matmul accumulator.
  te::Workload m = op("matmul:M=5,N=7,K=3");
  sched::Schedule t = sched::default_schedule(m);
  sched::Layout transpose{0, 1, {1, 0, 2}};
  ASSERT_TRUE(sched::cache_write(t, "C", ir::MemoryScope::Global, &transpose).has_value());
  EXPECT_TRUE(kernel_matches_interpreter(t));
  // A block that does not divide the dimension is refused.
  sched::Schedule u = sched::default_schedule(m);
  sched::Layout bad{1, 3, {}};
  auto e = sched::cache_write(u, "C", ir::MemoryScope::Local, &bad);
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().find("does not divide"), std::string::npos) << e.error();
}

TEST(SplitExact, NoTailOrRefused) {
  te::Workload w = op("matmul:M=12,N=10,K=4");
  sched::Schedule s = sched::default_schedule(w);
  auto e = sched::split_exact(s, "C", 1, 4);
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().find("does not divide the extent 10"), std::string::npos) << e.error();
  auto ok = sched::split_exact(s, "C", 0, 4);
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(lowered(s).find("if ("), std::string::npos) << "no guard expected";
  EXPECT_TRUE(kernel_matches_interpreter(s));
  auto r = sched::replay_json(w, sched::trace_to_json(s));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_NE(sched::trace_to_json(*r).find("split_exact"), std::string::npos);
}

// Each f32 FMA micro-kernel: on a host with its ISA the real kernel runs; on one
// without, the same lowered schedule runs through the intrinsic's emulation.
class F32FmaTensorize : public ::testing::TestWithParam<const char *> {};

TEST_P(F32FmaTensorize, MicroKernelMatchesInterpreter) {
  const sched::TensorIntrinsic *in = sched::find_tensor_intrinsic(GetParam());
  ASSERT_NE(in, nullptr);
  bool native = in->available_on(Target::host());
  // Tiles of 7 x 40 (partial vectors and row blocks inside the kernel), K = 9.
  auto text = "input A: f32[14, 9]\ninput B: f32[9, 80] const\nC[i, j] = sum(k: A[i, k] * B[k, j])\n";
  auto w = te::parse_workload(text);
  ASSERT_TRUE(w.has_value()) << w.error();
  sched::Schedule s = sched::default_schedule(*w);
  auto local = sched::cache_write(s, "C", ir::MemoryScope::Local);
  ASSERT_TRUE(local.has_value());
  auto si = sched::split_exact(s, "C", 0, 7);
  auto sj = sched::split_exact(s, "C", 1, 40);
  ASSERT_TRUE(si.has_value() && sj.has_value());
  ASSERT_TRUE(sched::reorder(s, "C", {si->outer, sj->outer, si->inner, sj->inner}));
  ASSERT_TRUE(sched::compute_at(s, *local, "C", sj->outer));
  ASSERT_TRUE(sched::reorder(s, *local, {2, 0, 1}));
  Status t = sched::tensorize(s, *local, 2, in->name);
  ASSERT_TRUE(t) << t.message();
  std::string ir_text = lowered(s);
  EXPECT_NE(ir_text.find("call " + in->runtime_symbol + "("), std::string::npos) << ir_text;
  EXPECT_TRUE(kernel_matches_interpreter(s, 3, 1, false, /*emulate_intrinsics=*/!native))
      << (native ? "native kernel" : "emulated (host lacks " + in->required_feature + ")");
  auto r = sched::replay_json(*w, sched::trace_to_json(s));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(lowered(*r), ir_text);
  // A target without the kernel's ISA is refused at code generation.
  auto sse = Target::load(std::string(TESSEL_SOURCE_DIR) + "/configs/targets/cpu-avx2.json");
  ASSERT_TRUE(sse.has_value());
  Target lacking = *sse;
  if (in->required_feature == "fma") { // an x86-64-v2 machine
    lacking.cpu = "x86-64-v2";
    lacking.features = "-avx,-avx2,-fma";
    lacking.derive_isa();
  }
  auto p = lower::lower(s, "k");
  ASSERT_TRUE(p.has_value());
  auto k = codegen::jit_compile(*p, lacking);
  ASSERT_FALSE(k.has_value());
  EXPECT_NE(k.error().find("needs the CPU feature " + in->required_feature), std::string::npos) << k.error();
}

INSTANTIATE_TEST_SUITE_P(Intrinsics, F32FmaTensorize, ::testing::Values("avx512_fma_f32", "avx2_fma_f32"));

TEST(Tensorize, Illegal) {
  te::Workload w = op("matmul:M=12,N=16,K=8");
  sched::Schedule s = sched::default_schedule(w);
  EXPECT_NE(sched::tensorize(s, "C", 0, "amx_magic").message().find("unknown intrinsic"), std::string::npos);
  EXPECT_NE(sched::tensorize(s, "C", 1, "avx512_fma_f32").message().find("exactly two loops inside"),
            std::string::npos);
  ASSERT_TRUE(sched::vectorize(s, "C", 1));
  EXPECT_NE(sched::tensorize(s, "C", 0, "avx512_fma_f32").message().find("is vectorized"), std::string::npos);
  te::Workload h = op("matmul:M=4,N=16,K=8,dtype=f64");
  sched::Schedule t = sched::default_schedule(h);
  std::string acc = t.stages[0].tensor->name;
  EXPECT_NE(sched::tensorize(t, acc, 0, "avx512_fma_f32").message().find("computes f32 += f32 * f32"),
            std::string::npos);
  te::Workload sm = op("softmax:M=4,N=16");
  sched::Schedule u = sched::default_schedule(sm);
  EXPECT_NE(sched::tensorize(u, u.stages[0].tensor->name, 0, "avx512_fma_f32").message().find("sum of products"),
            std::string::npos);
  sched::Schedule v = sched::default_schedule(op("matmul:M=12,N=10,K=8"));
  ASSERT_TRUE(sched::split(v, "C", 1, 4).has_value());
  EXPECT_NE(sched::tensorize(v, "C", 0, "avx512_fma_f32").message().find("exactly two loops inside"),
            std::string::npos);
}

TEST(Tensorize, Bf16DotProductsMatchInterpreter) {
  if (!Target::host().has_feature("avx512bf16")) GTEST_SKIP() << "host lacks AVX-512 BF16";
  for (const char *spec : {"matmul:M=13,N=70,K=33,dtype=bf16", "matmul:M=6,N=16,K=2,dtype=bf16"}) {
    te::Workload w = op(spec);
    sched::Schedule s = sched::default_schedule(w);
    ASSERT_TRUE(sched::reorder(s, "Cacc", {2, 0, 1}));
    Status t = sched::tensorize(s, "Cacc", 2, "avx512_bf16_dot");
    ASSERT_TRUE(t) << t.message();
    EXPECT_NE(lowered(s).find("call tessel_ukernel_bf16_dot_avx512("), std::string::npos);
    EXPECT_TRUE(kernel_matches_interpreter(s, 4)) << spec; // odd K: the last pair has a zero partner
  }
  // The f32 kernel is not for bf16 operands, and vice versa.
  sched::Schedule s = sched::default_schedule(op("matmul:M=4,N=16,K=8,dtype=bf16"));
  ASSERT_TRUE(sched::reorder(s, "Cacc", {2, 0, 1}));
  EXPECT_NE(sched::tensorize(s, "Cacc", 2, "avx512_fma_f32").message().find("computes f32 += f32 * f32"),
            std::string::npos);
}
