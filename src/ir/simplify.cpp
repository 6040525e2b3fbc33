#include "ir/simplify.h"

#include "ir/op.h"
#include "ir/visitor.h"

#include <algorithm>
#include <cmath>

namespace tessel::ir {
namespace {

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

bool const_float(const Expr &e, double *v) {
  if (auto *f = e.as<FloatImm>()) return *v = f->value, true;
  if (auto *b = e.as<Broadcast>()) return const_float(b->value, v);
  return false;
}

// Matches x * c (c constant); returns x and c.
bool match_mul_const(const Expr &e, Expr *x, int64_t *c) {
  auto *m = e.as<Binary>();
  if (!m || m->op != BinaryOp::Mul) return false;
  if (!is_const_int(m->b, c)) return false;
  *x = m->a;
  return true;
}

// The terms of a chain of additions.
void add_terms(const Expr &e, std::vector<Expr> &out) {
  if (auto *b = e.as<Binary>(); b && b->op == BinaryOp::Add) {
    add_terms(b->a, out);
    add_terms(b->b, out);
    return;
  }
  out.push_back(e);
}

// The sum a + b, when it holds (x / c) * c and x % c (floor semantics, c > 0), as x plus the other terms;
// else undefined. Fused loops index their parts so: a fused row of a buffer becomes one dense index again.
Expr join_div_mod(const Expr &a, const Expr &b) {
  std::vector<Expr> terms;
  add_terms(a, terms);
  add_terms(b, terms);
  auto is_mod = [](const Expr &e) {
    auto *m = e.as<Binary>();
    return m && m->op == BinaryOp::Mod;
  };
  if (std::none_of(terms.begin(), terms.end(), is_mod)) return Expr(); // the common case, decided cheaply
  for (size_t i = 0; i < terms.size(); ++i) {
    Expr q;
    int64_t c = 0;
    if (!match_mul_const(terms[i], &q, &c) || c <= 0) continue;
    auto *div = q.as<Binary>();
    int64_t d = 0;
    if (!div || div->op != BinaryOp::Div || !is_const_int(div->b, &d) || d != c) continue;
    for (size_t j = 0; j < terms.size(); ++j) {
      auto *mod = terms[j].as<Binary>();
      int64_t m = 0;
      if (j == i || !mod || mod->op != BinaryOp::Mod || !is_const_int(mod->b, &m) || m != c || !equal(mod->a, div->a))
        continue;
      Expr out = div->a;
      for (size_t k = 0; k < terms.size(); ++k)
        if (k != i && k != j) out = out + terms[k];
      return out;
    }
  }
  return Expr();
}

class Simplifier : public IRMutator {
public:
  explicit Simplifier(ConstScope s) : scope(std::move(s)) {}
  using IRMutator::mutate;
  ConstScope scope;

  ConstRange range(const Expr &e) { return constant_bounds(e, scope); }
  bool known_in(const Expr &e, int64_t lo, int64_t hi_exclusive) {
    ConstRange r = range(e);
    return r.min && r.max && *r.min >= lo && *r.max < hi_exclusive;
  }

protected:
  Expr visit(const Cast *op, const Expr &e) override {
    Expr v = mutate(op->value);
    DataType t = op->type;
    int64_t i;
    double f;
    if (t.is_scalar()) {
      if (is_const_int(v, &i)) return t.is_float() ? make_const(t, double(i)) : make_const(t, double(i));
      if (const_float(v, &f) && t.is_float()) return make_const(t, f);
      if (const_float(v, &f) && t.is_integer() && std::isfinite(f) && std::fabs(f) < 9e18)
        return IntImm::make(t, int64_t(std::trunc(f)));
    }
    if (auto *inner = v.as<Cast>()) { // int widening chains: i64(i32(x)) where x is i64 index
      if (t.is_integer() && inner->type.is_integer() && inner->value.type() == t && inner->type.bits >= 32 &&
          known_in(inner->value, -(int64_t(1) << 31), int64_t(1) << 31))
        return inner->value;
    }
    return v.same_as(op->value) ? e : Cast::make(t, v);
  }

  Expr visit(const Binary *op, const Expr &e) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    DataType t = a.type();
    int64_t ca, cb;
    double fa, fb;
    bool ia = is_const_int(a, &ca), ib = is_const_int(b, &cb);
    bool fla = const_float(a, &fa), flb = const_float(b, &fb);
    bool is_int = t.is_integer();
    BinaryOp o = op->op;

