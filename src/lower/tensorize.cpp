// Pass: loops tagged "tensorize:NAME" by the tensorize primitive become a call
// of the intrinsic's micro-kernel. The tile must be three perfectly nested,
// guard-free loops around C[c] = C[c] + A[a] * B[b] with indices affine in the
// loop variables; the strides the kernel needs are read off the indices.
#include "lower/lower.h"

#include "ir/affine.h"
#include "ir/op.h"
#include "ir/printer.h"
#include "ir/simplify.h"
#include "ir/visitor.h"
#include "schedules/intrinsics.h"

#include <algorithm>
#include <map>
#include <optional>

namespace tessel::lower {

using namespace ir;

namespace {

class Tensorizer : public IRMutator {
public:
  using IRMutator::mutate;

protected:
  Stmt visit(const For *op, const Stmt &s) override {
    const std::string prefix = "tensorize:";
    if (op->thread_tag.rfind(prefix, 0) != 0) {
      bool lanes = op->thread_tag == "threadIdx.x";
      lane_loops_ += lanes;
      Stmt r = IRMutator::visit(op, s);
      lane_loops_ -= lanes;
      return r;
    }
    std::string name = op->thread_tag.substr(prefix.size());
    auto fail = [&](const std::string &why) -> Stmt {
      throw Error("tensorize " + name + " at loop " + op->var.as<Var>()->name + ": " + why);
    };
    const sched::TensorIntrinsic *intrin = sched::find_tensor_intrinsic(name);
    if (!intrin) fail("unknown intrinsic");
    if (intrin->warp_level && lane_loops_ > 0)
      fail("it runs on a whole warp, but the tile is inside a loop bound to threadIdx.x (a warp's lanes); compute "
           "the stage at a loop bound to threadIdx.y/z or above");
    // Up to three perfectly nested loops around one store (loops of extent 1
    // have been simplified away: their role gets extent 1).
    std::vector<const For *> loops{op};
    Stmt body = op->body;
    while (auto *f = body.as<For>()) {
      if (loops.size() == 3) break;
      loops.push_back(f);
      body = f->body;
    }
    auto *store = body.as<Store>();
    if (!store) fail("the tile has guards or more than one statement (use split_exact):\n" + to_string(body));
    for (auto *l : loops)
      if (!is_zero(l->min)) fail("loops must start at 0");
    auto *add = store->value.as<Binary>();
    auto *acc = add && add->op == BinaryOp::Add ? add->a.as<Load>() : nullptr;
    auto *mul = add ? add->b.as<Binary>() : nullptr;
    auto load = [](const Expr &e) { // a load, possibly widened by a cast
      auto *c = e.as<Cast>();
      return (c ? c->value : e).as<Load>();
    };
    if (!acc || !mul || mul->op != BinaryOp::Mul || !load(mul->a) || !load(mul->b) ||
        !acc->buffer.same_as(store->buffer) || !equal(acc->index, store->index))
      fail("the statement is not C = C + A * B:\n" + to_string(body));
    std::vector<Expr> vars;
    for (auto *l : loops) vars.push_back(l->var);
    auto fc = affine(store->index, vars), f0 = affine(load(mul->a)->index, vars),
         f1 = affine(load(mul->b)->index, vars);
    if (!fc || !f0 || !f1) fail("the indices are not affine in the tile's loops:\n" + to_string(body));
    // Find roles i, j, k (a missing one has extent 1) and which operand is B so that
    // C[i, j] += A[i, k] * B[k, j] with C and B contiguous along j.
    std::vector<Expr> cand = vars;
    while (cand.size() < 3) cand.push_back(Expr());
    std::sort(cand.begin(), cand.end(), [](const Expr &x, const Expr &y) { return x.get() < y.get(); });
    for (;;) {
      const Expr &i = cand[0], &j = cand[1], &k = cand[2];
      for (int swap = 0; swap < 2; ++swap) {
        const Load *a = load(swap ? mul->b : mul->a), *b = load(swap ? mul->a : mul->b);
        const Affine &fa = swap ? *f1 : *f0, &fb = swap ? *f0 : *f1;
        sched::TileStrides st{fc->coefficient(j), fc->coefficient(k), fa.coefficient(j), fb.coefficient(i),
                              fb.coefficient(j)};
        if (!sched::fits_intrinsic_layout(st, j.defined())) continue;
        auto extent = [&](const Expr &v) {
          for (auto *l : loops)
            if (v.defined() && l->var.same_as(v)) return l->extent;
          return Expr(int64_t(1));
        };
        auto is = [](const Expr &e, int64_t want) {
          int64_t v;
          return is_const_int(e, &v) && v == want;
        };
        if (intrin->fixed_shape() &&
            !(is(extent(i), intrin->m) && is(extent(j), intrin->n) && is(extent(k), intrin->k)))
          continue;
        if (intrin->warp_level) {
          // load_matrix_sync / store_matrix_sync: a row- or column-major operand whose
          // leading dimension is a multiple of 16 bytes.
          int64_t lda = fa.coefficient(k) == 1 ? fa.coefficient(i) : fa.coefficient(i) == 1 ? fa.coefficient(k) : 0;
          auto aligned = [](int64_t ld, DataType t) { return ld > 0 && ld * t.bytes() % 16 == 0; };
          if (!aligned(lda, intrin->a) || !aligned(fb.coefficient(k), intrin->b) ||
              !aligned(fc->coefficient(i), intrin->c))
            fail("WMMA loads need row- or column-major tiles with leading dimensions of a multiple of 16 bytes; here A "
                 "strides (" +
                 std::to_string(fa.coefficient(i)) + ", " + std::to_string(fa.coefficient(k)) + "), B " +
                 std::to_string(fb.coefficient(k)) + ", C " + std::to_string(fc->coefficient(i)) +
                 " elements (pad or re-tile the shared caches)");
        }
        std::vector<Expr> args{AddressOf::make(store->buffer, simplify(fc->rest), intrin->c),
                               Expr(fc->coefficient(i)),
                               AddressOf::make(a->buffer, simplify(fa.rest), intrin->a),
                               Expr(fa.coefficient(i)),
                               Expr(fa.coefficient(k)),
                               AddressOf::make(b->buffer, simplify(fb.rest), intrin->b),
                               Expr(fb.coefficient(k)),
                               extent(i),
                               extent(j),
                               extent(k)};
        return ExternCall::make(intrin->runtime_symbol, args);
      }
      if (!std::next_permutation(cand.begin(), cand.end(),
                                 [](const Expr &x, const Expr &y) { return x.get() < y.get(); }))
        break;
    }
    fail("the accesses do not fit C[i, j] += A[i, k] * B[k, j] with B and C contiguous along j" +
         (intrin->fixed_shape() ? " over a " + intrin->shape_str() + " tile" : std::string()) + ":\n" +
         to_string(body));
    return s;
  }

private:
  int lane_loops_ = 0; // enclosing loops bound to threadIdx.x
};

// Calls of intrinsics' hardware functions become calls of their emulations.
class EmulateIntrinsics : public IRMutator {
public:
  using IRMutator::mutate;
  explicit EmulateIntrinsics(std::string kind) : kind_(std::move(kind)) {}

protected:
  Stmt visit(const ExternCall *op, const Stmt &s) override {
    const sched::TensorIntrinsic *in = sched::intrinsic_of_symbol(op->name);
    if (!in || (!kind_.empty() && in->target_kind != kind_)) return s;
    return ExternCall::make(in->emulation_symbol, op->args);
  }

private:
  std::string kind_;
};

} // namespace

Stmt tensorize_loops(const Stmt &s) { return Tensorizer().mutate(s); }

LoweredProgram emulate_intrinsics(LoweredProgram p, const std::string &kind) {
  for (auto &f : p.prepack) f.body = EmulateIntrinsics(kind).mutate(f.body);
  p.kernel.body = EmulateIntrinsics(kind).mutate(p.kernel.body);
  return p;
}

} // namespace tessel::lower
