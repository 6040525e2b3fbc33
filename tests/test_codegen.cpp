// Lowering + LLVM code generation under hand-written schedules, checked
// against the interpreter; the generated IR is inspected where the point is
// its shape (real vector instructions, parallel tasks).
#include "ir/op.h"
#include "ir/printer.h"
#include "ir/visitor.h"
#include "kernel_check.h"
#include "lower/lower.h"
#include "schedules/primitives.h"
#include "te/ops.h"
#include "te/tensor.h"
#include "te/text.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

using namespace tessel;
using tessel::ir::Expr;
using tessel::testing::kernel_matches_interpreter;

namespace {

te::Workload matmul(int64_t M, int64_t N, int64_t K, ir::DataType dt = ir::DataType::f32()) {
  te::Tensor A = te::placeholder({M, K}, dt, "A");
  te::Tensor B = te::placeholder({K, N}, dt, "B");
  auto k = te::reduce_axis(K, "k");
  te::Tensor C = te::compute(
      {M, N}, [&](te::Index i) { return te::sum(A(i[0], k) * B(k, i[1]), {k}); }, "C");
  auto w = te::make_workload("", {A, B}, {C});
  EXPECT_TRUE(w.has_value()) << (w ? "" : w.error());
  return *w;
}

// i, j, k -> i, k, j.o, j.i with j.i vectorized and i parallel.
sched::Schedule ikj_vectorized(const te::Workload &w, int64_t vec) {
  sched::Schedule s = sched::default_schedule(w);
  auto sp = sched::split(s, "C", 1, vec);
  EXPECT_TRUE(sp.has_value()) << (sp ? "" : sp.error());
  EXPECT_TRUE(sched::reorder(s, "C", {0, 2, sp->outer, sp->inner}));
  EXPECT_TRUE(sched::vectorize(s, "C", sp->inner));
  EXPECT_TRUE(sched::parallel(s, "C", 0));
  return s;
}

} // namespace

TEST(Codegen, DefaultMatmul) { EXPECT_TRUE(kernel_matches_interpreter(sched::default_schedule(matmul(17, 13, 11)))); }

TEST(Codegen, SizeOneExtents) { EXPECT_TRUE(kernel_matches_interpreter(sched::default_schedule(matmul(1, 1, 1)))); }

TEST(Codegen, VectorizedParallelMatmulEmitsVectorIR) {
  te::Workload w = matmul(32, 64, 16);
  sched::Schedule s = ikj_vectorized(w, 16);
  EXPECT_TRUE(kernel_matches_interpreter(s, 3, 2));
  auto f = lower::lower(s, "mm");
  ASSERT_TRUE(f.has_value());
  std::string ir_text = ir::to_string(f->kernel.body);
  EXPECT_NE(ir_text.find("ramp("), std::string::npos) << ir_text;
  EXPECT_NE(ir_text.find("parallel"), std::string::npos) << ir_text;
  auto llvm_ir = codegen::emit_llvm_ir(*f, Target::host(), /*optimized=*/false);
  ASSERT_TRUE(llvm_ir.has_value()) << llvm_ir.error();
  EXPECT_NE(llvm_ir->find("<16 x float>"), std::string::npos); // emitted by us, before any optimization
  EXPECT_NE(llvm_ir->find("tessel_parallel_for"), std::string::npos);
}

// A padded convolution vectorized along its width reads the padded input through clamped indices
// under a select: that is a masked vector load, not a gather, and edge lanes still read zero.
TEST(Codegen, PaddedReadsVectorizedAlongTheWidthAreMaskedLoads) {
  te::Workload w = tessel::testing::op_workload("depthwise_conv2d:N=1,C=3,H=6,W=16,R=3,S=3,stride=1,pad=1");
  sched::Schedule s = sched::default_schedule(w);
  ASSERT_TRUE(sched::compute_inline(s, "pad"));
  ASSERT_TRUE(sched::reorder(s, "conv", {0, 1, 2, 4, 5, 3})); // n c h | ry rx | w
  ASSERT_TRUE(sched::vectorize(s, "conv", 3));
  EXPECT_TRUE(kernel_matches_interpreter(s, 5));
  auto f = lower::lower(s, "dw");
  ASSERT_TRUE(f.has_value()) << f.error();
  auto llvm_ir = codegen::emit_llvm_ir(*f, Target::host(), /*optimized=*/false);
  ASSERT_TRUE(llvm_ir.has_value()) << llvm_ir.error();
  EXPECT_NE(llvm_ir->find("llvm.masked.load"), std::string::npos);
  EXPECT_EQ(llvm_ir->find("llvm.masked.gather"), std::string::npos);
}