    // constant folding
    if (ia && ib && t.is_scalar()) {
      switch (o) {
      case BinaryOp::Add: return IntImm::make(t, ca + cb);
      case BinaryOp::Sub: return IntImm::make(t, ca - cb);
      case BinaryOp::Mul: return IntImm::make(t, ca * cb);
      case BinaryOp::Div:
        if (cb != 0) return IntImm::make(t, floor_div(ca, cb));
        break;
      case BinaryOp::Mod:
        if (cb != 0) return IntImm::make(t, floor_mod(ca, cb));
        break;
      case BinaryOp::Min: return IntImm::make(t, std::min(ca, cb));
      case BinaryOp::Max: return IntImm::make(t, std::max(ca, cb));
      case BinaryOp::EQ: return IntImm::make(DataType::boolean(), ca == cb);
      case BinaryOp::NE: return IntImm::make(DataType::boolean(), ca != cb);
      case BinaryOp::LT: return IntImm::make(DataType::boolean(), ca < cb);
      case BinaryOp::LE: return IntImm::make(DataType::boolean(), ca <= cb);
      case BinaryOp::GT: return IntImm::make(DataType::boolean(), ca > cb);
      case BinaryOp::GE: return IntImm::make(DataType::boolean(), ca >= cb);
      case BinaryOp::And: return IntImm::make(DataType::boolean(), ca && cb);
      case BinaryOp::Or: return IntImm::make(DataType::boolean(), ca || cb);
      }
    }
    if (fla && flb && t.is_scalar()) {
      switch (o) {
      case BinaryOp::Add: return make_const(t, fa + fb);
      case BinaryOp::Sub: return make_const(t, fa - fb);
      case BinaryOp::Mul: return make_const(t, fa * fb);
      case BinaryOp::Div: return make_const(t, fa / fb);
      case BinaryOp::Min: return make_const(t, std::fmin(fa, fb));
      case BinaryOp::Max: return make_const(t, std::fmax(fa, fb));
      case BinaryOp::EQ: return IntImm::make(DataType::boolean(), fa == fb);
      case BinaryOp::NE: return IntImm::make(DataType::boolean(), fa != fb);
      case BinaryOp::LT: return IntImm::make(DataType::boolean(), fa < fb);
      case BinaryOp::LE: return IntImm::make(DataType::boolean(), fa <= fb);
      case BinaryOp::GT: return IntImm::make(DataType::boolean(), fa > fb);
      case BinaryOp::GE: return IntImm::make(DataType::boolean(), fa >= fb);
      default: break;
      }
    }

    // canonical order: constants on the right of commutative operators
    bool commutative = o == BinaryOp::Add || o == BinaryOp::Mul || o == BinaryOp::Min || o == BinaryOp::Max;
    if (commutative && (ia || fla) && !(ib || flb)) {
      std::swap(a, b);
      std::swap(ca, cb);
      std::swap(ia, ib);
      std::swap(fa, fb);
      std::swap(fla, flb);
    }

