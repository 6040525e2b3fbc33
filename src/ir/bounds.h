// Bounds inference: which values an expression can take, and which region of
// a tensor a piece of code reads, given ranges for the loop variables around it.
#pragma once

#include "ir/ir.h"

#include <optional>
#include <unordered_map>
#include <vector>

namespace tessel::ir {

// Inclusive interval [min, max]; an undefined end is unbounded.
struct Interval {
  Expr min, max;
  static Interval point(const Expr &e) { return {e, e}; }
  static Interval everything() { return {}; }
  bool is_bounded() const { return min.defined() && max.defined(); }
};

// Ranges of the variables in scope, keyed by the Var node.
using Scope = std::unordered_map<const ExprNode *, Interval>;

// Inclusive integer range; nullopt ends are unbounded.
struct ConstRange {
  std::optional<int64_t> min, max;
};
using ConstScope = std::unordered_map<const ExprNode *, ConstRange>;

// Symbolic bounds of `e` with variables in `scope` ranging over their
// intervals (other variables stay symbolic). Results are simplified.
Interval bounds_of(const Expr &e, const Scope &scope);

// Constant bounds of an integer expression, when they can be proven.
ConstRange constant_bounds(const Expr &e, const ConstScope &scope);

// The region of `tensor` that `s` reads or writes (per dimension, inclusive),
// with loops inside `s` ranging over their extents and variables in `scope`
// over theirs. Returns an empty vector when `s` never touches the tensor.
std::vector<Interval> region_touched(const Stmt &s, const Tensor &tensor, const Scope &scope);
std::vector<Interval> region_touched(const Expr &e, const Tensor &tensor, const Scope &scope);

} // namespace tessel::ir
