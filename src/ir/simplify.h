// Arithmetic simplifier: constant folding, algebraic identities, and facts
// proven from loop bounds (e.g. dropping a tail guard that can never fail).
#pragma once

#include "ir/bounds.h"
#include "ir/ir.h"

namespace tessel::ir {

Expr simplify(const Expr &e, const ConstScope &scope = {});
// Also tracks the ranges of enclosing loop variables, removes loops of extent
// 0 or 1, and folds if/select on provable conditions.
Stmt simplify(const Stmt &s);
// True when `cond` holds for every value of the variables in `scope`.
bool can_prove(const Expr &cond, const ConstScope &scope = {});

} // namespace tessel::ir
