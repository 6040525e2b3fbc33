// IRVisitor walks the IR read-only; IRMutator rebuilds it, sharing every
// subtree it leaves unchanged (so "nothing changed" is a pointer comparison).
#pragma once

#include "ir/ir.h"

namespace tessel::ir {

class IRVisitor {
public:
  virtual ~IRVisitor() = default;
  virtual void visit(const IntImm *) {}
  virtual void visit(const FloatImm *) {}
  virtual void visit(const Var *) {}
  virtual void visit(const Cast *);
  virtual void visit(const Binary *);
  virtual void visit(const Not *);
  virtual void visit(const Select *);
  virtual void visit(const Call *);
  virtual void visit(const Load *);
  virtual void visit(const Ramp *);
  virtual void visit(const Broadcast *);
  virtual void visit(const Let *);
  virtual void visit(const TensorRead *);
  virtual void visit(const Reduce *);
  virtual void visit(const AddressOf *);

  virtual void visit(const For *);
  virtual void visit(const Store *);
  virtual void visit(const TensorWrite *);
  virtual void visit(const Allocate *);
  virtual void visit(const Realize *);
  virtual void visit(const IfThenElse *);
  virtual void visit(const LetStmt *);
  virtual void visit(const Block *);
  virtual void visit(const Evaluate *);
  virtual void visit(const ExternCall *);
};

class IRMutator {
public:
  virtual ~IRMutator() = default;
  virtual Expr mutate(const Expr &e);
  virtual Stmt mutate(const Stmt &s);

protected:
  virtual Expr visit(const IntImm *, const Expr &e) { return e; }
  virtual Expr visit(const FloatImm *, const Expr &e) { return e; }
  virtual Expr visit(const Var *, const Expr &e) { return e; }
  virtual Expr visit(const Cast *, const Expr &e);
  virtual Expr visit(const Binary *, const Expr &e);
  virtual Expr visit(const Not *, const Expr &e);
  virtual Expr visit(const Select *, const Expr &e);
  virtual Expr visit(const Call *, const Expr &e);
  virtual Expr visit(const Load *, const Expr &e);
  virtual Expr visit(const Ramp *, const Expr &e);
  virtual Expr visit(const Broadcast *, const Expr &e);
  virtual Expr visit(const Let *, const Expr &e);
  virtual Expr visit(const TensorRead *, const Expr &e);
  virtual Expr visit(const Reduce *, const Expr &e);
  virtual Expr visit(const AddressOf *, const Expr &e);

  virtual Stmt visit(const For *, const Stmt &s);
  virtual Stmt visit(const Store *, const Stmt &s);
  virtual Stmt visit(const TensorWrite *, const Stmt &s);
  virtual Stmt visit(const Allocate *, const Stmt &s);
  virtual Stmt visit(const Realize *, const Stmt &s);
  virtual Stmt visit(const IfThenElse *, const Stmt &s);
  virtual Stmt visit(const LetStmt *, const Stmt &s);
  virtual Stmt visit(const Block *, const Stmt &s);
  virtual Stmt visit(const Evaluate *, const Stmt &s);
  virtual Stmt visit(const ExternCall *, const Stmt &s);
};

// Replaces variables (by identity) with expressions.
Expr substitute(const Expr &e, const std::vector<std::pair<Expr, Expr>> &var_to_value);
Stmt substitute(const Stmt &s, const std::vector<std::pair<Expr, Expr>> &var_to_value);

// Every tensor read in `e` / `s`, in visiting order.
std::vector<const TensorRead *> collect_reads(const Expr &e);
std::vector<const TensorRead *> collect_reads(const Stmt &s);
// Whether `e` / `s` reads tensor `t`.
bool reads_tensor(const Expr &e, const TensorNode *t);
bool reads_tensor(const Stmt &s, const TensorNode *t);

// Whether `e` mentions variable `var` (by identity).
bool uses_var(const Expr &e, const Expr &var);
bool uses_var(const Stmt &s, const Expr &var);

} // namespace tessel::ir
