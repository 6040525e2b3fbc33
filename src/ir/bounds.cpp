#include "ir/bounds.h"

#include "ir/op.h"
#include "ir/simplify.h"
#include "ir/visitor.h"

#include <algorithm>
#include <limits>

namespace tessel::ir {

// ------------------------------------------------------------ constant ranges
namespace {

using I128 = __int128;
constexpr I128 kMax = std::numeric_limits<int64_t>::max();
constexpr I128 kMin = std::numeric_limits<int64_t>::min();

std::optional<int64_t> fit(std::optional<I128> v) {
  if (!v || *v > kMax || *v < kMin) return std::nullopt;
  return int64_t(*v);
}
int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

ConstRange type_range(DataType t) {
  if (!t.is_integer() || t.bits >= 64) return {};
  if (t.is_uint()) return {0, (int64_t(1) << t.bits) - 1};
  return {-(int64_t(1) << (t.bits - 1)), (int64_t(1) << (t.bits - 1)) - 1};
}

ConstRange const_range(const Expr &e, const ConstScope &scope) {
  if (int64_t v; is_const_int(e, &v)) return {v, v};
  if (auto *v = e.as<Var>()) {
    auto it = scope.find(v);
    return it == scope.end() ? type_range(e.type()) : it->second;
  }
  if (auto *c = e.as<Cast>()) {
    if (c->value.type().is_integer() && e.type().is_integer() && c->value.type().bits <= e.type().bits)
      return const_range(c->value, scope);
    return type_range(e.type());
  }
  if (auto *r = e.as<Ramp>()) {
    ConstRange b = const_range(r->base, scope), s = const_range(r->stride, scope);
    ConstRange last = const_range(r->base + r->stride * int64_t(r->lanes - 1), scope);
    (void)s;
    ConstRange out;
    if (b.min && last.min) out.min = std::min(*b.min, *last.min);
    if (b.max && last.max) out.max = std::max(*b.max, *last.max);
    return out;
  }
  if (auto *b = e.as<Broadcast>()) return const_range(b->value, scope);
  if (auto *s = e.as<Select>()) {
    ConstRange t = const_range(s->true_value, scope), f = const_range(s->false_value, scope);
    ConstRange out;
    if (t.min && f.min) out.min = std::min(*t.min, *f.min);
    if (t.max && f.max) out.max = std::max(*t.max, *f.max);
    return out;
  }
  auto *op = e.as<Binary>();
  if (!op || !e.type().is_integer()) return type_range(e.type());
  ConstRange a = const_range(op->a, scope), b = const_range(op->b, scope);
  auto opt = [](std::optional<int64_t> x) { return x ? std::optional<I128>(*x) : std::nullopt; };
  switch (op->op) {
  case BinaryOp::Add:
    return {fit(a.min && b.min ? std::optional<I128>(I128(*a.min) + *b.min) : std::nullopt),
            fit(a.max && b.max ? std::optional<I128>(I128(*a.max) + *b.max) : std::nullopt)};
  case BinaryOp::Sub:
    return {fit(a.min && b.max ? std::optional<I128>(I128(*a.min) - *b.max) : std::nullopt),
            fit(a.max && b.min ? std::optional<I128>(I128(*a.max) - *b.min) : std::nullopt)};
  case BinaryOp::Mul: {
    if (!(a.min && a.max && b.min && b.max)) {
      // nonnegative times a constant keeps one end
      if (b.min && b.max && *b.min == *b.max && *b.min >= 0 && a.min)
        return {fit(opt(a.min).value() * *b.min), a.max ? fit(I128(*a.max) * *b.min) : std::nullopt};
      return {};
    }
    I128 c[4] = {I128(*a.min) * *b.min, I128(*a.min) * *b.max, I128(*a.max) * *b.min, I128(*a.max) * *b.max};
    return {fit(*std::min_element(c, c + 4)), fit(*std::max_element(c, c + 4))};
  }
  case BinaryOp::Div: {
    if (!(b.min && b.max && *b.min == *b.max && *b.min > 0)) return {};
    int64_t d = *b.min;
    return {a.min ? std::optional<int64_t>(floor_div(*a.min, d)) : std::nullopt,
            a.max ? std::optional<int64_t>(floor_div(*a.max, d)) : std::nullopt};
  }
  case BinaryOp::Mod: {
    if (!(b.min && b.max && *b.min == *b.max && *b.min > 0)) return {};
    int64_t d = *b.min;
    if (a.min && a.max && *a.min >= 0 && *a.max < d) return a;
    return {0, d - 1};
  }
  case BinaryOp::Min:
    return {a.min && b.min ? std::optional<int64_t>(std::min(*a.min, *b.min)) : std::nullopt,
            a.max ? (b.max ? std::optional<int64_t>(std::min(*a.max, *b.max)) : a.max) : b.max};
  case BinaryOp::Max:
    return {a.min ? (b.min ? std::optional<int64_t>(std::max(*a.min, *b.min)) : a.min) : b.min,
            a.max && b.max ? std::optional<int64_t>(std::max(*a.max, *b.max)) : std::nullopt};
  default: return {};
  }
}

} // namespace

ConstRange constant_bounds(const Expr &e, const ConstScope &scope) { return const_range(e, scope); }

// ------------------------------------------------------------ symbolic bounds
namespace {

Expr add(const Expr &a, const Expr &b) { return a.defined() && b.defined() ? a + b : Expr(); }
Expr sub(const Expr &a, const Expr &b) { return a.defined() && b.defined() ? a - b : Expr(); }
Expr emin(const Expr &a, const Expr &b) { return a.defined() && b.defined() ? min(a, b) : Expr(); }
Expr emax(const Expr &a, const Expr &b) { return a.defined() && b.defined() ? max(a, b) : Expr(); }

Interval sym(const Expr &e, const Scope &scope) {
  if (e.as<IntImm>() || e.as<FloatImm>()) return Interval::point(e);
  if (auto *v = e.as<Var>()) {
    auto it = scope.find(v);
    return it == scope.end() ? Interval::point(e) : it->second;
  }
  if (auto *c = e.as<Cast>()) {
    Interval i = sym(c->value, scope);
    if (!(c->value.type().is_integer() && e.type().is_integer() && c->value.type().bits <= e.type().bits))
      return Interval::everything();
    return {i.min.defined() ? cast(e.type(), i.min) : Expr(), i.max.defined() ? cast(e.type(), i.max) : Expr()};
  }
  if (auto *b = e.as<Broadcast>()) return sym(b->value, scope);
  if (auto *r = e.as<Ramp>()) {
    Interval first = sym(r->base, scope);
    Interval last = sym(r->base + r->stride * int64_t(r->lanes - 1), scope);
    return {emin(first.min, last.min), emax(first.max, last.max)};
  }
  if (auto *s = e.as<Select>()) {
    Interval t = sym(s->true_value, scope), f = sym(s->false_value, scope);
    return {emin(t.min, f.min), emax(t.max, f.max)};
  }
  if (auto *l = e.as<Let>()) {
    Scope inner = scope;
    inner[l->var.get()] = sym(l->value, scope);
    return sym(l->body, inner);
  }
  auto *op = e.as<Binary>();
  if (!op || !e.type().is_integer()) return Interval::everything();
  Interval a = sym(op->a, scope), b = sym(op->b, scope);
  // Operands that are single values (loop variables outside the region of
  // interest, say) give a single value: keeps fused-loop indices exact.
  if (a.is_bounded() && b.is_bounded() && equal(a.min, a.max) && equal(b.min, b.max))
    return Interval::point(Binary::make(op->op, a.min, b.min));
  int64_t c;
  switch (op->op) {
  case BinaryOp::Add: return {add(a.min, b.min), add(a.max, b.max)};
  case BinaryOp::Sub: return {sub(a.min, b.max), sub(a.max, b.min)};
  case BinaryOp::Mul:
    if (is_const_int(simplify(op->b), &c)) {
      if (c >= 0) return {a.min.defined() ? a.min * op->b : Expr(), a.max.defined() ? a.max * op->b : Expr()};
      return {a.max.defined() ? a.max * op->b : Expr(), a.min.defined() ? a.min * op->b : Expr()};
    }
    if (is_const_int(simplify(op->a), &c)) return sym(op->b * op->a, scope);
    if (a.is_bounded() && b.is_bounded()) {
      Expr p[4] = {a.min * b.min, a.min * b.max, a.max * b.min, a.max * b.max};
      return {min(min(p[0], p[1]), min(p[2], p[3])), max(max(p[0], p[1]), max(p[2], p[3]))};
    }
    return Interval::everything();
  case BinaryOp::Div:
    if (is_const_int(simplify(op->b), &c) && c > 0)
      return {a.min.defined() ? a.min / op->b : Expr(), a.max.defined() ? a.max / op->b : Expr()};
    return Interval::everything();
  case BinaryOp::Mod:
    if (is_const_int(simplify(op->b), &c) && c > 0) {
      ConstRange r = const_range(simplify(a.min.defined() ? a.min : Expr(int64_t(-1))), {});
      ConstRange s = const_range(simplify(a.max.defined() ? a.max : Expr(c)), {});
      if (r.min && s.max && *r.min >= 0 && *s.max < c) return a;
      return {make_zero(e.type()), make_const(e.type(), double(c - 1))};
    }
    return Interval::everything();
  case BinaryOp::Min:
    return {emin(a.min, b.min), a.max.defined() ? (b.max.defined() ? min(a.max, b.max) : a.max) : b.max};
  case BinaryOp::Max:
    return {a.min.defined() ? (b.min.defined() ? max(a.min, b.min) : a.min) : b.min, emax(a.max, b.max)};
  default: return Interval::everything();
  }
}

Interval simplified(Interval i) {
  if (i.min.defined()) i.min = simplify(i.min);
  if (i.max.defined()) i.max = simplify(i.max);
  return i;
}

Interval hull(const Interval &a, const Interval &b) { return {emin(a.min, b.min), emax(a.max, b.max)}; }

class RegionCollector : public IRVisitor {
public:
  RegionCollector(const Tensor &t, Scope s) : tensor(t), scope(std::move(s)) {}
  using IRVisitor::visit;