    switch (o) {
    case BinaryOp::Add:
      if (is_zero(b)) return a;
      if (is_int && ib) {
        if (auto *inner = a.as<Binary>()) {
          int64_t c;
          if (inner->op == BinaryOp::Add && is_const_int(inner->b, &c)) return mutate(inner->a + (c + cb));
          if (inner->op == BinaryOp::Sub && is_const_int(inner->b, &c)) return mutate(inner->a + (cb - c));
        }
      }
      if (is_int) { // x + (y + c) -> (x + y) + c, so constants bubble outwards
        if (auto *inner = b.as<Binary>(); inner && inner->op == BinaryOp::Add && is_const_int(inner->b))
          return mutate((a + inner->a) + inner->b);
      }
      if (is_int)
        if (Expr joined = join_div_mod(a, b); joined.defined()) return mutate(joined);
      break;
    case BinaryOp::Sub:
      if (is_zero(b)) return a;
      if (is_int && equal(a, b)) return make_zero(t);
      if (is_int && ib) return mutate(a + IntImm::make(t.element_of(), -cb));
      if (is_int) { // (x + y) - x -> y, (x + y) - y -> x, x - (x + y) -> -y
        if (auto *add = a.as<Binary>(); add && add->op == BinaryOp::Add) {
          if (equal(add->a, b)) return add->b;
          if (equal(add->b, b)) return add->a;
        }
        if (auto *add = b.as<Binary>(); add && add->op == BinaryOp::Add) {
          if (equal(add->a, a)) return mutate(make_zero(t) - add->b);
        }
      }
      if (is_int) { // (x + c) - y -> (x - y) + c
        if (auto *inner = a.as<Binary>(); inner && inner->op == BinaryOp::Add && is_const_int(inner->b))
          return mutate((inner->a - b) + inner->b);
      }
      break;
    case BinaryOp::Mul:
      if (is_one(b)) return a;
      if (is_int && is_zero(b)) return b;
      if (is_int && ib) {
        if (auto *inner = a.as<Binary>()) {
          int64_t c;
          if (inner->op == BinaryOp::Mul && is_const_int(inner->b, &c)) return mutate(inner->a * (c * cb));
          if (inner->op == BinaryOp::Add && is_const_int(inner->b, &c)) return mutate(inner->a * b + c * cb);
        }
      }
      break;
    case BinaryOp::Div:
      if (is_one(b)) return a;
      if (is_int && ib && cb > 0) {
        if (known_in(a, 0, cb)) return make_zero(t);
        Expr x;
        int64_t c;
        if (match_mul_const(a, &x, &c) && c % cb == 0) return mutate(x * (c / cb));
        if (auto *add = a.as<Binary>(); add && add->op == BinaryOp::Add) {
          // (x*c + y) / cb with c a multiple of cb: x*(c/cb) + y/cb
          if (match_mul_const(add->a, &x, &c) && c % cb == 0) return mutate(x * (c / cb) + add->b / b);
          if (match_mul_const(add->b, &x, &c) && c % cb == 0) return mutate(x * (c / cb) + add->a / b);
        }
      }
      break;
    case BinaryOp::Mod:
      if (is_int && ib && cb > 0) {
        if (cb == 1) return make_zero(t);
        if (known_in(a, 0, cb)) return a;
        Expr x;
        int64_t c;
        if (match_mul_const(a, &x, &c) && c % cb == 0) return make_zero(t);
        if (auto *add = a.as<Binary>(); add && add->op == BinaryOp::Add) {
          if (match_mul_const(add->a, &x, &c) && c % cb == 0) return mutate(add->b % b);
          if (match_mul_const(add->b, &x, &c) && c % cb == 0) return mutate(add->a % b);
        }
      }
      break;
    case BinaryOp::Min:
    case BinaryOp::Max:
      if (equal(a, b)) return a;
      if (is_int) {
        ConstRange d = range(simplify(a - b, scope));
        bool a_le_b = d.max && *d.max <= 0, a_ge_b = d.min && *d.min >= 0;
        if (o == BinaryOp::Min && a_le_b) return a;
        if (o == BinaryOp::Min && a_ge_b) return b;
        if (o == BinaryOp::Max && a_ge_b) return a;
        if (o == BinaryOp::Max && a_le_b) return b;
      }
      break;
    case BinaryOp::EQ:
    case BinaryOp::NE:
    case BinaryOp::LT:
    case BinaryOp::LE:
    case BinaryOp::GT:
    case BinaryOp::GE:
      if (is_int && t.is_scalar()) {
        ConstRange d = range(simplify(a - b, scope));
        auto yes = [&] { return IntImm::make(DataType::boolean(), 1); };
        auto no = [&] { return IntImm::make(DataType::boolean(), 0); };
        bool lt = d.max && *d.max < 0, ge = d.min && *d.min >= 0;
        bool le = d.max && *d.max <= 0, gt = d.min && *d.min > 0;
        if (o == BinaryOp::LT) {
          if (lt) return yes();
          if (ge) return no();
        }
        if (o == BinaryOp::GE) {
          if (ge) return yes();
          if (lt) return no();
        }
        if (o == BinaryOp::LE) {
          if (le) return yes();
          if (gt) return no();
        }
        if (o == BinaryOp::GT) {
          if (gt) return yes();
          if (le) return no();
        }
        if (o == BinaryOp::EQ && (gt || lt)) return no();
        if (o == BinaryOp::NE && (gt || lt)) return yes();
      }
      break;
    case BinaryOp::And:
      if (ia) return ca ? b : a;
      if (ib) return cb ? a : b;
      break;
    case BinaryOp::Or:
      if (ia) return ca ? a : b;
      if (ib) return cb ? b : a;
      break;
    }
    if (a.same_as(op->a) && b.same_as(op->b)) return e;
    return Binary::make(o, a, b);
  }

