// Register accumulators on the CPU: an element a serial loop updates at the same index on every iteration (a
// reduction's accumulator, C[i, j] across k) is loaded into a local before the loop, updated there, and stored
// once after it. LLVM's LICM does this only when its alias analysis proves the element apart from every other
// access in the loop, and for many register tiles it does not: a matmul tile of 4 rows x 64 lanes loaded and
// stored C every k (45-51 GFLOP/s) where 7 rows were kept in registers (113 GFLOP/s, AMD EPYC Zen 4). Here the
// proof is the loop IR's: every access to the buffer in the loop is at an index the loop leaves alone, and the
// promoted ones are apart from the others by constants. A local whose every access is at a constant index is
// what LLVM's SROA turns into registers.
#include "ir/op.h"
#include "ir/visitor.h"
#include "lower/lower.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <unordered_map>
#include <unordered_set>

namespace tessel::lower {

namespace {

using namespace ir;

// Elements promoted around one loop at most: what a machine's vector registers hold, twice over (beyond that,
// LLVM spills the locals, which costs what the stores did).
constexpr int64_t kMaxPromotedBytes = 2 * 32 * 64;

// One access to a buffer inside a loop body.
struct Access {
  Expr index; // the element's index: a scalar, or a dense Ramp
  DataType type;
  bool store = false;
  std::vector<const ExprNode *> vars; // the variables the index uses
  size_t hash = 0;                    // of the index's structure: equal indices hash alike
  Access(Expr i, DataType t, bool s);
};

// Appends the variables `e` uses.
void collect_vars(const Expr &e, std::vector<const ExprNode *> *vars) {
  struct V : IRVisitor {
    std::vector<const ExprNode *> *vars;
    using IRVisitor::visit;
    void visit(const Var *op) override { vars->push_back(op); }
  } scan;
  scan.vars = vars;
  e.accept(&scan);
}

// A structural hash of an index (variables by identity, like ir::equal), and the variables it uses.
size_t hash_index(const Expr &e, std::vector<const ExprNode *> *vars) {
  size_t h = size_t(e.kind()) * 0x9e3779b97f4a7c15ull;
  auto mix = [&](size_t x) { h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); };
  if (auto *v = e.as<Var>()) {
    vars->push_back(v);
    mix(std::hash<const void *>()(v));
  } else if (auto *i = e.as<IntImm>()) {
    mix(std::hash<int64_t>()(i->value));
  } else if (auto *b = e.as<Binary>()) {
    mix(size_t(b->op)), mix(hash_index(b->a, vars)), mix(hash_index(b->b, vars));
  } else if (auto *r = e.as<Ramp>()) {
    mix(size_t(r->lanes)), mix(hash_index(r->base, vars)), mix(hash_index(r->stride, vars));
  } else if (auto *c = e.as<Cast>()) {
    mix(hash_index(c->value, vars));
  } else { // anything else: its variables still count; equal() tells such indices apart
    collect_vars(e, vars);
  }
  return h;
}
Access::Access(Expr i, DataType t, bool s) : index(std::move(i)), type(t), store(s) { hash = hash_index(index, &vars); }

// What one store reads and writes: its accesses (by buffer variable), the handles it uses otherwise, the
// variables its lets define. Summarized once per store node: loops nest deep, and each looks at its body.
struct StoreSummary {
  Stmt store; // keeps the node (the cache's key) alive
  std::vector<std::pair<Expr, Access>> accesses;
  std::vector<const ExprNode *> escaped, defined;
};
StoreSummary summarize(const Store *op) {
  struct V : IRVisitor {
    StoreSummary out;
    using IRVisitor::visit;
    void visit(const Var *v) override {
      if (v->type.is_handle()) out.escaped.push_back(v);
    }
    void visit(const Load *l) override {
      out.accesses.push_back({l->buffer, Access(l->index, l->type, false)});
      l->index.accept(this);
    }
    void visit(const Let *l) override {
      out.defined.push_back(l->var.get());
      IRVisitor::visit(l);
    }
  } v;
  v.out.accesses.push_back({op->buffer, Access(op->index, op->value.type(), true)});
  op->value.accept(&v);
  op->index.accept(&v);
  return std::move(v.out);
}
using SummaryCache = std::unordered_map<const StmtNode *, StoreSummary>;
void remember(SummaryCache &cache, const Stmt &store) {
  if (cache.count(store.get())) return;
  StoreSummary summary = summarize(store.as<Store>());
  summary.store = store;
  cache.emplace(store.get(), std::move(summary));
}

// Every access to every buffer in a loop body, and what the body defines (loop variables, lets, allocations).
class AccessCollector : public IRVisitor {
public:
  explicit AccessCollector(const SummaryCache &cache) : cache_(cache) {}
  struct Use {
    const Access *access; // owned by a store's summary, or by `loose_`
    int guards;           // the conditions it runs under: an index into `guard_sets` (0: none)
    bool uncertain;       // in an else branch, or a loop that may not run
  };
  std::deque<std::vector<Expr>> guard_sets = {{}}; // the `if` conditions around uses, outermost first
  struct Buffer {
    Expr var;
    std::vector<Use> uses;
  };
  std::vector<Buffer> buffers;                           // a loop body touches few: searched in order
  std::unordered_set<const ExprNode *> defined, escaped; // escaped: used other than by loads and stores
  bool parallel_inside = false;                          // a loop other than a serial one
  using IRVisitor::visit;
  void visit(const Var *op) override {
    if (op->type.is_handle()) escaped.insert(op);
  }
  void visit(const Load *op) override {
    loose_.push_back(Access(op->index, op->type, false));
    uses_of(op->buffer).push_back({&loose_.back(), guards_, uncertain_ > 0});
    op->index.accept(this);
  }
  void visit(const Store *op) override {
    auto it = cache_.find(op);
    if (it == cache_.end()) fresh_.push_back(summarize(op));
    const StoreSummary &summary = it == cache_.end() ? fresh_.back() : it->second;
    for (auto &[buffer, access] : summary.accesses) {
      uses_of(buffer).push_back({&access, guards_, uncertain_ > 0});
    }
    escaped.insert(summary.escaped.begin(), summary.escaped.end());
    defined.insert(summary.defined.begin(), summary.defined.end());
  }
  void visit(const For *op) override {
    defined.insert(op->var.get());
    parallel_inside |= op->kind != ForKind::Serial;
    int64_t extent = 0;
    bool runs = is_const_int(op->extent, &extent) && extent > 0; // else its stores may not happen
    op->min.accept(this);
    op->extent.accept(this);
    uncertain_ += !runs;
    op->body.accept(this);
    uncertain_ -= !runs;
  }
  void visit(const LetStmt *op) override {
    defined.insert(op->var.get());
    IRVisitor::visit(op);
  }
  void visit(const Let *op) override {
    defined.insert(op->var.get());
    IRVisitor::visit(op);
  }
  void visit(const Allocate *op) override {
    defined.insert(op->buffer.get());
    IRVisitor::visit(op);
  }
  void visit(const IfThenElse *op) override {
    op->cond.accept(this);
    int outer = guards_;
    guard_sets.push_back(guard_sets[size_t(outer)]);
    guard_sets.back().push_back(op->cond);
    guards_ = int(guard_sets.size()) - 1;
    op->then_case.accept(this);
    guards_ = outer;
    ++uncertain_;
    if (op->else_case.defined()) op->else_case.accept(this);
    --uncertain_;
  }

private:
  std::vector<Use> &uses_of(const Expr &buffer) {
    for (auto &b : buffers)
      if (b.var.same_as(buffer)) return b.uses;
    buffers.push_back({buffer, {}});
    return buffers.back().uses;
  }
  const SummaryCache &cache_;
  std::deque<StoreSummary> fresh_; // stores made since the cache was filled
  std::deque<Access> loose_;       // loads outside stores (conditions, loop bounds)
  int guards_ = 0, uncertain_ = 0;
};

// Whether two sets of conditions are the same, condition by condition.
bool same_guards(const std::vector<Expr> &a, const std::vector<Expr> &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!equal(a[i], b[i])) return false;
  return true;
}

