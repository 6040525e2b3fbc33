// GPU kernels from a lowered GPU program, as a list of passes per kernel (see
// lower_gpu_kernels at the end). The schedule's semantics follow TVM's: loops
// bound to the same thread index are the same thread; a shared stage computed
// inside thread loops serves the whole block (its region was relaxed over
// them); a reduction loop bound to threads is a cross-thread reduction.
#include "lower/gpu_kernels.h"

#include "ir/bounds.h"
#include "ir/op.h"
#include "ir/simplify.h"
#include "ir/visitor.h"
#include "schedules/intrinsics.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>
#include <numeric>
#include <set>

namespace tessel::lower {

using namespace ir;

namespace {

const char *const kTags[] = {"blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z"};

int tag_slot(const std::string &tag) {
  for (int i = 0; i < 6; ++i)
    if (tag == kTags[i]) return i;
  return -1;
}

// The tensor intrinsic a call computes: directly, or on register accumulators ("<symbol>_acc").
const sched::TensorIntrinsic *warp_intrinsic(const std::string &name) {
  const sched::TensorIntrinsic *in = sched::intrinsic_of_symbol(name);
  if (!in && name.size() > 4 && name.compare(name.size() - 4, 4, "_acc") == 0)
    in = sched::intrinsic_of_symbol(name.substr(0, name.size() - 4));
  return in && in->warp_level ? in : nullptr;
}

bool is_warp_call(const std::string &name) { return warp_intrinsic(name) || name == kAccFill || name == kAccStore; }

// ------------------------------------------------------------ checks and facts
class KernelFacts : public IRVisitor {
public:
  using IRVisitor::visit;
  std::array<int64_t, 6> dims{1, 1, 1, 1, 1, 1}; // per tag: the largest bound extent
  std::array<bool, 6> bound{};
  bool warp_calls = false;
  std::string error;