  Expr visit(const Not *op, const Expr &e) override {
    Expr v = mutate(op->value);
    int64_t c;
    if (is_const_int(v, &c) && v.type().is_scalar()) return IntImm::make(DataType::boolean(), !c);
    if (auto *n = v.as<Not>()) return n->value;
    return v.same_as(op->value) ? e : Not::make(v);
  }

  Expr visit(const Select *op, const Expr &e) override {
    Expr c = mutate(op->cond);
    int64_t v;
    if (is_const_int(c, &v) && c.type().is_scalar()) return mutate(v ? op->true_value : op->false_value);
    Expr t = mutate(op->true_value), f = mutate(op->false_value);
    if (equal(t, f)) return t;
    if (c.same_as(op->cond) && t.same_as(op->true_value) && f.same_as(op->false_value)) return e;
    return Select::make(c, t, f);
  }

  Expr visit(const Let *op, const Expr &e) override {
    Expr v = mutate(op->value);
    if (v.as<IntImm>() || v.as<FloatImm>() || v.as<Var>()) return mutate(substitute(op->body, {{op->var, v}}));
    scope[op->var.get()] = range(v);
    Expr b = mutate(op->body);
    scope.erase(op->var.get());
    if (!uses_var(b, op->var)) return b;
    return v.same_as(op->value) && b.same_as(op->body) ? e : Let::make(op->var, v, b);
  }

  Stmt visit(const For *op, const Stmt &s) override {
    Expr mn = mutate(op->min), ext = mutate(op->extent);
    int64_t n;
    if (is_const_int(ext, &n) && n <= 0) return Block::make({});
    if (is_const_int(ext, &n) && n == 1 && op->kind != ForKind::GpuBlock && op->kind != ForKind::GpuThread)
      return mutate(substitute(op->body, {{op->var, mn}}));
    ConstRange lo = range(mn), hi = range(mn + ext - 1);
    scope[op->var.get()] = {lo.min, hi.max};
    Stmt b = mutate(op->body);
    scope.erase(op->var.get());
    if (auto *blk = b.as<Block>(); blk && blk->stmts.empty()) return b;
    if (mn.same_as(op->min) && ext.same_as(op->extent) && b.same_as(op->body)) return s;
    return For::make(op->var, mn, ext, op->kind, b, op->thread_tag);
  }

  Stmt visit(const IfThenElse *op, const Stmt &s) override {
    Expr c = mutate(op->cond);
    int64_t v;
    if (is_const_int(c, &v)) {
      if (v) return mutate(op->then_case);
      return op->else_case.defined() ? mutate(op->else_case) : Block::make({});
    }
    Stmt t = mutate(op->then_case), f = mutate(op->else_case);
    if (c.same_as(op->cond) && t.same_as(op->then_case) && f.same_as(op->else_case)) return s;
    return IfThenElse::make(c, t, f);
  }

  Stmt visit(const LetStmt *op, const Stmt &s) override {
    Expr v = mutate(op->value);
    if (v.as<IntImm>() || v.as<FloatImm>() || v.as<Var>()) return mutate(substitute(op->body, {{op->var, v}}));
    scope[op->var.get()] = range(v);
    Stmt b = mutate(op->body);
    scope.erase(op->var.get());
    if (!uses_var(b, op->var)) return b;
    return v.same_as(op->value) && b.same_as(op->body) ? s : LetStmt::make(op->var, v, b);
  }
};

} // namespace

Expr simplify(const Expr &e, const ConstScope &scope) {
  if (!e.defined()) return e;
  return Simplifier(scope).mutate(e);
}
Stmt simplify(const Stmt &s) { return Simplifier({}).mutate(s); }
bool can_prove(const Expr &cond, const ConstScope &scope) {
  int64_t v;
  Expr c = simplify(cond, scope);
  return is_const_int(c, &v) && v != 0;
}

} // namespace tessel::ir
