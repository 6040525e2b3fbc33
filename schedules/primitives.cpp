#include "schedules/primitives.h"

#include "ir/visitor.h"

#include <algorithm>
#include <set>

namespace tessel::sched {

namespace {

Expected<Stage *> get_stage(Schedule &s, const std::string &name) {
  Stage *st = s.find(name);
  if (!st) {
    std::string names;
    for (auto &x : s.stages) names += (names.empty() ? "" : ", ") + x.tensor->name;
    return make_error("no stage named '" + name + "' (stages: " + names + ")");
  }
  return st;
}

Status check_leaf(const Stage &st, int loop, const char *prim) {
  if (loop < 0 || loop >= int(st.loops.size()))
    return Status::error(std::string(prim) + ": stage " + st.tensor->name + " has no loop #" + std::to_string(loop));
  if (!st.is_leaf(loop))
    return Status::error(std::string(prim) + ": loop " + st.loops[loop].name + " of " + st.tensor->name +
                         " was already split or fused; use the loops it became");
  if (st.attach == Attach::Inline)
    return Status::error(std::string(prim) + ": stage " + st.tensor->name + " is inlined and has no loops");
  return Status::ok();
}

} // namespace

Expected<SplitResult> split(Schedule &s, const std::string &name, int loop, int64_t factor) {
  auto st = get_stage(s, name);
  if (!st) return make_error(st.error());
  Stage &S = **st;
  if (Status c = check_leaf(S, loop, "split"); !c) return make_error(c.message());
  if (factor <= 0) return make_error("split: factor must be positive, got " + std::to_string(factor));
  Loop parent = S.loops[loop];
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
  return SplitResult{outer, inner};
}

Expected<int> fuse(Schedule &s, const std::string &name, int outer, int inner) {
  auto st = get_stage(s, name);
  if (!st) return make_error(st.error());
  Stage &S = **st;
  if (Status c = check_leaf(S, outer, "fuse"); !c) return make_error(c.message());
  if (Status c = check_leaf(S, inner, "fuse"); !c) return make_error(c.message());
  if (S.leaf_position(inner) != S.leaf_position(outer) + 1)
    return make_error("fuse: loops " + S.loops[outer].name + " and " + S.loops[inner].name +
                      " are not adjacent (outer directly above inner); reorder them first");
  if (S.loops[outer].is_reduce != S.loops[inner].is_reduce)
    return make_error("fuse: cannot fuse spatial loop with reduction loop (" + S.loops[outer].name + ", " +
                      S.loops[inner].name + ")");
  int fused = int(S.loops.size());
  S.loops.push_back(Loop{S.loops[outer].name + "." + S.loops[inner].name + ".f",
                         S.loops[outer].extent * S.loops[inner].extent, S.loops[outer].is_reduce});
  S.relations.push_back(Relation{Relation::kFuse, {}, Fuse{outer, inner, fused}});
  int pos = S.leaf_position(outer);
  S.leaves.erase(S.leaves.begin() + pos, S.leaves.begin() + pos + 2);
  S.leaves.insert(S.leaves.begin() + pos, fused);
  return fused;
}

Status reorder(Schedule &s, const std::string &name, const std::vector<int> &order) {
  auto st = get_stage(s, name);
  if (!st) return Status::error(st.error());
  Stage &S = **st;
  std::set<int> seen;
  std::vector<int> positions;
  for (int l : order) {
    if (Status c = check_leaf(S, l, "reorder"); !c) return c;
    if (!seen.insert(l).second) return Status::error("reorder: loop " + S.loops[l].name + " listed twice");
    positions.push_back(S.leaf_position(l));
  }
  std::sort(positions.begin(), positions.end());
  for (size_t i = 0; i < order.size(); ++i) S.leaves[positions[i]] = order[i];
  return Status::ok();
}

static Status annotate(Schedule &s, const std::string &name, int loop, ir::ForKind kind, const char *prim) {
  auto st = get_stage(s, name);
  if (!st) return Status::error(st.error());
  Stage &S = **st;
  if (Status c = check_leaf(S, loop, prim); !c) return c;
  Loop &L = S.loops[loop];
  if (kind == ir::ForKind::Parallel || kind == ir::ForKind::Vectorized) {
    if (L.is_reduce)
      return Status::error(std::string(prim) + ": loop " + L.name + " of " + S.tensor->name +
                           " is a reduction; its iterations depend on each other (use rfactor first)");
  }
  if (kind == ir::ForKind::Parallel)
    for (int l : S.leaves)
      if (l != loop && S.loops[l].kind == ir::ForKind::Parallel)
        return Status::error("parallel: stage " + S.tensor->name + " already has parallel loop " + S.loops[l].name);
  if (kind == ir::ForKind::Vectorized && (L.extent < 2 || L.extent > 64))
    return Status::error("vectorize: loop " + L.name + " has extent " + std::to_string(L.extent) +
                         "; vector loops need 2..64 lanes (split it first)");
  if (kind == ir::ForKind::Unrolled && L.extent > 1024)
    return Status::error("unroll: loop " + L.name + " has extent " + std::to_string(L.extent) +
                         "; unrolling is limited to 1024 iterations");
  L.kind = kind;
  return Status::ok();
}

Status parallel(Schedule &s, const std::string &n, int loop) { return annotate(s, n, loop, ir::ForKind::Parallel, "parallel"); }
Status vectorize(Schedule &s, const std::string &n, int loop) { return annotate(s, n, loop, ir::ForKind::Vectorized, "vectorize"); }
Status unroll(Schedule &s, const std::string &n, int loop) { return annotate(s, n, loop, ir::ForKind::Unrolled, "unroll"); }

Status compute_inline(Schedule &s, const std::string &name) {
  auto st = get_stage(s, name);
  if (!st) return Status::error(st.error());
  Stage &S = **st;
  if (S.tensor->body.as<ir::Reduce>())
    return Status::error("compute_inline: " + S.tensor->name + " is a reduction; only elementwise stages can be inlined");
  if (s.workload.is_output(S.tensor))
    return Status::error("compute_inline: " + S.tensor->name + " is an output of the workload and must be stored");
  S.attach = Attach::Inline;
  return Status::ok();
}

} // namespace tessel::sched
