#include "ir/affine.h"

#include "ir/op.h"
#include "ir/simplify.h"
#include "ir/visitor.h"

namespace tessel::ir {

int64_t Affine::coefficient(const Expr &var) const {
  if (!var.defined()) return 0;
  auto it = coef.find(var.get());
  return it == coef.end() ? 0 : it->second;
}

std::optional<Affine> affine(const Expr &e, const std::vector<Expr> &vars) {
  auto uses_any = [&](const Expr &x) {
    for (auto &v : vars)
      if (uses_var(x, v)) return true;
    return false;
  };
  if (!uses_any(e)) return Affine{{}, e};
  if (auto *v = e.as<Var>()) return Affine{{{v, 1}}, Expr(int64_t(0))};
  auto *b = e.as<Binary>();
  if (!b) return std::nullopt;
  if (b->op == BinaryOp::Add || b->op == BinaryOp::Sub) {
    auto x = affine(b->a, vars), y = affine(b->b, vars);
    if (!x || !y) return std::nullopt;
    int64_t sign = b->op == BinaryOp::Add ? 1 : -1;
    for (auto &[v, c] : y->coef) x->coef[v] += sign * c;
    x->rest = b->op == BinaryOp::Add ? x->rest + y->rest : x->rest - y->rest;
    return x;
  }
  if (b->op == BinaryOp::Mul) {
    int64_t c;
    const Expr *var_side = nullptr;
    if (is_const_int(simplify(b->b), &c))
      var_side = &b->a;
    else if (is_const_int(simplify(b->a), &c))
      var_side = &b->b;
    if (!var_side) return std::nullopt;
    auto x = affine(*var_side, vars);
    if (!x) return std::nullopt;
    for (auto &[v, k] : x->coef) k *= c;
    x->rest = x->rest * Expr(c);
    return x;
  }
  return std::nullopt;
}

} // namespace tessel::ir