// An index as a sum of terms times constants plus a constant; a term is anything but a sum, a difference or a
// product by a constant (a variable, f / 14), compared structurally.
struct Linear {
  std::vector<std::pair<Expr, int64_t>> terms;
  int64_t constant = 0;
  void add(const Expr &e, int64_t times) {
    int64_t v = 0;
    if (is_const_int(e, &v)) {
      constant += times * v;
      return;
    }
    if (auto *op = e.as<Binary>()) {
      if (op->op == BinaryOp::Add || op->op == BinaryOp::Sub) {
        add(op->a, times);
        add(op->b, op->op == BinaryOp::Add ? times : -times);
        return;
      }
      if (op->op == BinaryOp::Mul && (is_const_int(op->a, &v) || is_const_int(op->b, &v))) {
        add(is_const_int(op->a) ? op->b : op->a, times * v);
        return;
      }
    }
    for (auto &[term, coef] : terms)
      if (equal(term, e)) {
        coef += times;
        return;
      }
    terms.push_back({e, times});
  }
};

// The elements an index covers: its first (as a linear form) and how many; nullopt for a strided vector index.
struct Span {
  Linear first;
  int64_t count;
};
std::optional<Span> span_of(const Expr &index) {
  Span span;
  auto *r = index.as<Ramp>();
  if (r && !is_one(r->stride)) return std::nullopt;
  span.first.add(r ? r->base : index, 1);
  span.count = r ? r->lanes : 1;
  return span;
}
// Whether two spans provably share no element: their starts differ by a constant (the same terms with the same
// coefficients) at least the earlier's count.
bool apart(const Span &a, const Span &b) {
  auto covered = [](const Linear &x, const Linear &y) { // every non-zero term of x is y's with its coefficient
    for (auto &[term, coef] : x.terms) {
      if (coef == 0) continue;
      auto it = std::find_if(y.terms.begin(), y.terms.end(), [&](const auto &t) { return equal(t.first, term); });
      if (it == y.terms.end() || it->second != coef) return false;
    }
    return true;
  };
  if (!covered(a.first, b.first) || !covered(b.first, a.first)) return false;
  int64_t d = b.first.constant - a.first.constant;
  return d >= a.count || -d >= b.count;
}

