#include "schedules/space.h"

#include "ir/visitor.h"
#include "schedules/intrinsics.h"
#include "schedules/primitives.h"

#include <algorithm>
#include <array>
#include <functional>

namespace tessel::sched {

uint64_t Rng::next() { // splitmix64
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

namespace {

bool is_reduction(const ir::Tensor &t) { return t->body.as<ir::Reduce>() != nullptr; }

std::vector<const ir::TensorRead *> reads_in(const ir::Expr &e) { return ir::collect_reads(e); }

// The single consumer of `t` when it is an elementwise output of the same
// shape reading t[i, j, ...] at its own axes: the epilogue to fuse with.
ir::Tensor fusable_consumer(const te::Workload &w, const ir::Tensor &t) {
  auto users = w.consumers(t);
  if (users.size() != 1) return nullptr;
  const ir::Tensor &e = users[0];
  if (is_reduction(e) || !w.is_output(e) || e->shape != t->shape) return nullptr;
  for (auto *r : reads_in(e->body)) {
    if (r->tensor != t) continue;
    for (size_t d = 0; d < r->indices.size(); ++d)
      if (!r->indices[d].same_as(e->axes[d].var)) return nullptr;
  }
  return e;
}

// Whether every read in `t`'s body that uses its last two axes (h, w) indexes a tensor's last two
// dimensions by exactly them, of the same extents: fusing h and w then reads every such tensor at one
// dense index (e.g. a 1x1 convolution's input and output), so vectors need not divide w.
bool rows_fuse_densely(const ir::Tensor &t) {
  size_t ns = t->axes.size();
  if (ns < 2) return false;
  const ir::Expr &h = t->axes[ns - 2].var, &w = t->axes[ns - 1].var;
  std::vector<ir::Expr> unit; // reduction axes of extent 1 (a 1x1 kernel's): always 0
  if (auto *red = t->body.as<ir::Reduce>())
    for (auto &ax : red->axes)
      if (ax.extent == 1) unit.push_back(ax.var);
  auto is = [&](const ir::Expr &index, const ir::Expr &var) {
    if (index.same_as(var)) return true;
    auto *add = index.as<ir::Binary>();
    auto is_unit = [&](const ir::Expr &e) {
      return std::any_of(unit.begin(), unit.end(), [&](const ir::Expr &u) { return e.same_as(u); });
    };
    return add && add->op == ir::BinaryOp::Add && add->a.same_as(var) && is_unit(add->b);
  };
  for (auto *r : reads_in(t->body)) {
    size_t n = r->indices.size();
    for (size_t d = 0; d < n; ++d) {
      bool uses = ir::uses_var(r->indices[d], h) || ir::uses_var(r->indices[d], w);
      if (!uses) continue;
      bool exact = (d + 2 == n && is(r->indices[d], h) && r->tensor->shape[d] == t->shape[ns - 2]) ||
                   (d + 1 == n && is(r->indices[d], w) && r->tensor->shape[d] == t->shape[ns - 1]);
      if (!exact) return false;
    }
  }
  return true;
}

// An elementwise intermediate that costs a transcendental call per element (exp, log, tanh, erf, pow) and
// that several stages read (softmax's exps: the row sum and the output): inlined, it is computed once per
// reader; kept in a buffer, once.
bool worth_materializing(const te::Workload &w, const ir::Tensor &t) {
  if (is_reduction(t) || w.is_output(t) || w.consumers(t).size() < 2) return false;
  struct Costly : ir::IRVisitor {
    bool found = false;
    using ir::IRVisitor::visit;
    void visit(const ir::Call *op) override {
      found |= op->func == ir::Intrinsic::Exp || op->func == ir::Intrinsic::Log || op->func == ir::Intrinsic::Tanh ||
               op->func == ir::Intrinsic::Erf || op->func == ir::Intrinsic::Pow;
      ir::IRVisitor::visit(op);
    }
  } v;
  t->body.accept(&v);
  return v.found;
}

// A spatial axis other than the innermost, of a whole number of vectors, that only constant inputs read
// (at exactly one dimension, by the axis itself): a blocked accumulator can vectorize along it, with that
// input packed to match (a convolution's output channels, NCHWc), where the innermost axis' rows are not
// whole vectors.
struct ChannelChoice {
  int axis = -1;
  std::string input; // the constant input packed by vector-wide blocks of `dim`
  int dim = -1;
};
ChannelChoice channel_choice(const ir::Tensor &t, int64_t lanes) {
  size_t ns = t->axes.size();
  if (!is_reduction(t) || ns < 2 || lanes < 2 || t->shape[ns - 1] % lanes == 0) return {};
  for (size_t a = 0; a + 1 < ns; ++a) {
    if (t->shape[a] % lanes != 0) continue;
    const ir::Expr &v = t->axes[a].var;
    ChannelChoice c;
    c.axis = int(a);
    bool ok = true;
    for (auto *r : reads_in(t->body))
      for (size_t d = 0; d < r->indices.size(); ++d) {
        if (!ir::uses_var(r->indices[d], v)) continue;
        bool same = c.input.empty() || (c.input == r->tensor->name && c.dim == int(d));
        if (!r->tensor->is_input() || !r->tensor->is_constant || !r->indices[d].same_as(v) || !same) ok = false;
        c.input = r->tensor->name, c.dim = int(d);
      }
    if (ok && !c.input.empty()) return c;
  }
  return {};
}

// A constant input whose dimension `dim` is indexed directly by the stage's
// innermost spatial axis (packing it makes the vector loop read contiguously).
struct PackChoice {
  std::string input;
  int dim = -1;
};
PackChoice pack_candidate(const te::Workload &w, const ir::Tensor &t) {
  if (!is_reduction(t) || t->axes.empty()) return {};
  const ir::Expr &last = t->axes.back().var;
  for (auto *r : reads_in(t->body)) {
    if (!r->tensor->is_input() || !r->tensor->is_constant) continue;
    if (r->indices.back().same_as(last)) continue; // already contiguous in the last axis
    for (size_t d = 0; d < r->indices.size(); ++d)
      if (r->indices[d].same_as(last)) return {r->tensor->name, int(d)};
  }
  (void)w;
  return {};
}

// The tensor intrinsic the target has for this stage: a sum of products of two
// reads (maybe widened by casts) over spatial axes (batch..., i, j) and one
// reduction axis k, with the operand read at j contiguous in j (or a constant
// that `packed` re-lays out).
std::vector<const TensorIntrinsic *> intrinsics_for(const ir::Tensor &t, const Target &target, bool packed) {
  std::vector<const TensorIntrinsic *> out;
  auto operands = product_operands(t);
  auto *r = t->body.as<ir::Reduce>();
  if (!operands || t->axes.size() < 2 || r->axes.size() != 1) return out;
  size_t n = t->shape.size();
  const ir::TensorRead *a = operands->a, *b = operands->b;
  // The kernels stream B along j: the operand read at j must be contiguous in it.
  const ir::Expr &j = t->axes.back().var;
  for (auto *r : {a, b})
    for (size_t d = 0; d < r->indices.size(); ++d)
      if (ir::uses_var(r->indices[d], j) && !(d + 1 == r->indices.size() && r->indices[d].same_as(j)) &&
          !(packed && r->tensor->is_constant))
        return out;
  for (auto &in : tensor_intrinsics()) {
    if (in.c != t->dtype || in.a != a->type || in.b != b->type || !in.available_on(target)) continue;
    if (in.fixed_shape() &&
        (t->shape[n - 2] % in.m != 0 || t->shape[n - 1] % in.n != 0 || r->axes[0].extent % in.k != 0))
      continue;
    out.push_back(&in);
  }
  return out;
}

// The preferred one (the registry's order), or null.
const TensorIntrinsic *intrinsic_for(const ir::Tensor &t, const Target &target, bool packed) {
  auto all = intrinsics_for(t, target, packed);
  return all.empty() ? nullptr : all.front();
}

// The elements of a tensor (its spatial extent: for a reduction, its outputs).
int64_t elements(const ir::Tensor &t) {
  int64_t n = 1;
  for (int64_t e : t->shape) n *= e;
  return n;
}

// CUDA: few outputs (at most a few blocks' worth) over a long axis: reduce across threads.
bool wants_cross_thread(const ir::Tensor &t) {
  auto *r = t->body.as<ir::Reduce>();
  if (!r) return false;
  int64_t outputs = elements(t);
  return outputs <= 4096 && r->axes.back().extent >= 32;
}

// A reduction with few outputs over a long axis, or a row reduction (one output per row, as in
// softmax and layernorm, whose only spatial axis strides across rows): rfactor gives its loops
// something to vectorize along the contiguous reduction axis.
bool wants_rfactor(const ir::Tensor &t) {
  auto *r = t->body.as<ir::Reduce>();
  if (!r) return false;
  int64_t outputs = elements(t);
  int64_t extent = r->axes.back().extent;
  return (outputs <= 16 && extent >= 16) || (t->shape.size() == 1 && extent >= 64);
}

std::vector<int64_t> divisors(int64_t n, int64_t max) {
  std::vector<int64_t> d;
  for (int64_t i = 1; i <= n && i <= max; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

// f32 lanes of the target's vector registers (1 for a target without vectors).
int f32_lanes(const Target &t) { return std::max(1, t.vector_bits / 32); }

// The output of a row-wise workload (softmax, layernorm): one elementwise output whose every other stage is
// a reduction to one value per row or an elementwise stage over rows, each read only at the reader's own
// row (the leading axes but the last, by the same variables). Computing a block of output rows then
// needs just those rows of every intermediate. Null otherwise.
ir::Tensor rowwise_output(const te::Workload &w) {
  if (w.outputs.size() != 1) return nullptr;
  const ir::Tensor &y = w.outputs[0];
  if (is_reduction(y) || y->axes.size() < 2) return nullptr;
  const size_t rows = y->axes.size() - 1;
  bool has_reduction = false;
  for (auto &t : w.stages) {
    if (t == y) continue;
    if (w.is_output(t)) return nullptr;
    has_reduction |= is_reduction(t);
    size_t want = is_reduction(t) ? rows : rows + 1;
    if (t->axes.size() != want) return nullptr;
    for (size_t a = 0; a < rows; ++a)
      if (t->shape[a] != y->shape[a]) return nullptr;
  }
  if (!has_reduction) return nullptr;
  for (auto &u : w.stages)
    for (auto *r : reads_in(u->body)) {
      if (r->tensor->is_input()) continue;
      for (size_t a = 0; a < rows; ++a)
        if (!r->indices[a].same_as(u->axes[a].var)) return nullptr;
    }
  return y;
}

// An elementwise intermediate a reduction reads through a sliding window (a convolution's padding, read
// at h + r) and does much work per element of (at least 64 multiply-adds): inlined, every load carries
// its bounds test, which keeps the inner loop from plain vector and broadcast loads; kept in a buffer, it
// costs one pass over the padded input, little beside that work (a depthwise convolution's 9 per element
// would pay for the pass many times over, so its padding stays inlined).
bool read_through_window(const te::Workload &w, const ir::Tensor &t) {
  if (is_reduction(t) || w.is_output(t)) return false;
  for (const ir::Tensor &u : w.consumers(t)) {
    auto *red = u->body.as<ir::Reduce>();
    if (!red) continue;
    int64_t trips = elements(u);
    for (auto &ax : red->axes) trips *= ax.extent;
    if (trips < 64 * elements(t)) continue;
    for (auto *r : reads_in(u->body)) {
      if (r->tensor != t) continue;
      for (auto &index : r->indices) {
        bool spatial = false, reduce = false;
        for (auto &ax : u->axes) spatial |= ir::uses_var(index, ax.var);
        for (auto &ax : red->axes) reduce |= ir::uses_var(index, ax.var);
        if (spatial && reduce) return true;
      }
    }
  }
  return false;
}

// Every random choice of a sample, drawn from an Rng or replayed from earlier Decisions; recorded.
class Chooser {
public:
  Chooser(Rng &rng, const Decisions *replay) : rng_(rng), replay_(replay) {}
  int64_t below(int64_t n) {
    size_t i = made.picks.size();
    int64_t v = replay_ && i < replay_->picks.size() ? (n <= 1 ? 0 : replay_->picks[i] % n) : rng_.below(n);
    made.bounds.push_back(n);
    made.picks.push_back(v);
    return v;
  }
  Decisions made;

private:
  Rng &rng_;
  const Decisions *replay_;
};

// A random factorization of n into `levels` factors (outermost first) whose
// innermost factor is at most max_inner.
std::vector<int64_t> factorize(int64_t n, int levels, int64_t max_inner, Chooser &rng) {
  std::vector<int64_t> f(levels, 1);
  int64_t rest = n;
  for (int l = levels - 1; l >= 1; --l) {
    auto d = divisors(rest, l == levels - 1 ? max_inner : rest);
    f[l] = d[rng.below(int64_t(d.size()))];
    rest /= f[l];
  }
  f[0] = rest;
  return f;
}

class Sampler {
public:
  Sampler(const te::Workload &w, const Target &t, int threads, const Sketch &k, Chooser &rng)
      : s(default_schedule(w)), target(t), threads(threads), sketch(k), rng(rng) {
    vector_lanes = f32_lanes(target);
  }

  Status run() {
    const te::Workload &w = s.source;
    std::vector<std::string> materialized; // a decision: costly intermediates read twice, and paddings, stay in buffers
    for (auto &t : w.stages) {
      if (is_reduction(t) || w.is_output(t)) continue;
      if (!target.is_cuda() && (worth_materializing(w, t) || (threads == 1 && read_through_window(w, t))) &&
          rng.below(2) == 0)
        materialized.push_back(t->name);
      else
        check(compute_inline(s, t->name));
    }
    if (target.is_cuda()) return run_gpu();
    if (sketch.rowwise) {
      if (ir::Tensor y = rowwise_output(w)) tile_rowwise(y, materialized);
      return status;
    }
    for (auto &name : materialized) tile_elementwise(name);
    std::vector<std::string> handled;
    for (auto &t : w.stages) {
      if (!is_reduction(t)) continue;
      ir::Tensor epilogue = sketch.cache_write || sketch.channels ? fusable_consumer(w, t) : nullptr;
      if (ChannelChoice ch = channel_choice(t, vector_lanes); sketch.channels && ch.axis >= 0)
        tile_channels(t, epilogue, ch);
      else
        tile_reduction(t, epilogue);
      if (epilogue) handled.push_back(epilogue->name);
    }
    for (auto &t : w.stages)
      if (!is_reduction(t) && w.is_output(t) && std::find(handled.begin(), handled.end(), t->name) == handled.end())
        tile_elementwise(t->name);
    return status;
  }

  Schedule s;

private:
  void check(const Status &st) {
    if (!st && status) status = st;
  }
  template <typename T> T check(Expected<T> e, T fallback) {
    if (!e) {
      check(Status::error(e.error()));
      return fallback;
    }
    return *e;
  }
  Stage &stage(const std::string &n) { return *s.find(n); }

  // Splits `loop` into levels.size() loops with these inner extents (outermost first); returns their ids.
  std::vector<int> split_levels(const std::string &st, int loop, const std::vector<int64_t> &f) {
    std::vector<int> ids(f.size());
    int cur = loop;
    for (size_t l = f.size() - 1; l >= 1; --l) {
      SplitResult r = check(split(s, st, cur, f[l]), SplitResult{cur, cur});
      ids[l] = r.inner;
      cur = r.outer;
    }
    ids[0] = cur;
    return ids;
  }

  // Fuses consecutive leaves (outermost first) into one loop; returns it.
  int fuse_loops(const std::string &st, std::vector<int> loops) { // a copy: fusing changes the leaves
    int fused = loops[0];
    for (size_t i = 1; i < loops.size(); ++i) fused = check(fuse(s, st, fused, loops[i]), fused);
    return fused;
  }

  // Fuses consecutive leaves and marks the result parallel.
  // Fuses the loops into one, parallel unless it has a single iteration; returns it (-1: no loops).
  int parallelize(const std::string &st, const std::vector<int> &loops) {
    if (loops.empty()) return -1;
    int fused = fuse_loops(st, loops);
    if (stage(st).loops[fused].extent > 1) check(parallel(s, st, fused));
    return fused;
  }

  void maybe_vectorize(const std::string &st, int loop) {
    int64_t e = stage(st).loops[loop].extent;
    if (e >= 2 && e <= 64) check(vectorize(s, st, loop));
  }

  // Unrolls some of the given small inner loops, keeping the unrolled body small.
  void maybe_unroll(const std::string &st, const std::vector<int> &loops, int64_t budget) {
    for (int l : loops) {
      int64_t e = stage(st).loops[l].extent;
      if (e > 1 && e <= budget && rng.below(2) == 0) {
        check(unroll(s, st, l));
        budget /= e;
      }
    }
  }

  void pragma_unroll(const std::string &st) {
    static const int64_t kSteps[] = {0, 16, 64};
    int64_t step = kSteps[rng.below(3)];
    Stage &S = stage(st);
    if (step > 0 && !S.leaves.empty() && S.attach != Attach::Inline) check(auto_unroll(s, st, S.leaves[0], step));
  }

  // rfactor the last reduction axis by a small divisor (whole vectors where the extent allows);
  // the partials are the new stage's contiguous last axis, vectorized, its rows in parallel.
  // Returns the new stage ("" when the axis has no divisor to split by). `may_parallelize`: false for a stage
  // computed inside another's parallel loop.
  std::string rfactor_reduction(const ir::Tensor &t, bool may_parallelize = true) {
    std::string name = t->name;
    int ns = int(t->axes.size());
    int nr = int(t->body.as<ir::Reduce>()->axes.size());
    int64_t extent = t->body.as<ir::Reduce>()->axes.back().extent;
    auto d = divisors(extent, std::min<int64_t>(64, extent));
    d.erase(d.begin()); // not 1
    std::vector<int64_t> whole;
    for (int64_t x : d)
      if (x % vector_lanes == 0) whole.push_back(x);
    if (!whole.empty()) d = whole;
    if (d.empty()) return "";
    int64_t f = d[rng.below(int64_t(d.size()))];
    SplitResult sp = check(split(s, name, ns + nr - 1, f), SplitResult{-1, -1});
    if (sp.inner < 0) return "";
    std::string rf = check(rfactor(s, name, sp.inner, /*partials_last=*/true), std::string());
    if (rf.empty()) return "";
    // The new stage's loops: the spatial axes, the partial index, then the reductions: the partials go innermost.
    Stage &R = stage(rf);
    std::vector<int> order(R.leaves.begin(), R.leaves.begin() + ns);
    order.insert(order.end(), R.leaves.begin() + ns + 1, R.leaves.end());
    order.push_back(R.leaves[size_t(ns)]);
    check(reorder(s, rf, order));
    Stage &R2 = stage(rf);
    int partials = R2.leaves.back();
    std::vector<int> spatial(R2.leaves.begin(), R2.leaves.begin() + ns);
    maybe_vectorize(rf, partials);
    if (may_parallelize && rng.below(2) == 0) parallelize(rf, spatial); // small rows may run faster serially
    pragma_unroll(rf);
    return rf;
  }

  // Row-wise: every intermediate (row reductions and the elementwise stages kept in buffers) is computed
  // inside the output's loop over rows, for just those rows, so a row's values stay in L1 between the
  // passes over it (softmax's max, exps, sum and scale) instead of streaming whole tensors each time.
  void tile_rowwise(const ir::Tensor &y, const std::vector<std::string> &materialized) {
    const std::string name = y->name;
    const int ns = int(y->axes.size()), rows_axes = ns - 1;
    // The last row axis splits into tasks x rows per step; the tasks (with any outer row axes, a batch)
    // run in parallel, so a task's block of rows never straddles two batches.
    std::vector<int> rl = split_levels(name, rows_axes - 1, factorize(y->shape[size_t(rows_axes - 1)], 2, 8, rng));
    std::vector<int> cl = split_levels(name, rows_axes, factorize(y->shape[size_t(rows_axes)], 2, 64, rng));
    std::vector<int> outer;
    for (int a = 0; a + 1 < rows_axes; ++a) outer.push_back(a);
    outer.push_back(rl[0]);
    std::vector<int> order = outer;
    order.insert(order.end(), {rl[1], cl[0], cl[1]});
    check(reorder(s, name, order));
    int task = parallelize(name, outer);
    maybe_vectorize(name, cl[1]);
    pragma_unroll(name);
    // Per step's rows, or per task's block of rows (when there are several tasks and several rows each).
    auto extent = [&](int l) { return stage(name).loops[size_t(l)].extent; };
    int at = extent(task) > 1 && extent(rl[1]) > 1 && rng.below(2) == 0 ? task : rl[1];
    // Readers first: a stage is computed at the loop once everything that reads it is.
    const te::Workload &w = s.source;
    for (auto it = w.stages.rbegin(); it != w.stages.rend(); ++it) {
      const ir::Tensor &t = *it;
      if (t == y) continue;
      if (is_reduction(t)) {
        std::string rf = rfactor_reduction(t, /*may_parallelize=*/false);
        check(compute_at(s, t->name, name, at));
        if (!rf.empty()) check(compute_at(s, rf, name, at));
      } else if (std::find(materialized.begin(), materialized.end(), t->name) != materialized.end()) {
        check(compute_at(s, t->name, name, at));
        int last = int(t->axes.size()) - 1;
        std::vector<int> vl = split_levels(t->name, last, factorize(t->shape[size_t(last)], 2, 64, rng));
        maybe_vectorize(t->name, vl[1]);
        pragma_unroll(t->name);
      }
    }
  }

  // Levels for the fusion of the last two spatial axes (H x W rows of W): the vector (a whole number of
  // vector registers, at most 64) times the level above it spans whole rows, so a tile computed at that
  // level covers exactly its rows. Empty when no such split exists.
  std::vector<int64_t> fused_row_levels(int64_t H, int64_t W) {
    std::vector<std::pair<int64_t, int64_t>> choices; // (rows per tile, vector)
    for (int64_t m : divisors(H, H))
      for (int64_t v = vector_lanes; v <= 64; v += vector_lanes)
        if (m * W % v == 0) choices.push_back({m, v});
    if (choices.empty()) return {};
    auto [m, v] = choices[size_t(rng.below(int64_t(choices.size())))];
    std::vector<int64_t> outer = factorize(H / m, 2, 16, rng);
    return {outer[0], outer[1], m * W / v, v};
  }

  // A stage's spatial loops: its axes, or with `fuse_rows` the last two fused into one.
  std::vector<int> spatial_loops(const std::string &st, int ns, bool fuse_rows) {
    std::vector<int> ids;
    for (int a = 0; a < ns; ++a) ids.push_back(a);
    if (fuse_rows) {
      int fused = check(fuse(s, st, ns - 2, ns - 1), -1);
      ids.resize(size_t(ns - 2));
      ids.push_back(fused);
    }
    return ids;
  }

  void tile_reduction(const ir::Tensor &t, const ir::Tensor &epilogue) {
    std::string name = t->name;
    if (sketch.rfactor && wants_rfactor(t)) {
      rfactor_reduction(t);
      return;
    }
    int ns = int(t->axes.size());
    int nr = int(t->body.as<ir::Reduce>()->axes.size());
    // Decisions: four spatial levels (the innermost of the last axis is the vector), two reduction levels.
    // Where rows of w are not whole vectors and fusing h and w keeps every access dense, the two may
    // be fused into one axis first (a 1x1 convolution's spatial plane then tiles like a GEMM's N).
    std::vector<std::vector<int64_t>> sf, rf;
    bool fuse_rows = false;
    if (!sketch.pack && !sketch.tensorize && ns >= 2 && t->shape[size_t(ns - 1)] % vector_lanes != 0 &&
        rows_fuse_densely(t) && (!epilogue || rows_fuse_densely(epilogue)) && rng.below(2) == 0) {
      std::vector<int64_t> levels = fused_row_levels(t->shape[size_t(ns - 2)], t->shape[size_t(ns - 1)]);
      fuse_rows = !levels.empty();
      for (int a = 0; fuse_rows && a < ns - 2; ++a) sf.push_back(factorize(t->shape[size_t(a)], 4, 16, rng));
      if (fuse_rows) sf.push_back(levels);
    }
    if (!fuse_rows)
      for (int a = 0; a < ns; ++a) sf.push_back(factorize(t->shape[a], 4, a == ns - 1 ? 64 : 16, rng));
    const int nsp = int(sf.size()); // spatial loops to tile
    for (auto &ax : t->body.as<ir::Reduce>()->axes) rf.push_back(factorize(ax.extent, 2, 16, rng));

    if (sketch.pack) {
      PackChoice p = pack_candidate(s.source, t);
      if (!p.input.empty() && ns > 0) {
        int rank = 0;
        for (auto &in : s.workload.inputs)
          if (in->name == p.input) rank = int(in->shape.size());
        std::vector<int64_t> perm{p.dim};
        for (int d = 0; d <= rank; ++d)
          if (d != p.dim) perm.push_back(d);
        // Blocks as wide as the vector tile; a tensorized tile reads whole blocks of its own width.
        int64_t block =
            sketch.tensorize && intrinsic_for(t, target, true) ? sf[ns - 1][2] * sf[ns - 1][3] : sf[ns - 1][3];
        check(transform_layout(s, p.input, p.dim, block, perm).status());
      }
    }

    if (!sketch.cache_write) { // S S R S R S on the stage itself
      std::vector<int> sp = spatial_loops(name, ns, fuse_rows);
      std::vector<std::vector<int>> sl(static_cast<size_t>(nsp)), rl(nr);
      for (int a = 0; a < nsp; ++a) sl[a] = split_levels(name, sp[size_t(a)], sf[a]);
      for (int r = 0; r < nr; ++r) rl[r] = split_levels(name, ns + r, rf[r]);
      std::vector<int> order;
      auto level = [&](std::vector<std::vector<int>> &v, int l) {
        for (auto &x : v) order.push_back(x[l]);
      };
      level(sl, 0), level(sl, 1), level(rl, 0), level(sl, 2), level(rl, 1), level(sl, 3);
      check(reorder(s, name, order));
      std::vector<int> outer, inner;
      for (auto &x : sl) outer.push_back(x[0]);
      for (int a = 0; a + 1 < nsp; ++a) inner.push_back(sl[a][3]);
      parallelize(name, outer);
      if (nsp > 0) maybe_vectorize(name, sl[nsp - 1][3]);
      maybe_unroll(name, inner, 16);
      pragma_unroll(name);
      return;
    }

    // Accumulate into a local tile: computed at the outer tile loop of the
    // fused epilogue, or of a copy stage made by cache_write.
    std::string outer_stage, local = name;
    if (epilogue) {
      outer_stage = epilogue->name;
    } else {
      local = check(cache_write(s, name, ir::MemoryScope::Local), std::string());
      if (local.empty()) return;
      outer_stage = name;
    }
    std::vector<int> osp = spatial_loops(outer_stage, ns, fuse_rows);
    std::vector<std::vector<int>> ol(static_cast<size_t>(nsp));
    for (int a = 0; a < nsp; ++a)
      ol[a] = split_levels(outer_stage, osp[size_t(a)], {sf[a][0], sf[a][1], sf[a][2] * sf[a][3]});
    std::vector<int> order, fused, inner;
    for (int l = 0; l < 3; ++l)
      for (auto &x : ol) order.push_back(x[l]);
    check(reorder(s, outer_stage, order));
    for (auto &x : ol) fused.push_back(x[0]);
    parallelize(outer_stage, fused);
    if (nsp > 0) maybe_vectorize(outer_stage, ol[nsp - 1][2]);
    if (nsp > 0) check(compute_at(s, local, outer_stage, ol[nsp - 1][1]));

    if (const TensorIntrinsic *in = sketch.tensorize ? intrinsic_for(t, target, sketch.pack) : nullptr) {
      // The whole local tile (batch..., then k, i, j: the reduction first, so C is
      // zeroed before it) runs on the intrinsic.
      std::vector<int> order;
      for (int a = 0; a + 2 < ns; ++a) order.push_back(a);
      order.insert(order.end(), {ns, ns - 2, ns - 1});
      check(reorder(s, local, order));
      check(tensorize(s, local, ns, in->name));
      return;
    }
    std::vector<int> lsp = spatial_loops(local, ns, fuse_rows);
    std::vector<std::vector<int>> sl(static_cast<size_t>(nsp)), rl(nr);
    for (int a = 0; a < nsp; ++a) sl[a] = split_levels(local, lsp[size_t(a)], {sf[a][2], sf[a][3]});
    for (int r = 0; r < nr; ++r) rl[r] = split_levels(local, ns + r, rf[r]);
    order.clear();
    for (auto &x : rl) order.push_back(x[0]);
    for (auto &x : sl) order.push_back(x[0]);
    for (auto &x : rl) order.push_back(x[1]);
    for (auto &x : sl) order.push_back(x[1]);
    check(reorder(s, local, order));
    inner.clear();
    for (int a = 0; a + 1 < nsp; ++a) inner.push_back(sl[a][1]);
    if (nsp > 0) maybe_vectorize(local, sl[nsp - 1][1]);
    maybe_unroll(local, inner, 16);
    pragma_unroll(local);
  }

  // NCHWc: the accumulator is a local tile blocked by vector-wide groups of the channel axis (innermost,
  // vectorized), the constant input that axis reads is packed to match, and the tile is tk channel groups x
  // one block of each other spatial axis, all in registers (unrolled), over the whole reduction.
  void tile_channels(const ir::Tensor &t, const ir::Tensor &epilogue, const ChannelChoice &ch) {
    std::string name = t->name;
    const int ns = int(t->axes.size()), nr = int(t->body.as<ir::Reduce>()->axes.size());
    const int64_t lanes = vector_lanes;
    check(transform_layout(s, ch.input, ch.dim, lanes, {}).status()); // blocks of `lanes`, in place
    Layout blocked{ch.axis, lanes, {}};
    std::string local = check(cache_write(s, name, ir::MemoryScope::Local, &blocked), std::string());
    if (local.empty()) return;
    std::string outer = name;
    if (epilogue) {
      check(compute_inline(s, name));
      outer = epilogue->name;
    }
    // Decisions: the register tile (at most 24 vector accumulators), the reduction's inner block.
    std::vector<int64_t> inner(size_t(ns), 1);
    for (int tries = 0; tries < 16; ++tries) {
      int64_t regs = 1;
      for (int a = 0; a < ns; ++a) {
        auto d = a == ch.axis ? divisors(t->shape[size_t(a)] / lanes, 4) : divisors(t->shape[size_t(a)], 16);
        inner[size_t(a)] = d[size_t(rng.below(int64_t(d.size())))];
        regs *= inner[size_t(a)];
      }
      if (regs <= 24) break;
      std::fill(inner.begin(), inner.end(), 1);
    }
    std::vector<int> outer_loops, inner_loops;
    for (int a = 0; a < ns; ++a) {
      int64_t f = a == ch.axis ? inner[size_t(a)] * lanes : inner[size_t(a)];
      std::vector<int> l = split_levels(outer, a, {t->shape[size_t(a)] / f, f});
      outer_loops.push_back(l[0]), inner_loops.push_back(l[1]);
    }
    std::vector<int> order = outer_loops;
    order.insert(order.end(), inner_loops.begin(), inner_loops.end());
    check(reorder(s, outer, order));
    int tile_loop = parallelize(outer, outer_loops); // one parallel loop over all tiles
    check(compute_at(s, local, outer, tile_loop));

    // The local tile: its spatial axes (the channel group's lanes last), then the reductions. Order:
    // outer reduction block, the other reduction axes, inner reduction block, the tile, the lanes.
    const int nls = ns + 1; // the blocked layout adds the within-group axis, last
    std::vector<int> rl = split_levels(local, nls, factorize(t->body.as<ir::Reduce>()->axes[0].extent, 2, 16, rng));
    std::vector<int> lorder = {rl[0]};
    for (int r = 1; r < nr; ++r) lorder.push_back(nls + r);
    lorder.push_back(rl[1]);
    for (int a = 0; a < nls; ++a) lorder.push_back(a);
    check(reorder(s, local, lorder));
    check(vectorize(s, local, nls - 1));
    for (int a = 0; a + 1 < nls; ++a)
      if (stage(local).loops[size_t(a)].extent > 1) check(unroll(s, local, a));
  }

  void tile_elementwise(const std::string &name) {
    const ir::Tensor &t = stage(name).tensor;
    int ns = int(t->axes.size());
    std::vector<std::vector<int>> l(ns);
    for (int a = 0; a < ns; ++a) l[a] = split_levels(name, a, factorize(t->shape[a], 2, a == ns - 1 ? 64 : 8, rng));
    std::vector<int> order, outer;
    for (int lv = 0; lv < 2; ++lv)
      for (auto &x : l) order.push_back(x[lv]);
    if (!order.empty()) check(reorder(s, name, order));
    for (auto &x : l) outer.push_back(x[0]);
    parallelize(name, outer);
    if (ns > 0) maybe_vectorize(name, l[ns - 1][1]);
    pragma_unroll(name);
  }

  // ------------------------------------------------------------------ CUDA
  Status run_gpu() {
    const te::Workload &w = s.source;
    std::vector<std::string> handled;
    for (auto &t : w.stages) {
      if (!is_reduction(t)) continue;
      if (auto shapes = sketch.tensor_core ? intrinsics_for(t, target, false) : std::vector<const TensorIntrinsic *>{};
          !shapes.empty()) { // the WMMA shape is a decision too
        if (std::string out = gpu_tensor_core(t, shapes[size_t(rng.below(int64_t(shapes.size())))]); !out.empty())
          handled.push_back(out);
        continue;
      }
      if (sketch.cross_thread && wants_cross_thread(t)) {
        gpu_cross_thread(t);
        continue;
      }
      ir::Tensor epilogue = fusable_consumer(w, t);
      gpu_tile_reduction(t, epilogue);
      if (epilogue) handled.push_back(epilogue->name);
    }
    for (auto &t : w.stages)
      if (!is_reduction(t) && w.is_output(t) && std::find(handled.begin(), handled.end(), t->name) == handled.end())
        gpu_elementwise(t->name);
    return status;
  }

  int max_threads() const { return target.gpu ? target.gpu->max_threads_per_block : 1024; }

  // Fuses loops and binds the result to a GPU index; returns the fused loop.
  int fuse_bind(const std::string &st, const std::vector<int> &loops, const std::string &tag) {
    int fused = fuse_loops(st, loops);
    check(sched::bind(s, st, fused, tag));
    return fused;
  }

  // Stages each tensor `consumer` reads in shared memory, computed at its loop
  // `at`, copied cooperatively by the block: the fused copy loop is split over
  // `lanes` threads on threadIdx.x (at most one per element when
  // `lanes_up_to_size`), then, with several warps, over them on threadIdx.y.
  void stage_in_shared(const std::string &consumer, int at, int64_t lanes, bool lanes_up_to_size, int64_t warps) {
    std::vector<std::string> sources;
    for (auto *r : reads_in(stage(consumer).tensor->body))
      if (std::find(sources.begin(), sources.end(), r->tensor->name) == sources.end() && r->tensor->name != consumer)
        sources.push_back(r->tensor->name);
    for (auto &src : sources) {
      std::string cache = check(cache_read(s, src, consumer, ir::MemoryScope::Shared), std::string());
      if (cache.empty()) return;
      check(compute_at(s, cache, consumer, at));
      // A decision: each thread copies 16 bytes at a time (float4 where the back end proves alignment).
      std::vector<int> copy_loops = stage(cache).leaves;
      int64_t v = 16 / std::max(1, stage(cache).tensor->dtype.bytes());
      int last = copy_loops.back();
      bool vectorized = false;
      if (rng.below(2) == 0 && stage(cache).loops[last].extent % v == 0 && stage(cache).loops[last].extent > v) {
        SplitResult vs = check(split(s, cache, last, v), SplitResult{-1, -1});
        if (vs.inner >= 0) {
          check(vectorize(s, cache, vs.inner));
          vectorized = true;
          copy_loops = stage(cache).leaves;
          copy_loops.pop_back(); // the vector stays innermost
        }
      }
      // A decision: pad each row of the tile so that threads reading down a column hit different banks
      // (one 4-byte word), or by 16 bytes, which keeps float4 copies and WMMA tiles aligned.
      const ir::Tensor &ct = stage(cache).tensor;
      if (ct->shape.size() >= 2) {
        int64_t bytes = ct->dtype.bytes() > 0 ? ct->dtype.bytes() : 1;
        bool keep_16_byte_rows = vectorized || stage(consumer).scope == ir::MemoryScope::Fragment;
        int64_t pad_bytes = std::array<int64_t, 3>{0, keep_16_byte_rows ? 16 : 4, 16}[size_t(rng.below(3))];
        if (pad_bytes > 0) check(storage_pad(s, cache, std::max<int64_t>(1, pad_bytes / bytes)));
      }
      int fused = fuse_loops(cache, copy_loops);
      int64_t n = lanes_up_to_size ? std::min<int64_t>(lanes, stage(cache).loops[fused].extent) : lanes;
      SplitResult sp = check(split(s, cache, fused, n), SplitResult{-1, -1});
      if (sp.inner < 0) return;
      if (n > 1) check(sched::bind(s, cache, sp.inner, "threadIdx.x"));
      if (warps > 1 && stage(cache).loops[sp.outer].extent >= warps) { // else warp 0 fetches (a vectorized copy)
        SplitResult w = check(split(s, cache, sp.outer, warps), SplitResult{-1, -1});
        if (w.inner >= 0) check(sched::bind(s, cache, w.inner, "threadIdx.y"));
      }
    }
  }

  void gpu_tile_reduction(const ir::Tensor &t, const ir::Tensor &epilogue) {
    std::string name = t->name;
    int ns = int(t->axes.size());
    int nr = int(t->body.as<ir::Reduce>()->axes.size());
    if (ns == 0) return;
    // Decisions: block, vthread, thread, and two per-thread levels per spatial
    // axis; three levels per reduction axis. Threads per block stay in limits.
    std::vector<std::vector<int64_t>> sf, rf;
    int64_t threads = 1, vthreads = 1, per_thread = 1;
    for (int a = 0; a < ns; ++a) {
      std::vector<int64_t> f;
      for (int tries = 0; tries < 16; ++tries) {
        f = factorize(t->shape[a], 5, 4, rng);
        if (threads * f[2] <= max_threads() && vthreads * f[1] <= 8 && per_thread * f[3] * f[4] <= 64) break;
        f = {t->shape[a], 1, 1, 1, 1};
      }
      threads *= f[2], vthreads *= f[1], per_thread *= f[3] * f[4];
      sf.push_back(f);
    }
    for (auto &ax : t->body.as<ir::Reduce>()->axes) rf.push_back(factorize(ax.extent, 3, 8, rng));

    std::string outer_stage = name, local = name;
    if (epilogue)
      outer_stage = epilogue->name;
    else
      local = check(cache_write(s, name, ir::MemoryScope::Local), std::string());
    if (local.empty()) return;
    std::vector<std::vector<int>> ol(ns);
    for (int a = 0; a < ns; ++a)
      ol[a] = split_levels(outer_stage, a, {sf[a][0], sf[a][1], sf[a][2], sf[a][3] * sf[a][4]});
    std::vector<int> order;
    for (int l = 0; l < 4; ++l)
      for (auto &x : ol) order.push_back(x[l]);
    check(reorder(s, outer_stage, order));
    std::vector<int> lv[3];
    for (int l = 0; l < 3; ++l)
      for (auto &x : ol) lv[l].push_back(x[l]);
    // A decision: each thread writes its row of results 8 or 16 bytes at a time (float2 / float4).
    const ir::Tensor &written = stage(outer_stage).tensor;
    int64_t row = sf[ns - 1][3] * sf[ns - 1][4];
    if (written->dtype.bytes() == 4 && (row == 2 || row == 4) && rng.below(2) == 0)
      check(vectorize(s, outer_stage, ol[ns - 1][3]));
    fuse_bind(outer_stage, lv[0], "blockIdx.x");
    fuse_bind(outer_stage, lv[1], "vthread");
    int thread_loop = fuse_bind(outer_stage, lv[2], "threadIdx.x");
    check(compute_at(s, local, outer_stage, thread_loop));

    std::vector<std::vector<int>> sl(ns), rl(nr);
    for (int a = 0; a < ns; ++a) sl[a] = split_levels(local, a, {sf[a][3], sf[a][4]});
    for (int r = 0; r < nr; ++r) rl[r] = split_levels(local, ns + r, rf[r]);
    order.clear();
    for (auto &x : rl) order.push_back(x[0]);
    for (auto &x : rl) order.push_back(x[1]);
    for (auto &x : sl) order.push_back(x[0]);
    for (auto &x : rl) order.push_back(x[2]);
    for (auto &x : sl) order.push_back(x[1]);
    check(reorder(s, local, order));
    pragma_unroll(local);

    if (!sketch.shared || nr == 0) return;
    // Stage what the local tile reads in shared memory, per block, at the outer reduction level.
    stage_in_shared(local, rl[nr - 1][0], threads, true, 1);
  }

  // Tensor cores with a WMMA shape m x n x k (sampled among those that fit): a
  // block computes a (wm x fm x m) x (wn x fn x n) tile of C with wm x wn warps
  // (threadIdx.y), each accumulating fm x fn fragments; A and B are staged in
  // shared memory per kf x k slice and fetched cooperatively by all threads;
  // every m x n x k step is one WMMA.
  // Returns the stage that writes the result (the fused epilogue, if any).
  std::string gpu_tensor_core(const ir::Tensor &t, const TensorIntrinsic *in) {
    std::string name = t->name;
    const int nb = int(t->shape.size()) - 2; // leading batch axes
    int64_t mt = t->shape[size_t(nb)] / in->m, nt = t->shape[size_t(nb) + 1] / in->n;
    int64_t kt = t->body.as<ir::Reduce>()->axes[0].extent / in->k;
    auto pick = [&](int64_t n, int64_t max) {
      auto d = divisors(n, max);
      return d[size_t(rng.below(int64_t(d.size())))];
    };
    int64_t fm = pick(mt, 4), fn = pick(nt, 4), wm = pick(mt / fm, 4), wn = pick(nt / fn, 4), kf = pick(kt, 4);
    std::string frag = check(cache_write(s, name, ir::MemoryScope::Fragment), std::string());
    if (frag.empty()) return "";
    std::string out = name;
    ir::Tensor epilogue = s.source.is_output(t) ? nullptr : fusable_consumer(s.source, t);
    if (epilogue) { // e.g. the cast of an f32 accumulator to f16: write it straight from the fragments
      check(compute_inline(s, name));
      out = epilogue->name;
    }
    std::vector<int> il = split_levels(out, nb, {mt / fm / wm, wm, fm * in->m});
    std::vector<int> jl = split_levels(out, nb + 1, {nt / fn / wn, wn, fn * in->n});
    std::vector<int> order, blocks;
    for (int b = 0; b < nb; ++b) order.push_back(b);
    order.insert(order.end(), {il[0], jl[0], il[1], jl[1], il[2], jl[2]});
    check(reorder(s, out, order));
    blocks.assign(order.begin(), order.begin() + nb + 2); // batch, then the block tile
    fuse_bind(out, blocks, "blockIdx.x");
    int warp_loop = fuse_bind(out, {il[1], jl[1]}, "threadIdx.y");
    check(compute_at(s, frag, out, warp_loop));

    // The fragment stage: batch... k0 (shared slice) k1 | i0 j0 (fragments) | k2 i1 j1 (one WMMA).
    SplitResult i = check(split_exact(s, frag, nb, in->m), SplitResult{-1, -1});
    SplitResult j = check(split_exact(s, frag, nb + 1, in->n), SplitResult{-1, -1});
    SplitResult k = check(split_exact(s, frag, nb + 2, in->k), SplitResult{-1, -1});
    SplitResult ko = check(split_exact(s, frag, k.outer, kf), SplitResult{-1, -1});
    if (i.inner < 0 || j.inner < 0 || k.inner < 0 || ko.inner < 0) return out;
    order.clear();
    for (int b = 0; b < nb; ++b) order.push_back(b);
    order.insert(order.end(), {ko.outer, ko.inner, i.outer, j.outer, k.inner, i.inner, j.inner});
    check(reorder(s, frag, order));
    check(tensorize(s, frag, k.inner, in->name));
    pragma_unroll(frag);

    // Every warp's 32 lanes share the copies (WMMA kernels keep threadIdx.x a whole warp).
    stage_in_shared(frag, ko.outer, 32, false, wm * wn);
    return out;
  }

  // One block per output; the last reduction axis is split over the block's
  // threads, whose partial results the cross-thread reduction combines.
  void gpu_cross_thread(const ir::Tensor &t) {
    std::string name = t->name;
    int ns = int(t->axes.size());
    int nr = int(t->body.as<ir::Reduce>()->axes.size());
    int64_t extent = t->body.as<ir::Reduce>()->axes.back().extent;
    auto d = divisors(extent, std::min<int64_t>(max_threads(), 512));
    std::vector<int64_t> wide;
    for (auto x : d)
      if (x >= std::min<int64_t>(32, extent)) wide.push_back(x);
    int64_t threads = wide.empty() ? d.back() : wide[size_t(rng.below(int64_t(wide.size())))];
    SplitResult sp = check(split(s, name, ns + nr - 1, threads), SplitResult{-1, -1});
    if (sp.inner < 0) return;
    std::vector<int> order;
    for (int a = 0; a < ns; ++a) order.push_back(a);
    order.push_back(sp.inner);
    for (int r = 0; r + 1 < nr; ++r) order.push_back(ns + r);
    order.push_back(sp.outer);
    check(reorder(s, name, order));
    if (ns > 0) {
      std::vector<int> spatial;
      for (int a = 0; a < ns; ++a) spatial.push_back(a);
      fuse_bind(name, spatial, "blockIdx.x");
    }
    check(sched::bind(s, name, sp.inner, "threadIdx.x"));
  }

  void gpu_elementwise(const std::string &name) {
    int fused = fuse_loops(name, stage(name).leaves);
    int64_t extent = stage(name).loops[fused].extent;
    static const int64_t kThreads[] = {32, 64, 128, 256, 512, 1024};
    int64_t t = std::min<int64_t>(extent, kThreads[rng.below(6)]);
    t = std::min<int64_t>(t, max_threads());
    SplitResult sp = check(split(s, name, fused, t), SplitResult{-1, -1});
    if (sp.inner < 0) return;
    check(sched::bind(s, name, sp.outer, "blockIdx.x"));
    check(sched::bind(s, name, sp.inner, "threadIdx.x"));
  }

  const Target &target;
  int threads;
  const Sketch &sketch;
  Chooser &rng;
  int vector_lanes = 1;
  Status status = Status::ok();
};

} // namespace

std::vector<Sketch> SpaceGenerator::sketches(const te::Workload &w) const {
  if (target_.is_cuda()) {
    bool has_reduction = false;
    for (auto &t : w.stages) has_reduction |= is_reduction(t);
    std::vector<std::string> base;
    for (auto &t : w.stages)
      if (!is_reduction(t) && !w.is_output(t)) base.push_back("inline " + t->name);
    std::vector<Sketch> out;
    bool tensor_core = false;
    for (auto &t : w.stages) tensor_core |= intrinsic_for(t, target_, false) != nullptr;
    if (tensor_core) {
      Sketch k;
      k.tensor_core = true;
      k.name = "gpu-tensorcore";
      k.rules = base;
      for (auto &t : w.stages) {
        if (auto *in = intrinsic_for(t, target_, false)) {
          ir::Tensor e = w.is_output(t) ? nullptr : fusable_consumer(w, t);
          k.rules.push_back("accumulate " + t->name + " in " + in->shape_str() + " fragments with " + in->name +
                            ": blocks of warps (threadIdx.y), A and B staged in shared memory per k slice" +
                            (e ? "; " + e->name + " is written from the fragments (fused epilogue)" : ""));
        } else if (is_reduction(t)) {
          k.rules.push_back("tile " + t->name + " S-S-S-R-R-S-R-S: blockIdx / vthread / threadIdx");
        } else if (w.is_output(t) && !std::any_of(w.stages.begin(), w.stages.end(), [&](const ir::Tensor &r) {
                     return intrinsic_for(r, target_, false) && !w.is_output(r) && fusable_consumer(w, r) == t;
                   })) {
          k.rules.push_back("fuse " + t->name + " and bind it to blockIdx.x / threadIdx.x");
        }
      }
      out.push_back(std::move(k));
    }
    bool cross = false;
    for (auto &t : w.stages) cross |= wants_cross_thread(t);
    if (cross) {
      Sketch k;
      k.cross_thread = true;
      k.name = "gpu-cross-thread";
      k.rules = base;
      for (auto &t : w.stages) {
        if (wants_cross_thread(t))
          k.rules.push_back("reduce " + t->name +
                            " across threads: one block per output, the last reduction axis "
                            "split over threadIdx.x");
        else if (is_reduction(t))
          k.rules.push_back("tile " + t->name + " S-S-S-R-R-S-R-S: blockIdx / vthread / threadIdx");
        else if (w.is_output(t))
          k.rules.push_back("fuse " + t->name + " and bind it to blockIdx.x / threadIdx.x");
      }
      out.push_back(std::move(k));
    }
    for (int sh = 0; sh <= (has_reduction ? 1 : 0); ++sh) {
      Sketch k;
      k.shared = sh;
      k.name = has_reduction ? (sh ? "gpu-tile+shared" : "gpu-tile") : "gpu-elementwise";
      k.rules = base;
      for (auto &t : w.stages) {
        if (is_reduction(t)) {
          ir::Tensor e = fusable_consumer(w, t);
          k.rules.push_back("tile " + (e ? e->name : t->name) +
                            " S-S-S-R-R-S-R-S: blockIdx / vthread / threadIdx; accumulate " + t->name +
                            " in a per-thread local tile" + (e ? " (fused epilogue)" : ""));
          if (sh)
            k.rules.push_back("stage the inputs of " + t->name + " in shared memory per block, fetched cooperatively");
        } else if (w.is_output(t) && !(has_reduction && [&] {
                     for (auto &r : w.stages)
                       if (is_reduction(r) && fusable_consumer(w, r) == t) return true;
                     return false;
                   }())) {
          k.rules.push_back("fuse " + t->name + " and bind it to blockIdx.x / threadIdx.x");
        }
      }
      out.push_back(std::move(k));
    }
    return out;
  }
  bool has_reduction = false, can_pack = false, can_rfactor = false;
  for (auto &t : w.stages) {
    has_reduction |= is_reduction(t);
    can_pack |= !pack_candidate(w, t).input.empty();
    can_rfactor |= wants_rfactor(t);
  }
  std::vector<std::string> base;
  for (auto &t : w.stages)
    if (!is_reduction(t) && !w.is_output(t))
      base.push_back("inline " + t->name +
                     (worth_materializing(w, t) ? " (or keep it in a buffer: it is costly and read more than once)"
                      : threads_ == 1 && read_through_window(w, t)
                          ? " (or keep it in a buffer: a reduction reads it through a window)"
                          : ""));
  std::vector<Sketch> out;
  for (int cw = 0; cw <= (has_reduction ? 1 : 0); ++cw) {
    for (int pk = 0; pk <= (can_pack ? 1 : 0); ++pk) {
      Sketch k;
      k.cache_write = cw;
      k.pack = pk;
      k.name = has_reduction ? std::string("tile") + (cw ? "+cache_write" : "") + (pk ? "+pack" : "") : "elementwise";
      k.rules = base;
      for (auto &t : w.stages) {
        if (is_reduction(t)) {
          PackChoice p = pk ? pack_candidate(w, t) : PackChoice{};
          if (!p.input.empty())
            k.rules.push_back("pack " + p.input + " (dim " + std::to_string(p.dim) + " blocked by the vector tile of " +
                              t->name + ")");
          ir::Tensor e = cw ? fusable_consumer(w, t) : nullptr;
          if (!cw)
            k.rules.push_back("tile " + t->name + " S-S-R-S-R-S; parallel outer; vectorize inner");
          else if (e)
            k.rules.push_back("tile " + e->name + " in 3 levels; compute " + t->name +
                              " at its tile (fused epilogue), tiled R-S-R-S; vectorize inner");
          else
            k.rules.push_back("cache_write " + t->name +
                              " (local); tile the copy in 3 levels; compute the cache at "
                              "its tile, tiled R-S-R-S; vectorize inner");
        } else if (w.is_output(t) && !(cw && [&] {
                     for (auto &r : w.stages)
                       if (is_reduction(r) && fusable_consumer(w, r) == t) return true;
                     return false;
                   }())) {
          k.rules.push_back("tile " + t->name + " in 2 levels; parallel outer; vectorize inner");
        }
      }
      out.push_back(std::move(k));
    }
  }
  for (int pk = 0; pk <= (can_pack ? 1 : 0); ++pk) {
    bool can_tensorize = false;
    for (auto &t : w.stages) can_tensorize |= intrinsic_for(t, target_, pk) != nullptr;
    if (can_tensorize) {
      Sketch k;
      k.cache_write = true;
      k.tensorize = true;
      k.pack = pk;
      k.name = std::string("tile+cache_write+tensorize") + (pk ? "+pack" : "");
      k.rules = base;
      for (auto &t : w.stages) {
        if (auto *in = intrinsic_for(t, target_, pk))
          k.rules.push_back("tile " + t->name + "; its local tile runs on the tensor intrinsic " + in->name);
        else if (is_reduction(t))
          k.rules.push_back("tile " + t->name + " S-S-R-S-R-S; parallel outer; vectorize inner");
      }
      out.push_back(std::move(k));
    }
  }
  for (auto &t : w.stages)
    if (ChannelChoice ch = channel_choice(t, f32_lanes(target_)); ch.axis >= 0) {
      Sketch k;
      k.channels = true;
      k.name = "tile+channels";
      k.rules = base;
      k.rules.push_back("block " + t->name + "'s axis " + std::to_string(ch.axis) +
                        " by the vector width in a local accumulator (NCHWc), pack " + ch.input + " to match; tile " +
                        "in registers over the whole reduction");
      out.push_back(std::move(k));
      break;
    }
  if (ir::Tensor y = rowwise_output(w)) {
    Sketch k;
    k.rowwise = true;
    k.name = "rowwise";
    k.rules = base;
    k.rules.push_back("tile " + y->name + " by rows (a block per parallel task) and vectorize along the row; compute " +
                      "every other stage inside that loop for just its rows: row reductions as vector partial " +
                      "results, stages kept in buffers vectorized");
    out.push_back(std::move(k));
  }
  if (can_rfactor) {
    Sketch k;
    k.rfactor = true;
    k.name = "rfactor";
    k.rules = base;
    for (auto &t : w.stages) {
      if (wants_rfactor(t))
        k.rules.push_back("rfactor " + t->name + " over its last reduction axis; vectorize the partial results");
      else if (is_reduction(t))
        k.rules.push_back("tile " + t->name + " S-S-R-S-R-S; parallel outer; vectorize inner");
      else if (w.is_output(t))
        k.rules.push_back("tile " + t->name + " in 2 levels; parallel outer; vectorize inner");
    }
    out.push_back(std::move(k));
  }
  return out;
}

Expected<Schedule> SpaceGenerator::sample(const te::Workload &w, const Sketch &sketch, Rng &rng,
                                          Decisions *made) const {
  std::string last;
  for (int tries = 0; tries < 64; ++tries) {
    Chooser chooser(rng, nullptr);
    Sampler sampler(w, target_, threads_, sketch, chooser);
    if (Status st = sampler.run(); !st) return make_error("sampling sketch " + sketch.name + ": " + st.message());
    Status v = validator_ ? validator_(sampler.s) : Status::ok();
    if (v) {
      if (made) *made = std::move(chooser.made);
      return std::move(sampler.s);
    }
    last = v.message();
  }
  return make_error("sampling sketch " + sketch.name + ": no valid sample in 64 draws (last: " + last + ")");
}

Expected<Schedule> SpaceGenerator::resample(const te::Workload &w, const Sketch &sketch, Decisions &decisions,
                                            Rng &rng) const {
  Chooser chooser(rng, &decisions);
  Sampler sampler(w, target_, threads_, sketch, chooser);
  if (Status st = sampler.run(); !st) return make_error("resampling sketch " + sketch.name + ": " + st.message());
  if (validator_)
    if (Status v = validator_(sampler.s); !v)
      return make_error("resampling sketch " + sketch.name + ": " + v.message());
  decisions = std::move(chooser.made);
  return std::move(sampler.s);
}

Expected<Schedule> default_gpu_schedule(const te::Workload &w, const Target &target) {
  if (!target.gpu) return make_error("target " + target.name + " is not a GPU");
  Schedule s = default_schedule(w);
  const int64_t block = std::min<int64_t>(256, target.gpu->max_threads_per_block);
  std::vector<std::string> names;
  for (auto &st : s.stages) names.push_back(st.tensor->name);
  for (auto &name : names) {
    std::vector<int> spatial;
    for (int l : s.find(name)->leaves)
      if (!s.find(name)->loops[size_t(l)].is_reduce) spatial.push_back(l);
    if (spatial.empty()) continue;
    int fused = spatial[0];
    for (size_t i = 1; i < spatial.size(); ++i) {
      auto f = fuse(s, name, fused, spatial[i]);
      if (!f) return make_error("the default GPU mapping of " + name + ": " + f.error());
      fused = *f;
    }
    auto sp = split(s, name, fused, std::min(block, s.find(name)->loops[size_t(fused)].extent));
    if (!sp) return make_error("the default GPU mapping of " + name + ": " + sp.error());
    if (Status b = sched::bind(s, name, sp->outer, "blockIdx.x"); !b) return make_error(b.message());
    if (Status b = sched::bind(s, name, sp->inner, "threadIdx.x"); !b) return make_error(b.message());
  }
  return s;
}

Expected<Schedule> default_schedule_for(const te::Workload &w, const Target &target, bool parallel_outer) {
  if (target.is_cuda()) return default_gpu_schedule(w, target);
  return default_schedule(w, parallel_outer);
}

} // namespace tessel::sched
