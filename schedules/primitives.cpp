#include "schedules/primitives.h"

#include "ir/affine.h"
#include "ir/op.h"
#include "ir/visitor.h"
#include "schedules/intrinsics.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <unordered_map>

namespace tessel::sched {

namespace {

std::string stage_names(const Schedule &s) {
  std::string names;
  for (auto &x : s.stages) names += (names.empty() ? "" : ", ") + x.tensor->name;
  return names;
}

Expected<Stage *> get_stage(Schedule &s, const std::string &name, const char *prim) {
  Stage *st = s.find(name);
  if (!st) return make_error(std::string(prim) + ": no stage named '" + name + "' (stages: " + stage_names(s) + ")");
  return st;
}

Status check_leaf(const Stage &st, int loop, const char *prim) {
  if (st.attach == Attach::Inline)
    return Status::error(std::string(prim) + ": stage " + st.tensor->name + " is inlined and has no loops");
  if (loop < 0 || loop >= int(st.loops.size()))
    return Status::error(std::string(prim) + ": stage " + st.tensor->name + " has no loop #" + std::to_string(loop) +
                         " (it has " + std::to_string(st.loops.size()) + ")");
  if (!st.is_leaf(loop))
    return Status::error(std::string(prim) + ": loop " + st.loops[loop].name + " of " + st.tensor->name +
                         " was already split or fused; use the loops it became");
  return Status::ok();
}

void record(Schedule &s, std::string op, std::string stage, std::vector<int64_t> ints, std::string str = "") {
  s.trace.push_back(Step{std::move(op), std::move(stage), std::move(ints), std::move(str)});
}

std::string unique_name(const Schedule &s, const std::string &base) {
  std::set<std::string> used;
  for (auto &t : s.workload.inputs) used.insert(t->name);
  for (auto &st : s.stages) used.insert(st.tensor->name);
  std::string n = base;
  for (int i = 1; used.count(n); ++i) n = base + "_" + std::to_string(i);
  return n;
}

bool reads(const ir::Expr &body, const ir::Tensor &t) { return ir::reads_tensor(body, t.get()); }

// Rewrites reads of tensors per `map` (old node -> new node or a rewrite
// function) in every stage from `first` on, re-creating the nodes that change
// and, transitively, their consumers; keeps the workload's lists in step.
class GraphRewriter : public ir::IRMutator {
public:
  using Rewrite = std::function<ir::Expr(const ir::TensorRead *)>;
  std::unordered_map<const ir::TensorNode *, Rewrite> rewrites;
  using IRMutator::mutate;

  void run(Schedule &s, size_t first) {
    for (size_t i = first; i < s.stages.size(); ++i) rewrite_stage(s, s.stages[i]);
  }

  // Rewrites one stage; when it changes, later readers of it are redirected too.
  void rewrite_stage(Schedule &s, Stage &st) {
    ir::Expr body = mutate(st.tensor->body);
    if (body.same_as(st.tensor->body)) return;
    auto node = std::make_shared<ir::TensorNode>(*st.tensor);
    node->body = body;
    ir::Tensor old = st.tensor;
    ir::Tensor replacement = node;
    replace_in(s.workload.stages, old, replacement);
    replace_in(s.workload.outputs, old, replacement);
    st.tensor = replacement;
    rewrites[old.get()] = [replacement](const ir::TensorRead *r) {
      return ir::TensorRead::make(replacement, r->indices);
    };
  }

protected:
  ir::Expr visit(const ir::TensorRead *op, const ir::Expr &e) override {
    ir::Expr r = IRMutator::visit(op, e);
    auto *read = r.as<ir::TensorRead>();
    auto it = rewrites.find(read->tensor.get());
    return it == rewrites.end() ? r : it->second(read);
  }

private:
  static void replace_in(std::vector<ir::Tensor> &v, const ir::Tensor &old, const ir::Tensor &n) {
    for (auto &t : v)
      if (t == old) t = n;
  }
};

size_t stage_index(const Schedule &s, const Stage *st) { return size_t(st - s.stages.data()); }

// A Layout applied to a tensor shape: checks it, and maps indices both ways.
struct BlockedLayout {
  int rank = 0;
  Layout l;
  std::vector<int64_t> expanded; // original dims with `dim` -> blocks, then the block
  std::vector<int64_t> shape;    // expanded, permuted
  int64_t extent = 0;            // of the blocked dimension

