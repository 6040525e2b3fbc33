// The text form of workloads: parsing, printing, round trips, structural
// hashing, extent inference, error messages and robustness on garbage.
#include "te/tensor.h"
#include "te/text.h"
#include "te/workload.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using namespace tessel;
using namespace tessel::te;
using ir::DataType;

namespace {

Workload parse_ok(const std::string &text) {
  Expected<Workload> w = parse_workload(text);
  EXPECT_TRUE(w.has_value()) << (w ? "" : w.error()) << "\nin:\n" << text;
  if (!w) return Workload{};
  return w.take();
}

std::string parse_error(const std::string &text) {
  Expected<Workload> w = parse_workload(text);
  EXPECT_FALSE(w.has_value()) << "parsed unexpectedly:\n" << text;
  return w ? std::string() : w.error();
}

// text -> TE -> text reproduces the text, and the copy hashes the same.
void expect_round_trip(const std::string &text) {
  Workload w = parse_ok(text);
  std::string printed = to_text(w);
  EXPECT_EQ(printed, text);
  Workload again = parse_ok(printed);
  EXPECT_EQ(to_text(again), printed);
  EXPECT_EQ(to_text(again, true), to_text(w, true));
  EXPECT_EQ(again.structural_hash(), w.structural_hash());
}

// A workload (from anywhere) -> text -> TE gives the same text and hash.
void expect_reparses(const Workload &w) {
  std::string printed = to_text(w);
  Workload again = parse_ok(printed);
  EXPECT_EQ(to_text(again), printed);
  EXPECT_EQ(again.structural_hash(), w.structural_hash()) << printed;
}

const char *kMatmul = "input A: f32[64, 32]\n"
                      "input B: f32[32, 16] const\n"
                      "C[i < 64, j < 16] = sum(k < 32: A[i, k] * B[k, j])\n";

const char *kConv = "input X: f32[1, 3, 8, 8]\n"
                    "input W: f32[4, 3, 3, 3] const\n"
                    "Y[n < 1, f < 4, y < 8, x < 8] = sum(c < 3, r < 3, s < 3: select(y + r >= 1 && y + r <= 8 && "
                    "x + s >= 1 && x + s <= 8, X[n, c, min(max(y + r - 1, 0), 7), min(max(x + s - 1, 0), 7)], "
                    "0.0) * W[f, c, r, s])\n";

const char *kSoftmax = "input X: f32[4, 16]\n"
                       "M[i < 4] = max(j < 16: X[i, j])\n"
                       "E[i < 4, j < 16] = exp(X[i, j] - M[i])\n"
                       "S[i < 4] = sum(j < 16: E[i, j])\n"
                       "Y[i < 4, j < 16] = E[i, j] / S[i]\n";

const char *kLayerNorm = "input X: f32[8, 32]\n"
                         "input G: f32[32] const\n"
                         "input B: f32[32] const\n"
                         "S[i < 8] = sum(j < 32: X[i, j])\n"
                         "Mu[i < 8] = S[i] / 32.0\n"
                         "Q[i < 8] = sum(j < 32: X[i, j] * X[i, j])\n"
                         "Var[i < 8] = Q[i] / 32.0 - Mu[i] * Mu[i]\n"
                         "Y[i < 8, j < 32] = (X[i, j] - Mu[i]) * rsqrt(Var[i] + 1e-05) * G[j] + B[j]\n";

const char *kHalf = "input A: f16[16, 16]\n"
                    "input B: f16[16] const\n"
                    "C[i < 16, j < 16] = max(A[i, j] * f16(0.5) + B[j], f16(0.0))\n"
                    "D[i < 16] = sum(j < 16: f32(C[i, j]))\n";

const char *kInt8 = "input A: i8[32, 64]\n"
                    "input B: i8[64, 16] const\n"
                    "C[i < 32, j < 16] = sum(k < 64: i32(A[i, k]) * i32(B[k, j]))\n";

} // namespace