// Whether any store inside the loop over `var` writes `buffer`.
bool loop_stores_to(const ir::Stmt &s, const std::string &var, const std::string &buffer) {
  struct V : ir::IRVisitor {
    std::string var, buffer;
    int inside = 0;
    bool found = false;
    using ir::IRVisitor::visit;
    void visit(const ir::For *op) override {
      bool it = op->var.as<ir::Var>()->name == var;
      inside += it;
      ir::IRVisitor::visit(op);
      inside -= it;
    }
    void visit(const ir::Store *op) override {
      found |= inside > 0 && op->buffer.as<ir::Var>()->name == buffer;
      ir::IRVisitor::visit(op);
    }
  } v;
  v.var = var, v.buffer = buffer;
  s.accept(&v);
  return v.found;
}

// A register tile of 4 rows x 64 lanes with k outside it: each row of C is loaded before the k loop, updated in
// a local (which LLVM keeps in registers) and stored after it. LLVM's own promotion left this tile in memory,
// a load and a store per FMA (51 against 112 GFLOP/s, AMD EPYC Zen 4).
TEST(Codegen, RegisterTileAccumulatorsStayInRegistersAcrossTheReduction) {
  te::Workload w = matmul(16, 128, 32);
  auto tile = [&](bool unroll_rows) { // i.o j.o k | i.i j.i, j.i vectorized by 64
    sched::Schedule s = sched::default_schedule(w);
    auto j = sched::split(s, "C", 1, 64);
    auto i = sched::split(s, "C", 0, 4);
    if (!j || !i) {
      ADD_FAILURE() << "the splits failed";
      return s;
    }
    EXPECT_TRUE(sched::reorder(s, "C", {i->outer, j->outer, 2, i->inner, j->inner}));
    if (unroll_rows) {
      EXPECT_TRUE(sched::unroll(s, "C", i->inner));
    }
    EXPECT_TRUE(sched::vectorize(s, "C", j->inner));
    return s;
  };
  sched::Schedule s = tile(true);
  EXPECT_TRUE(kernel_matches_interpreter(s, 3));
  auto f = lower::lower(s, "mm");
  ASSERT_TRUE(f.has_value()) << f.error();
  std::string text = ir::to_string(f->kernel.body);
  EXPECT_FALSE(loop_stores_to(f->kernel.body, "k", "C")) << text;
  for (int row = 0; row < 4; ++row)
    EXPECT_NE(text.find("C.acc" + std::to_string(row) + " = allocate f32[64] in local"), std::string::npos) << text;
  // Without the unroll the rows are one statement whose index moves with i.i: C stays in memory.
  sched::Schedule rolled = tile(false);
  EXPECT_TRUE(kernel_matches_interpreter(rolled, 3));
  auto g = lower::lower(rolled, "mm");
  ASSERT_TRUE(g.has_value()) << g.error();
  EXPECT_TRUE(loop_stores_to(g->kernel.body, "k", "C"));
}

// An unrolled nest that would copy out more than 1024 statements stays a loop, its inner unrolled loops still
// unrolled: LLVM's compile time would outgrow the builder's timeout (lower.h, unroll_loops).
TEST(Codegen, AnUnrolledNestTooLargeToCompileStaysALoop) {
  for (int64_t rows : {4, 64}) { // 4 x 64 copies of C's two statements (512); 64 x 64 (8192)
    sched::Schedule s = sched::default_schedule(matmul(rows, 64, 8));
    ASSERT_TRUE(sched::unroll(s, "C", 0));
    ASSERT_TRUE(sched::unroll(s, "C", 1));
    EXPECT_TRUE(kernel_matches_interpreter(s, 3));
    auto f = lower::lower(s, "mm");
    ASSERT_TRUE(f.has_value()) << f.error();
    std::string text = ir::to_string(f->kernel.body);
    EXPECT_EQ(text.find("for (j,"), std::string::npos) << "rows " << rows;
    EXPECT_EQ(text.find("for (i,") != std::string::npos, rows == 64) << "rows " << rows;
  }
}

