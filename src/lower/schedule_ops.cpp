// Pass 1: turn every stage's schedule into a loop nest over TensorWrite /
// TensorRead, and wrap intermediate tensors in Realize.
#include "lower/lower.h"

#include "ir/op.h"
#include "ir/visitor.h"

#include <map>
#include <unordered_map>

namespace tessel::lower {

using namespace ir;
using sched::Relation;
using sched::Stage;

namespace {

// Replaces reads of inlined stages with their (already inlined) bodies.
class InlineReads : public IRMutator {
public:
  explicit InlineReads(const std::unordered_map<const TensorNode *, Expr> &bodies) : bodies_(bodies) {}
  using IRMutator::mutate;

protected:
  Expr visit(const TensorRead *op, const Expr &e) override {
    Expr r = IRMutator::visit(op, e);
    auto *read = r.as<TensorRead>();
    auto it = bodies_.find(read->tensor.get());
    if (it == bodies_.end()) return r;
    std::vector<std::pair<Expr, Expr>> m;
    for (size_t d = 0; d < read->indices.size(); ++d) m.push_back({read->tensor->axes[d].var, read->indices[d]});
    return substitute(it->second, m);
  }

private:
  const std::unordered_map<const TensorNode *, Expr> &bodies_;
};

class NestBuilder {
public:
  NestBuilder(const Stage &st, Expr body) : st_(st), body_(std::move(body)) {
    for (auto &l : st.loops) vars_.push_back(Var::make(DataType::index(), l.name));
  }

  Stmt build() {
    const TensorNode &T = *st_.tensor;
    std::vector<Expr> idx;
    std::vector<std::pair<Expr, Expr>> m;
    for (int d = 0; d < st_.num_spatial(); ++d) {
      idx.push_back(value_of(d));
      m.push_back({T.axes[d].var, idx.back()});
    }
    std::vector<Expr> spatial_guards, all_guards;
    for (auto &r : st_.relations) {
      if (r.kind != Relation::kSplit) continue;
      const auto &L = st_.loops[r.split.parent];
      if (L.extent % r.split.factor == 0) continue;
      Expr g = value_of(r.split.parent) < Expr(L.extent);
      all_guards.push_back(g);
      if (!L.is_reduce) spatial_guards.push_back(g);
    }

    auto *red = body_.as<Reduce>();
    if (!red) {
      Stmt s = guard(TensorWrite::make(st_.tensor, substitute(body_, m), idx), all_guards);
      return nest(0, int(st_.leaves.size()), s, false);
    }
    for (size_t r = 0; r < red->axes.size(); ++r) m.push_back({red->axes[r].var, value_of(st_.num_spatial() + int(r))});
    Expr source = substitute(red->source, m);
    Stmt init = guard(TensorWrite::make(st_.tensor, red->identity(), idx), spatial_guards);
    Stmt update = guard(TensorWrite::make(st_.tensor, red->combine(TensorRead::make(st_.tensor, idx), source), idx),
                        all_guards);
    int p = 0;
    while (p < int(st_.leaves.size()) && !st_.loops[st_.leaves[p]].is_reduce) ++p;
    Stmt inner = Block::make({nest(p, int(st_.leaves.size()), init, /*spatial_only=*/true),
                              nest(p, int(st_.leaves.size()), update, false)});
    return nest(0, p, inner, false);
  }

private:
  Expr value_of(int loop) {
    auto it = values_.find(loop);
    if (it != values_.end()) return it->second;
    Expr v;
    if (st_.is_leaf(loop)) v = vars_[loop];
    for (auto &r : st_.relations) {
      if (v.defined()) break;
      if (r.kind == Relation::kSplit && r.split.parent == loop)
        v = value_of(r.split.outer) * Expr(r.split.factor) + value_of(r.split.inner);
      if (r.kind == Relation::kFuse && r.fuse.outer == loop)
        v = value_of(r.fuse.fused) / Expr(st_.loops[r.fuse.inner].extent);
      if (r.kind == Relation::kFuse && r.fuse.inner == loop)
        v = value_of(r.fuse.fused) % Expr(st_.loops[r.fuse.inner].extent);
    }
    TESSEL_CHECK(v.defined(), "internal: loop " + st_.loops[loop].name + " of " + st_.tensor->name +
                                  " is neither a leaf nor derived from one");
    values_[loop] = v;
    return v;
  }

  static Stmt guard(Stmt s, const std::vector<Expr> &conds) {
    if (conds.empty()) return s;
    Expr c = conds[0];
    for (size_t i = 1; i < conds.size(); ++i) c = c && conds[i];
    return IfThenElse::make(c, s);
  }

  // Wraps `s` in the leaves at positions [from, to), innermost last.
  Stmt nest(int from, int to, Stmt s, bool spatial_only) {
    for (int p = to - 1; p >= from; --p) {
      const auto &L = st_.loops[st_.leaves[p]];
      if (spatial_only && L.is_reduce) continue;
      s = For::make(vars_[st_.leaves[p]], Expr(int64_t(0)), Expr(L.extent), L.kind, s, L.thread_tag);
    }
    return s;
  }

  const Stage &st_;
  Expr body_;
  std::vector<Expr> vars_;
  std::map<int, Expr> values_;
};

} // namespace

Stmt schedule_to_loops(const sched::Schedule &schedule) {
  const te::Workload &w = schedule.workload;
  std::unordered_map<const TensorNode *, Expr> inlined;
  std::vector<std::pair<const Stage *, Stmt>> nests;
  for (auto &st : schedule.stages) {
    Expr body = InlineReads(inlined).mutate(st.tensor->body);
    if (st.attach == sched::Attach::Inline) {
      inlined[st.tensor.get()] = body;
      continue;
    }
    nests.push_back({&st, NestBuilder(st, body).build()});
  }
  // Each intermediate lives from its producer's nest to the end of the function.
  Stmt result;
  for (auto it = nests.rbegin(); it != nests.rend(); ++it) {
    result = result.defined() ? Block::make({it->second, result}) : it->second;
    const Tensor &t = it->first->tensor;
    if (!w.is_output(t)) {
      std::vector<Range> region;
      for (auto e : t->shape) region.push_back({Expr(int64_t(0)), Expr(e)});
      result = Realize::make(t, region, it->first->scope, result);
    }
  }
  return result;
}

} // namespace tessel::lower
