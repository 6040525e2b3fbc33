// Loop partitioning, as Halide does for boundary conditions: a serial loop over
// padded data (a pad stage inlined into its consumer reads clamped indices
// under a select) becomes a boundary prologue, an interior and a boundary
// epilogue. In the interior every guard is provably true and every clamp
// provably changes nothing, so they are removed: the loads there are dense, and
// vector loads need neither masks nor gathers.
#include "ir/bounds.h"
#include "ir/op.h"
#include "ir/simplify.h"
#include "ir/visitor.h"
#include "lower/lower.h"

#include <algorithm>
#include <optional>

namespace tessel::lower {

namespace {

using namespace ir;

// The loops a node sits in: each variable's constant range.
using Ranges = ConstScope;

bool is_inequality(BinaryOp op) {
  return op == BinaryOp::LT || op == BinaryOp::LE || op == BinaryOp::GT || op == BinaryOp::GE;
}

// A loop's constant range, when its bounds are constants.
std::optional<ConstRange> loop_range(const For *op) {
  int64_t mn = 0, ext = 0;
  if (!is_const_int(op->min, &mn) || !is_const_int(op->extent, &ext) || ext <= 0) return std::nullopt;
  return ConstRange{mn, mn + ext - 1};
}

// Whether the simplifier, knowing `ranges`, removes a guard (proves it) or a clamp (proves one operand the
// smaller): what happens to the interior once the partitioned loops carry their ranges.
bool goes_away(const Expr &check, const Ranges &ranges) {
  auto *op = check.as<Binary>();
  if (is_inequality(op->op)) return can_prove(check, ranges);
  return can_prove(op->a <= op->b, ranges) || can_prove(op->b <= op->a, ranges);
}

// Every guard and clamp inside a loop body that mentions `var`, with the ranges of the loops between.
struct Check {
  Expr expr; // a comparison or a min/max
  Ranges inner;
};
class CheckCollector : public IRVisitor {
public:
  explicit CheckCollector(const Expr &var) : var_(var) {}
  std::vector<Check> checks;
  using IRVisitor::visit;
  void visit(const Binary *op) override {
    bool guard = is_inequality(op->op) && op->a.type().is_integer();
    bool clamp = (op->op == BinaryOp::Min || op->op == BinaryOp::Max) && op->type.is_integer();
    if (guard || clamp) {
      Expr e = Binary::make(op->op, op->a, op->b);
      if (uses_var(e, var_)) checks.push_back({e, inner_});
    }
    IRVisitor::visit(op);
  }
  void visit(const For *op) override {
    if (auto r = loop_range(op)) inner_[op->var.get()] = *r;
    IRVisitor::visit(op);
    inner_.erase(op->var.get());
  }
  void visit(const Store *op) override {
    stored_along |= uses_var(op->index, var_);
    IRVisitor::visit(op);
  }
  bool stored_along = false; // some store's index follows the loop: a loop over outputs, not a reduction

private:
  Expr var_;
  Ranges inner_;
};

// Splits serial loops whose guards and clamps all go away over a contiguous interior of their range.
class Partitioner : public IRMutator {
protected:
  using IRMutator::visit;
  Stmt visit(const For *op, const Stmt &s) override {
    auto range = loop_range(op);
    if (!range) return IRMutator::visit(op, s);
    outer_[op->var.get()] = *range;
    Stmt out = partitioned(op, *range->min, *range->max - *range->min + 1);
    if (!out.defined()) out = IRMutator::visit(op, s);
    outer_.erase(op->var.get());
    return out;
  }

private:
  // Whether every check holds with the loop variable in [lo, hi].
  bool interior(const std::vector<Check> &checks, const Expr &var, int64_t lo, int64_t hi) const {
    Ranges around = outer_;
    around[var.get()] = {lo, hi};
    for (auto &c : checks) {
      Ranges r = around;
      r.insert(c.inner.begin(), c.inner.end());
      if (!goes_away(c.expr, r)) return false;
    }
    return true;
  }

  Stmt partitioned(const For *op, int64_t mn, int64_t ext) {
    // Serial loops only: a vector loop is one instruction, a parallel one's chunks are spread over threads.
    if (op->kind != ForKind::Serial || ext < 2 || ext > kMaxExtent || depth_ >= kMaxDepth) return Stmt();
    CheckCollector collect(op->var);
    op->body.accept(&collect);
    // Reduction loops stay whole: splitting them multiplies code inside the boundary copies for little.
    if (collect.checks.empty() || !collect.stored_along) return Stmt();
    int64_t lo = mn, hi = mn + ext - 1;
    // Boundaries are as wide as the padding over the tile: a few iterations. Past kMaxBoundary, give up
    // (lowering runs for every candidate the search scores).
    while (lo <= hi && lo - mn <= kMaxBoundary && !interior(collect.checks, op->var, lo, lo)) ++lo;
    while (hi >= lo && mn + ext - 1 - hi <= kMaxBoundary && !interior(collect.checks, op->var, hi, hi)) --hi;
    if (lo - mn > kMaxBoundary || mn + ext - 1 - hi > kMaxBoundary) return Stmt();
    if (hi < lo || (lo == mn && hi == mn + ext - 1) || !interior(collect.checks, op->var, lo, hi)) return Stmt();
    // Boundaries keep their guards. The interior is partitioned further; the simplifier, which tracks the
    // ranges of the loops around what it simplifies, then removes its guards and clamps.
    ++depth_;
    std::vector<Stmt> parts;
    auto part = [&](int64_t from, int64_t to) {
      if (from > to) return;
      outer_[op->var.get()] = {from, to};
      Stmt body = from == lo ? mutate(op->body) : op->body; // boundaries are a sliver of the work: one copy each
      parts.push_back(For::make(op->var, Expr(from), Expr(to - from + 1), op->kind, body, op->thread_tag));
    };
    part(mn, lo - 1);
    part(lo, hi);
    part(hi + 1, mn + ext - 1);
    --depth_;
    return Block::make(parts);
  }

  static constexpr int64_t kMaxExtent = 4096, kMaxBoundary = 16;
  static constexpr int kMaxDepth = 3; // at most 7 copies of an innermost body
  Ranges outer_;
  int depth_ = 0;
};

} // namespace

Stmt partition_loops(const Stmt &s) { return simplify(Partitioner().mutate(s)); }

} // namespace tessel::lower