// Replaces the accesses of one buffer at the promoted indices by accesses of their locals.
class ToLocals : public IRMutator {
public:
  struct Promoted {
    Expr index, local;
    DataType type;
    int guards; // the conditions its uses run under (AccessCollector::guard_sets)
  };
  ToLocals(const ExprNode *buffer, const std::vector<Promoted> &promoted, SummaryCache &summaries)
      : buffer_(buffer), promoted_(promoted), summaries_(summaries) {}
  using IRMutator::mutate;

protected:
  Expr visit(const Load *op, const Expr &e) override {
    if (const Promoted *p = find(op->buffer, op->index)) return Load::make(op->type.element_of(), p->local, whole(*p));
    return IRMutator::visit(op, e);
  }
  Stmt visit(const Store *op, const Stmt &s) override {
    auto it = summaries_.find(op); // a store that does not touch the buffer stays as it is
    if (it != summaries_.end() && std::none_of(it->second.accesses.begin(), it->second.accesses.end(),
                                               [&](const auto &a) { return a.first.get() == buffer_; }))
      return s;
    const Promoted *p = find(op->buffer, op->index);
    Stmt out = p ? Store::make(p->local, mutate(op->value), whole(*p)) : IRMutator::visit(op, s);
    remember(summaries_, out);
    return out;
  }

private:
  const Promoted *find(const Expr &buffer, const Expr &index) const {
    if (buffer.get() != buffer_) return nullptr;
    for (auto &p : promoted_)
      if (equal(p.index, index)) return &p;
    return nullptr;
  }
  const ExprNode *buffer_;
  const std::vector<Promoted> &promoted_;
  SummaryCache &summaries_;

public:
  static Expr whole(const Promoted &p) {
    Expr zero(int64_t(0));
    return p.type.lanes > 1 ? Ramp::make(zero, Expr(int64_t(1)), p.type.lanes) : zero;
  }
};