// The pass alone, on loops it must leave alone and on one it may promote in part.
TEST(Codegen, AccumulatorPromotionNeedsAnIndexTheLoopLeavesAloneAndNoOverlap) {
  using namespace ir;
  Expr x = Var::make(DataType::handle(), "X"), k = Var::make(DataType::index(), "k");
  auto vec = [](int64_t base) { return Ramp::make(Expr(base), Expr(int64_t(1)), 4); };
  auto load = [&](const Expr &index) { return Load::make(DataType::f32(), x, index); };
  auto loop = [&](Stmt body, ForKind kind = ForKind::Serial) {
    return For::make(k, Expr(int64_t(0)), Expr(int64_t(8)), kind, std::move(body));
  };
  auto promoted = [](const Stmt &s) {
    return to_string(lower::promote_accumulators(s)).find("X.acc") != std::string::npos;
  };
  // X[0..3] += X[2..5]: the read overlaps the element updated.
  EXPECT_FALSE(promoted(loop(Store::make(x, load(vec(0)) + load(vec(2)), vec(0)))));
  // X[k] += 1: a new element every iteration.
  EXPECT_FALSE(promoted(loop(Store::make(x, load(k) + make_const(DataType::f32(), 1), k))));
  // Stored only under a condition: stays a conditional store.
  EXPECT_FALSE(
      promoted(loop(IfThenElse::make(k < Expr(int64_t(4)), Store::make(x, load(vec(0)) + load(vec(0)), vec(0))))));
  // A parallel loop inside would share the local between threads.
  Expr t = Var::make(DataType::index(), "t");
  EXPECT_FALSE(promoted(loop(For::make(t, Expr(int64_t(0)), Expr(int64_t(2)), ForKind::Parallel,
                                       Store::make(x, load(vec(0)) + load(vec(0)), vec(0))))));
  // Under a condition the loop leaves alone (a tail guard of an outer loop): promoted, its copies in and out under
  // the same condition. Under one the loop moves (above, k < 4): not.
  Expr n = Var::make(DataType::index(), "n");
  std::string guarded = to_string(lower::promote_accumulators(
      loop(IfThenElse::make(n < Expr(int64_t(4)), Store::make(x, load(vec(0)) + load(vec(4)), vec(0))))));
  EXPECT_NE(guarded.find("X.acc0"), std::string::npos) << guarded;
  size_t ifs = 0;
  for (size_t at = guarded.find("if ((n < 4))"); at != std::string::npos; at = guarded.find("if ((n < 4))", at + 1))
    ++ifs;
  EXPECT_EQ(ifs, 3u) << "the copy in, the update, the copy out: " << guarded;
  // X[0..3] += X[4..7]: the read is apart from the update, which is promoted; the read stays a load of X.
  Stmt apart = lower::promote_accumulators(loop(Store::make(x, load(vec(0)) + load(vec(4)), vec(0))));
  std::string text = to_string(apart);
  EXPECT_NE(text.find("X.acc0[ramp(0, 1, 4)] = (X.acc0[ramp(0, 1, 4)] + X[ramp(4, 1, 4)])"), std::string::npos) << text;
  EXPECT_NE(text.find("X[ramp(0, 1, 4)] = X.acc0[ramp(0, 1, 4)]"), std::string::npos) << text;
}

// Stride 2: lanes two elements apart. The boundary tile (w.o = 0, reading the left padding) is a masked
// load of the span the lanes cover, the interior tile (partitioned off, no guard) a plain one; both pick
// every other element with a shuffle, and neither gathers.
TEST(Codegen, StridedReadsLoadTheirSpanAndShuffleInsteadOfGathering) {
  te::Workload w = tessel::testing::op_workload("depthwise_conv2d:N=1,C=3,H=6,W=32,R=3,S=3,stride=2,pad=1");
  sched::Schedule s = sched::default_schedule(w);
  ASSERT_TRUE(sched::compute_inline(s, "pad"));
  auto sp = sched::split(s, "conv", 3, 8); // 16 output columns: two tiles of 8 lanes
  ASSERT_TRUE(sp.has_value());
  ASSERT_TRUE(sched::reorder(s, "conv", {0, 1, 2, sp->outer, 4, 5, sp->inner})); // n c h w.o | ry rx | w.i
  ASSERT_TRUE(sched::vectorize(s, "conv", sp->inner));
  EXPECT_TRUE(kernel_matches_interpreter(s, 5));
  auto f = lower::lower(s, "dw");
  ASSERT_TRUE(f.has_value()) << f.error();
  auto llvm_ir = codegen::emit_llvm_ir(*f, Target::host(), /*optimized=*/false);
  ASSERT_TRUE(llvm_ir.has_value()) << llvm_ir.error();
  EXPECT_NE(llvm_ir->find("llvm.masked.load.v15f32"), std::string::npos) << "the boundary tile's masked span";
  EXPECT_NE(llvm_ir->find("load <15 x float>"), std::string::npos) << "the interior tile's plain span";
  EXPECT_NE(llvm_ir->find("shufflevector"), std::string::npos);
  EXPECT_EQ(llvm_ir->find("llvm.masked.gather"), std::string::npos);
}