  void check_type(DataType t) {
    if (t.is_vector() && t.lanes > 16 && error.empty())
      error = "a vector of " + std::to_string(t.lanes) + " lanes in a GPU kernel; vectorize by at most 16";
  }
  void visit(const For *op) override {
    if (!op->thread_tag.empty() && op->kind != ForKind::Vthread) {
      int slot = tag_slot(op->thread_tag);
      int64_t n = 0;
      if (slot < 0 && error.empty()) error = "unknown GPU binding " + op->thread_tag;
      if (!is_const_int(op->extent, &n) && error.empty())
        error = "loop " + op->var.as<Var>()->name + " bound to " + op->thread_tag + " has no constant extent";
      if (slot >= 0) dims[size_t(slot)] = std::max(dims[size_t(slot)], n), bound[size_t(slot)] = true;
    }
    if (op->kind == ForKind::Parallel || op->kind == ForKind::Vectorized)
      if (error.empty())
        error = std::string("a ") + for_kind_name(op->kind) + " loop (" + op->var.as<Var>()->name +
                ") in a GPU kernel; bind it to blocks or threads instead";
    IRVisitor::visit(op);
  }
  void visit(const ExternCall *op) override {
    if (is_warp_call(op->name))
      warp_calls = true;
    else if (error.empty())
      error = "call of " + op->name + " in a GPU kernel: CPU micro-kernels have no CUDA form";
    IRVisitor::visit(op);
  }
  void visit(const Load *op) override {
    check_type(op->type);
    IRVisitor::visit(op);
  }
  void visit(const Store *op) override {
    check_type(op->value.type());
    IRVisitor::visit(op);
  }
  void visit(const Ramp *op) override {
    check_type(op->type);
    IRVisitor::visit(op);
  }
  void visit(const Broadcast *op) override {
    check_type(op->type);
    IRVisitor::visit(op);
  }
};

// Variables and buffers defined inside a statement (loop variables, lets, allocations).
class DefinedVars : public IRVisitor {
public:
  using IRVisitor::visit;
  std::vector<Expr> vars;
  std::set<const ExprNode *> buffers;
  void visit(const Allocate *op) override {
    buffers.insert(op->buffer.get());
    IRVisitor::visit(op);
  }
  void visit(const For *op) override {
    vars.push_back(op->var);
    IRVisitor::visit(op);
  }
  void visit(const LetStmt *op) override {
    vars.push_back(op->var);
    IRVisitor::visit(op);
  }
};

// ------------------------------------------------- pass: scope nested buffers
// An intermediate computed inside a kernel's loops (a fused epilogue's
// accumulator, say) keeps the global scope of its stage, but its storage is
// private to where it is computed: per thread inside thread loops, else per block.
class ScopeNestedBuffers : public IRMutator {
public:
  using IRMutator::mutate;

protected:
  Stmt visit(const For *op, const Stmt &s) override {
    bool thread = op->kind == ForKind::GpuThread, block = op->kind == ForKind::GpuBlock;
    threads_ += thread, blocks_ += block;
    Stmt r = IRMutator::visit(op, s);
    threads_ -= thread, blocks_ -= block;
    return r;
  }
  Stmt visit(const Allocate *op, const Stmt &s) override {
    Stmt body = mutate(op->body);
    if (op->scope != MemoryScope::Global)
      return body.same_as(op->body) ? s : Allocate::make(op->buffer, op->dtype, op->extent, op->scope, body);
    MemoryScope scope = threads_ > 0 || blocks_ == 0 ? MemoryScope::Local : MemoryScope::Shared;
    return Allocate::make(op->buffer, op->dtype, op->extent, scope, body);
  }

private:
  int threads_ = 0, blocks_ = 0;
};

// A multiple every value of the integer expression is known to be (1: nothing known), from its
// additions and multiplications by constants; what a 32-byte alignment proof needs.
int64_t known_multiple(const Expr &e) {
  int64_t c = 0;
  if (is_const_int(e, &c)) return c == 0 ? int64_t(1) << 40 : std::llabs(c);
  auto *b = e.as<Binary>();
  if (!b) return 1;
  switch (b->op) {
  case BinaryOp::Add:
  case BinaryOp::Sub: return std::gcd(known_multiple(b->a), known_multiple(b->b));
  case BinaryOp::Mul: return known_multiple(b->a) * known_multiple(b->b);
  default: return 1;
  }
}

// ------------------------------------------------------- pass: vector stores
// A GPU thread has no vector registers: a vectorized store becomes one store per lane, except where the
// destination is provably aligned: a copy from an aligned source is one 8- or 16-byte move (float2 /
// float4), and 4-byte lanes of any other value are stored together in one such move.

// Lane `i` of a vector expression.
class ExtractLane : public IRMutator {
public:
  explicit ExtractLane(int lane) : lane_(lane) {}
  using IRMutator::mutate;

protected:
  Expr visit(const Ramp *op, const Expr &e) override {
    return ir::simplify(mutate(op->base) + mutate(op->stride) * Expr(int64_t(lane_)));
  }
  Expr visit(const Broadcast *op, const Expr &e) override { return mutate(op->value); }
  Expr visit(const Load *op, const Expr &e) override {
    return Load::make(op->type.element_of(), op->buffer, mutate(op->index));
  }
  Expr visit(const Cast *op, const Expr &e) override { return Cast::make(op->type.element_of(), mutate(op->value)); }
  Expr visit(const Call *op, const Expr &e) override {
    std::vector<Expr> args;
    for (auto &a : op->args) args.push_back(mutate(a));
    return Call::make(op->func, args);
  }

private:
  int lane_;
};

class ScalarizeVectors : public IRMutator {
public:
  explicit ScalarizeVectors(const std::set<const ExprNode *> &aligned) : aligned_(aligned) {}
  using IRMutator::mutate;

protected:
  Stmt visit(const Store *op, const Stmt &s) override {
    DataType t = op->value.type();
    if (t.is_scalar()) return s;
    auto *dst = op->index.as<Ramp>();
    auto *ld = op->value.as<Load>();
    auto *src = ld ? ld->index.as<Ramp>() : nullptr;
    int64_t bytes = int64_t(t.lanes) * t.bytes();
    // Whether `buffer[r]` is `bytes` dense bytes starting at a provable multiple of `bytes`.
    auto one_move = [&](const Expr &buffer, const Ramp *r) {
      return r && is_one(r->stride) && (bytes == 8 || bytes == 16) && aligned_.count(buffer.get()) &&
             known_multiple(r->base) * t.bytes() % bytes == 0;
    };
    if (!one_move(op->buffer, dst)) return scalarize(op);
    if (ld && ld->type == t && one_move(ld->buffer, src))
      return ExternCall::make(std::string(kCopyPrefix) + std::to_string(bytes),
                              {AddressOf::make(op->buffer, dst->base, t.element_of()),
                               AddressOf::make(ld->buffer, src->base, t.element_of())});
    // Any other value of 4-byte lanes: its lanes, stored in one move.
    if (t.bytes() == 4) {
      std::vector<Expr> args = {AddressOf::make(op->buffer, dst->base, t.element_of())};
      for (int i = 0; i < t.lanes; ++i) args.push_back(ExtractLane(i).mutate(op->value));
      return ExternCall::make(std::string(kCopyPrefix) + std::to_string(bytes) + "_lanes", args);
    }
    return scalarize(op);
  }

private:
  static Stmt scalarize(const Store *op) {
    std::vector<Stmt> lanes;
    for (int i = 0; i < op->value.type().lanes; ++i)
      lanes.push_back(Store::make(op->buffer, ExtractLane(i).mutate(op->value), ExtractLane(i).mutate(op->index)));
    return Block::make(lanes);
  }
  const std::set<const ExprNode *> &aligned_; // buffers whose start is 16-byte aligned
};

// ------------------------------------------------ pass: register accumulators
// A warp's tensor-core accumulator (a fragment stage) is zeroed, updated by
// tensor-core calls, then read. Held in memory, every call would load and store
// it; when the fragment is used in exactly that order, the calls accumulate in
// registers instead and the tiles are stored once, into the fragment's memory,
// which the reads then use. Any other use keeps the memory form (still correct).
// Whether a tensor-core call's A and B operands can be loaded by WMMA as they lie, provably: row- or
// column-major A, leading dimensions multiples of 16 bytes, tile starts at multiples of 32 bytes of
// shared buffers (arena offsets are 128-byte aligned; a caller's device pointer may not be).
bool wmma_loads_directly(const std::vector<Expr> &args, const sched::TensorIntrinsic *in,
                         const std::set<const ExprNode *> &shared) {
  int64_t bytes = in->a.bytes(), lda_m = 0, lda_k = 0, ldb_k = 0;
  auto *a = args[2].as<AddressOf>(), *b = args[5].as<AddressOf>();
  if (!a || !b || !shared.count(a->buffer.get()) || !shared.count(b->buffer.get()) || !is_const_int(args[3], &lda_m) ||
      !is_const_int(args[4], &lda_k) || !is_const_int(args[6], &ldb_k))
    return false;
  bool a_row = lda_k == 1 && lda_m * bytes % 16 == 0, a_col = lda_m == 1 && lda_k * bytes % 16 == 0;
  return (a_row || a_col) && ldb_k * bytes % 16 == 0 && known_multiple(a->index) * bytes % 32 == 0 &&
         known_multiple(b->index) * bytes % 32 == 0;
}

class RegisterAccumulators : public IRMutator {
public:
  explicit RegisterAccumulators(std::set<const ExprNode *> shared) : shared_(std::move(shared)) {}
  using IRMutator::mutate;
  std::vector<RegisterAccumulator> found;

protected:
  Stmt visit(const Allocate *op, const Stmt &s) override {
    Stmt body = mutate(op->body);
    Stmt self = body.same_as(op->body) ? s : Allocate::make(op->buffer, op->dtype, op->extent, op->scope, body);
    if (op->scope != MemoryScope::Fragment) return self;
    int64_t elements = 0;
    if (!is_const_int(op->extent, &elements)) return self;
    std::vector<Stmt> stmts;
    if (auto *b = body.as<Block>())
      stmts = b->stmts;
    else
      stmts = {body};
    // zero stores, then the statements with the calls, then the readers.
    size_t i = 0, first_call = 0, end_calls = 0;
    const ExprNode *f = op->buffer.get();
    while (i < stmts.size() && only_zero_stores(stmts[i], f)) ++i;
    first_call = i;
    const sched::TensorIntrinsic *in = nullptr;
    int64_t ldc = 0;
    while (i < stmts.size() && calls_on(stmts[i], f, &in, &ldc) > 0) ++i;
    end_calls = i;
    if (first_call == 0 || end_calls == first_call || !in || ldc <= 0) return self;
    for (; i < stmts.size(); ++i) {
      const sched::TensorIntrinsic *other = nullptr;
      int64_t other_ld = 0;
      if (calls_on(stmts[i], f, &other, &other_ld) != 0 || writes(stmts[i], f)) return self;
    }
    for (size_t j = first_call; j < end_calls; ++j)
      if (writes(stmts[j], f) || reads_plainly(stmts[j], f)) return self;
    if (elements % ldc != 0 || ldc % in->n != 0 || (elements / ldc) % in->m != 0) return self;
    int64_t per_row = ldc / in->n, count = (elements / ldc / in->m) * per_row;
    Expr acc = Var::make(DataType::handle(), op->buffer.as<Var>()->name + "_acc");
    Expr zero = int64_t(0);
    std::vector<Stmt> inner = {ExternCall::make(kAccFill, {acc, Expr(count)})};
    for (size_t j = first_call; j < end_calls; ++j) inner.push_back(to_registers(stmts[j], op->buffer, acc, in, ldc));
    inner.push_back(
        ExternCall::make(kAccStore, {acc, Expr(count), AddressOf::make(op->buffer, zero, op->dtype), Expr(ldc),
                                     Expr(per_row), Expr(int64_t(in->m)), Expr(int64_t(in->n))}));
    std::vector<Stmt> out = {Allocate::make(acc, in->c, Expr(count), MemoryScope::Local, Block::make(inner))};
    out.insert(out.end(), stmts.begin() + long(end_calls), stmts.end());
    found.push_back({acc, in->c, in->m, in->n, in->k, count});
    return Allocate::make(op->buffer, op->dtype, op->extent, op->scope, Block::make(out));
  }

private:
  static bool only_zero_stores(const Stmt &s, const ExprNode *f) {
    struct V : IRVisitor {
      const ExprNode *f;
      bool ok = true, any = false;
      using IRVisitor::visit;
      void visit(const Store *op) override {
        any = true;
        ok &= op->buffer.get() == f && is_zero(op->value);
        IRVisitor::visit(op);
      }
      void visit(const ExternCall *) override { ok = false; }
      void visit(const Load *op) override {
        ok &= op->buffer.get() != f;
        IRVisitor::visit(op);
      }
    } v;
    v.f = f;
    s.accept(&v);
    return v.ok && v.any;
  }
  // The tensor-core calls accumulating into f (all the same intrinsic and leading dimension); -1: another use.
  int calls_on(const Stmt &s, const ExprNode *f, const sched::TensorIntrinsic **in, int64_t *ldc) const {
    struct V : IRVisitor {
      const ExprNode *f;
      const sched::TensorIntrinsic **in;
      int64_t *ldc;
      const std::set<const ExprNode *> *shared;
      int n = 0;
      bool bad = false;
      using IRVisitor::visit;
      void visit(const ExternCall *op) override {
        auto *c = op->args.empty() ? nullptr : op->args[0].as<AddressOf>();
        if (!c || c->buffer.get() != f) return IRVisitor::visit(op);
        const sched::TensorIntrinsic *t = warp_intrinsic(op->name);
        int64_t ld = 0;
        if (!t || op->args.size() < 7 || !is_const_int(op->args[1], &ld) || (*in && (*in != t || *ldc != ld)) ||
            !wmma_loads_directly(op->args, t, *shared)) {
          bad = true;
          return;
        }
        *in = t, *ldc = ld, ++n;
      }
    } v;
    v.f = f, v.in = in, v.ldc = ldc, v.shared = &shared_;
    s.accept(&v);
    return v.bad ? -1 : v.n;
  }
  // Whether `s` stores to f, or loads from it other than through a call's address.
  static bool writes(const Stmt &s, const ExprNode *f) { return uses(s, f).first; }
  static bool reads_plainly(const Stmt &s, const ExprNode *f) { return uses(s, f).second; }
  static std::pair<bool, bool> uses(const Stmt &s, const ExprNode *f) {
    struct V : IRVisitor {
      const ExprNode *f;
      bool stored = false, loaded = false;
      using IRVisitor::visit;
      void visit(const Store *op) override {
        stored |= op->buffer.get() == f;
        IRVisitor::visit(op);
      }
      void visit(const Load *op) override {
        loaded |= op->buffer.get() == f;
        IRVisitor::visit(op);
      }
    } v;
    v.f = f;
    s.accept(&v);
    return {v.stored, v.loaded};
  }
  std::set<const ExprNode *> shared_; // the kernel's shared buffers
  // Each call on the fragment's memory becomes the call on its register tile.
  static Stmt to_registers(const Stmt &s, const Expr &buffer, const Expr &acc, const sched::TensorIntrinsic *in,
                           int64_t ldc) {
    struct M : IRMutator {
      Expr buffer, acc;
      const sched::TensorIntrinsic *in;
      int64_t ldc;
      using IRMutator::mutate;
      Stmt visit(const ExternCall *op, const Stmt &s) override {
        auto *c = op->args.empty() ? nullptr : op->args[0].as<AddressOf>();
        if (!c || !c->buffer.same_as(buffer)) return s;
        Expr off = c->index, ld = Expr(ldc);
        Expr tile =
            ir::simplify((off / ld / Expr(int64_t(in->m))) * Expr(ldc / in->n) + (off % ld) / Expr(int64_t(in->n)));
        return ExternCall::make(op->name + "_acc",
                                {acc, tile, op->args[2], op->args[3], op->args[4], op->args[5], op->args[6]});
      }
    } m;
    m.buffer = buffer, m.acc = acc, m.in = in, m.ldc = ldc;
    return m.mutate(s);
  }
};

// ------------------------------------------------- pass: cross-thread reduction
// A loop bound to threads whose body accumulates into one element that does not
// depend on the thread (X[i] = X[i] + f(tx)) is a reduction across threads: each
// thread accumulates a private partial, the block combines the partials, and
// one thread folds the total into X[i] (the guard pass picks the thread).
struct Accumulation {
  const Store *store = nullptr;
  BinaryOp op = BinaryOp::Add;
};

// Whether `s` is X[idx] = combine(X[idx], rest) (either operand order); `rest` gets the other operand.
bool match_accumulation(const Store *s, BinaryOp *op, Expr *rest) {
  auto *b = s->value.as<Binary>();
  if (!b || (b->op != BinaryOp::Add && b->op != BinaryOp::Max && b->op != BinaryOp::Min)) return false;
  auto self = [&](const Expr &e) {
    auto *l = e.as<Load>();
    return l && l->buffer.same_as(s->buffer) && equal(l->index, s->index);
  };
  if (self(b->a))
    *rest = b->b;
  else if (self(b->b))
    *rest = b->a;
  else
    return false;
  *op = b->op;
  return true;
}

class CrossThreadReduction : public IRMutator {
public:
  explicit CrossThreadReduction(const std::set<const ExprNode *> &local_buffers) : local_(local_buffers) {}
  using IRMutator::mutate;
  std::string error;
  int rewritten = 0;

protected:
  Stmt visit(const For *op, const Stmt &s) override {
    if (op->kind != ForKind::GpuThread) return IRMutator::visit(op, s);
    DefinedVars inner;
    op->body.accept(&inner);
    inner.vars.push_back(op->var);
    // Stores to non-local buffers at indices invariant to the thread and the loops inside it.
    const Store *target = nullptr;
    BinaryOp combine = BinaryOp::Add;
    bool mixed = false;
    visit_stores(op->body, [&](const Store *st) {
      if (local_.count(st->buffer.get()) || inner.buffers.count(st->buffer.get())) return;
      for (auto &v : inner.vars)
        if (uses_var(st->index, v)) return; // an ordinary per-thread store
      Expr rest;
      BinaryOp bop;
      if (!match_accumulation(st, &bop, &rest) ||
          (target && (!target->buffer.same_as(st->buffer) || !equal(target->index, st->index) || bop != combine))) {
        mixed = true;
        return;
      }
      target = st, combine = bop;
    });
    if (mixed) {
      error = "loop " + op->var.as<Var>()->name + " bound to " + op->thread_tag +
              " writes one element from every thread in a form that is not a sum, max or min reduction";
      return s;
    }
    if (!target) return IRMutator::visit(op, s);
    // acc = identity; <loop, accumulating into acc>; allreduce(acc); X[i] = combine(X[i], acc)
    DataType t = target->value.type();
    Expr acc = Var::make(DataType::handle(), target->buffer.as<Var>()->name + "_partial");
    Expr zero = int64_t(0);
    Expr identity = combine == BinaryOp::Add ? make_zero(t) : combine == BinaryOp::Max ? min_value(t) : max_value(t);
    Stmt body = replace_accumulation(op->body, target, acc);
    Stmt loop = For::make(op->var, op->min, op->extent, op->kind, body, op->thread_tag);
    std::string fn = std::string(kBlockAllreducePrefix) + (combine == BinaryOp::Add   ? "sum"
                                                           : combine == BinaryOp::Max ? "max"
                                                                                      : "min");
    Stmt fold = Store::make(
        target->buffer, Binary::make(combine, Load::make(t, target->buffer, target->index), Load::make(t, acc, zero)),
        target->index);
    ++rewritten;
    return Allocate::make(acc, t, zero + int64_t(1), MemoryScope::Local,
                          Block::make({Store::make(acc, identity, zero), loop,
                                       ExternCall::make(fn, {AddressOf::make(acc, zero, t)}), fold}));
  }

private:
  template <typename F> static void visit_stores(const Stmt &s, F f) {
    struct V : IRVisitor {
      F &f;
      explicit V(F &g) : f(g) {}
      using IRVisitor::visit;
      void visit(const Store *op) override {
        f(op);
        IRVisitor::visit(op);
      }
    } v(f);
    s.accept(&v);
  }
  static Stmt replace_accumulation(const Stmt &s, const Store *target, const Expr &acc) {
    struct M : IRMutator {
      const Store *target;
      Expr acc;
      using IRMutator::mutate;
      Stmt visit(const Store *op, const Stmt &s) override {
        if (!op->buffer.same_as(target->buffer) || !equal(op->index, target->index)) return IRMutator::visit(op, s);
        BinaryOp bop;
        Expr rest;
        match_accumulation(op, &bop, &rest);
        Expr zero = int64_t(0);
        return Store::make(acc, Binary::make(bop, Load::make(op->value.type(), acc, zero), rest), zero);
      }
    } m;
    m.target = target, m.acc = acc;
    return m.mutate(s);
  }
  const std::set<const ExprNode *> &local_;
};

// ------------------------------------------------------ pass: redundant stores
// Code outside the loops bound to a thread index runs in every thread along
// it. A store to memory the block shares (global, shared, a warp's
// accumulator) there is made by thread 0 of that index alone: the others would
// repeat it, and a read-modify-write repeated is wrong. Warp-level calls need
// all lanes (threadIdx.x) but only one warp along y and z.
class GuardRedundantStores : public IRMutator {
public:
  GuardRedundantStores(const std::array<int64_t, 6> &dims, const std::set<const ExprNode *> &local,
                       const std::vector<Expr> &index_vars)
      : dims_(dims), local_(local), index_(index_vars) {}
  using IRMutator::mutate;

protected:
  Stmt visit(const For *op, const Stmt &s) override {
    int slot = tag_slot(op->thread_tag);
    if (slot < 0 && op->kind != ForKind::Vthread && bound_[3] == 0 && dims_[3] > 1 && lane_distributable(op))
      return spread_over_lanes(op);
    if (slot >= 0) ++bound_[size_t(slot)];
    Stmt r = IRMutator::visit(op, s);
    if (slot >= 0) --bound_[size_t(slot)];
    return r;
  }
  Stmt visit(const Store *op, const Stmt &s) override {
    if (local_.count(op->buffer.get())) return s;
    return guard(s, 0);
  }