class PromoteAccumulators : public IRMutator {
public:
  using IRMutator::mutate;

protected:
  Stmt visit(const Store *op, const Stmt &s) override {
    remember(summaries_, s);
    return s;
  }
  Stmt visit(const For *op, const Stmt &s) override {
    Stmt loop = IRMutator::visit(op, s); // inner loops first
    int64_t extent = 0;
    if (op->kind != ForKind::Serial || !is_const_int(op->extent, &extent) || extent < 2) return loop;
    return promote(loop);
  }

private:
  // Whether a store of the loop's own body (not inside a loop within it) has an index the loop leaves alone: a
  // cheap look before the whole body's accesses are gathered. Where an inner loop promoted something, its copies
  // in and out are such stores.
  bool worth_a_look(const For *op) const {
    struct V : IRVisitor {
      const SummaryCache *summaries;
      const ExprNode *var;
      bool found = false;
      using IRVisitor::visit;
      void visit(const For *) override {} // not inside inner loops
      void visit(const Store *s) override {
        auto it = summaries->find(s);
        if (it == summaries->end()) {
          found = true; // not summarized: let the full look decide
          return;
        }
        const auto &vars = it->second.accesses.front().second.vars; // the store's own index
        found |= std::find(vars.begin(), vars.end(), var) == vars.end();
      }
      void visit(const ExternCall *) override {}
      void visit(const Evaluate *) override {}
    } v;
    v.summaries = &summaries_;
    v.var = op->var.get();
    op->body.accept(&v);
    return v.found;
  }