TEST(Codegen, SplitWithTailIsGuarded) {
  te::Workload w = matmul(7, 37, 5);
  sched::Schedule s = sched::default_schedule(w);
  auto sp = sched::split(s, "C", 1, 8); // 37 = 4*8 + 5
  ASSERT_TRUE(sp.has_value());
  ASSERT_TRUE(sched::vectorize(s, "C", sp->inner));
  EXPECT_TRUE(kernel_matches_interpreter(s));
  auto sk = sched::split(s, "C", 2, 3); // reduction split with a tail: 5 = 3 + 2
  ASSERT_TRUE(sk.has_value());
  EXPECT_TRUE(kernel_matches_interpreter(s));
}

TEST(Codegen, ReductionOutsideSpatialLoops) {
  te::Workload w = matmul(9, 10, 11);
  sched::Schedule s = sched::default_schedule(w);
  ASSERT_TRUE(sched::reorder(s, "C", {2, 0, 1})); // k, i, j: init must be its own nest
  EXPECT_TRUE(kernel_matches_interpreter(s));
}

TEST(Codegen, FuseThenParallelAndUnroll) {
  te::Workload w = matmul(6, 10, 4);
  sched::Schedule s = sched::default_schedule(w);
  auto f = sched::fuse(s, "C", 0, 1);
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE(sched::parallel(s, "C", *f));
  ASSERT_TRUE(sched::unroll(s, "C", 2));
  EXPECT_TRUE(kernel_matches_interpreter(s, 11, 2));
}

// Dividing by a constant (layernorm's mean: the sum of X / 768) multiplies by its reciprocal: a vector
// division costs about ten multiplies, and layernorm ran at 0.6x oneDNN for it. Still matches the interpreter.
TEST(Codegen, DivisionByAConstantIsAMultiplyByItsReciprocal) {
  te::Tensor X = te::placeholder({4, 48}, ir::DataType::f32(), "X");
  te::Tensor Y = te::compute(
      {4, 48}, [&](te::Index i) { return X(i[0], i[1]) / Expr(768.0f); }, "Y");
  auto w = te::make_workload("", {X}, {Y});
  ASSERT_TRUE(w.has_value()) << w.error();
  sched::Schedule s = sched::default_schedule(*w);
  auto sp = sched::split(s, "Y", 1, 16);
  ASSERT_TRUE(sp.has_value()) << sp.error();
  ASSERT_TRUE(sched::vectorize(s, "Y", sp->inner));
  EXPECT_TRUE(kernel_matches_interpreter(s));
  auto f = lower::lower(s, "k");
  ASSERT_TRUE(f.has_value()) << f.error();
  auto llvm_ir = codegen::emit_llvm_ir(*f, Target::host());
  ASSERT_TRUE(llvm_ir.has_value()) << llvm_ir.error();
  EXPECT_EQ(llvm_ir->find("fdiv"), std::string::npos) << *llvm_ir;
  EXPECT_NE(llvm_ir->find("fmul"), std::string::npos) << *llvm_ir;
}

TEST(Codegen, InlinedElementwiseProducer) {
  te::Tensor X = te::placeholder({5, 9}, ir::DataType::f32(), "X");
  te::Tensor Y = te::compute(
      {5, 9}, [&](te::Index i) { return X(i[0], i[1]) * 2.0f + 1.0f; }, "Y");
  te::Tensor Z = te::compute(
      {5, 9}, [&](te::Index i) { return ir::max(Y(i[0], i[1]), Expr(0.0f)); }, "Z");
  auto w = te::make_workload("", {X}, {Z});
  ASSERT_TRUE(w.has_value()) << w.error();
  sched::Schedule s = sched::default_schedule(*w);
  EXPECT_TRUE(kernel_matches_interpreter(s));
  ASSERT_TRUE(sched::compute_inline(s, "Y"));
  EXPECT_TRUE(kernel_matches_interpreter(s));
  auto f = lower::lower(s, "k");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(ir::to_string(f->kernel.body).find("allocate"), std::string::npos) << "Y should no longer be stored";
}