  void touch(const std::vector<Expr> &indices) {
    std::vector<Interval> r;
    for (auto &i : indices) r.push_back(sym(i, scope));
    if (region.empty()) {
      region = r;
      return;
    }
    for (size_t d = 0; d < r.size(); ++d) region[d] = hull(region[d], r[d]);
  }
  void visit(const TensorRead *op) override {
    IRVisitor::visit(op);
    if (op->tensor == tensor) touch(op->indices);
  }
  void visit(const TensorWrite *op) override {
    IRVisitor::visit(op);
    if (op->tensor == tensor) touch(op->indices);
  }
  void visit(const Reduce *op) override {
    for (auto &ax : op->axes) scope[ax.var.get()] = {make_zero(DataType::index()), Expr(ax.extent - 1)};
    IRVisitor::visit(op);
  }
  void visit(const For *op) override {
    Interval lo = sym(op->min, scope), hi = sym(op->min + op->extent - 1, scope);
    scope[op->var.get()] = {lo.min, hi.max};
    op->body.accept(this);
  }
  void visit(const LetStmt *op) override {
    scope[op->var.get()] = sym(op->value, scope);
    op->body.accept(this);
  }
  void visit(const Let *op) override {
    scope[op->var.get()] = sym(op->value, scope);
    op->body.accept(this);
  }

  const Tensor &tensor;
  Scope scope;
  std::vector<Interval> region;
};

} // namespace

Interval bounds_of(const Expr &e, const Scope &scope) { return simplified(sym(e, scope)); }

std::vector<Interval> region_touched(const Stmt &s, const Tensor &tensor, const Scope &scope) {
  RegionCollector c(tensor, scope);
  s.accept(&c);
  for (auto &r : c.region) r = simplified(r);
  return c.region;
}
std::vector<Interval> region_touched(const Expr &e, const Tensor &tensor, const Scope &scope) {
  RegionCollector c(tensor, scope);
  e.accept(&c);
  for (auto &r : c.region) r = simplified(r);
  return c.region;
}

} // namespace tessel::ir
