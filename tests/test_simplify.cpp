// The arithmetic simplifier.
#include "ir/op.h"
#include "ir/printer.h"
#include "ir/simplify.h"

#include <gtest/gtest.h>

using namespace tessel::ir;

namespace {
Expr ivar(const char *n) { return Var::make(DataType::index(), n); }
std::string s(const Expr &e, const ConstScope &scope = {}) { return to_string(simplify(e, scope)); }
} // namespace

TEST(Simplify, ConstantFolding) {
  EXPECT_EQ(s(Expr(int64_t(3)) * 4 + 5), "17");
  EXPECT_EQ(s(Expr(2.0f) * 4.0f), "8.0");
  EXPECT_EQ(s(Expr(int64_t(-7)) / 2), "-4"); // floor division
  EXPECT_EQ(s(Expr(int64_t(-7)) % 2), "1");  // floor modulo
  EXPECT_EQ(s(min(Expr(int64_t(3)), Expr(int64_t(9)))), "3");
  EXPECT_EQ(s(Expr(int64_t(3)) < Expr(int64_t(4))), "1");
}

TEST(Simplify, Identities) {
  Expr x = ivar("x");
  EXPECT_EQ(s(x + 0), "x");
  EXPECT_EQ(s(x * 1), "x");
  EXPECT_EQ(s(x * 0), "0");
  EXPECT_EQ(s(x - x), "0");
  EXPECT_EQ(s(x / 1), "x");
  EXPECT_EQ(s(x % 1), "0");
  EXPECT_EQ(s(1 + x), "(x + 1)");
}

TEST(Simplify, ConstantsReassociate) {
  Expr x = ivar("x"), y = ivar("y");
  EXPECT_EQ(s((x + 3) + 4), "(x + 7)");
  EXPECT_EQ(s((x + 3) - 5), "(x + -2)");
  EXPECT_EQ(s((x * 3) * 4), "(x * 12)");
  EXPECT_EQ(s((x + 2) * 3), "((x * 3) + 6)");
  EXPECT_EQ(s(x + (y + 1)), "((x + y) + 1)");
}

TEST(Simplify, DivisionAndModuloOfSplitIndices) {
  Expr o = ivar("o"), i = ivar("i");
  ConstScope scope{{i.get(), {0, 7}}, {o.get(), {0, 15}}};
  EXPECT_EQ(s((o * 8 + i) / 8, scope), "o");
  EXPECT_EQ(s((o * 8 + i) % 8, scope), "i");
  EXPECT_EQ(s((o * 16) / 8, scope), "(o * 2)");
  EXPECT_EQ(s(i / 8, scope), "0");
  EXPECT_EQ(s(i % 8, scope), "i");
  // Without the range of i nothing is assumed.
  EXPECT_EQ(s((o * 8 + i) / 8), "(o + (i / 8))");
}

// A fused loop f over rows of 56 indexes (f / 56) * 56 + f % 56 into a row-major buffer: that is f.
TEST(Simplify, FusedRowsIndexDensely) {
  Expr f = ivar("f"), c = ivar("c"), o = ivar("o"), i = ivar("i");
  EXPECT_EQ(s((f / 56) * 56 + f % 56), "f");
  EXPECT_EQ(s(c * 3136 + (f / 56) * 56 + f % 56), "(f + (c * 3136))");
  EXPECT_EQ(s(f % 56 + c * 3136 + (f / 56) * 56), "(f + (c * 3136))");
  Expr e = o * 16 + i; // a split of the fused loop
  EXPECT_EQ(s((e / 56) * 56 + e % 56 + 7), "(((o * 16) + i) + 7)");
  // Different divisors, or different dividends, are left alone.
  EXPECT_EQ(s((f / 56) * 28 + f % 56), "(((f / 56) * 28) + (f % 56))");
  EXPECT_EQ(s((f / 56) * 56 + c % 56), "(((f / 56) * 56) + (c % 56))");
}

TEST(Simplify, ProvesComparisonsFromRanges) {
  Expr o = ivar("o"), i = ivar("i");
  ConstScope scope{{i.get(), {0, 7}}, {o.get(), {0, 3}}};
  EXPECT_EQ(s(o * 8 + i < 32, scope), "1"); // 4 x 8 divides 32: the tail guard goes
  EXPECT_EQ(s(o * 8 + i < 30, scope), "(((o * 8) + i) < 30)");
  EXPECT_FALSE(can_prove(o * 8 + i < 30, scope));
  EXPECT_TRUE(can_prove(o * 8 + i >= 0, scope));
  EXPECT_EQ(s(min(i, Expr(int64_t(10))), scope), "i");
  EXPECT_EQ(s(max(i, Expr(int64_t(10))), scope), "10");
}

TEST(Simplify, StatementsDropDeadLoopsAndProvenGuards) {
  Expr i = ivar("i"), j = ivar("j");
  Expr buf = Var::make(DataType::handle(), "B");
  Stmt guarded = IfThenElse::make(i < 8, Store::make(buf, Expr(1.0f), i));
  Stmt loop = For::make(i, Expr(int64_t(0)), Expr(int64_t(8)), ForKind::Serial, guarded);
  EXPECT_EQ(to_string(simplify(loop)), "for (i, 0, 8) {\n  B[i] = 1.0\n}\n");
  Stmt one = For::make(j, Expr(int64_t(3)), Expr(int64_t(1)), ForKind::Serial, Store::make(buf, Expr(2.0f), j));
  EXPECT_EQ(to_string(simplify(one)), "B[3] = 2.0\n");
  Stmt none = For::make(j, Expr(int64_t(0)), Expr(int64_t(0)), ForKind::Serial, Store::make(buf, Expr(2.0f), j));
  EXPECT_EQ(to_string(simplify(none)), "");
}

TEST(Simplify, SelectOnKnownCondition) {
  Expr i = ivar("i");
  ConstScope scope{{i.get(), {2, 5}}};
  Expr e = select(i >= 1, Expr(1.0f), Expr(0.0f));
  EXPECT_EQ(s(e, scope), "1.0");
}

TEST(Simplify, StructurallyEqualTermsCancel) {
  Expr o = ivar("o"), i = ivar("i");
  EXPECT_EQ(s((o * 8 + i) - o * 8), "i");
  EXPECT_EQ(s((o * 8 + 7) - o * 8 + 1), "8");
  EXPECT_EQ(s(min(o * 2, o * 2)), "(o * 2)");
  EXPECT_TRUE(equal(o * 8 + i, o * 8 + i));
  EXPECT_FALSE(equal(o * 8 + i, o * 8 + o));
}