TEST(Codegen, SixteenBitAndIntegerTypes) {
  for (ir::DataType dt : {ir::DataType::f16(), ir::DataType::bf16()}) {
    te::Tensor A = te::placeholder({8, 33}, dt, "A");
    te::Tensor B = te::compute(
        {8, 33}, [&](te::Index i) { return A(i[0], i[1]) * A(i[0], i[1]) + ir::cast(dt, Expr(0.5f)); }, "B");
    auto w = te::make_workload("", {A}, {B});
    ASSERT_TRUE(w.has_value()) << w.error();
    sched::Schedule s = sched::default_schedule(*w);
    EXPECT_TRUE(kernel_matches_interpreter(s)) << dt.str();
    auto sp = sched::split(s, "B", 1, 11);
    ASSERT_TRUE(sp.has_value());
    ASSERT_TRUE(sched::vectorize(s, "B", sp->inner));
    EXPECT_TRUE(kernel_matches_interpreter(s)) << dt.str() << " vectorized";
  }
  te::Tensor A = te::placeholder({6, 20}, ir::DataType::i8(), "A");
  te::Tensor B = te::placeholder({20, 16}, ir::DataType::i8(), "B");
  auto k = te::reduce_axis(20, "k");
  te::Tensor C = te::compute(
      {6, 16},
      [&](te::Index i) {
        return te::sum(ir::cast(ir::DataType::i32(), A(i[0], k)) * ir::cast(ir::DataType::i32(), B(k, i[1])), {k});
      },
      "C");
  auto w = te::make_workload("", {A, B}, {C});
  ASSERT_TRUE(w.has_value());
  EXPECT_TRUE(kernel_matches_interpreter(ikj_vectorized(*w, 16)));
}

TEST(Codegen, FloorDivisionAndModuloOfNegativeValues) {
  te::Tensor X = te::placeholder({16}, ir::DataType::i32(), "X");
  te::Tensor Y = te::compute(
      {16},
      [&](te::Index i) {
        Expr v = ir::cast(ir::DataType::i32(), i[0]) - 8;
        return v / 3 + v % 5 * 100 + v / 4 * 10000 + v % 8 * 1000000 + X(i[0]);
      },
      "Y");
  auto w = te::make_workload("", {X}, {Y});
  ASSERT_TRUE(w.has_value()) << w.error();
  EXPECT_TRUE(kernel_matches_interpreter(sched::default_schedule(*w)));
}

TEST(Codegen, GpuBoundLoopIsRefusedOnCpu) {
  te::Workload w = matmul(4, 4, 4);
  sched::Schedule s = sched::default_schedule(w);
  s.stages[0].loops[0].kind = ir::ForKind::GpuBlock;
  s.stages[0].loops[0].thread_tag = "blockIdx.x";
  auto f = lower::lower(s, "k");
  ASSERT_TRUE(f.has_value());
  auto k = codegen::jit_compile(*f, Target::host());
  ASSERT_FALSE(k.has_value());
  EXPECT_NE(k.error().find("GPU"), std::string::npos) << k.error();
}

TEST(Codegen, HostTargetUsesWideVectors) {
  Target t = Target::host();
  EXPECT_FALSE(t.cpu.empty());
  EXPECT_GE(t.vector_bits, 128);
  auto f = lower::lower(ikj_vectorized(matmul(16, 64, 8), 16), "mm");
  ASSERT_TRUE(f.has_value());
  auto llvm_ir = codegen::emit_llvm_ir(*f, t);
  ASSERT_TRUE(llvm_ir.has_value());
  EXPECT_NE(llvm_ir->find("\"prefer-vector-width\"=\"" + std::to_string(t.vector_bits) + "\""), std::string::npos);
}