// ------------------------------------------------------------------ round trips

TEST(TextRoundTrip, Matmul) { expect_round_trip(kMatmul); }
TEST(TextRoundTrip, Conv2dWithPadding) { expect_round_trip(kConv); }
TEST(TextRoundTrip, Softmax) { expect_round_trip(kSoftmax); }
TEST(TextRoundTrip, LayerNorm) { expect_round_trip(kLayerNorm); }
TEST(TextRoundTrip, Half) { expect_round_trip(kHalf); }
TEST(TextRoundTrip, Int8Accumulate) { expect_round_trip(kInt8); }

TEST(TextRoundTrip, EveryOperatorAndLiteralForm) {
  // Precedence, parenthesization of right operands, negation, casts of
  // literals, typed constants and the implicit i64 index cast.
  expect_round_trip("input A: f32[64, 32]\n"
                    "input Q: i8[64, 32]\n"
                    "C[i < 64] = max(k < 32: A[i, k])\n"
                    "D[i < 64] = min(C[i], 0.0) + max(C[i], -1.5) + select(C[i] > 0.0, C[i], -C[i]) + "
                    "pow(C[i], 2.0) + exp(-C[i]) - -C[i] - (C[i] - C[i]) + -1.0 * C[i] - -(C[i] * 2.0)\n"
                    "E[i < 4] = -1 + 1 + -2147483648 + i32(f32(1.5))\n"
                    "F[i < 4] = f64(0.1) + f64(1e+300) + f64(-inf) + f64(nan) + f64(-0.0)\n"
                    "G[i < 4] = i64(5000000000) + i64(-9223372036854775808) + i\n"
                    "H[i < 4] = f32(true) + f32(i < 2 && !(i == 3) || i != 1) + nan + -inf + 1e-30 + 3e+38\n"
                    "I[i < 4] = f16(3.0) * f16(i32(3)) + f16(0.1) + f16(bf16(-1.0))\n"
                    "J[i < 3, j < 3] = f32(-i) + f32(!(i < j) == j > i) + f32(i % 2 * (j / 2) - i * j % 3)\n"
                    "K[i < 64, j < 32] = i32(Q[i, j % 32] + Q[min(i + 0, 63), 0] + Q[i, i8(3)]) + 2 * 3\n"
                    "L[i < 4] = select(i < 2, i64(1), i64(2)) * 2 + 3 + i64(5) * i64(7)\n"
                    "M[i < 64] = abs(C[i]) + floor(C[i]) + ceil(C[i]) + log(C[i]) + sqrt(C[i]) + rsqrt(C[i]) + "
                    "tanh(C[i]) + erf(C[i]) + abs(-3.0) + pow(2.0, C[i])\n");
}

TEST(TextRoundTrip, ScalarTensors) {
  expect_round_trip("input A: f32[]\n"
                    "input B: f32[4]\n"
                    "C[] = sum(k < 4: B[k] * A[])\n");
}

TEST(TextRoundTrip, InferredTextPrintsExplicitExtents) {
  Workload w = parse_ok("# matmul with inferred extents\n"
                        "\n"
                        "input A: f32[64, 32]   # activations\n"
                        "input B: f32[32, 16] const\r\n"
                        "C[i, j] = sum(k: A[i, k] * B[k, j])\n");
  EXPECT_EQ(to_text(w), kMatmul);
  EXPECT_EQ(to_text(w, true), "input t0: f32[64, 32]\n"
                              "input t1: f32[32, 16] const\n"
                              "t2[v0 < 64, v1 < 16] = sum(v2 < 32: t0[v0, v2] * t1[v2, v1])\n");
  ASSERT_EQ(w.inputs.size(), 2u);
  ASSERT_EQ(w.outputs.size(), 1u);
  EXPECT_EQ(w.outputs[0]->name, "C");
  EXPECT_TRUE(w.inputs[1]->is_constant);
  EXPECT_EQ(w.key, "te:" + w.hash_hex());
}