  static Expected<BlockedLayout> make(const std::vector<int64_t> &shape, Layout l, const std::string &what,
                                      const char *prim) {
    BlockedLayout b;
    b.rank = int(shape.size());
    if (l.dim < 0 || l.dim >= b.rank)
      return make_error(std::string(prim) + ": " + what + " has " + std::to_string(b.rank) + " dimensions; dim " +
                        std::to_string(l.dim) + " does not exist");
    if (l.block < 1 || l.block > shape[l.dim])
      return make_error(std::string(prim) + ": block " + std::to_string(l.block) + " must be in 1.." +
                        std::to_string(shape[l.dim]) + " (the extent of dimension " + std::to_string(l.dim) + ")");
    if (l.perm.empty())
      for (int i = 0; i <= b.rank; ++i) l.perm.push_back(i);
    std::vector<int64_t> sorted = l.perm;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i <= b.rank; ++i)
      if (int(sorted.size()) != b.rank + 1 || sorted[i] != i)
        return make_error(std::string(prim) + ": perm must be a permutation of 0.." + std::to_string(b.rank) +
                          " (the blocked tensor has " + std::to_string(b.rank + 1) + " dimensions)");
    b.l = l;
    b.extent = shape[l.dim];
    b.expanded = shape;
    b.expanded[l.dim] = (b.extent + l.block - 1) / l.block;
    b.expanded.push_back(l.block);
    for (int k = 0; k <= b.rank; ++k) b.shape.push_back(b.expanded[l.perm[k]]);
    return b;
  }
  // Original indices -> blocked indices.
  std::vector<ir::Expr> to_blocked(const std::vector<ir::Expr> &idx) const {
    std::vector<ir::Expr> e(idx.begin(), idx.end());
    ir::Expr i = e[l.dim];
    e[l.dim] = i / ir::Expr(l.block);
    e.push_back(i % ir::Expr(l.block));
    std::vector<ir::Expr> out;
    for (int k = 0; k <= rank; ++k) out.push_back(e[l.perm[k]]);
    return out;
  }
  // Blocked-axis variables -> the original index each dimension stands for.
  std::vector<ir::Expr> to_original(const std::vector<ir::Expr> &blocked_vars) const {
    std::vector<ir::Expr> e(rank + 1);
    for (int k = 0; k <= rank; ++k) e[l.perm[k]] = blocked_vars[k];
    std::vector<ir::Expr> orig(e.begin(), e.begin() + rank);
    orig[l.dim] = e[l.dim] * ir::Expr(l.block) + e[rank];
    return orig;
  }
};

// Refuses to split or fuse away a loop that other stages are computed at.
Status check_not_attach_point(const Schedule &s, const std::string &name, int loop, const char *prim) {
  for (auto &other : s.stages)
    if (other.attach == Attach::At && other.attach_stage == name && other.attach_loop == loop)
      return Status::error(std::string(prim) + ": stage " + other.tensor->name + " is computed at loop " +
                           s.find(name)->loops[loop].name + " of " + name + "; " + prim + " before compute_at");
  return Status::ok();
}

// Whether stage `a` is computed, directly or through a chain of attachments, inside stage `b`.
bool nested_in(const Schedule &s, const std::string &a, const std::string &b) {
  std::string cur = a;
  for (size_t hops = 0; hops <= s.stages.size(); ++hops) {
    const Stage *st = s.find(cur);
    if (!st || st->attach != Attach::At) return false;
    if (st->attach_stage == b) return true;
    cur = st->attach_stage;
  }
  return true; // a cycle: treat as nested
}

// Refuses to rebuild a stage's loops while other stages are attached to them.
Status check_nothing_attached(const Schedule &s, const std::string &name, const char *prim) {
  for (auto &other : s.stages)
    if (other.attach == Attach::At && other.attach_stage == name)
      return Status::error(std::string(prim) + ": stage " + other.tensor->name + " is computed at a loop of " + name +
                           "; apply " + prim + " before compute_at / reverse_compute_at");
  return Status::ok();
}

// The stages that read t, looking through inlined stages (which exist only
// inside their consumers' expressions).
std::vector<const Stage *> consumers_of(const Schedule &s, const ir::Tensor &t) {
  std::vector<const Stage *> out;
  for (auto &st : s.stages) {
    if (!st.tensor->body.defined() || !reads(st.tensor->body, t)) continue;
    if (st.attach != Attach::Inline) {
      if (std::find(out.begin(), out.end(), &st) == out.end()) out.push_back(&st);
      continue;
    }
    for (const Stage *c : consumers_of(s, st.tensor))
      if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

// A stage computed inside loop L of stage C exists only within L's body, for the region that body reads:
// every stage that reads it must be C itself or computed at that same loop too (softmax's exps, read by
// the row sum and the output, computed per row next to the row sum). Checked after each change of where
// a stage is computed, so that no later step can leave a reader outside.
Status check_attachments(const Schedule &s, const char *prim) {
  for (auto &x : s.stages) {
    if (x.attach != Attach::At || x.attach_after) continue;
    const Stage *c = s.find(x.attach_stage);
    for (const Stage *u : consumers_of(s, x.tensor)) {
      if (u == c || (u->attach == Attach::At && !u->attach_after && u->attach_stage == x.attach_stage &&
                     u->attach_loop == x.attach_loop))
        continue;
      std::string loop = c && x.attach_loop >= 0 && x.attach_loop < int(c->loops.size())
                             ? c->loops[size_t(x.attach_loop)].name
                             : std::to_string(x.attach_loop);
      return Status::error(std::string(prim) + ": " + x.tensor->name + " is computed inside loop " + loop + " of " +
                           x.attach_stage + ", but " + u->tensor->name + " reads it from outside that loop; compute " +
                           u->tensor->name +
                           " at the same loop first (stages read by several others need every reader there)");
    }
  }
  return Status::ok();
}

Status annotate(Schedule &s, const std::string &name, int loop, ir::ForKind kind, const char *prim,
                const std::string &tag = "") {
  auto st = get_stage(s, name, prim);
  if (!st) return Status::error(st.error());
  Stage &S = **st;
  if (Status c = check_leaf(S, loop, prim); !c) return c;
  Loop &L = S.loops[loop];
  // A reduction loop may be bound to threads (a cross-thread reduction: the
  // threads' partial results are combined), never run as parallel CPU
  // iterations, vector lanes, blocks or virtual threads writing one element.
  if ((kind == ir::ForKind::Parallel || kind == ir::ForKind::Vectorized || kind == ir::ForKind::GpuBlock ||
       kind == ir::ForKind::Vthread) &&
      L.is_reduce)
    return Status::error(std::string(prim) + ": loop " + L.name + " of " + S.tensor->name +
                         " is a reduction: its iterations accumulate into the same element" +
                         (kind == ir::ForKind::GpuBlock || kind == ir::ForKind::Vthread
                              ? " (bind it to threadIdx for a cross-thread reduction)"
                              : ""));
  if (kind == ir::ForKind::Parallel)
    for (int l : S.leaves)
      if (l != loop && S.loops[l].kind == ir::ForKind::Parallel)
        return Status::error("parallel: stage " + S.tensor->name + " already has parallel loop " + S.loops[l].name +
                             "; fuse the loops to parallelize both");
  if (kind == ir::ForKind::Vectorized) {
    if (L.extent < 2 || L.extent > 64)
      return Status::error("vectorize: loop " + L.name + " has extent " + std::to_string(L.extent) +
                           "; vector loops need 2..64 lanes (split it first)");
    for (int l : S.leaves)
      if (l != loop && S.loops[l].kind == ir::ForKind::Vectorized)
        return Status::error("vectorize: stage " + S.tensor->name + " already has vector loop " + S.loops[l].name);
  }
  if (kind == ir::ForKind::Unrolled && L.extent > 1024)
    return Status::error("unroll: loop " + L.name + " has extent " + std::to_string(L.extent) +
                         "; unrolling is limited to 1024 iterations (split it first)");
  if (L.kind != ir::ForKind::Serial && L.kind != kind)
    return Status::error(std::string(prim) + ": loop " + L.name + " of " + S.tensor->name + " is already " +
                         ir::for_kind_name(L.kind));
  L.kind = kind;
  L.thread_tag = tag;
  return Status::ok();
}

} // namespace

Expected<SplitResult> split(Schedule &s, const std::string &name, int loop, int64_t factor) {
  auto st = get_stage(s, name, "split");
  if (!st) return make_error(st.error());
  Stage &S = **st;
  if (Status c = check_leaf(S, loop, "split"); !c) return make_error(c.message());
  if (Status c = check_not_attach_point(s, name, loop, "split"); !c) return make_error(c.message());
  if (factor <= 0) return make_error("split: factor must be positive, got " + std::to_string(factor));
  Loop parent = S.loops[loop];
  if (parent.kind != ir::ForKind::Serial)
    return make_error("split: loop " + parent.name + " is already " + ir::for_kind_name(parent.kind) +
                      "; split before annotating");
  if (factor > parent.extent)
    return make_error("split: factor " + std::to_string(factor) + " exceeds the extent " +
                      std::to_string(parent.extent) + " of loop " + parent.name);
  int outer = int(S.loops.size()), inner = outer + 1;
  S.loops.push_back(Loop{parent.name + ".o", (parent.extent + factor - 1) / factor, parent.is_reduce});
  S.loops.push_back(Loop{parent.name + ".i", factor, parent.is_reduce});
  S.relations.push_back(Relation{Relation::kSplit, Split{loop, outer, inner, factor}, {}});
  int pos = S.leaf_position(loop);
  S.leaves[pos] = outer;
  S.leaves.insert(S.leaves.begin() + pos + 1, inner);
  record(s, "split", name, {loop, factor});
  return SplitResult{outer, inner};
}

Expected<SplitResult> split_exact(Schedule &s, const std::string &name, int loop, int64_t factor) {
  auto st = get_stage(s, name, "split_exact");
  if (!st) return make_error(st.error());
  if (Status c = check_leaf(**st, loop, "split_exact"); !c) return make_error(c.message());
  int64_t extent = (*st)->loops[loop].extent;
  if (factor > 0 && extent % factor != 0)
    return make_error("split_exact: factor " + std::to_string(factor) + " does not divide the extent " +
                      std::to_string(extent) + " of loop " + (*st)->loops[loop].name +
                      " (use split to allow a guarded tail)");
  auto r = split(s, name, loop, factor);
  if (r) s.trace.back() = Step{"split_exact", name, {loop, factor}, ""};
  return r;
}

Expected<SplitResult> split_nparts(Schedule &s, const std::string &name, int loop, int64_t nparts) {
  auto st = get_stage(s, name, "split_nparts");
  if (!st) return make_error(st.error());
  if (Status c = check_leaf(**st, loop, "split_nparts"); !c) return make_error(c.message());
  if (nparts <= 0) return make_error("split_nparts: nparts must be positive, got " + std::to_string(nparts));
  int64_t extent = (*st)->loops[loop].extent;
  if (nparts > extent)
    return make_error("split_nparts: " + std::to_string(nparts) + " parts exceed the extent " + std::to_string(extent) +
                      " of loop " + (*st)->loops[loop].name);
  auto r = split(s, name, loop, (extent + nparts - 1) / nparts);
  if (r) s.trace.back() = Step{"split_nparts", name, {loop, nparts}, ""};
  return r;
}

Expected<int> fuse(Schedule &s, const std::string &name, int outer, int inner) {
  auto st = get_stage(s, name, "fuse");
  if (!st) return make_error(st.error());
  Stage &S = **st;
  if (Status c = check_leaf(S, outer, "fuse"); !c) return make_error(c.message());
  if (Status c = check_leaf(S, inner, "fuse"); !c) return make_error(c.message());
  if (Status c = check_not_attach_point(s, name, outer, "fuse"); !c) return make_error(c.message());
  if (Status c = check_not_attach_point(s, name, inner, "fuse"); !c) return make_error(c.message());
  if (S.leaf_position(inner) != S.leaf_position(outer) + 1)
    return make_error("fuse: loops " + S.loops[outer].name + " and " + S.loops[inner].name + " of " + name +
                      " are not adjacent (outer directly above inner); reorder them first");
  if (S.loops[outer].is_reduce != S.loops[inner].is_reduce)
    return make_error("fuse: cannot fuse spatial loop with reduction loop (" + S.loops[outer].name + ", " +
                      S.loops[inner].name + ")");
  if (S.loops[outer].kind != ir::ForKind::Serial || S.loops[inner].kind != ir::ForKind::Serial)
    return make_error("fuse: fuse loops before annotating them (" + S.loops[outer].name + ", " + S.loops[inner].name +
                      ")");
  int fused = int(S.loops.size());
  S.loops.push_back(Loop{S.loops[outer].name + "." + S.loops[inner].name + ".f",
                         S.loops[outer].extent * S.loops[inner].extent, S.loops[outer].is_reduce});
  S.relations.push_back(Relation{Relation::kFuse, {}, Fuse{outer, inner, fused}});
  int pos = S.leaf_position(outer);
  S.leaves.erase(S.leaves.begin() + pos, S.leaves.begin() + pos + 2);
  S.leaves.insert(S.leaves.begin() + pos, fused);
  record(s, "fuse", name, {outer, inner});
  return fused;
}

Status reorder(Schedule &s, const std::string &name, const std::vector<int> &order) {
  auto st = get_stage(s, name, "reorder");
  if (!st) return Status::error(st.error());
  Stage &S = **st;
  if (order.empty()) return Status::error("reorder: no loops given");
  std::set<int> seen;
  std::vector<int> positions;
  for (int l : order) {
    if (Status c = check_leaf(S, l, "reorder"); !c) return c;
    if (!seen.insert(l).second) return Status::error("reorder: loop " + S.loops[l].name + " listed twice");
    positions.push_back(S.leaf_position(l));
  }
  // Stages attached inside this one name its loops: moving them would move the attachment.
  for (auto &other : s.stages)
    if (other.attach == Attach::At && other.attach_stage == name && seen.count(other.attach_loop))
      return Status::error("reorder: stage " + other.tensor->name + " is computed at loop " +
                           S.loops[other.attach_loop].name + " of " + name + "; reorder before compute_at");
  std::sort(positions.begin(), positions.end());
  for (size_t i = 0; i < order.size(); ++i) S.leaves[positions[i]] = order[i];
  record(s, "reorder", name, std::vector<int64_t>(order.begin(), order.end()));
  return Status::ok();
}

Status parallel(Schedule &s, const std::string &n, int loop) {
  Status r = annotate(s, n, loop, ir::ForKind::Parallel, "parallel");
  if (r) record(s, "parallel", n, {loop});
  return r;
}
Status vectorize(Schedule &s, const std::string &n, int loop) {
  Status r = annotate(s, n, loop, ir::ForKind::Vectorized, "vectorize");
  if (r) record(s, "vectorize", n, {loop});
  return r;
}
Status unroll(Schedule &s, const std::string &n, int loop) {
  Status r = annotate(s, n, loop, ir::ForKind::Unrolled, "unroll");
  if (r) record(s, "unroll", n, {loop});
  return r;
}
Status bind(Schedule &s, const std::string &n, int loop, const std::string &tag) {
  static const std::set<std::string> kTags = {"blockIdx.x",  "blockIdx.y",  "blockIdx.z", "threadIdx.x",
                                              "threadIdx.y", "threadIdx.z", "vthread"};
  if (!kTags.count(tag))
    return Status::error("bind: unknown thread tag '" + tag +
                         "' (expected blockIdx.x|y|z, threadIdx.x|y|z or vthread)");
  auto st = get_stage(s, n, "bind");
  if (!st) return Status::error(st.error());
  for (int l : (*st)->leaves)
    if (l != loop && (*st)->loops[l].thread_tag == tag && tag != "vthread")
      return Status::error("bind: " + tag + " is already bound to loop " + (*st)->loops[l].name + " of " + n);
  if (tag == "threadIdx.x")
    for (auto &L : (*st)->loops)
      if (const TensorIntrinsic *in = find_tensor_intrinsic(L.tensorize); in && in->warp_level)
        return Status::error("bind: " + n + " runs " + in->name +
                             " on whole warps, whose lanes are threadIdx.x; "
                             "bind its loops to threadIdx.y or threadIdx.z");
  ir::ForKind kind = tag == "vthread"                ? ir::ForKind::Vthread
                     : tag.rfind("blockIdx", 0) == 0 ? ir::ForKind::GpuBlock
                                                     : ir::ForKind::GpuThread;
  Status r = annotate(s, n, loop, kind, "bind", tag);
  if (r) record(s, "bind", n, {loop}, tag);
  return r;
}

Status auto_unroll(Schedule &s, const std::string &name, int loop, int64_t max_step) {
  auto st = get_stage(s, name, "auto_unroll");
  if (!st) return Status::error(st.error());
  if (Status c = check_leaf(**st, loop, "auto_unroll"); !c) return c;
  if (max_step < 0 || max_step > 4096)
    return Status::error("auto_unroll: max_step must be in 0..4096, got " + std::to_string(max_step));
  (*st)->loops[loop].auto_unroll_max_step = max_step;
  record(s, "auto_unroll", name, {loop, max_step});
  return Status::ok();
}

Status reverse_compute_at(Schedule &s, const std::string &name, const std::string &producer, int loop) {
  auto st = get_stage(s, name, "reverse_compute_at");
  if (!st) return Status::error(st.error());
  auto pt = get_stage(s, producer, "reverse_compute_at");
  if (!pt) return Status::error(pt.error());
  Stage &E = **st, &P = **pt;
  if (&E == &P) return Status::error("reverse_compute_at: a stage cannot be computed inside itself");
  if (E.tensor->body.as<ir::Reduce>())
    return Status::error("reverse_compute_at: " + name +
                         " is a reduction; only elementwise consumers can follow a tile");
  if (!s.workload.is_output(E.tensor) || !consumers_of(s, E.tensor).empty())
    return Status::error("reverse_compute_at: " + name + " must be an output that no other stage reads");
  if (E.attach != Attach::Root || !E.relations.empty())
    return Status::error("reverse_compute_at: apply it to " + name + " before transforming or attaching it");
  if (E.tensor->shape != P.tensor->shape)
    return Status::error("reverse_compute_at: " + name + " and " + producer + " differ in shape");
  bool reads_p = false;
  std::function<bool(const ir::Expr &)> identity_reads = [&](const ir::Expr &body) {
    struct Check : ir::IRVisitor {
      using IRVisitor::visit;
      const ir::TensorNode *target;
      const std::vector<ir::IterVar> *axes;
      bool ok = true, found = false;
      void visit(const ir::TensorRead *op) override {
        if (op->tensor.get() == target) {
          found = true;
          for (size_t d = 0; d < op->indices.size(); ++d) ok &= op->indices[d].same_as((*axes)[d].var);
        }
        IRVisitor::visit(op);
      }
    } c;
    c.target = P.tensor.get();
    c.axes = &E.tensor->axes;
    body.accept(&c);
    reads_p = c.found;
    return c.ok;
  };
  if (!identity_reads(E.tensor->body) || !reads_p)
    return Status::error("reverse_compute_at: " + name + " must read " + producer + " element for element (" +
                         producer + "[i, j, ...] at its own indices)");
  // Whatever else the epilogue reads must exist when the producer's tile is done:
  // inputs, or root stages computed before the producer (so not after it, nor from it).
  size_t p_index = stage_index(s, &P);
  for (auto *r : ir::collect_reads(E.tensor->body)) {
    if (r->tensor == P.tensor || r->tensor->is_input()) continue;
    const Stage *o = s.find(r->tensor);
    if (!o || o->attach == Attach::Inline) continue; // inlined: its own reads are checked below
    if (stage_index(s, o) >= p_index || o->attach != Attach::Root)
      return Status::error("reverse_compute_at: " + name + " also reads " + r->tensor->name +
                           ", which is not computed yet when a tile of " + producer + " is done");
  }
  if (nested_in(s, producer, name))
    return Status::error("reverse_compute_at: " + producer + " is itself computed inside " + name +
                         "; that would be a cycle");
  if (Status c = check_leaf(P, loop, "reverse_compute_at"); !c) return c;
  int pos = P.leaf_position(loop);
  for (int p = 0; p <= pos; ++p)
    if (P.loops[P.leaves[p]].is_reduce)
      return Status::error("reverse_compute_at: loop " + P.loops[loop].name + " of " + producer +
                           " is inside a reduction loop; " + name + " would read unfinished values");
  ir::ForKind k = P.loops[loop].kind;
  if (k == ir::ForKind::Vectorized || k == ir::ForKind::Unrolled)
    return Status::error("reverse_compute_at: loop " + P.loops[loop].name + " is " + ir::for_kind_name(k));
  E.attach = Attach::At;
  E.attach_stage = producer;
  E.attach_loop = loop;
  E.attach_after = true;
  record(s, "reverse_compute_at", name, {loop}, producer);
  return Status::ok();
}

Expected<std::string> rfactor(Schedule &s, const std::string &name, int loop, bool partials_last) {
  auto st = get_stage(s, name, "rfactor");
  if (!st) return make_error(st.error());
  Stage &S = **st;
  auto *red = S.tensor->body.as<ir::Reduce>();
  if (!red) return make_error("rfactor: " + name + " is not a reduction");
  if (Status c = check_leaf(S, loop, "rfactor"); !c) return make_error(c.message());
  if (!S.loops[loop].is_reduce) return make_error("rfactor: loop " + S.loops[loop].name + " is not a reduction loop");
  if (S.attach != Attach::Root ||
      std::any_of(S.loops.begin(), S.loops.end(), [](const Loop &l) { return l.kind != ir::ForKind::Serial; }))
    return make_error("rfactor: apply it to " + name + " before annotating or attaching it");
  if (Status c = check_nothing_attached(s, name, "rfactor"); !c) return make_error(c.message());
  int ns = S.num_spatial();
  int root = loop;
  int64_t factor = S.loops[loop].extent;
  for (auto &r : S.relations) {
    if (r.kind == Relation::kSplit && r.split.inner == loop && r.split.parent >= ns &&
        r.split.parent < int(S.tensor->axes.size() + red->axes.size()) && S.relations.size() == 1) {
      root = r.split.parent;
    } else {
      return make_error("rfactor: " + name + " may only have the split of one reduction axis before rfactor");
    }
  }
  int q = root - ns; // which reduction axis
  int64_t extent = red->axes[q].extent;
  if (extent % factor != 0)
    return make_error("rfactor: the factor " + std::to_string(factor) + " does not divide the extent " +
                      std::to_string(extent) + " of " + S.loops[root].name + "; pick a divisor");
  const ir::TensorNode &T = *S.tensor;
  std::string rf_name = unique_name(s, name + "_rf");
  auto rf = std::make_shared<ir::TensorNode>();
  rf->name = rf_name;
  rf->dtype = T.dtype;
  ir::Expr vi = ir::Var::make(ir::DataType::index(), S.loops[loop].name);
  if (!partials_last) rf->axes.push_back(ir::IterVar{vi, factor, false}), rf->shape.push_back(factor);
  std::vector<std::pair<ir::Expr, ir::Expr>> m;
  std::vector<ir::Expr> spatial;
  for (auto &ax : T.axes) {
    ir::Expr v = ir::Var::make(ir::DataType::index(), ax.var.as<ir::Var>()->name);
    rf->axes.push_back(ir::IterVar{v, ax.extent, false});
    rf->shape.push_back(ax.extent);
    m.push_back({ax.var, v});
    spatial.push_back(ax.var);
  }
  if (partials_last) rf->axes.push_back(ir::IterVar{vi, factor, false}), rf->shape.push_back(factor);
  std::vector<ir::IterVar> raxes;
  for (size_t r = 0; r < red->axes.size(); ++r) {
    const ir::IterVar &ax = red->axes[r];
    if (int(r) == q) {
      ir::Expr vo = ir::Var::make(ir::DataType::index(), ax.var.as<ir::Var>()->name + ".o");
      raxes.push_back(ir::IterVar{vo, extent / factor, true});
      m.push_back({ax.var, vo * ir::Expr(factor) + vi});
    } else {
      ir::Expr v = ir::Var::make(ir::DataType::index(), ax.var.as<ir::Var>()->name);
      raxes.push_back(ir::IterVar{v, ax.extent, true});
      m.push_back({ax.var, v});
    }
  }
  rf->body = ir::Reduce::make(red->op, ir::substitute(red->source, m), raxes);
  auto primary = std::make_shared<ir::TensorNode>(T);
  ir::Expr vk = ir::Var::make(ir::DataType::index(), S.loops[loop].name);
  std::vector<ir::Expr> idx = spatial;
  if (partials_last)
    idx.push_back(vk);
  else
    idx.insert(idx.begin(), vk);
  primary->body = ir::Reduce::make(red->op, ir::TensorRead::make(rf, idx), {ir::IterVar{vk, factor, true}});

  size_t at = stage_index(s, &S);
  ir::Tensor old = S.tensor;
  s.stages[at] = make_stage(primary);
  s.stages.insert(s.stages.begin() + long(at), make_stage(rf));
  auto &ws = s.workload.stages;
  auto it = std::find(ws.begin(), ws.end(), old);
  *it = primary;
  ws.insert(it, rf);
  for (auto &o : s.workload.outputs)
    if (o == old) o = primary;
  GraphRewriter g;
  g.rewrites[old.get()] = [primary](const ir::TensorRead *r) { return ir::TensorRead::make(primary, r->indices); };
  g.run(s, at + 2);
  record(s, partials_last ? "rfactor_last" : "rfactor", name, {loop});
  return rf_name;
}

namespace {

// What the schedule knows of a tensorized tile's strides: each tile loop comes
// from one axis through splits (its coefficient in the axis is the product of
// the split factors inside it), and accesses are row-major over their tensors'
// shapes. An error when no assignment of roles i, j, k fits the intrinsic's
// C[i, j] += A[i, k] * B[k, j] with B and C contiguous along j; ok when one
// does, or when the accesses are beyond this analysis (fused loops, blocked
// layouts read through / and %), which lowering checks on the final indices.
Status check_tile_strides(const Stage &S, int pos, const TensorIntrinsic &in, const ir::TensorRead *ra,
                          const ir::TensorRead *rb) {
  auto *red = S.tensor->body.as<ir::Reduce>();
  int ns = S.num_spatial();
  struct TileLoop {
    const Loop *loop;
    ir::Expr axis; // the original axis variable it comes from
    int64_t coef;  // its coefficient in that axis
  };
  std::vector<TileLoop> tile;
  for (int p = pos; p < pos + 3; ++p) {
    int cur = S.leaves[size_t(p)];
    TileLoop t{&S.loops[size_t(cur)], ir::Expr(), 1};
    if (t.loop->extent < 2) return Status::ok(); // such loops vanish; lowering decides
    for (bool more = true; more;) {
      more = false;
      for (auto &r : S.relations) {
        if (r.kind == Relation::kFuse && r.fuse.fused == cur) return Status::ok();
        if (r.kind == Relation::kSplit && (r.split.outer == cur || r.split.inner == cur)) {
          if (r.split.outer == cur) t.coef *= r.split.factor;
          cur = r.split.parent;
          more = true;
          break;
        }
      }
    }
    t.axis = cur < ns ? S.tensor->axes[size_t(cur)].var : red->axes[size_t(cur - ns)].var;
    tile.push_back(t);
  }
  std::vector<ir::Expr> axes;
  for (auto &t : tile) axes.push_back(t.axis);
  // Per access: the coefficient of each tile loop in its flattened index.
  auto strides = [&](const std::vector<int64_t> &shape,
                     const std::vector<ir::Expr> &index) -> std::optional<std::vector<int64_t>> {
    std::vector<int64_t> c(3, 0);
    int64_t stride = 1;
    for (size_t d = index.size(); d-- > 0;) {
      auto f = ir::affine(index[d], axes);
      if (!f) return std::nullopt;
      for (size_t l = 0; l < 3; ++l) c[l] += stride * f->coefficient(tile[l].axis) * tile[l].coef;
      stride *= shape[d];
    }
    return c;
  };
  std::vector<ir::Expr> own;
  for (auto &ax : S.tensor->axes) own.push_back(ax.var);
  auto cc = strides(S.tensor->shape, own), c0 = strides(ra->tensor->shape, ra->indices),
       c1 = strides(rb->tensor->shape, rb->indices);
  if (!cc || !c0 || !c1) return Status::ok();
  for (int k = 0; k < 3; ++k) {
    if (!tile[size_t(k)].loop->is_reduce) continue;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        if (i == j || i == k || j == k) continue;
        if (in.fixed_shape() && (tile[size_t(i)].loop->extent != in.m || tile[size_t(j)].loop->extent != in.n))
          continue;
        for (int swap = 0; swap < 2; ++swap) {
          const std::vector<int64_t> &a = swap ? *c1 : *c0, &b = swap ? *c0 : *c1;
          TileStrides st{(*cc)[size_t(j)], (*cc)[size_t(k)], a[size_t(j)], b[size_t(i)], b[size_t(j)]};
          if (fits_intrinsic_layout(st)) return Status::ok();
        }
      }
  }
  auto show = [&](const std::string &what, const std::vector<int64_t> &c) {
    std::string out = what + " (";
    for (size_t l = 0; l < 3; ++l) out += (l ? ", " : "") + std::to_string(c[l]);
    return out + ")";
  };
  std::string loops;
  for (auto &t : tile) loops += (loops.empty() ? "" : ", ") + t.loop->name;
  return Status::error("tensorize: the tile of " + S.tensor->name + " does not fit " + in.name +
                       ": no choice of i, j, k among its loops (" + loops +
                       ") makes it C[i, j] += A[i, k] * B[k, j] with B and C contiguous along j; strides per loop: " +
                       show(S.tensor->name, *cc) + ", " + show(ra->tensor->name, *c0) + ", " +
                       show(rb->tensor->name, *c1));
}

} // namespace

Status tensorize(Schedule &s, const std::string &name, int loop, const std::string &intrinsic) {
  const TensorIntrinsic *intrin = find_tensor_intrinsic(intrinsic);
  if (!intrin) {
    std::string names;
    for (auto &t : tensor_intrinsics()) names += (names.empty() ? "" : ", ") + t.name;
    return Status::error("tensorize: unknown intrinsic '" + intrinsic + "' (known: " + names + ")");
  }
  auto st = get_stage(s, name, "tensorize");
  if (!st) return Status::error(st.error());
  Stage &S = **st;
  if (Status c = check_leaf(S, loop, "tensorize"); !c) return c;
  auto operands = product_operands(S.tensor);
  if (!operands)
    return Status::error("tensorize: " + name + " is not a sum of products of two tensor reads, which " + intrinsic +
                         " computes");
  const ir::TensorRead *ra = operands->a, *rb = operands->b;
  if (S.tensor->dtype != intrin->c || ra->type != intrin->a || rb->type != intrin->b)
    return Status::error("tensorize: " + intrinsic + " computes " + intrin->c.str() + " += " + intrin->a.str() + " * " +
                         intrin->b.str() + "; " + name + " is " + S.tensor->dtype.str() + " += " + ra->type.str() +
                         " * " + rb->type.str());
  if (intrin->warp_level && S.scope != ir::MemoryScope::Fragment)
    return Status::error("tensorize: " + intrinsic +
                         " is a warp-level tensor-core operation whose accumulator is a "
                         "fragment; cache_write the contraction with scope fragment and tensorize the cache (" +
                         name + " is " + ir::memory_scope_name(S.scope) + ")");
  if (!intrin->warp_level && S.scope == ir::MemoryScope::Fragment)
    return Status::error("tensorize: " + name +
                         " is a fragment, which only warp-level tensor intrinsics (wmma_*) "
                         "compute; " +
                         intrinsic + " is a " + intrin->target_kind + " intrinsic");
  int pos = S.leaf_position(loop);
  if (int(S.leaves.size()) - pos != 3)
    return Status::error("tensorize: the tile must be loop " + S.loops[loop].name +
                         " and exactly two loops inside it; there are " + std::to_string(S.leaves.size() - pos - 1) +
                         " inside");
  int spatial = 0, reduce = 0;
  for (int p = pos; p < int(S.leaves.size()); ++p) {
    const Loop &L = S.loops[S.leaves[p]];
    (L.is_reduce ? reduce : spatial)++;
    if (L.kind != ir::ForKind::Serial || !L.tensorize.empty())
      return Status::error("tensorize: loop " + L.name + " of the tile is " + ir::for_kind_name(L.kind) +
                           "; the intrinsic runs the whole tile");
  }
  if (spatial != 2 || reduce != 1)
    return Status::error("tensorize: the tile needs two spatial loops and one reduction loop, it has " +
                         std::to_string(spatial) + " and " + std::to_string(reduce));
  if (intrin->fixed_shape()) { // the tile's extents must be the instruction's m, n (either order) and k
    std::vector<int64_t> sp;
    int64_t rk = 0;
    for (int p = pos; p < int(S.leaves.size()); ++p) {
      const Loop &L = S.loops[S.leaves[p]];
      if (L.is_reduce)
        rk = L.extent;
      else
        sp.push_back(L.extent);
    }
    std::sort(sp.begin(), sp.end());
    std::vector<int64_t> want{intrin->m, intrin->n};
    std::sort(want.begin(), want.end());
    if (sp != want || rk != intrin->k)
      return Status::error("tensorize: " + intrinsic + " computes " + intrin->shape_str() + " tiles; the tile of " +
                           name + " is " + std::to_string(sp[0]) + " x " + std::to_string(sp[1]) + " x " +
                           std::to_string(rk) + " (split_exact its loops to those extents)");
  }
  if (intrin->warp_level)
    for (int p = 0; p < int(S.leaves.size()); ++p)
      if (S.loops[S.leaves[p]].thread_tag == "threadIdx.x")
        return Status::error("tensorize: " + intrinsic + " runs on a whole warp, whose lanes are threadIdx.x; loop " +
                             S.loops[S.leaves[p]].name + " of " + name +
                             " is bound to threadIdx.x (bind warps to threadIdx.y or threadIdx.z)");
  // The intrinsic accumulates: the zeroing of C must happen before the tile, which needs a
  // reduction loop at or above the tile's first loop (e.g. order the tile k, i, j).
  int first_reduce = 0;
  while (first_reduce < int(S.leaves.size()) && !S.loops[S.leaves[first_reduce]].is_reduce) ++first_reduce;
  if (first_reduce > pos)
    return Status::error("tensorize: the initialization of " + name + " would fall inside the tile; put a " +
                         "reduction loop first in the tile (e.g. reorder to k, i, j)");
  for (int p = pos; p < int(S.leaves.size()); ++p)
    if (Status c = check_not_attach_point(s, name, S.leaves[p], "tensorize"); !c) return c;
  for (auto &r : S.relations) // partial tiles would need guards inside the intrinsic's tile
    if (r.kind == Relation::kSplit && S.loops[r.split.parent].extent % r.split.factor != 0)
      return Status::error("tensorize: loop " + S.loops[r.split.parent].name + " is split with a tail (" +
                           std::to_string(S.loops[r.split.parent].extent) + " by " + std::to_string(r.split.factor) +
                           "); use split_exact");
  if (Status c = check_tile_strides(S, pos, *intrin, ra, rb); !c) return c;
  S.loops[loop].tensorize = intrinsic;
  record(s, "tensorize", name, {loop}, intrinsic);
  return Status::ok();
}

Status compute_inline(Schedule &s, const std::string &name) {
  auto st = get_stage(s, name, "compute_inline");
  if (!st) return Status::error(st.error());
  Stage &S = **st;
  if (S.tensor->body.as<ir::Reduce>())
    return Status::error("compute_inline: " + name + " is a reduction; only elementwise stages can be inlined");
  if (s.workload.is_output(S.tensor))
    return Status::error("compute_inline: " + name + " is an output of the workload and must be stored");
  if (S.prepack)
    return Status::error("compute_inline: " + name + " packs a constant ahead of time; it cannot be inlined");
  for (auto &other : s.stages)
    if (other.attach == Attach::At && other.attach_stage == name)
      return Status::error("compute_inline: stage " + other.tensor->name + " is computed inside " + name);
  Attach was = S.attach;
  S.attach = Attach::Inline;
  if (Status c = check_attachments(s, "compute_inline"); !c) {
    S.attach = was;
    return c;
  }
  record(s, "compute_inline", name, {});
  return Status::ok();
}

Status compute_at(Schedule &s, const std::string &name, const std::string &consumer, int loop) {
  auto st = get_stage(s, name, "compute_at");
  if (!st) return Status::error(st.error());
  auto ct = get_stage(s, consumer, "compute_at");
  if (!ct) return Status::error(ct.error());
  Stage &P = **st, &C = **ct;
  if (&P == &C) return Status::error("compute_at: a stage cannot be computed inside itself");
  if (s.workload.is_output(P.tensor))
    return Status::error("compute_at: " + name + " is an output of the workload; it has no consumer to be computed in");
  if (P.attach == Attach::Inline) return Status::error("compute_at: " + name + " is inlined");
  if (P.prepack) return Status::error("compute_at: " + name + " packs a constant ahead of time; it stays at the root");
  if (consumers_of(s, P.tensor).empty())
    return Status::error("compute_at: no stage reads " + name + "; there is nothing to compute it inside");
  if (nested_in(s, consumer, name))
    return Status::error("compute_at: " + consumer + " is itself computed inside " + name + "; that would be a cycle");
  if (Status c = check_leaf(C, loop, "compute_at"); !c) return c;
  ir::ForKind k = C.loops[loop].kind;
  if (k == ir::ForKind::Vectorized || k == ir::ForKind::Unrolled)
    return Status::error("compute_at: loop " + C.loops[loop].name + " of " + consumer + " is " + ir::for_kind_name(k) +
                         "; a stage can only be computed inside serial, parallel or "
                         "GPU-bound loops");
  Stage saved = P;
  P.attach = Attach::At;
  P.attach_stage = consumer;
  P.attach_loop = loop;
  P.attach_after = false;
  if (Status c = check_attachments(s, "compute_at"); !c) {
    P = std::move(saved);
    return c;
  }
  record(s, "compute_at", name, {loop}, consumer);
  return Status::ok();
}

Expected<std::string> cache_write(Schedule &s, const std::string &name, ir::MemoryScope scope, const Layout *layout) {
  auto st = get_stage(s, name, "cache_write");
  if (!st) return make_error(st.error());
  Stage &S = **st;
  if (!S.relations.empty() || S.attach != Attach::Root ||
      std::any_of(S.loops.begin(), S.loops.end(), [](const Loop &l) { return l.kind != ir::ForKind::Serial; }))
    return make_error("cache_write: apply it to " + name + " before transforming its loops or attaching it");
  if (Status c = check_nothing_attached(s, name, "cache_write"); !c) return make_error(c.message());
  if (scope == ir::MemoryScope::Fragment && (layout || !S.tensor->body.as<ir::Reduce>()))
    return make_error("cache_write: a fragment accumulates a tensor-core contraction; " + name +
                      (layout ? " with a blocked layout" : " is not a reduction") + " cannot live in one");
  const ir::TensorNode &T = *S.tensor;
  std::string cname = unique_name(s, name + "_" + ir::memory_scope_name(scope));
  auto cache = std::make_shared<ir::TensorNode>();
  cache->name = cname;
  cache->dtype = T.dtype;
  std::vector<ir::Expr> idx;
  for (auto &ax : T.axes) idx.push_back(ax.var);
  std::vector<std::pair<ir::Expr, ir::Expr>> m;
  if (!layout) {
    cache->shape = T.shape;
    for (auto &ax : T.axes) {
      ir::Expr v = ir::Var::make(ir::DataType::index(), ax.var.as<ir::Var>()->name);
      cache->axes.push_back(ir::IterVar{v, ax.extent, false});
      m.push_back({ax.var, v});
    }
  } else {
    auto b = BlockedLayout::make(T.shape, *layout, name, "cache_write");
    if (!b) return make_error(b.error());
    if (b->extent % layout->block != 0)
      return make_error("cache_write: block " + std::to_string(layout->block) + " does not divide dimension " +
                        std::to_string(layout->dim) + " of " + name + " (" + std::to_string(b->extent) +
                        "); a cache computes every element it stores");
    cache->shape = b->shape;
    std::vector<ir::Expr> vars;
    for (size_t k = 0; k < b->shape.size(); ++k) {
      vars.push_back(ir::Var::make(ir::DataType::index(), "b" + std::to_string(k)));
      cache->axes.push_back(ir::IterVar{vars.back(), b->shape[k], false});
    }
    std::vector<ir::Expr> orig = b->to_original(vars);
    for (size_t d = 0; d < T.axes.size(); ++d) m.push_back({T.axes[d].var, orig[d]});
    idx = b->to_blocked(idx);
  }
  cache->body = ir::substitute(T.body, m);
  auto copy = std::make_shared<ir::TensorNode>(T);
  copy->body = ir::TensorRead::make(cache, idx);

  size_t at = stage_index(s, &S);
  ir::Tensor old = S.tensor;
  Stage cache_stage = make_stage(cache);
  cache_stage.scope = scope;
  s.stages[at] = make_stage(copy);
  s.stages.insert(s.stages.begin() + long(at), cache_stage);
  auto &ws = s.workload.stages;
  auto it = std::find(ws.begin(), ws.end(), old);
  *it = copy;
  ws.insert(it, cache);
  for (auto &o : s.workload.outputs)
    if (o == old) o = copy;
  GraphRewriter g;
  g.rewrites[old.get()] = [copy](const ir::TensorRead *r) { return ir::TensorRead::make(copy, r->indices); };
  g.run(s, at + 2);
  if (layout) {
    std::vector<int64_t> ints{layout->dim, layout->block};
    std::vector<int64_t> perm = layout->perm;
    if (perm.empty())
      for (size_t i = 0; i <= T.shape.size(); ++i) perm.push_back(int64_t(i));
    ints.insert(ints.end(), perm.begin(), perm.end());
    record(s, "cache_write_layout", name, ints, ir::memory_scope_name(scope));
  } else {
    record(s, "cache_write", name, {}, ir::memory_scope_name(scope));
  }
  return cname;
}

Expected<std::string> cache_read(Schedule &s, const std::string &tensor, const std::string &consumer,
                                 ir::MemoryScope scope) {
  auto ct = get_stage(s, consumer, "cache_read");
  if (!ct) return make_error(ct.error());
  ir::Tensor src;
  for (auto &t : s.workload.inputs)
    if (t->name == tensor) src = t;
  for (auto &st : s.stages)
    if (st.tensor->name == tensor) src = st.tensor;
  if (!src) return make_error("cache_read: no tensor named '" + tensor + "'");
  if (const Stage *ss = s.find(src); ss && ss->attach == Attach::At)
    return make_error("cache_read: " + tensor + " is computed at a loop of " + ss->attach_stage +
                      "; apply cache_read before compute_at");
  if (!reads((*ct)->tensor->body, src)) return make_error("cache_read: " + consumer + " does not read " + tensor);
  if (scope == ir::MemoryScope::Fragment)
    return make_error("cache_read: the fragment scope holds only the accumulators of warp-level tensor intrinsics "
                      "(cache_write " +
                      consumer + " fragment); their operands are read from shared or global memory");
  if ((*ct)->attach == Attach::At && (*ct)->attach_after)
    return make_error("cache_read: " + consumer + " runs inside a tile of " + (*ct)->attach_stage +
                      " (reverse_compute_at); apply cache_read before reverse_compute_at");
  std::string cname = unique_name(s, tensor + "_" + ir::memory_scope_name(scope));
  auto cache = std::make_shared<ir::TensorNode>();
  cache->name = cname;
  cache->shape = src->shape;
  cache->dtype = src->dtype;
  std::vector<ir::Expr> idx;
  static const char *names[] = {"i", "j", "k", "l", "m", "n", "o", "p"};
  for (size_t d = 0; d < src->shape.size(); ++d) {
    ir::Expr v = ir::Var::make(ir::DataType::index(), d < 8 ? names[d] : "ax" + std::to_string(d));
    cache->axes.push_back(ir::IterVar{v, src->shape[d], false});
    idx.push_back(v);
  }
  cache->body = ir::TensorRead::make(src, idx);
  size_t at = stage_index(s, *ct);
  Stage cache_stage = make_stage(cache);
  cache_stage.scope = scope;
  auto &ws = s.workload.stages;
  ws.insert(std::find(ws.begin(), ws.end(), (*ct)->tensor), cache);
  s.stages.insert(s.stages.begin() + long(at), cache_stage);
  GraphRewriter g; // only `consumer` reads the cache; stages after it follow its new node
  g.rewrites[src.get()] = [cache](const ir::TensorRead *r) { return ir::TensorRead::make(cache, r->indices); };
  g.rewrite_stage(s, s.stages[at + 1]);
  g.rewrites.erase(src.get());
  g.run(s, at + 2);
  record(s, "cache_read", tensor, {}, consumer + ":" + ir::memory_scope_name(scope));
  return cname;
}

Status storage_pad(Schedule &s, const std::string &n, int64_t elements) {
  auto st = get_stage(s, n, "storage_pad");
  if (!st) return Status::error(st.error());
  Stage &stage = **st;
  if (stage.scope != ir::MemoryScope::Shared && stage.scope != ir::MemoryScope::Local)
    return Status::error("storage_pad: " + n + " lives in " + ir::memory_scope_name(stage.scope) +
                         " memory; only shared and local cache stages (cache_read/cache_write) can be padded");
  if (stage.tensor->shape.size() < 2)
    return Status::error("storage_pad: " + n + " has one dimension: there are no rows to pad");
  if (elements < 1 || elements > 64)
    return Status::error("storage_pad: " + std::to_string(elements) + " elements of padding for " + n +
                         " (expected 1..64)");
  stage.row_pad = elements;
  record(s, "storage_pad", n, {elements});
  return Status::ok();
}

Expected<std::string> transform_layout(Schedule &s, const std::string &input, int dim, int64_t block,
                                       const std::vector<int64_t> &perm) {
  ir::Tensor src;
  for (auto &t : s.workload.inputs)
    if (t->name == input) src = t;
  if (!src) return make_error("transform_layout: '" + input + "' is not an input of the workload");
  for (auto &st : s.stages)
    if (st.relayout_of == input)
      return make_error("transform_layout: " + input + " is already re-laid-out by " + st.tensor->name +
                        "; an input has one layout (combine the blocking into one transform)");
  auto b = BlockedLayout::make(src->shape, Layout{dim, block, perm}, input, "transform_layout");
  if (!b) return make_error(b.error());
  int rank = b->rank;
  const std::vector<int64_t> p = b->l.perm;
  int64_t extent = b->extent;
  auto packed = std::make_shared<ir::TensorNode>();
  packed->name = unique_name(s, input + "_packed");
  packed->dtype = src->dtype;
  packed->shape = b->shape;
  std::vector<ir::Expr> vars;
  for (int k = 0; k <= rank; ++k) {
    vars.push_back(ir::Var::make(ir::DataType::index(), "p" + std::to_string(k)));
    packed->axes.push_back(ir::IterVar{vars.back(), b->shape[k], false});
  }
  std::vector<ir::Expr> orig = b->to_original(vars);
  ir::Expr full = orig[dim];
  if (extent % block == 0) {
    packed->body = ir::TensorRead::make(src, orig);
  } else { // zero-fill the partial last block; the clamp keeps the read in bounds
    orig[dim] = ir::min(full, ir::Expr(extent - 1));
    packed->body = ir::select(full < ir::Expr(extent), ir::TensorRead::make(src, orig), ir::make_zero(src->dtype));
  }
  Stage pack_stage = make_stage(packed);
  pack_stage.prepack = src->is_constant;
  pack_stage.relayout_of = input;
  s.stages.insert(s.stages.begin(), pack_stage);
  s.workload.stages.insert(s.workload.stages.begin(), packed);
  GraphRewriter g;
  BlockedLayout layout = *b;
  g.rewrites[src.get()] = [packed, layout](const ir::TensorRead *r) {
    return ir::TensorRead::make(packed, layout.to_blocked(r->indices));
  };
  g.run(s, 1);
  std::vector<int64_t> ints{dim, block};
  ints.insert(ints.end(), p.begin(), p.end());
  record(s, "transform_layout", input, ints);
  return packed->name;
}

Status apply_step(Schedule &s, const Step &st) {
  auto need = [&](size_t n) -> Status {
    if (st.ints.size() != n)
      return Status::error("trace step '" + st.op + "' on " + st.stage + " needs " + std::to_string(n) +
                           " integer fields, got " + std::to_string(st.ints.size()));
    return Status::ok();
  };
  auto scope_of = [](const std::string &n) -> std::optional<ir::MemoryScope> {
    if (n == "global") return ir::MemoryScope::Global;
    if (n == "local") return ir::MemoryScope::Local;
    if (n == "shared") return ir::MemoryScope::Shared;
    if (n == "fragment") return ir::MemoryScope::Fragment;
    return std::nullopt;
  };
  const std::string &op = st.op;
  if (op == "split" || op == "split_exact" || op == "split_nparts" || op == "fuse") {
    if (Status c = need(2); !c) return c;
    if (op == "split") return split(s, st.stage, int(st.ints[0]), st.ints[1]).status();
    if (op == "split_exact") return split_exact(s, st.stage, int(st.ints[0]), st.ints[1]).status();
    if (op == "split_nparts") return split_nparts(s, st.stage, int(st.ints[0]), st.ints[1]).status();
    return fuse(s, st.stage, int(st.ints[0]), int(st.ints[1])).status();
  }
  if (op == "reorder") return reorder(s, st.stage, std::vector<int>(st.ints.begin(), st.ints.end()));
  if (op == "parallel" || op == "vectorize" || op == "unroll" || op == "bind") {
    if (Status c = need(1); !c) return c;
    int l = int(st.ints[0]);
    if (op == "parallel") return parallel(s, st.stage, l);
    if (op == "vectorize") return vectorize(s, st.stage, l);
    if (op == "unroll") return unroll(s, st.stage, l);
    return bind(s, st.stage, l, st.str);
  }
  if (op == "compute_inline") return compute_inline(s, st.stage);
  if (op == "storage_pad") {
    if (Status c = need(1); !c) return c;
    return storage_pad(s, st.stage, st.ints[0]);
  }
  if (op == "tensorize") {
    if (Status c = need(1); !c) return c;
    return tensorize(s, st.stage, int(st.ints[0]), st.str);
  }
  if (op == "auto_unroll") {
    if (Status c = need(2); !c) return c;
    return auto_unroll(s, st.stage, int(st.ints[0]), st.ints[1]);
  }
  if (op == "reverse_compute_at") {
    if (Status c = need(1); !c) return c;
    return reverse_compute_at(s, st.stage, st.str, int(st.ints[0]));
  }
  if (op == "rfactor" || op == "rfactor_last") {
    if (Status c = need(1); !c) return c;
    return rfactor(s, st.stage, int(st.ints[0]), op == "rfactor_last").status();
  }
  if (op == "compute_at") {
    if (Status c = need(1); !c) return c;
    return compute_at(s, st.stage, st.str, int(st.ints[0]));
  }
  if (op == "cache_write") {
    auto sc = scope_of(st.str);
    if (!sc) return Status::error("trace step cache_write: unknown memory scope '" + st.str + "'");
    return cache_write(s, st.stage, *sc).status();
  }
  if (op == "cache_write_layout") {
    auto sc = scope_of(st.str);
    if (!sc) return Status::error("trace step cache_write_layout: unknown memory scope '" + st.str + "'");
    if (st.ints.size() < 3) return Status::error("trace step cache_write_layout needs dim, block and perm");
    Layout l{int(st.ints[0]), st.ints[1], std::vector<int64_t>(st.ints.begin() + 2, st.ints.end())};
    return cache_write(s, st.stage, *sc, &l).status();
  }
  if (op == "cache_read") {
    auto colon = st.str.rfind(':');
    auto sc = colon == std::string::npos ? std::nullopt : scope_of(st.str.substr(colon + 1));
    if (!sc) return Status::error("trace step cache_read: expected 'CONSUMER:SCOPE', got '" + st.str + "'");
    return cache_read(s, st.stage, st.str.substr(0, colon), *sc).status();
  }
  if (op == "transform_layout") {
    if (st.ints.size() < 3) return Status::error("trace step transform_layout needs dim, block and perm");
    return transform_layout(s, st.stage, int(st.ints[0]), st.ints[1],
                            std::vector<int64_t>(st.ints.begin() + 2, st.ints.end()))
        .status();
  }
  return Status::error("unknown primitive '" + op + "' in trace");
}

} // namespace tessel::sched
