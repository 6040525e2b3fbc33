// Pass 1: turn every stage's schedule into a loop nest over TensorWrite /
// TensorRead. Root stages follow each other; an intermediate is wrapped in a
// Realize that lives until the end. A stage computed at a consumer's loop is
// built inside that loop for the region the loop's body reads (found by bounds
// inference), in a Realize of just that region.
#include "lower/lower.h"

#include "ir/bounds.h"
#include "ir/op.h"
#include "ir/simplify.h"
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

struct Context {
  std::unordered_map<const TensorNode *, Expr> bodies;                        // stage bodies after inlining
  std::map<std::pair<std::string, int>, std::vector<const Stage *>> attached; // (consumer, loop) -> producers
  std::map<std::pair<std::string, int>, std::vector<const Stage *>> after;    // (producer, loop) -> epilogues
  // Loops bound to GPU threads or virtual threads, by variable, with their extent:
  // a shared-memory stage computed inside them serves the whole block.
  mutable std::unordered_map<const ExprNode *, int64_t> thread_loops;
};

// The region of each root axis a stage computes: [min, min + extent).
struct RootRange {
  Expr min;
  int64_t extent;
  Expr limit; // when defined: only values < limit are computed (symbolic region ends)
};

class NestBuilder {
public:
  NestBuilder(const Stage &st, const Context &ctx, std::vector<RootRange> roots)
      : st_(st), ctx_(ctx), roots_(std::move(roots)) {
    for (auto &l : st.loops) vars_.push_back(Var::make(DataType::index(), l.name));
    extents_.resize(st.loops.size());
    for (size_t i = 0; i < st.loops.size(); ++i) extents_[i] = st.loops[i].extent;
    for (size_t d = 0; d < roots_.size(); ++d) extents_[d] = roots_[d].extent;
    // Derived loops follow the (possibly narrower) region.
    for (auto &r : st.relations) {
      if (r.kind == Relation::kSplit) {
        extents_[r.split.outer] = (extents_[r.split.parent] + r.split.factor - 1) / r.split.factor;
        extents_[r.split.inner] = std::min(r.split.factor, extents_[r.split.parent]);
      } else {
        extents_[r.fuse.fused] = extents_[r.fuse.outer] * extents_[r.fuse.inner];
      }
    }
    for (int l : st.leaves) // known before the nests inside them are built
      if (st.loops[l].kind == ForKind::GpuThread || st.loops[l].kind == ForKind::Vthread)
        ctx_.thread_loops[vars_[l].get()] = extents_[l];
  }