TEST(TextRoundTrip, OutputsAreTheUnreadTensors) {
  Workload w = parse_ok("input X: f32[8]\n"
                        "A[i] = X[i] * 2.0\n"
                        "B[i] = A[i] + 1.0\n"
                        "C[i] = A[i] - 1.0\n");
  ASSERT_EQ(w.outputs.size(), 2u);
  EXPECT_EQ(w.outputs[0]->name, "B");
  EXPECT_EQ(w.outputs[1]->name, "C");
  EXPECT_EQ(w.stages.size(), 3u);
}

// ------------------------------------------------------ C++ API -> text -> TE

namespace {

Workload build_or_die(Expected<Workload> w) {
  EXPECT_TRUE(w.has_value()) << (w ? "" : w.error());
  return w ? w.take() : Workload{};
}

// Casts through Cast::make directly (ir::cast reads its argument after moving
// it; see the report on src/ir/op.cpp).
Expr to(DataType t, Expr v) { return ir::Cast::make(t, std::move(v)); }

} // namespace

TEST(TextFromApi, Matmul) {
  Tensor A = placeholder({64, 32}, DataType::f32(), "A");
  Tensor B = placeholder({32, 16}, DataType::f32(), "B", /*is_constant=*/true);
  IterVar k = reduce_axis(32, "k");
  Tensor C = compute(
      {64, 16}, [&](Index i) { return sum(A(i[0], k) * B(k, i[1]), {k}); }, "C");
  Workload w = build_or_die(make_workload("", {A, B}, {C}));
  EXPECT_EQ(to_text(w), kMatmul);
  expect_reparses(w);
  EXPECT_EQ(parse_ok(kMatmul).structural_hash(), w.structural_hash());
}

TEST(TextFromApi, Conv2dWithPadding) {
  Tensor X = placeholder({1, 3, 8, 8}, DataType::f32(), "X");
  Tensor W = placeholder({4, 3, 3, 3}, DataType::f32(), "W", true);
  IterVar c = reduce_axis(3, "c"), r = reduce_axis(3, "r"), s = reduce_axis(3, "s");
  Tensor Y = compute({1, 4, 8, 8},
                     [&](Index ax) {
                       Expr yy = ax[2] + var(r), xx = ax[3] + var(s);
                       Expr in_bounds = yy >= 1 && yy <= 8 && xx >= 1 && xx <= 8;
                       Expr v = X(ax[0], c, ir::min(ir::max(yy - 1, 0), 7), ir::min(ir::max(xx - 1, 0), 7));
                       return sum(ir::select(in_bounds, v, 0.0) * W(ax[1], c, r, s), {c, r, s});
                     },
                     "Y", {"n", "f", "y", "x"});
  Workload w = build_or_die(make_workload("", {X, W}, {Y}));
  EXPECT_EQ(to_text(w), kConv);
  expect_reparses(w);
  EXPECT_EQ(parse_ok(kConv).structural_hash(), w.structural_hash());
}

TEST(TextFromApi, Softmax) {
  Tensor X = placeholder({4, 16}, DataType::f32(), "X");
  IterVar j = reduce_axis(16, "j");
  Tensor M = compute(
      {4}, [&](Index i) { return max_reduce(X(i[0], j), {j}); }, "M");
  Tensor E = compute(
      {4, 16}, [&](Index i) { return ir::exp(X(i[0], i[1]) - M(i[0])); }, "E");
  Tensor S = compute(
      {4}, [&](Index i) { return sum(E(i[0], j), {j}); }, "S"); // j reused: names are per statement
  Tensor Y = compute(
      {4, 16}, [&](Index i) { return E(i[0], i[1]) / S(i[0]); }, "Y");
  Workload w = build_or_die(make_workload("", {X}, {Y}));
  EXPECT_EQ(to_text(w), kSoftmax);
  expect_reparses(w);
  EXPECT_EQ(parse_ok(kSoftmax).structural_hash(), w.structural_hash());
}

