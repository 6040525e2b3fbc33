// Bounds inference: value ranges and touched tensor regions.
#include "ir/bounds.h"
#include "ir/op.h"
#include "ir/printer.h"
#include "te/tensor.h"

#include <gtest/gtest.h>

using namespace tessel;
using namespace tessel::ir;

namespace {
Expr ivar(const char *n) { return Var::make(DataType::index(), n); }
Interval range(int64_t lo, int64_t hi) { return {Expr(lo), Expr(hi)}; }
std::string str(const Interval &i) {
  return "[" + (i.min.defined() ? to_string(i.min) : "-inf") + ", " + (i.max.defined() ? to_string(i.max) : "inf") +
         "]";
}
} // namespace

TEST(Bounds, ConstantRanges) {
  Expr i = ivar("i"), j = ivar("j");
  ConstScope scope{{i.get(), {0, 9}}, {j.get(), {-2, 3}}};
  auto r = constant_bounds(i * 4 + j - 1, scope);
  EXPECT_EQ(*r.min, -3);
  EXPECT_EQ(*r.max, 38);
  r = constant_bounds(i / 4, scope);
  EXPECT_EQ(*r.min, 0);
  EXPECT_EQ(*r.max, 2);
  r = constant_bounds(j % 4, scope);
  EXPECT_EQ(*r.min, 0);
  EXPECT_EQ(*r.max, 3);
  r = constant_bounds(min(max(j, Expr(int64_t(0))), Expr(int64_t(2))), scope);
  EXPECT_EQ(*r.min, 0);
  EXPECT_EQ(*r.max, 2);
  r = constant_bounds(i * j, scope);
  EXPECT_EQ(*r.min, -18);
  EXPECT_EQ(*r.max, 27);
  EXPECT_FALSE(constant_bounds(ivar("unknown") + 1, scope).min.has_value());
}

TEST(Bounds, SymbolicIntervals) {
  Expr o = ivar("o"), i = ivar("i");
  Scope scope{{i.get(), range(0, 7)}};
  Interval b = bounds_of(o * 8 + i, scope);
  EXPECT_EQ(str(b), "[(o * 8), ((o * 8) + 7)]");
  b = bounds_of(select(i < 3, i, o), scope);
  EXPECT_EQ(str(b), "[min(o, 0), max(o, 7)]");
}

TEST(Bounds, RegionTouchedByAStencil) {
  te::Tensor In = te::placeholder({10, 10}, DataType::f32(), "In");
  Expr y = ivar("y"), x = ivar("x"), r = ivar("r");
  Expr read = In(y + r, x * 2) + In(y, x * 2 + 1);
  Stmt loop = For::make(r, Expr(int64_t(0)), Expr(int64_t(3)), ForKind::Serial, Evaluate::make(read));
  Scope scope{{x.get(), range(0, 3)}};
  auto region = region_touched(loop, In, scope);
  ASSERT_EQ(region.size(), 2u);
  EXPECT_EQ(str(region[0]), "[y, (y + 2)]");
  EXPECT_EQ(str(region[1]), "[0, 7]");
  te::Tensor Other = te::placeholder({4}, DataType::f32(), "Other");
  EXPECT_TRUE(region_touched(loop, Other, scope).empty());
}

TEST(Bounds, FusedLoopIndicesStayExact) {
  Expr f = ivar("f"), i = ivar("i");
  Scope scope{{i.get(), range(0, 3)}};
  Interval b = bounds_of((f / 8) % 4 * 4 + i, scope);
  EXPECT_EQ(str(b), "[(((f / 8) % 4) * 4), ((((f / 8) % 4) * 4) + 3)]");
}
