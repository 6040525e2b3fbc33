// Loop IR nodes, typing rules, visitor/mutator and printer.
#include "ir/op.h"
#include "ir/printer.h"
#include "ir/visitor.h"
#include "support/error.h"
#include "support/float16.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace tessel;
using namespace tessel::ir;

namespace {
Expr ivar(const char *n) { return Var::make(DataType::index(), n); }
Expr fvar(const char *n) { return Var::make(DataType::f32(), n); }
} // namespace

TEST(IR, LiteralsAdoptTheOtherOperandsType) {
  Expr x = fvar("x");
  Expr e = x * 2 + 1;
  EXPECT_EQ(e.type(), DataType::f32());
  EXPECT_EQ(to_string(e), "((x * 2.0) + 1.0)");
  Expr i = ivar("i");
  EXPECT_EQ((i + 1).type(), DataType::index());
}

TEST(IR, MismatchedTypesAreRejectedWithAHint) {
  Expr x = fvar("x");
  Expr h = Var::make(DataType::f16(), "h");
  try {
    (void)(x + h);
    FAIL() << "expected a type error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("f32 vs f16"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cast"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)(x % x), Error);        // modulo on floats
  EXPECT_THROW((void)exp(ivar("i")), Error); // exp of an integer
  EXPECT_THROW((void)(x && x), Error);       // logical op on floats
  EXPECT_THROW((void)Ramp::make(ivar("i"), ivar("j"), 1), Error);
}

TEST(IR, ComparisonsAreBool) {
  Expr c = fvar("x") < 1.0f;
  EXPECT_TRUE(c.type().is_bool());
  EXPECT_EQ(select(c, fvar("x"), Expr(0.0f)).type(), DataType::f32());
}

TEST(IR, MutatorSharesUnchangedSubtrees) {
  Expr x = fvar("x"), y = fvar("y");
  Expr e = (x + y) * (x - y);
  Expr same = substitute(e, {{ivar("unused"), Expr(1.0f)}});
  EXPECT_TRUE(same.same_as(e));
  Expr changed = substitute(e, {{x, Expr(3.0f)}});
  EXPECT_FALSE(changed.same_as(e));
  EXPECT_EQ(to_string(changed), "((3.0 + y) * (3.0 - y))");
  EXPECT_TRUE(uses_var(e, x));
  EXPECT_FALSE(uses_var(changed, x));
}

TEST(IR, VariablesAreComparedByIdentityNotName) {
  Expr a = ivar("i"), b = ivar("i");
  Expr e = a + b;
  Expr s = substitute(e, {{a, Expr(int64_t(5))}});
  EXPECT_EQ(to_string(s), "(5 + i)");
}

TEST(IR, StatementPrinter) {
  Expr i = ivar("i");
  Expr buf = Var::make(DataType::handle(), "C");
  Stmt body = Store::make(buf, Expr(1.0f), i);
  Stmt loop = For::make(i, Expr(int64_t(0)), Expr(int64_t(4)), ForKind::Parallel, body);
  EXPECT_EQ(to_string(loop), "parallel (i, 0, 4) {\n  C[i] = 1.0\n}\n");
  Stmt blk = Block::make({loop, Block::make({}), loop});
  ASSERT_TRUE(blk.as<Block>());
  EXPECT_EQ(blk.as<Block>()->stmts.size(), 2u);
}

TEST(IR, ConstantsWrapToTheirType) {
  int64_t v;
  ASSERT_TRUE(is_const_int(IntImm::make(DataType::i8(), 200), &v));
  EXPECT_EQ(v, -56);
  ASSERT_TRUE(is_const_int(IntImm::make(DataType::i32(), int64_t(1) << 32), &v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(std::isinf(min_value(DataType::f32()).as<FloatImm>()->value));
}

TEST(IR, FloatPrintingRoundTrips) {
  for (double v : {0.1, 1.0, 1e-5, 3.4028234663852886e38, -2.5}) {
    std::string s = format_float(v, DataType::f32());
    EXPECT_EQ(float(std::stod(s)), float(v)) << s;
  }
}

TEST(Float16, RoundToNearestEven) {
  EXPECT_EQ(f16_to_float(float_to_f16(1.0f)), 1.0f);
  EXPECT_EQ(f16_to_float(float_to_f16(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_float(float_to_f16(65520.0f))));
  EXPECT_EQ(f16_to_float(float_to_f16(1.0f + 1.0f / 2048)), 1.0f);                       // tie -> even
  EXPECT_EQ(f16_to_float(float_to_f16(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);         // tie -> even (up)
  EXPECT_EQ(f16_to_float(float_to_f16(5.960464477539063e-08f)), 5.960464477539063e-08f); // smallest subnormal
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.00390625f)), 1.0f); // tie -> even
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
}