TEST(TextFromApi, LayerNorm) {
  Tensor X = placeholder({8, 32}, DataType::f32(), "X");
  Tensor G = placeholder({32}, DataType::f32(), "G", true);
  Tensor B = placeholder({32}, DataType::f32(), "B", true);
  IterVar j = reduce_axis(32, "j");
  Tensor S = compute(
      {8}, [&](Index i) { return sum(X(i[0], j), {j}); }, "S");
  Tensor Mu = compute(
      {8}, [&](Index i) { return S(i[0]) / 32.0; }, "Mu");
  Tensor Q = compute(
      {8}, [&](Index i) { return sum(X(i[0], j) * X(i[0], j), {j}); }, "Q");
  Tensor V = compute(
      {8}, [&](Index i) { return Q(i[0]) / 32.0 - Mu(i[0]) * Mu(i[0]); }, "Var");
  Tensor Y = compute(
      {8, 32}, [&](Index i) { return (X(i[0], i[1]) - Mu(i[0])) * ir::rsqrt(V(i[0]) + 1e-5) * G(i[1]) + B(i[1]); },
      "Y");
  Workload w = build_or_die(make_workload("", {X, G, B}, {Y}));
  EXPECT_EQ(to_text(w), kLayerNorm);
  expect_reparses(w);
  EXPECT_EQ(parse_ok(kLayerNorm).structural_hash(), w.structural_hash());
}

TEST(TextFromApi, Half) {
  Tensor A = placeholder({16, 16}, DataType::f16(), "A");
  Tensor B = placeholder({16}, DataType::f16(), "B", true);
  Tensor C = compute(
      {16, 16}, [&](Index i) { return ir::max(A(i[0], i[1]) * 0.5 + B(i[1]), 0.0); }, "C");
  IterVar j = reduce_axis(16, "j");
  Tensor D = compute(
      {16}, [&](Index i) { return sum(to(DataType::f32(), C(i[0], j)), {j}); }, "D");
  Workload w = build_or_die(make_workload("", {A, B}, {D}));
  EXPECT_EQ(to_text(w), kHalf);
  expect_reparses(w);
  EXPECT_EQ(parse_ok(kHalf).structural_hash(), w.structural_hash());
}

TEST(TextFromApi, Int8Accumulate) {
  Tensor A = placeholder({32, 64}, DataType::i8(), "A");
  Tensor B = placeholder({64, 16}, DataType::i8(), "B", true);
  IterVar k = reduce_axis(64, "k");
  Tensor C = compute(
      {32, 16}, [&](Index i) { return sum(to(DataType::i32(), A(i[0], k)) * to(DataType::i32(), B(k, i[1])), {k}); },
      "C");
  Workload w = build_or_die(make_workload("", {A, B}, {C}));
  EXPECT_EQ(to_text(w), kInt8);
  expect_reparses(w);
  // The short form with inferred extents hashes the same.
  EXPECT_EQ(parse_ok("input A: i8[32, 64]\ninput B: i8[64, 16] const\n"
                     "C[i, j] = sum(k: i32(A[i, k]) * i32(B[k, j]))\n")
                .structural_hash(),
            w.structural_hash());
}

TEST(TextFromApi, OddNamesAndLiterals) {
  // Default axis names i, j, k clash with a reduction axis named k; a name that
  // is a literal keyword; constants of types the parser would not infer.
  Tensor A = placeholder({4, 4, 4, 8}, DataType::f32(), "A");
  IterVar k = reduce_axis(8, "k");
  Tensor C = compute(
      {4, 4, 4}, [&](Index i) { return sum(A(i[0], i[1], i[2], k), {k}); }, "C");
  Tensor D = compute({4},
                     [&](Index i) {
                       return C(i[0], Expr(int64_t(0)), ir::min(i[0], Expr(int64_t(3)))) +
                              to(DataType::f32(), Expr(int64_t(7))) +
                              to(DataType::f32(), to(DataType::f16(), Expr(3))) + to(DataType::f32(), Expr(2.5));
                     },
                     "D", {"inf"});
  Workload w = build_or_die(make_workload("", {A}, {D}));
  EXPECT_EQ(to_text(w), "input A: f32[4, 4, 4, 8]\n"
                        "C[i < 4, j < 4, k < 4] = sum(k_1 < 8: A[i, j, k, k_1])\n"
                        "D[v < 4] = C[v, 0, min(v, 3)] + f32(i64(7)) + f32(f16(i32(3))) + 2.5\n");
  expect_reparses(w);
}