  // An innermost loop of stores outside threadIdx.x loops (a tensor-core tile's write-back, say) is
  // shared by the lanes instead of done by lane 0: iteration v by lane v % lanes. Only when iterations
  // are independent: every store's index depends on the loop, and nothing the loop stores is read in it.
  bool lane_distributable(const For *op) const {
    int64_t n = 0;
    if (!is_const_int(op->extent, &n) || n < 2) return false;
    struct V : IRVisitor {
      const For *loop;
      const std::set<const ExprNode *> &local;
      std::set<const ExprNode *> stored, loaded;
      bool ok = true, any = false;
      V(const For *l, const std::set<const ExprNode *> &lo) : loop(l), local(lo) {}
      using IRVisitor::visit;
      void visit(const For *) override { ok = false; }
      void visit(const ExternCall *) override { ok = false; }
      void visit(const Allocate *) override { ok = false; }
      void visit(const Store *op) override {
        if (local.count(op->buffer.get())) ok = false; // a private value carried between iterations
        any = true;
        ok &= uses_var(op->index, loop->var);
        stored.insert(op->buffer.get());
        IRVisitor::visit(op);
      }
      void visit(const Load *op) override {
        loaded.insert(op->buffer.get());
        IRVisitor::visit(op);
      }
    } v(op, local_);
    op->body.accept(&v);
    for (auto *b : v.stored)
      if (v.loaded.count(b)) return false;
    return v.ok && v.any;
  }
  Stmt spread_over_lanes(const For *op) {
    int64_t n = 0, lanes = dims_[3];
    is_const_int(op->extent, &n);
    ++bound_[3];
    Stmt body = mutate(op->body);
    --bound_[3];
    Expr outer = Var::make(DataType::index(), op->var.as<Var>()->name + ".lanes");
    Stmt guarded = IfThenElse::make(Binary::make(BinaryOp::LT, op->var, op->min + Expr(n)), body);
    return For::make(outer, Expr(int64_t(0)), Expr((n + lanes - 1) / lanes), ForKind::Serial,
                     LetStmt::make(op->var, op->min + outer * Expr(lanes) + index_[3], guarded));
  }
  // Barriers and block reductions are for every thread: only tensor-core calls are guarded.
  Stmt visit(const ExternCall *op, const Stmt &s) override {
    if (op->name.rfind(kCopyPrefix, 0) == 0) return guard(s, 0); // a store of 8 or 16 bytes
    return is_warp_call(op->name) ? guard(s, 4) : s;
  }

private:
  // Guards `s` on index 0 of every unbound index from `first` (0: blocks too).
  Stmt guard(const Stmt &s, int first) {
    Expr cond;
    for (int slot = std::max(first, 0); slot < 6; ++slot) {
      if (bound_[size_t(slot)] || dims_[size_t(slot)] <= 1) continue;
      Expr c = Binary::make(BinaryOp::EQ, index_[size_t(slot)], Expr(int64_t(0)));
      cond = cond.defined() ? Binary::make(BinaryOp::And, cond, c) : c;
    }
    return cond.defined() ? IfThenElse::make(cond, s) : s;
  }
  std::array<int64_t, 6> dims_;
  std::array<int, 6> bound_{};
  const std::set<const ExprNode *> &local_;
  const std::vector<Expr> &index_;
};

// --------------------------------------------------- pass: shared-memory arena
// Shared and fragment allocations leave the body for one arena the block
// shares. A fragment (a warp's tensor-core accumulator) gets one copy per warp,
// selected by the warp's threadIdx.y/z.
class HoistShared : public IRMutator {
public:
  HoistShared(const std::array<int64_t, 6> &dims, const std::vector<Expr> &index_vars)
      : dims_(dims), index_(index_vars) {}
  using IRMutator::mutate;
  std::vector<SharedBuffer> buffers;
  int64_t bytes = 0;
  std::string error;

protected:
  Stmt visit(const For *op, const Stmt &s) override {
    int slot = tag_slot(op->thread_tag);
    if (slot >= 0) thread_vars_[size_t(slot)].push_back(op->var);
    Stmt r = IRMutator::visit(op, s);
    if (slot >= 0) thread_vars_[size_t(slot)].pop_back();
    return r;
  }
  Stmt visit(const Allocate *op, const Stmt &s) override {
    if (op->scope != MemoryScope::Shared && op->scope != MemoryScope::Fragment) return IRMutator::visit(op, s);
    int64_t n = 0;
    if (!is_const_int(op->extent, &n)) {
      error = "shared buffer " + op->buffer.as<Var>()->name + " has no constant size";
      return s;
    }
    SharedBuffer b;
    b.buffer = op->buffer, b.dtype = op->dtype, b.fragment = op->scope == MemoryScope::Fragment;
    Expr copy; // which copy this warp uses
    int64_t copies = 1;
    if (b.fragment) {
      if (!thread_vars_[3].empty()) {
        error = "fragment " + op->buffer.as<Var>()->name + " is allocated per lane (inside a threadIdx.x loop)";
        return s;
      }
      for (int slot : {4, 5}) { // threadIdx.y, threadIdx.z: the warp's position in the block
        if (thread_vars_[size_t(slot)].empty()) continue;
        Expr v = thread_vars_[size_t(slot)].back();
        copy = copy.defined() ? copy * Expr(dims_[size_t(slot)]) + v : v;
        copies *= dims_[size_t(slot)];
      }
    }
    b.elements = n * copies;
    b.offset = (bytes + 127) / 128 * 128;
    bytes = b.offset + b.elements * op->dtype.bytes();
    buffers.push_back(b);
    Stmt body = mutate(op->body);
    if (copy.defined()) body = offset_accesses(body, op->buffer, copy * Expr(n));
    return body;
  }

private:
  static Stmt offset_accesses(const Stmt &s, const Expr &buffer, const Expr &offset) {
    struct M : IRMutator {
      Expr buffer, offset;
      using IRMutator::mutate;
      Expr visit(const Load *op, const Expr &e) override {
        Expr r = IRMutator::visit(op, e);
        auto *l = r.as<Load>();
        return l->buffer.same_as(buffer) ? Load::make(l->type, l->buffer, l->index + offset) : r;
      }
      Expr visit(const AddressOf *op, const Expr &e) override {
        Expr r = IRMutator::visit(op, e);
        auto *a = r.as<AddressOf>();
        return a->buffer.same_as(buffer) ? AddressOf::make(a->buffer, a->index + offset, a->element) : r;
      }
      Stmt visit(const Store *op, const Stmt &s) override {
        Stmt r = IRMutator::visit(op, s);
        auto *st = r.as<Store>();
        return st->buffer.same_as(buffer) ? Store::make(st->buffer, st->value, st->index + offset) : r;
      }
    } m;
    m.buffer = buffer, m.offset = offset;
    return m.mutate(s);
  }
  std::array<int64_t, 6> dims_;
  const std::vector<Expr> &index_;
  std::array<std::vector<Expr>, 6> thread_vars_;
};

// ------------------------------------------------------- pass: bind the indices
// A loop bound to an index becomes `var = min + index`, guarded where the
// launch has more threads (or blocks) along that index than the loop.
class BindIndices : public IRMutator {
public:
  BindIndices(const std::array<int64_t, 6> &dims, const std::vector<Expr> &index_vars)
      : dims_(dims), index_(index_vars) {}
  using IRMutator::mutate;

protected:
  Stmt visit(const For *op, const Stmt &s) override {
    Stmt body = mutate(op->body);
    int slot = tag_slot(op->thread_tag);
    if (op->kind == ForKind::Vthread) // virtual threads: a serial loop in every thread
      return For::make(op->var, op->min, op->extent, ForKind::Unrolled, body);
    if (slot < 0) return body.same_as(op->body) ? s : For::make(op->var, op->min, op->extent, op->kind, body);
    int64_t n = 0;
    is_const_int(op->extent, &n);
    if (n < dims_[size_t(slot)])
      body = IfThenElse::make(Binary::make(BinaryOp::LT, index_[size_t(slot)], Expr(n)), body);
    return LetStmt::make(op->var, ir::simplify(op->min + index_[size_t(slot)]), body);
  }

private:
  std::array<int64_t, 6> dims_;
  const std::vector<Expr> &index_;
};

// ------------------------------------------------------ pass: barriers
// Which shared buffers a statement reads and writes (a call reads its operands: the
// one it writes, a warp's accumulator, is that warp's alone and synchronized inside).
struct Access {
  std::set<const ExprNode *> reads, writes;
  bool overlaps(const Access &later) const {
    auto any = [](const std::set<const ExprNode *> &a, const std::set<const ExprNode *> &b) {
      for (auto *x : a)
        if (b.count(x)) return true;
      return false;
    };
    return any(writes, later.reads) || any(reads, later.writes);
  }
  bool empty() const { return reads.empty() && writes.empty(); }
};

Access accesses(const Stmt &s, const std::set<const ExprNode *> &arena) {
  struct V : IRVisitor {
    const std::set<const ExprNode *> &arena;
    Access a;
    explicit V(const std::set<const ExprNode *> &b) : arena(b) {}
    using IRVisitor::visit;
    void visit(const Load *op) override {
      if (arena.count(op->buffer.get())) a.reads.insert(op->buffer.get());
      IRVisitor::visit(op);
    }
    void visit(const Store *op) override {
      if (arena.count(op->buffer.get())) a.writes.insert(op->buffer.get());
      IRVisitor::visit(op);
    }
    void visit(const AddressOf *op) override {
      if (arena.count(op->buffer.get())) a.reads.insert(op->buffer.get());
      IRVisitor::visit(op);
    }
    void visit(const ExternCall *op) override { // a copy writes its first operand and reads the others
      auto *dst = op->name.rfind(kCopyPrefix, 0) == 0 ? op->args[0].as<AddressOf>() : nullptr;
      if (!dst) return IRVisitor::visit(op);
      if (arena.count(dst->buffer.get())) a.writes.insert(dst->buffer.get());
      dst->index.accept(this);
      for (size_t i = 1; i < op->args.size(); ++i) op->args[i].accept(this);
    }
  } v(arena);
  s.accept(&v);
  return v.a;
}

Stmt sync_stmt() { return ExternCall::make(kSyncThreads, {}); }

// Before a statement that touches what earlier statements of the same block
// touched (one of them writing), and at the end of a loop body that carries
// such a conflict into its next iteration, all threads meet at a barrier.
class InsertBarriers : public IRMutator {
public:
  explicit InsertBarriers(const std::set<const ExprNode *> &arena) : arena_(arena) {}
  using IRMutator::mutate;

protected:
  Stmt visit(const Block *op, const Stmt &s) override {
    std::vector<Stmt> out;
    Access pending;
    for (auto &st : op->stmts) {
      Access a = accesses(st, arena_);
      if (!a.empty() && pending.overlaps(a)) {
        out.push_back(sync_stmt());
        pending = Access();
      }
      out.push_back(mutate(st));
      pending.reads.insert(a.reads.begin(), a.reads.end());
      pending.writes.insert(a.writes.begin(), a.writes.end());
    }
    return Block::make(out);
  }
  Stmt visit(const For *op, const Stmt &s) override {
    Stmt body = mutate(op->body);
    Access a = accesses(op->body, arena_);
    if (!a.writes.empty() && a.overlaps(a)) body = Block::make({body, sync_stmt()});
    return For::make(op->var, op->min, op->extent, op->kind, body, op->thread_tag);
  }

private:
  const std::set<const ExprNode *> &arena_;
};

// A barrier must be reached by every thread of the block: none may sit under a
// condition on the thread indices.
class FindDivergentBarrier : public IRVisitor {
public:
  explicit FindDivergentBarrier(const std::vector<Expr> &index_vars)
      : thread_vars_(index_vars.begin() + 3, index_vars.end()) {}
  using IRVisitor::visit;
  bool found = false;
  void visit(const LetStmt *op) override {
    if (depends_on_thread(op->value)) thread_vars_.push_back(op->var);
    IRVisitor::visit(op);
  }
  void visit(const IfThenElse *op) override {
    bool divergent = depends_on_thread(op->cond);
    depth_ += divergent;
    IRVisitor::visit(op);
    depth_ -= divergent;
  }
  void visit(const ExternCall *op) override {
    if (depth_ > 0 && (op->name == kSyncThreads || op->name.rfind(kBlockAllreducePrefix, 0) == 0)) found = true;
    IRVisitor::visit(op);
  }

private:
  bool depends_on_thread(const Expr &e) const {
    for (auto &v : thread_vars_)
      if (uses_var(e, v)) return true;
    return false;
  }
  std::vector<Expr> thread_vars_; // the thread indices and the variables computed from them
  int depth_ = 0;
};

// Whether every index value in `s` provably fits in 32 bits, given the launch's index ranges: loop
// variables and lets over their ranges, and every integer subexpression (intermediates overflow first).
// False when the kernel holds 64-bit integer data, which the same type would then narrow.
bool fits_32_bit_indices(const Stmt &s, const std::vector<Expr> &index_vars, const std::array<int64_t, 6> &dims) {
  struct V : IRVisitor {
    ConstScope scope;
    bool ok = true;
    using IRVisitor::visit;
    const int64_t kLimit = (int64_t(1) << 31) - 1;
    void check(const Expr &e) {
      if (!ok || e.type().element_of() != DataType::index()) return;
      ConstRange r = constant_bounds(e, scope);
      ok = r.min && r.max && *r.min >= -kLimit && *r.max <= kLimit;
    }
    void visit(const IntImm *op) override { ok &= op->type != DataType::index() || std::llabs(op->value) <= kLimit; }
    void visit(const Var *op) override {
      if (op->type == DataType::index() && !scope.count(op)) ok = false; // a variable of unknown range
    }
    void visit(const Binary *op) override {
      IRVisitor::visit(op);
      check(Binary::make(op->op, op->a, op->b));
    }
    void visit(const Cast *op) override {
      IRVisitor::visit(op);
      if (op->type == DataType::index()) ok = false; // a value widened into an index: not an index range
    }
    void visit(const Load *op) override {
      if (op->type.element_of() == DataType::index()) ok = false;
      IRVisitor::visit(op);
    }
    void visit(const Store *op) override {
      if (op->value.type().element_of() == DataType::index()) ok = false;
      IRVisitor::visit(op);
    }
    void visit(const Allocate *op) override {
      if (op->dtype == DataType::index()) ok = false;
      IRVisitor::visit(op);
    }
    void visit(const For *op) override {
      ConstRange mn = constant_bounds(op->min, scope), ext = constant_bounds(op->extent, scope);
      if (!mn.min || !mn.max || !ext.max) {
        ok = false;
        return;
      }
      op->min.accept(this), op->extent.accept(this);
      scope[op->var.get()] = {*mn.min, *mn.max + *ext.max - 1};
      check(op->min + op->extent);
      op->body.accept(this);
    }
    void visit(const LetStmt *op) override {
      op->value.accept(this);
      ConstRange r = constant_bounds(op->value, scope);
      if (!r.min || !r.max) {
        ok = false;
        return;
      }
      scope[op->var.get()] = r;
      op->body.accept(this);
    }
  } v;
  for (size_t i = 0; i < index_vars.size(); ++i) v.scope[index_vars[i].get()] = {int64_t(0), dims[i] - 1};
  s.accept(&v);
  return v.ok;
}

// The global buffers a kernel touches, in first-use order.
std::vector<Expr> global_buffers(const Stmt &s, const std::set<const ExprNode *> &globals) {
  struct V : IRVisitor {
    const std::set<const ExprNode *> &globals;
    std::vector<Expr> out;
    explicit V(const std::set<const ExprNode *> &g) : globals(g) {}
    using IRVisitor::visit;
    void add(const Expr &b) {
      if (!globals.count(b.get())) return;
      for (auto &x : out)
        if (x.same_as(b)) return;
      out.push_back(b);
    }
    void visit(const Load *op) override {
      add(op->buffer);
      IRVisitor::visit(op);
    }
    void visit(const Store *op) override {
      add(op->buffer);
      IRVisitor::visit(op);
    }
    void visit(const AddressOf *op) override {
      add(op->buffer);
      IRVisitor::visit(op);
    }
  } v(globals);
  s.accept(&v);
  return v.out;
}

// The buffers `s` allocates in `scope`.
std::set<const ExprNode *> buffers_in(const Stmt &s, MemoryScope scope) {
  struct V : IRVisitor {
    MemoryScope scope;
    std::set<const ExprNode *> out;
    using IRVisitor::visit;
    void visit(const Allocate *op) override {
      if (op->scope == scope) out.insert(op->buffer.get());
      IRVisitor::visit(op);
    }
  } v;
  v.scope = scope;
  s.accept(&v);
  return v.out;
}

Expected<GpuKernel> make_kernel(const Stmt &unit, const std::string &name, const std::set<const ExprNode *> &globals,
                                const Target &target) {
  GpuKernel k;
  k.name = name;
  for (auto *tag : kTags) k.thread_indices.push_back(Var::make(DataType::index(), tag));
  const std::vector<Expr> &idx = k.thread_indices;
  KernelFacts facts;
  unit.accept(&facts);
  if (!facts.error.empty()) return make_error(name + ": " + facts.error);
  std::array<int64_t, 6> dims = facts.dims;
  if (facts.warp_calls) { // tensor-core calls run on whole warps: threadIdx.x is the 32 lanes
    int warp = target.gpu ? target.gpu->warp_size : 32;
    if (facts.bound[3] && dims[3] != warp)
      return make_error(name + ": tensor-core calls need threadIdx.x to be a warp's " + std::to_string(warp) +
                        " lanes, but a loop binds it to " + std::to_string(dims[3]));
    dims[3] = warp;
  }
  Stmt s = unit;
  // The passes, in order.
  s = ScopeNestedBuffers().mutate(s);           // intermediates inside the kernel: per thread or per block
  std::set<const ExprNode *> aligned = globals; // device allocations; shared buffers sit at 128-byte offsets
  std::set<const ExprNode *> shared = buffers_in(s, MemoryScope::Shared);
  aligned.insert(shared.begin(), shared.end());
  s = ScalarizeVectors(aligned).mutate(s);   // vector stores: aligned 8/16-byte copies, else per lane
  RegisterAccumulators accumulators(shared); // the scalarized stores allocate nothing
  s = accumulators.mutate(s);                // tensor-core accumulators in registers across the k loop
  std::set<const ExprNode *> local = buffers_in(s, MemoryScope::Local);
  CrossThreadReduction ctr(local);
  s = ctr.mutate(s); // reductions across threads -> private partials + a block allreduce
  if (!ctr.error.empty()) return make_error(name + ": " + ctr.error);
  if (ctr.rewritten && (dims[4] > 1 || dims[5] > 1))
    return make_error(name + ": a cross-thread reduction in a block with threadIdx.y/z is not supported");
  local = buffers_in(s, MemoryScope::Local);
  s = GuardRedundantStores(dims, local, idx).mutate(s); // shared writes outside thread loops: one thread
  HoistShared hoist(dims, idx);
  s = hoist.mutate(s); // shared and fragment buffers -> the block's arena
  if (!hoist.error.empty()) return make_error(name + ": " + hoist.error);
  s = BindIndices(dims, idx).mutate(s); // bound loops -> thread indices (+ guards)
  std::set<const ExprNode *> arena;
  for (auto &b : hoist.buffers)
    if (!b.fragment) arena.insert(b.buffer.get());
  s = InsertBarriers(arena).mutate(s); // __syncthreads where threads hand data over
  s = ir::simplify(s);
  FindDivergentBarrier divergent(idx);
  s.accept(&divergent);
  if (divergent.found)
    return make_error(name + ": a barrier (__syncthreads) would sit under a condition on the thread index; the " +
                      "loops bound to threads that share memory must cover the whole block");
  k.body = s;
  k.grid = {dims[0], dims[1], dims[2]};
  k.block = {dims[3], dims[4], dims[5]};
  k.shared = hoist.buffers;
  k.shared_bytes = hoist.bytes;
  k.accumulators = accumulators.found;
  k.index32 = fits_32_bit_indices(s, idx, dims);
  k.params = global_buffers(s, globals);
  return k;
}

} // namespace

Expected<GpuProgram> lower_gpu_kernels(const LoweredProgram &p, const Target &target) {
  if (!p.prepack.empty())
    return make_error("the schedule packs " + p.prepack.front().arg_tensors.back()->name +
                      " ahead of time, which the CUDA back end does not support yet");
  GpuProgram g;
  for (char c : p.kernel.name) g.name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (g.name.empty() || std::isdigit(static_cast<unsigned char>(g.name[0]))) g.name = "k" + g.name;
  g.args = p.kernel.args;
  g.arg_tensors = p.kernel.arg_tensors;
  std::set<const ExprNode *> globals;
  for (auto &a : g.args) globals.insert(a.get());
  // Top-level global allocations are workspace between kernels; every other top-level statement is a kernel.
  std::vector<Stmt> units;
  std::string error;
  std::function<void(const Stmt &)> split = [&](const Stmt &s) {
    if (auto *a = s.as<Allocate>(); a && a->scope == MemoryScope::Global) {
      int64_t n = 0;
      if (!is_const_int(a->extent, &n)) error = "intermediate " + a->buffer.as<Var>()->name + " has no constant size";
      g.workspace.push_back({a->buffer, a->dtype, n});
      globals.insert(a->buffer.get());
      split(a->body);
    } else if (auto *b = s.as<Block>()) {
      for (auto &x : b->stmts) split(x);
    } else if (s.defined()) {
      units.push_back(s);
    }
  };
  split(p.kernel.body);
  if (!error.empty()) return make_error(error);
  for (size_t i = 0; i < units.size(); ++i) {
    auto k = make_kernel(units[i], g.name + "_k" + std::to_string(i), globals, target);
    if (!k) return make_error(k.error());
    g.kernels.push_back(k.take());
  }
  return g;
}

} // namespace tessel::lower