namespace {

// Y = fn(X) compiled (fn: exp, erf, tanh), scalar and vectorized, on chosen inputs.
std::vector<float> compiled_unary(const std::string &fn, const std::vector<float> &x, bool vectorized) {
  auto w = te::parse_workload("input X: f32[" + std::to_string(x.size()) + "]\nY[i < " + std::to_string(x.size()) +
                              "] = " + fn + "(X[i])\n")
               .take();
  sched::Schedule s = sched::default_schedule(w);
  if (vectorized) {
    auto sp = sched::split_exact(s, "Y", 0, 16);
    EXPECT_TRUE(sp) << sp.error();
    EXPECT_TRUE(sched::vectorize(s, "Y", sp->inner));
  }
  auto program = codegen::jit_compile(lower::lower(s, fn).take(), Target::host());
  EXPECT_TRUE(program) << program.error();
  std::vector<float> y(x.size());
  std::vector<void *> in = {const_cast<float *>(x.data())}, out = {y.data()};
  program->run(in, out);
  return y;
}

} // namespace

TEST(Codegen, InlineExpIsWithinTwoUlpAndKeepsSpecialValues) {
  std::vector<float> x;
  for (int i = 0; i < 4000; ++i) x.push_back(-87.0f + 175.5f * float(i) / 3999.0f); // the normal range
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 0.5f, -0.5f, 1.f, -1.f, 10.f, -10.f, 88.7f, -87.3f}) x.push_back(v);
  float inf = std::numeric_limits<float>::infinity();
  std::vector<float> special = {inf, -inf, std::nanf(""), 100.f, -100.f, 89.f, -104.f, 1e30f};
  x.insert(x.end(), special.begin(), special.end());
  while (x.size() % 16) x.push_back(0.f);
  for (bool vectorized : {false, true}) {
    auto y = compiled_unary("exp", x, vectorized);
    for (size_t i = 0; i < x.size(); ++i) {
      float want = std::exp(x[i]);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(y[i])) << x[i];
      } else if (std::isinf(want) || want == 0.f) {
        EXPECT_EQ(y[i], want) << "exp(" << x[i] << ")";
      } else if (want < std::numeric_limits<float>::min()) {
        EXPECT_LT(std::fabs(y[i] - want), 1e-37f) << "exp(" << x[i] << ") (a denormal result may flush to 0)";
      } else {
        EXPECT_LE(std::fabs(y[i] - want) / want, 2.5e-7f) << "exp(" << x[i] << ") vectorized=" << vectorized;
      }
    }
  }
}

TEST(Codegen, InlineErfAndTanhAreWithinFiveTenMillionthsAndKeepSpecialValues) {
  std::vector<float> x;
  for (int i = 0; i < 4000; ++i) x.push_back(-9.0f + 18.0f * float(i) / 3999.0f);
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 3e-4f, -3e-4f, 5e-4f, 1e-3f, 3.99f, 4.01f, 7.9f, 8.f, 1e30f, -1e30f})
    x.push_back(v);
  float inf = std::numeric_limits<float>::infinity();
  x.insert(x.end(), {inf, -inf, std::nanf("")});
  while (x.size() % 16) x.push_back(0.f);
  for (std::string fn : {"erf", "tanh"}) {
    // Inline arithmetic, not a libm call per lane.
    auto w = te::parse_workload("input X: f32[16]\nY[i < 16] = " + fn + "(X[i])\n").take();
    auto llvm_ir = codegen::emit_llvm_ir(lower::lower(sched::default_schedule(w), fn).take(), Target::host());
    ASSERT_TRUE(llvm_ir) << llvm_ir.error();
    EXPECT_EQ(llvm_ir->find("@" + fn + "f"), std::string::npos) << *llvm_ir;
    for (bool vectorized : {false, true}) {
      auto y = compiled_unary(fn, x, vectorized);
      for (size_t i = 0; i < x.size(); ++i) {
        double want = fn == "erf" ? std::erf(double(x[i])) : std::tanh(double(x[i]));
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(y[i])) << fn << "(" << x[i] << ")";
        } else if (want == 0) {
          EXPECT_EQ(y[i], 0.f) << fn << "(" << x[i] << ")";
          EXPECT_EQ(std::signbit(y[i]), std::signbit(x[i])) << fn << "(" << x[i] << ")";
        } else {
          EXPECT_LE(std::fabs(double(y[i]) - want) / std::fabs(want), 5e-7)
              << fn << "(" << x[i] << ") vectorized=" << vectorized << ": " << y[i] << " want " << want;
        }
      }
    }
  }
}