// ------------------------------------------------------------------- hashing

TEST(TextHash, IndependentOfNames) {
  Workload a = parse_ok(kMatmul);
  Workload b = parse_ok("input Lhs: f32[64, 32]\n"
                        "input Rhs: f32[32, 16] const\n"
                        "Out[row, col] = sum(red: Lhs[row, red] * Rhs[red, col])\n");
  EXPECT_EQ(a.structural_hash(), b.structural_hash());
  EXPECT_EQ(a.hash_hex(), b.hash_hex());
  EXPECT_EQ(a.hash_hex().size(), 16u);
  EXPECT_EQ(to_text(a, true), to_text(b, true));
  EXPECT_NE(to_text(a), to_text(b));
}

TEST(TextHash, ChangesWithTheComputation) {
  uint64_t base = parse_ok(kMatmul).structural_hash();
  auto hash_of = [](const std::string &t) { return parse_ok(t).structural_hash(); };
  // A shape.
  EXPECT_NE(base, hash_of("input A: f32[64, 32]\ninput B: f32[32, 8] const\n"
                          "C[i, j] = sum(k: A[i, k] * B[k, j])\n"));
  // A dtype.
  EXPECT_NE(base, hash_of("input A: f16[64, 32]\ninput B: f16[32, 16] const\n"
                          "C[i, j] = sum(k: A[i, k] * B[k, j])\n"));
  // Constness of an input.
  EXPECT_NE(base, hash_of("input A: f32[64, 32]\ninput B: f32[32, 16]\n"
                          "C[i, j] = sum(k: A[i, k] * B[k, j])\n"));
  // The operator, and the order of operands.
  EXPECT_NE(base, hash_of("input A: f32[64, 32]\ninput B: f32[32, 16] const\n"
                          "C[i, j] = max(k: A[i, k] * B[k, j])\n"));
  EXPECT_NE(base, hash_of("input A: f32[64, 32]\ninput B: f32[32, 16] const\n"
                          "C[i, j] = sum(k: B[k, j] * A[i, k])\n"));
}

// ---------------------------------------------------------- extent inference

TEST(TextInference, FromDirectIndices) {
  Workload w = parse_ok("input A: f32[64, 32]\n"
                        "input B: f32[32]\n"
                        "C[i, j] = A[i, j] + B[j] + A[min(i + 1, 63), j]\n"
                        "D[i < 8, j] = sum(k < 4, l: C[i + k, l] * B[j])\n");
  EXPECT_EQ(to_text(w), "input A: f32[64, 32]\n"
                        "input B: f32[32]\n"
                        "C[i < 64, j < 32] = A[i, j] + B[j] + A[min(i + 1, 63), j]\n"
                        "D[i < 8, j < 32] = sum(k < 4, l < 32: C[i + k, l] * B[j])\n");
}

TEST(TextInference, ExplicitExtentMayCoverPartOfADimension) {
  Workload w = parse_ok("input A: f32[64]\nC[i < 16] = A[i * 4]\n");
  EXPECT_EQ(w.outputs[0]->shape, std::vector<int64_t>{16});
}

TEST(TextInference, LooksThroughIntegerCasts) {
  // i32(i) indexes A directly, so i's extent is inferred; the narrowing cast
  // then fails the bounds check (an i32 may hold values an i64 axis cannot).
  std::string e = parse_error("input A: f32[64]\nC[i] = A[i32(i)]\n");
  EXPECT_NE(e.find("<input>:2:8: error: index 0 of A (i32(i)) may range over"), std::string::npos) << e;
}

