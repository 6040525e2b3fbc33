// Pass: loops marked vectorized become vector IR. The loop variable becomes
// Ramp(min, 1, lanes); every expression that depends on it widens to that
// many lanes, contiguous accesses stay Ramp-indexed (vector loads/stores),
// others become gathers/scatters in the code generator. A body that cannot be
// widened (a store whose address does not depend on the lane, a per-lane
// branch, an allocation) keeps a serial loop, so the result is always correct.
#include "lower/lower.h"

#include "ir/op.h"
#include "ir/simplify.h"
#include "ir/visitor.h"

#include <unordered_map>

namespace tessel::lower {

using namespace ir;

namespace {

struct CannotVectorize {};

class Widen : public IRMutator {
public:
  Widen(const Expr &var, Expr ramp, int lanes) : lanes_(lanes) { replace_[var.get()] = std::move(ramp); }
  using IRMutator::mutate;

private:
  Expr widen(const Expr &e) const { return e.type().is_vector() ? e : Broadcast::make(e, lanes_); }
  void check_lanes(const Expr &e) const {
    if (e.type().is_vector() && e.type().lanes != lanes_) throw CannotVectorize{};
  }

protected:
  Expr visit(const Var *op, const Expr &e) override {
    auto it = replace_.find(op);
    return it == replace_.end() ? e : it->second;
  }

  Expr visit(const Binary *op, const Expr &e) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    check_lanes(a);
    check_lanes(b);
    if (a.same_as(op->a) && b.same_as(op->b)) return e;
    if (a.type().is_scalar() && b.type().is_scalar()) return Binary::make(op->op, a, b);
    auto *ra = a.as<Ramp>(), *rb = b.as<Ramp>();
    auto scalar = [](const Expr &x) -> Expr {
      if (x.type().is_scalar()) return x;
      if (auto *bc = x.as<Broadcast>()) return bc->value;
      return Expr();
    };
    Expr sa = scalar(a), sb = scalar(b);
    switch (op->op) {
    case BinaryOp::Add:
      if (ra && sb.defined()) return Ramp::make(ra->base + sb, ra->stride, lanes_);
      if (rb && sa.defined()) return Ramp::make(sa + rb->base, rb->stride, lanes_);
      if (ra && rb) return Ramp::make(ra->base + rb->base, ra->stride + rb->stride, lanes_);
      break;
    case BinaryOp::Sub:
      if (ra && sb.defined()) return Ramp::make(ra->base - sb, ra->stride, lanes_);
      if (ra && rb) return Ramp::make(ra->base - rb->base, ra->stride - rb->stride, lanes_);
      break;
    case BinaryOp::Mul:
      if (ra && sb.defined()) return Ramp::make(ra->base * sb, ra->stride * sb, lanes_);
      if (rb && sa.defined()) return Ramp::make(rb->base * sa, rb->stride * sa, lanes_);
      break;
    default: break;
    }
    if (sa.defined() && sb.defined()) return Broadcast::make(Binary::make(op->op, sa, sb), lanes_);
    return Binary::make(op->op, widen(a), widen(b));
  }

  Expr visit(const Cast *op, const Expr &e) override {
    Expr v = mutate(op->value);
    check_lanes(v);
    if (v.same_as(op->value)) return e;
    if (auto *bc = v.as<Broadcast>()) return Broadcast::make(Cast::make(op->type, bc->value), lanes_);
    return Cast::make(op->type.with_lanes(v.type().lanes), v);
  }

  Expr visit(const Not *op, const Expr &e) override {
    Expr v = mutate(op->value);
    check_lanes(v);
    return v.same_as(op->value) ? e : Not::make(v);
  }

  Expr visit(const Select *op, const Expr &e) override {
    Expr c = mutate(op->cond), t = mutate(op->true_value), f = mutate(op->false_value);
    check_lanes(c);
    check_lanes(t);
    check_lanes(f);
    if (c.same_as(op->cond) && t.same_as(op->true_value) && f.same_as(op->false_value)) return e;
    if (t.type().is_vector() || f.type().is_vector() || c.type().is_vector())
      return Select::make(c.type().is_vector() ? c : c, widen(t), widen(f));
    return Select::make(c, t, f);
  }

  Expr visit(const Call *op, const Expr &e) override {
    std::vector<Expr> args;
    bool changed = false, vec = false;
    for (auto &a : op->args) {
      args.push_back(mutate(a));
      check_lanes(args.back());
      changed |= !args.back().same_as(a);
      vec |= args.back().type().is_vector();
    }
    if (!changed) return e;
    if (vec)
      for (auto &a : args) a = widen(a);
    return Call::make(op->func, args);
  }

  Expr visit(const Load *op, const Expr &e) override {
    Expr idx = mutate(op->index);
    check_lanes(idx);
    if (idx.same_as(op->index)) return e;
    if (auto *bc = idx.as<Broadcast>()) return Broadcast::make(Load::make(op->type, op->buffer, bc->value), lanes_);
    return Load::make(op->type.element_of(), op->buffer, idx);
  }