  Stmt build() {
    const TensorNode &T = *st_.tensor;
    Expr body = ctx_.bodies.at(st_.tensor.get());
    std::vector<Expr> idx;
    std::vector<std::pair<Expr, Expr>> m;
    std::vector<Expr> spatial_guards, all_guards;
    for (int d = 0; d < st_.num_spatial(); ++d) {
      Expr local = value_of(d);
      idx.push_back(is_zero(roots_[d].min) ? local : roots_[d].min + local);
      m.push_back({T.axes[d].var, idx.back()});
      if (roots_[d].limit.defined()) spatial_guards.push_back(idx.back() < roots_[d].limit);
    }
    for (auto &r : st_.relations) {
      if (r.kind != Relation::kSplit) continue;
      int64_t parent_extent = extents_[r.split.parent];
      if (parent_extent % extents_[r.split.inner] == 0 && extents_[r.split.inner] == r.split.factor) continue;
      Expr g = value_of(r.split.parent) < Expr(parent_extent);
      (st_.loops[r.split.parent].is_reduce ? all_guards : spatial_guards).push_back(g);
    }
    all_guards.insert(all_guards.end(), spatial_guards.begin(), spatial_guards.end());

    auto *red = body.as<Reduce>();
    if (!red) {
      Stmt s = guard(TensorWrite::make(st_.tensor, substitute(body, m), idx), spatial_guards);
      return nest(0, int(st_.leaves.size()), s, false);
    }
    for (size_t r = 0; r < red->axes.size(); ++r) m.push_back({red->axes[r].var, value_of(st_.num_spatial() + int(r))});
    Expr source = substitute(red->source, m);
    Stmt init = guard(TensorWrite::make(st_.tensor, red->identity(), idx), spatial_guards);
    Stmt update =
        guard(TensorWrite::make(st_.tensor, red->combine(TensorRead::make(st_.tensor, idx), source), idx), all_guards);
    int p = 0;
    while (p < int(st_.leaves.size()) && !st_.loops[st_.leaves[p]].is_reduce) ++p;
    Stmt inner = Block::make(
        {nest(p, int(st_.leaves.size()), init, /*spatial_only=*/true), nest(p, int(st_.leaves.size()), update, false)});
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
      if (r.kind == Relation::kFuse && r.fuse.outer == loop) v = value_of(r.fuse.fused) / Expr(extents_[r.fuse.inner]);
      if (r.kind == Relation::kFuse && r.fuse.inner == loop) v = value_of(r.fuse.fused) % Expr(extents_[r.fuse.inner]);
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

  // Wraps `s` in the leaves at positions [from, to), innermost last, placing
  // stages computed at a leaf at the start of that leaf's body.
  Stmt nest(int from, int to, Stmt s, bool spatial_only) {
    for (int p = to - 1; p >= from; --p) {
      int loop = st_.leaves[p];
      const auto &L = st_.loops[loop];
      if (spatial_only && L.is_reduce) continue;
      if (!spatial_only) s = place_attached(loop, s);
      // The tensorize mark travels as the loop's tag to the tensorize pass (not on the init nest).
      std::string tag = !L.tensorize.empty() && !spatial_only ? "tensorize:" + L.tensorize : L.thread_tag;
      s = For::make(vars_[loop], Expr(int64_t(0)), Expr(extents_[loop]), kind_of(p), s, tag);
    }
    return s;
  }

  // The auto-unroll pragma of an enclosing leaf unrolls serial loops whose
  // trip count (with the loops inside, vector loops counting once) fits it.
  ir::ForKind kind_of(int pos) {
    const auto &L = st_.loops[st_.leaves[pos]];
    if (L.kind != ForKind::Serial) return L.kind;
    int64_t max_step = 0;
    for (int p = 0; p < pos; ++p) max_step = std::max(max_step, st_.loops[st_.leaves[p]].auto_unroll_max_step);
    if (max_step <= 0) return L.kind;
    int64_t trips = 1;
    for (int p = pos; p < int(st_.leaves.size()); ++p) {
      const auto &I = st_.loops[st_.leaves[p]];
      if (I.kind != ForKind::Vectorized) trips *= extents_[st_.leaves[p]];
      if (trips > max_step) return L.kind;
    }
    return ForKind::Unrolled;
  }

  Stmt place_attached(int loop, Stmt body) {
    auto it = ctx_.attached.find({st_.tensor->name, loop});
    // Later producers may feed earlier ones (a cache of a pad, say): build in reverse.
    if (it != ctx_.attached.end())
      for (auto p = it->second.rbegin(); p != it->second.rend(); ++p) body = compute_here(**p, body);
    auto after = ctx_.after.find({st_.tensor->name, loop});
    if (after != ctx_.after.end())
      for (const Stage *e : after->second) body = Block::make({body, consume_here(*e, body)});
    return body;
  }

  // Builds the epilogue `consumer` for the region of this stage that `body` produced.
  Stmt consume_here(const Stage &consumer, const Stmt &body) {
    std::vector<Interval> region = region_touched(body, st_.tensor, {});
    if (region.empty()) return Block::make({});
    return NestBuilder(consumer, ctx_, roots_for(region, consumer.tensor->shape)).build();
  }

  // Root ranges covering `region` (clamped to the tensor), with constant
  // extents: a region whose size varies with the enclosing loops gets its
  // largest size and a limit guarding the values past its end.
  std::vector<RootRange> roots_for(const std::vector<Interval> &region, const std::vector<int64_t> &shape) {
    ConstScope outer;
    for (size_t i = 0; i < vars_.size(); ++i) outer[vars_[i].get()] = {0, extents_[i] - 1};
    std::vector<RootRange> roots;
    for (size_t d = 0; d < shape.size(); ++d) {
      const Interval &r = region[d];
      Expr mn = r.min.defined() ? max(simplify(r.min), Expr(int64_t(0))) : Expr(int64_t(0));
      Expr mx = r.max.defined() ? min(simplify(r.max), Expr(shape[d] - 1)) : Expr(shape[d] - 1);
      mn = simplify(mn, outer);
      mx = simplify(mx, outer);
      Expr ext = simplify(mx - mn + 1, outer);
      int64_t n;
      Expr limit;
      if (!is_const_int(ext, &n)) {
        ConstRange cr = constant_bounds(ext, outer);
        n = cr.max ? std::min(*cr.max, shape[d]) : shape[d];
        limit = simplify(mx + 1, outer);
      }
      roots.push_back({mn, std::max<int64_t>(n, 1), limit});
    }
    return roots;
  }

  // Builds `producer` for the region `body` reads, realized right here.
  Stmt compute_here(const Stage &producer, const Stmt &body) {
    Scope relax; // shared memory is per block: cover what every thread of it reads
    if (producer.scope == MemoryScope::Shared)
      for (auto &[var, extent] : ctx_.thread_loops) relax[var] = {Expr(int64_t(0)), Expr(extent - 1)};
    std::vector<Interval> region = region_touched(body, producer.tensor, relax);
    if (region.empty()) return body; // the body never reads it (e.g. a guarded tail): nothing to compute
    std::vector<RootRange> roots = roots_for(region, producer.tensor->shape);
    std::vector<Range> realize;
    for (auto &r : roots) realize.push_back({r.min, Expr(r.extent)});
    Stmt produce = NestBuilder(producer, ctx_, roots).build();
    return Realize::make(producer.tensor, realize, producer.scope, Block::make({produce, body}), producer.row_pad);
  }

  const Stage &st_;
  const Context &ctx_;
  std::vector<RootRange> roots_;
  std::vector<Expr> vars_;
  std::vector<int64_t> extents_;
  std::map<int, Expr> values_;
};

std::vector<RootRange> full_range(const Stage &st) {
  std::vector<RootRange> r;
  for (auto e : st.tensor->shape) r.push_back({Expr(int64_t(0)), e, Expr()});
  return r;
}

Context make_context(const sched::Schedule &schedule) {
  Context ctx;
  std::unordered_map<const TensorNode *, Expr> inlined;
  for (auto &st : schedule.stages) {
    Expr body = InlineReads(inlined).mutate(st.tensor->body);
    if (st.attach == sched::Attach::Inline) inlined[st.tensor.get()] = body;
    ctx.bodies[st.tensor.get()] = body;
    if (st.attach == sched::Attach::At)
      (st.attach_after ? ctx.after : ctx.attached)[{st.attach_stage, st.attach_loop}].push_back(&st);
  }
  return ctx;
}

} // namespace

Stmt schedule_to_loops(const sched::Schedule &schedule) {
  const te::Workload &w = schedule.workload;
  Context ctx = make_context(schedule);
  std::vector<std::pair<const Stage *, Stmt>> nests;
  for (auto &st : schedule.stages) {
    if (st.attach != sched::Attach::Root || st.prepack) continue; // prepacked stages are kernel inputs
    nests.push_back({&st, NestBuilder(st, ctx, full_range(st)).build()});
  }
  // Each root intermediate lives from its producer's nest to the end of the function.
  Stmt result;
  for (auto it = nests.rbegin(); it != nests.rend(); ++it) {
    result = result.defined() ? Block::make({it->second, result}) : it->second;
    const Tensor &t = it->first->tensor;
    if (!w.is_output(t)) {
      std::vector<Range> region;
      for (auto e : t->shape) region.push_back({Expr(int64_t(0)), Expr(e)});
      result = Realize::make(t, region, it->first->scope, result, it->first->row_pad);
    }
  }
  return result;
}

Stmt stage_to_loops(const sched::Schedule &schedule, const sched::Stage &stage) {
  Context ctx = make_context(schedule);
  return NestBuilder(stage, ctx, full_range(stage)).build();
}

} // namespace tessel::lower