TEST(TextInference, ConflictAndMissingUse) {
  std::string e = parse_error("input A: f32[64, 32]\nC[i] = A[i, i]\n");
  EXPECT_EQ(e, "<input>:2:3: error: cannot infer the extent of axis i: it indexes dimension 0 of A (extent 64) "
               "and dimension 1 of A (extent 32); write i < N with the extent you mean");
  e = parse_error("input A: f32[64]\nC[i] = A[i + 1]\n");
  EXPECT_EQ(e, "<input>:2:3: error: cannot infer the extent of axis i: it is not used directly as an index of a "
               "tensor; write i < N");
  e = parse_error("input A: f32[64]\nC[i] = sum(k: A[i])\n");
  EXPECT_NE(e.find("<input>:2:12: error: cannot infer the extent of axis k"), std::string::npos) << e;
}

// ------------------------------------------------------------ error messages

namespace {

struct BadCase {
  const char *text;
  const char *position; // "LINE:COL"
  const char *message;  // a distinctive part of the message
};

const BadCase kBadCases[] = {
    {"input A: f32[64, 64]\nC[i, j] = A[i, j, i]\n", "2:17", "expected ']' after the indices of A, found ','"},
    {"input A: f32[64, 64]\nC[i, j] = A[i]\n", "2:14", "A has 2 dimensions but 1 index is given"},
    {"input A: f32[4]\nC[i] = A[i] + q[i]\n", "2:15", "unknown name 'q' (declare inputs with 'input q: f32[...]')"},
    {"input A: f32[4]\nC[i] = A[i] + q\n", "2:15", "unknown name 'q' (the axes here are i;"},
    {"input A: f31[64, 64]\n", "1:10", "unknown dtype 'f31' (expected one of f32 f16 bf16 f64 i8 i32 i64)"},
    {"input A: bool[4]\n", "1:10", "tensors cannot hold bool"},
    {"input A: f32[4]\nC[i] = A[i]\nC[i] = A[i] * 2.0\n", "3:1", "redefinition of tensor C (first defined at 2:1)"},
    {"input A: f32[4]\ninput A: f32[8]\n", "2:7", "redefinition of tensor A"},
    {"input A: f32[4]\nC[i] = (A[i] + 1.0\n", "2:19", "expected ')' to close the '(' at 2:8, found end of line"},
    {"input A: f32[4]\nC[i] = sum(k: A[k]\n", "2:19", "expected ')' to close the '(' at 2:11 of sum"},
    {"input A: f32[4]\nC[i] = A[i] + 1.0)\n", "2:18", "unmatched ')'"},
    {"input A: f32[4]\nC[i] = A[i] 2.0\n", "2:13", "unexpected '2.0' after the statement defining C"},
    {"input A: f32[4] cosnt\n", "1:17", "unexpected 'cosnt' after the declaration of A"},
    {"# nothing here\n\n", "3:1", "no statements: a workload needs at least one computed tensor"},
    {"", "1:1", "no statements"},
    {"input A: f32[0, 4]\n", "1:14", "the extent of dimension 0 of A is 0; extents must be positive"},
    {"input A: f32[4, -2]\n", "1:17", "the extent of dimension 1 of A is -2"},
    {"input A: f32[2.5]\n", "1:14", "must be an integer, found '2.5'"},
    {"input A: f32[4]\nC[i < 0] = A[i]\n", "2:7", "the extent of axis i is 0"},
    {"input A: f32[4]\nC[i < n] = A[i]\n", "2:7",
     "expected the extent of axis i (a positive integer literal), found 'n'"},
    {"input A: f32[4]\ninput B: f16[4]\nC[i] = A[i] + B[i]\n", "3:13", "type mismatch in '+': f32 vs f16"},
    {"input A: f32[4]\ninput B: f32[4]\nC[i] = A[i]\n", "2:7", "input B is never used"},
    {"input A: f32[4, 4]\nC[i] = A[i, 0] * sum(k: A[i, k])\n", "2:18", "a reduction must be the whole right-hand side"},
    {"input A: f32[4, 4]\nC[i] = sum(k: max(l: A[k, l]))\n", "2:15", "a reduction must be the whole right-hand side"},
    {"input A: f32[4]\nC[i < 5] = A[i]\n", "2:12",
     "index 0 of A (i) may range over [0, 4] but the dimension has extent 4"},
    {"input A: f32[4]\nC[i] = A[i] > 0.0\n", "2:8", "the body has type bool"},
    {"input A: f32[4]\nC[i] = A[i] @ 2.0\n", "2:13", "unexpected character '@'"},
    {"input A: f32[4]\nC[i] = A[i] & A[i]\n", "2:13", "unexpected character '&' (did you mean '&&'?)"},
    {"input A: f32[4]\nC[i] = A[i] * 2.0.5\n", "2:15", "malformed number '2.0.5'"},
    {"input A: f32[4]\nC[i] = A[i] +\n", "2:14", "expected an expression, found end of line"},
    {"input A: f32[4]\nC[i, i] = A[i]\n", "2:6", "axis i is declared twice (first at 2:3)"},
    {"input A: f32[4]\nC[i] = sum(i: A[i])\n", "2:12", "reduction axis i shadows axis i of C"},
    {"input A: f32[4]\nC = A[0]\n", "2:3", "expected '[' and the axes of C before '='"},
    {"input A: f32[4]\nC[i] = C[i]\n", "2:8", "C cannot read itself"},
    {"input A: f32[4]\nC[i] = foo(A[i])\n", "2:8", "unknown function 'foo'"},
    {"input A: f32[4]\nC[i] = select(A[i] > 0.0, A[i])\n", "2:8", "select takes 3 arguments"},
    {"input A: f32[4]\nC[i] = sum(A[i])\n", "2:12", "sum needs its reduction axes first"},
    {"input A: f32[4]\nC[i] = A[i] + 3000000000\n", "2:15",
     "integer 3000000000 does not fit in i32; write i64(3000000000)"},
    {"input A: f32[4]\nC[i] = A[i] + i8(300)\n", "2:18", "300 does not fit in i8"},
    {"input A: f32[4]\nC[i] = A[i] % 2.0\n", "2:13", "'%' needs integer operands"},
    {"input A: f32[4]\nC[i] = A[i] * exp(i)\n", "2:15", "exp needs a floating-point argument"},
    {"input A: f32[4]\nC[i] = A\n", "2:8", "tensor A must be indexed"},
    {"input A: f32[4]\nC[i] = A(i)\n", "2:8", "A is a tensor: read it with A[...]"},
    {"input A: f32[4]\nC[i] = A[i]]\n", "2:12", "unmatched ']'"},
    {"input: f32[4]\n", "1:6", "expected the name of the input after 'input'"},
    {"input A f32[4]\n", "1:9", "expected ':' after 'input A'"},
    {"input A: f32[4]\n12\n", "2:1", "expected a declaration 'input NAME: DTYPE[...]' or a statement"},
    {"input A: f32[4]\nC[inf] = A[0]\n", "2:3", "'inf' is a literal and cannot name an axis"},
    {"input A: f32[4]\nC[i] = A[1.5]\n", "2:10", "index 0 of A must be an integer, got f32"},
    {"input A: f32[4]\nC[i] = A[i] + 1e\n", "2:15", "malformed number '1e'"},
    {"input A: f32[4]\nC[i] = A[i] + 99999999999999999999\n", "2:15", "is too large"},
    {"input A: f32[4]\n\n   C[i] = A[i] + \xff\n", "3:18", "unexpected character '\\xff'"},
};

} // namespace