  Stmt promote(const Stmt &loop) {
    const For *op = loop.as<For>();
    if (!worth_a_look(op)) return loop;
    AccessCollector c(summaries_);
    op->body.accept(&c);
    if (c.parallel_inside) return loop; // a parallel loop inside would share the locals between threads
    std::unordered_set<const ExprNode *> varying = c.defined;
    varying.insert(op->var.get());
    int64_t budget = kMaxPromotedBytes;
    Stmt body = op->body;
    std::vector<Stmt> before, after;
    std::vector<std::pair<Expr, DataType>> locals;
    // A use happens on every iteration, or on none, when the conditions around it are the loop's invariants
    // (a tail guard of an outer loop): then its element can live in a local under the same conditions.
    std::vector<bool> invariant_guards;
    for (auto &conds : c.guard_sets) {
      std::vector<const ExprNode *> vars;
      for (auto &cond : conds) collect_vars(cond, &vars);
      invariant_guards.push_back(std::none_of(vars.begin(), vars.end(), [&](auto *v) { return varying.count(v); }));
    }
    auto certain = [&](const AccessCollector::Use &u) { return !u.uncertain && invariant_guards[size_t(u.guards)]; };
    for (auto &[buffer_expr, uses] : c.buffers) {
      const ExprNode *buffer = buffer_expr.get();
      if (c.escaped.count(buffer) || c.defined.count(buffer)) continue;
      // Cheap refusals first: nothing stored on every iteration, or an index the loop moves.
      auto unconditional_store = [&](const AccessCollector::Use &u) { return u.access->store && certain(u); };
      auto moves = [&](const AccessCollector::Use &u) {
        const auto &vars = u.access->vars;
        return std::any_of(vars.begin(), vars.end(), [&](const ExprNode *v) { return varying.count(v) > 0; });
      };
      if (std::none_of(uses.begin(), uses.end(), unconditional_store) || std::any_of(uses.begin(), uses.end(), moves))
        continue;
      // The distinct indices, each with its span; those stored unconditionally are promoted, and every other
      // must be apart from them.
      struct Index {
        Expr index;
        size_t hash;
        DataType type;
        Span span;
        int guards; // every use's conditions must be these
        bool promote = false;
        bool same_guards = true;
      };
      std::vector<Index> indices;
      bool ok = true;
      for (auto &u : uses) {
        const Access &a = *u.access;
        auto it = std::find_if(indices.begin(), indices.end(),
                               [&](const Index &x) { return x.hash == a.hash && equal(x.index, a.index); });
        if (it == indices.end()) {
          std::optional<Span> span = span_of(a.index);
          if (!span) {
            ok = false;
            break;
          }
          indices.push_back({a.index, a.hash, a.type, *span, u.guards});
          it = indices.end() - 1;
        }
        ok &= it->type == a.type;
        it->promote |= unconditional_store(u);
        it->same_guards &= certain(u) && (u.guards == it->guards || same_guards(c.guard_sets[size_t(u.guards)],
                                                                                c.guard_sets[size_t(it->guards)]));
      }
      std::vector<ToLocals::Promoted> promoted;
      for (size_t i = 0; ok && i < indices.size(); ++i) {
        if (!indices[i].promote) continue;
        ok &= indices[i].same_guards;
        for (size_t j = 0; ok && j < indices.size(); ++j) ok &= j == i || apart(indices[i].span, indices[j].span);
        promoted.push_back({indices[i].index, Expr(), indices[i].type, indices[i].guards});
      }
      if (!ok || promoted.empty()) continue;
      int64_t bytes = 0;
      for (auto &p : promoted) bytes += int64_t(p.type.lanes) * p.type.bytes();
      if (bytes > budget) continue;
      budget -= bytes;
      for (auto &p : promoted) {
        p.local = Var::make(DataType::handle(), buffer_expr.as<Var>()->name + ".acc" + std::to_string(counter_++));
        locals.push_back({p.local, p.type});
      }
      body = ToLocals(buffer, promoted, summaries_).mutate(body);
      for (auto &p : promoted) {
        Stmt in = Store::make(p.local, Load::make(p.type.element_of(), buffer_expr, p.index), ToLocals::whole(p));
        Stmt out = Store::make(buffer_expr, Load::make(p.type.element_of(), p.local, ToLocals::whole(p)), p.index);
        remember(summaries_, in), remember(summaries_, out);
        const std::vector<Expr> &guards = c.guard_sets[size_t(p.guards)];
        for (auto g = guards.rbegin(); g != guards.rend(); ++g)
          in = IfThenElse::make(*g, in), out = IfThenElse::make(*g, out);
        before.push_back(in), after.push_back(out);
      }
    }
    if (locals.empty()) return loop;
    std::vector<Stmt> stmts = before;
    stmts.push_back(For::make(op->var, op->min, op->extent, op->kind, body, op->thread_tag));
    stmts.insert(stmts.end(), after.begin(), after.end());
    Stmt out = Block::make(stmts);
    for (auto it = locals.rbegin(); it != locals.rend(); ++it)
      out =
          Allocate::make(it->first, it->second.element_of(), Expr(int64_t(it->second.lanes)), MemoryScope::Local, out);
    return out;
  }
  int counter_ = 0;
  SummaryCache summaries_;
};

// Whether any loop is bound to GPU blocks or threads: GPU kernels keep their own accumulators (gpu_kernels.cpp).
bool has_gpu_loops(const Stmt &s) {
  struct V : IRVisitor {
    bool found = false;
    using IRVisitor::visit;
    void visit(const For *op) override {
      found |= is_gpu_bound(op->kind);
      IRVisitor::visit(op);
    }
  } v;
  s.accept(&v);
  return v.found;
}

} // namespace

Stmt promote_accumulators(const Stmt &s) {
  if (has_gpu_loops(s)) return s;
  return PromoteAccumulators().mutate(s);
}

} // namespace tessel::lower
