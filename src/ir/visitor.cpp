#include "ir/visitor.h"

#include <unordered_map>

namespace tessel::ir {

void IRVisitor::visit(const Cast *op) { op->value.accept(this); }
void IRVisitor::visit(const Binary *op) {
  op->a.accept(this);
  op->b.accept(this);
}
void IRVisitor::visit(const Not *op) { op->value.accept(this); }
void IRVisitor::visit(const Select *op) {
  op->cond.accept(this);
  op->true_value.accept(this);
  op->false_value.accept(this);
}
void IRVisitor::visit(const Call *op) {
  for (auto &a : op->args) a.accept(this);
}
void IRVisitor::visit(const Load *op) {
  op->buffer.accept(this);
  op->index.accept(this);
}
void IRVisitor::visit(const Ramp *op) {
  op->base.accept(this);
  op->stride.accept(this);
}
void IRVisitor::visit(const Broadcast *op) { op->value.accept(this); }
void IRVisitor::visit(const Let *op) {
  op->value.accept(this);
  op->body.accept(this);
}
void IRVisitor::visit(const TensorRead *op) {
  for (auto &i : op->indices) i.accept(this);
}
void IRVisitor::visit(const Reduce *op) { op->source.accept(this); }
void IRVisitor::visit(const AddressOf *op) {
  op->buffer.accept(this);
  op->index.accept(this);
}
void IRVisitor::visit(const ExternCall *op) {
  for (auto &a : op->args) a.accept(this);
}
void IRVisitor::visit(const For *op) {
  op->min.accept(this);
  op->extent.accept(this);
  op->body.accept(this);
}
void IRVisitor::visit(const Store *op) {
  op->buffer.accept(this);
  op->value.accept(this);
  op->index.accept(this);
}
void IRVisitor::visit(const TensorWrite *op) {
  op->value.accept(this);
  for (auto &i : op->indices) i.accept(this);
}
void IRVisitor::visit(const Allocate *op) {
  op->extent.accept(this);
  op->body.accept(this);
}
void IRVisitor::visit(const Realize *op) {
  for (auto &r : op->region) {
    r.min.accept(this);
    r.extent.accept(this);
  }
  op->body.accept(this);
}
void IRVisitor::visit(const IfThenElse *op) {
  op->cond.accept(this);
  op->then_case.accept(this);
  if (op->else_case.defined()) op->else_case.accept(this);
}
void IRVisitor::visit(const LetStmt *op) {
  op->value.accept(this);
  op->body.accept(this);
}
void IRVisitor::visit(const Block *op) {
  for (auto &s : op->stmts) s.accept(this);
}
void IRVisitor::visit(const Evaluate *op) { op->value.accept(this); }

Expr IRMutator::mutate(const Expr &e) {
  if (!e.defined()) return e;
  switch (e.kind()) {
// clang-format off
#define CASE(T) case ExprKind::T: return visit(static_cast<const T *>(e.get()), e);
    CASE(IntImm) CASE(FloatImm) CASE(Var) CASE(Cast) CASE(Binary) CASE(Not) CASE(Select) CASE(Call)
    CASE(Load) CASE(Ramp) CASE(Broadcast) CASE(Let) CASE(TensorRead) CASE(Reduce) CASE(AddressOf)
#undef CASE
    // clang-format on
  }
  return e;
}
Stmt IRMutator::mutate(const Stmt &s) {
  if (!s.defined()) return s;
  switch (s.kind()) {
// clang-format off
#define CASE(T) case StmtKind::T: return visit(static_cast<const T *>(s.get()), s);
    CASE(For) CASE(Store) CASE(TensorWrite) CASE(Allocate) CASE(Realize) CASE(IfThenElse) CASE(LetStmt)
    CASE(Block) CASE(Evaluate) CASE(ExternCall)
#undef CASE
    // clang-format on
  }
  return s;
}

Expr IRMutator::visit(const Cast *op, const Expr &e) {
  Expr v = mutate(op->value);
  return v.same_as(op->value) ? e : Cast::make(op->type.with_lanes(v.type().lanes), v);
}
Expr IRMutator::visit(const Binary *op, const Expr &e) {
  Expr a = mutate(op->a), b = mutate(op->b);
  return a.same_as(op->a) && b.same_as(op->b) ? e : Binary::make(op->op, a, b);
}
Expr IRMutator::visit(const Not *op, const Expr &e) {
  Expr v = mutate(op->value);
  return v.same_as(op->value) ? e : Not::make(v);
}
Expr IRMutator::visit(const Select *op, const Expr &e) {
  Expr c = mutate(op->cond), t = mutate(op->true_value), f = mutate(op->false_value);
  if (c.same_as(op->cond) && t.same_as(op->true_value) && f.same_as(op->false_value)) return e;
  return Select::make(c, t, f);
}
Expr IRMutator::visit(const Call *op, const Expr &e) {
  std::vector<Expr> args;
  bool changed = false;
  for (auto &a : op->args) {
    args.push_back(mutate(a));
    changed |= !args.back().same_as(a);
  }
  return changed ? Call::make(op->func, args) : e;
}
Expr IRMutator::visit(const Load *op, const Expr &e) {
  Expr b = mutate(op->buffer), i = mutate(op->index);
  return b.same_as(op->buffer) && i.same_as(op->index) ? e : Load::make(op->type.element_of(), b, i);
}
Expr IRMutator::visit(const Ramp *op, const Expr &e) {
  Expr b = mutate(op->base), s = mutate(op->stride);
  return b.same_as(op->base) && s.same_as(op->stride) ? e : Ramp::make(b, s, op->lanes);
}
Expr IRMutator::visit(const Broadcast *op, const Expr &e) {
  Expr v = mutate(op->value);
  return v.same_as(op->value) ? e : Broadcast::make(v, op->lanes);
}
Expr IRMutator::visit(const Let *op, const Expr &e) {
  Expr v = mutate(op->value), b = mutate(op->body);
  return v.same_as(op->value) && b.same_as(op->body) ? e : Let::make(op->var, v, b);
}
Expr IRMutator::visit(const TensorRead *op, const Expr &e) {
  std::vector<Expr> idx;
  bool changed = false;
  for (auto &i : op->indices) {
    idx.push_back(mutate(i));
    changed |= !idx.back().same_as(i);
  }
  return changed ? TensorRead::make(op->tensor, idx) : e;
}
Expr IRMutator::visit(const Reduce *op, const Expr &e) {
  Expr s = mutate(op->source);
  return s.same_as(op->source) ? e : Reduce::make(op->op, s, op->axes);
}

Expr IRMutator::visit(const AddressOf *op, const Expr &e) {
  Expr b = mutate(op->buffer), i = mutate(op->index);
  return b.same_as(op->buffer) && i.same_as(op->index) ? e : AddressOf::make(b, i, op->element);
}
Stmt IRMutator::visit(const ExternCall *op, const Stmt &s) {
  std::vector<Expr> args;
  bool changed = false;
  for (auto &a : op->args) {
    args.push_back(mutate(a));
    changed |= !args.back().same_as(a);
  }
  return changed ? ExternCall::make(op->name, args) : s;
}

Stmt IRMutator::visit(const For *op, const Stmt &s) {
  Expr mn = mutate(op->min), ext = mutate(op->extent);
  Stmt b = mutate(op->body);
  if (mn.same_as(op->min) && ext.same_as(op->extent) && b.same_as(op->body)) return s;
  return For::make(op->var, mn, ext, op->kind, b, op->thread_tag);
}
Stmt IRMutator::visit(const Store *op, const Stmt &s) {
  Expr b = mutate(op->buffer), v = mutate(op->value), i = mutate(op->index);
  if (b.same_as(op->buffer) && v.same_as(op->value) && i.same_as(op->index)) return s;
  return Store::make(b, v, i);
}
Stmt IRMutator::visit(const TensorWrite *op, const Stmt &s) {
  Expr v = mutate(op->value);
  bool changed = !v.same_as(op->value);
  std::vector<Expr> idx;
  for (auto &i : op->indices) {
    idx.push_back(mutate(i));
    changed |= !idx.back().same_as(i);
  }
  return changed ? TensorWrite::make(op->tensor, v, idx) : s;
}
Stmt IRMutator::visit(const Allocate *op, const Stmt &s) {
  Expr ext = mutate(op->extent);
  Stmt b = mutate(op->body);
  if (ext.same_as(op->extent) && b.same_as(op->body)) return s;
  return Allocate::make(op->buffer, op->dtype, ext, op->scope, b);
}
Stmt IRMutator::visit(const Realize *op, const Stmt &s) {
  bool changed = false;
  std::vector<Range> region;
  for (auto &r : op->region) {
    Range n{mutate(r.min), mutate(r.extent)};
    changed |= !n.min.same_as(r.min) || !n.extent.same_as(r.extent);
    region.push_back(n);
  }
  Stmt b = mutate(op->body);
  if (!changed && b.same_as(op->body)) return s;
  return Realize::make(op->tensor, region, op->scope, b, op->row_pad);
}
Stmt IRMutator::visit(const IfThenElse *op, const Stmt &s) {
  Expr c = mutate(op->cond);
  Stmt t = mutate(op->then_case), f = mutate(op->else_case);
  if (c.same_as(op->cond) && t.same_as(op->then_case) && f.same_as(op->else_case)) return s;
  return IfThenElse::make(c, t, f);
}
Stmt IRMutator::visit(const LetStmt *op, const Stmt &s) {
  Expr v = mutate(op->value);
  Stmt b = mutate(op->body);
  if (v.same_as(op->value) && b.same_as(op->body)) return s;
  return LetStmt::make(op->var, v, b);
}
Stmt IRMutator::visit(const Block *op, const Stmt &s) {
  std::vector<Stmt> out;
  bool changed = false;
  for (auto &x : op->stmts) {
    out.push_back(mutate(x));
    changed |= !out.back().same_as(x);
  }
  return changed ? Block::make(out) : s;
}
Stmt IRMutator::visit(const Evaluate *op, const Stmt &s) {
  Expr v = mutate(op->value);
  return v.same_as(op->value) ? s : Evaluate::make(v);
}

namespace {
class Substituter : public IRMutator {
public:
  explicit Substituter(const std::vector<std::pair<Expr, Expr>> &m) {
    for (auto &[k, v] : m) map_[k.get()] = v;
  }
  using IRMutator::mutate;

protected:
  Expr visit(const Var *op, const Expr &e) override {
    auto it = map_.find(op);
    return it == map_.end() ? e : it->second;
  }

private:
  std::unordered_map<const ExprNode *, Expr> map_;
};

class VarUse : public IRVisitor {
public:
  explicit VarUse(const ExprNode *v) : var(v) {}
  using IRVisitor::visit;
  void visit(const Var *op) override { found |= op == var; }
  const ExprNode *var;
  bool found = false;
};
} // namespace

Expr substitute(const Expr &e, const std::vector<std::pair<Expr, Expr>> &m) {
  if (m.empty()) return e;
  return Substituter(m).mutate(e);
}
Stmt substitute(const Stmt &s, const std::vector<std::pair<Expr, Expr>> &m) {
  if (m.empty()) return s;
  return Substituter(m).mutate(s);
}
namespace {
struct ReadCollector : IRVisitor {
  using IRVisitor::visit;
  std::vector<const TensorRead *> reads;
  void visit(const TensorRead *op) override {
    reads.push_back(op);
    IRVisitor::visit(op);
  }
};
} // namespace

std::vector<const TensorRead *> collect_reads(const Expr &e) {
  ReadCollector c;
  e.accept(&c);
  return c.reads;
}
std::vector<const TensorRead *> collect_reads(const Stmt &s) {
  ReadCollector c;
  s.accept(&c);
  return c.reads;
}
bool reads_tensor(const Expr &e, const TensorNode *t) {
  for (auto *r : collect_reads(e))
    if (r->tensor.get() == t) return true;
  return false;
}
bool reads_tensor(const Stmt &s, const TensorNode *t) {
  for (auto *r : collect_reads(s))
    if (r->tensor.get() == t) return true;
  return false;
}

bool uses_var(const Expr &e, const Expr &var) {
  VarUse v(var.get());
  e.accept(&v);
  return v.found;
}
bool uses_var(const Stmt &s, const Expr &var) {
  VarUse v(var.get());
  s.accept(&v);
  return v.found;
}

} // namespace tessel::ir