TEST(TextErrors, PositionAndMessage) {
  ASSERT_GE(std::size(kBadCases), 20u);
  for (const BadCase &c : kBadCases) {
    SCOPED_TRACE(c.text);
    std::string e = parse_error(c.text);
    std::string prefix = std::string("<input>:") + c.position + ": error: ";
    EXPECT_EQ(e.substr(0, prefix.size()), prefix) << e;
    EXPECT_NE(e.find(c.message), std::string::npos) << e;
  }
}

TEST(TextErrors, NameTheSource) {
  Expected<Workload> w = parse_workload("input A: f32[4]\nB[i] = A[i] +* 2.0\n", "models/bad.tsl");
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error(), "models/bad.tsl:2:14: error: expected an expression, found '*'");
}

TEST(TextErrors, HostileInputDoesNotExhaustTheStack) {
  std::string deep = "input A: f32[4]\nC[i] = " + std::string(1000, '(') + "A[i]" + std::string(1000, ')') + "\n";
  EXPECT_NE(parse_error(deep).find("nested too deeply"), std::string::npos);
  std::string negations = "input A: f32[4]\nC[i] = " + std::string(1000, '-') + "A[i]\n";
  EXPECT_NE(parse_error(negations).find("nested too deeply"), std::string::npos);
  std::string chain = "input A: f32[4]\nC[i] = A[i]";
  for (int n = 0; n < 5000; ++n) chain += " + A[i]";
  EXPECT_NE(parse_error(chain + "\n").find("<input>:2:1: error: statement is too long"), std::string::npos);
  // A long but reasonable statement is fine and prints back identically.
  std::string ok = "input A: f32[4]\nC[i < 4] = A[i]";
  for (int n = 0; n < 500; ++n) ok += " + A[i]";
  expect_round_trip(ok + "\n");
}

