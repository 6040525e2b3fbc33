// Affine forms: an index as sum(coef[v] * v) + rest over a set of variables,
// with `rest` free of them. Tensorization reads strides off these.
#pragma once

#include "ir/ir.h"

#include <map>
#include <optional>
#include <vector>

namespace tessel::ir {

struct Affine {
  std::map<const ExprNode *, int64_t> coef; // variables of `vars` with a non-zero coefficient
  Expr rest = Expr(int64_t(0));
  int64_t coefficient(const Expr &var) const; // 0 when absent (or var undefined)
};

// nullopt when `e` is not affine in `vars` (e.g. a variable under / or %).
std::optional<Affine> affine(const Expr &e, const std::vector<Expr> &vars);

} // namespace tessel::ir