  Expr visit(const Let *op, const Expr &e) override {
    Expr v = mutate(op->value);
    check_lanes(v);
    if (v.type().is_vector()) {
      Expr nv = Var::make(v.type(), op->var.as<Var>()->name);
      replace_[op->var.get()] = nv;
      Expr b = mutate(op->body);
      return Let::make(nv, v, b);
    }
    Expr b = mutate(op->body);
    return v.same_as(op->value) && b.same_as(op->body) ? e : Let::make(op->var, v, b);
  }

  Expr visit(const Ramp *, const Expr &) override { throw CannotVectorize{}; } // nested vectors
  Expr visit(const Broadcast *, const Expr &) override { throw CannotVectorize{}; }

  Stmt visit(const Store *op, const Stmt &s) override {
    Expr v = mutate(op->value), idx = mutate(op->index);
    check_lanes(v);
    check_lanes(idx);
    if (v.same_as(op->value) && idx.same_as(op->index)) return s;
    if (idx.type().is_scalar() || idx.as<Broadcast>()) throw CannotVectorize{}; // every lane writes one place
    return Store::make(op->buffer, widen(v), idx);
  }
  Stmt visit(const For *op, const Stmt &s) override {
    Expr mn = mutate(op->min), ext = mutate(op->extent);
    if (mn.type().is_vector() || ext.type().is_vector()) throw CannotVectorize{};
    Stmt b = mutate(op->body);
    if (mn.same_as(op->min) && ext.same_as(op->extent) && b.same_as(op->body)) return s;
    return For::make(op->var, mn, ext, op->kind == ForKind::Vectorized ? ForKind::Serial : op->kind, b, op->thread_tag);
  }
  Stmt visit(const IfThenElse *op, const Stmt &s) override {
    Expr c = mutate(op->cond);
    if (c.type().is_vector()) throw CannotVectorize{};
    Stmt t = mutate(op->then_case), f = mutate(op->else_case);
    if (c.same_as(op->cond) && t.same_as(op->then_case) && f.same_as(op->else_case)) return s;
    return IfThenElse::make(c, t, f);
  }
  Stmt visit(const LetStmt *op, const Stmt &s) override {
    Expr v = mutate(op->value);
    check_lanes(v);
    if (v.type().is_vector()) {
      Expr nv = Var::make(v.type(), op->var.as<Var>()->name);
      replace_[op->var.get()] = nv;
      return LetStmt::make(nv, v, mutate(op->body));
    }
    Stmt b = mutate(op->body);
    return v.same_as(op->value) && b.same_as(op->body) ? s : LetStmt::make(op->var, v, b);
  }
  Stmt visit(const Allocate *, const Stmt &) override { throw CannotVectorize{}; }

private:
  int lanes_;
  std::unordered_map<const ExprNode *, Expr> replace_;
};

class VectorizeLoops : public IRMutator {
public:
  using IRMutator::mutate;

protected:
  Stmt visit(const For *op, const Stmt &s) override {
    Stmt body = mutate(op->body);
    int64_t lanes;
    if (op->kind == ForKind::Vectorized && is_const_int(op->extent, &lanes) && lanes >= 2) {
      try {
        Expr ramp = Ramp::make(op->min, make_const(DataType::index(), 1), int(lanes));
        return Widen(op->var, ramp, int(lanes)).mutate(body);
      } catch (const CannotVectorize &) {
      } catch (const Error &) {
      }
    }
    return op->with(s, body, op->kind == ForKind::Vectorized ? ForKind::Serial : op->kind, op->thread_tag);
  }
};

// Statements an unrolled nest may copy out at most. Past this LLVM's compile time outgrows the builder's timeout
// and the program gains nothing: a cache stage whose region bound inference could not narrow (a non-dividing
// tile under a fused loop) made 6,272 copies and took over 30 s. Such a loop stays a loop.
constexpr int64_t kMaxUnrolledStatements = 1024;

// Stores and calls in `s`: the code each copy of it adds.
int64_t leaf_statements(const Stmt &s) {
  struct Count : IRVisitor {
    int64_t n = 0;
    void visit(const Store *op) override { ++n, IRVisitor::visit(op); }
    void visit(const Evaluate *op) override { ++n, IRVisitor::visit(op); }
  } count;
  s.accept(&count);
  return count.n;
}

class UnrollLoops : public IRMutator {
public:
  using IRMutator::mutate;

protected:
  Stmt visit(const For *op, const Stmt &s) override {
    Stmt body = mutate(op->body);
    int64_t n;
    if (op->kind == ForKind::Unrolled && is_const_int(op->extent, &n) &&
        n * leaf_statements(body) <= kMaxUnrolledStatements) {
      std::vector<Stmt> copies;
      for (int64_t i = 0; i < n; ++i) copies.push_back(substitute(body, {{op->var, op->min + Expr(i)}}));
      return Block::make(copies);
    }
    return op->with(s, body, op->kind == ForKind::Unrolled ? ForKind::Serial : op->kind, op->thread_tag);
  }
};

} // namespace

Stmt vectorize_loops(const Stmt &s) { return VectorizeLoops().mutate(s); }
Stmt unroll_loops(const Stmt &s) { return UnrollLoops().mutate(s); }

} // namespace tessel::lower