// ----------------------------------------------------------------- robustness

TEST(TextFuzz, MutationsNeverCrash) {
  const std::string base = std::string(kConv) + "Z[n, f, y, x] = max(Y[n, f, y, x], 0.0) * f32(i32(1))\n" +
                           "input Q: i8[4] const\nR[i] = i64(Q[i]) % 3 + -i\n";
  ASSERT_TRUE(parse_workload(base).has_value()) << parse_workload(base).error();
  const std::string alphabet = "AXYWZnfyxcrsijk0123456789.e+-*/%<>=!&|()[],:# \n\t_\"'\\f32i8sumaxinpselct";
  std::mt19937 rng(20240607);
  int parsed = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string t = base;
    int edits = 1 + int(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      size_t at = t.empty() ? 0 : rng() % (t.size() + 1);
      char c = rng() % 4 == 0 ? char(rng() % 256) : alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
      case 0:
        if (at < t.size()) t.erase(at, 1);
        break;
      case 1: t.insert(t.begin() + at, c); break;
      default:
        if (at < t.size()) t[at] = c;
      }
    }
    SCOPED_TRACE(t);
    Expected<Workload> w = parse_workload(t);
    if (!w) {
      EXPECT_EQ(w.error().rfind("<input>:", 0), 0u) << w.error();
      EXPECT_NE(w.error().find(": error: "), std::string::npos) << w.error();
      continue;
    }
    ++parsed;
    // Whatever parses prints to text that parses back to the same text.
    std::string printed = to_text(*w);
    Expected<Workload> again = parse_workload(printed);
    ASSERT_TRUE(again.has_value()) << again.error() << "\n" << printed;
    EXPECT_EQ(to_text(*again), printed);
    EXPECT_EQ(again->structural_hash(), w->structural_hash());
  }
  EXPECT_GT(parsed, 0);
}

TEST(TextFuzz, RandomBytes) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 500; ++iter) {
    std::string t(rng() % 200, '\0');
    for (char &c : t) c = char(rng() % 256);
    Expected<Workload> w = parse_workload(t);
    ASSERT_FALSE(w.has_value());
    EXPECT_EQ(w.error().rfind("<input>:", 0), 0u) << w.error();
  }
}
