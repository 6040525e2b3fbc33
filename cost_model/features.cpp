#include "cost_model/features.h"

#include "ir/affine.h"
#include "ir/printer.h"
#include "ir/visitor.h"
#include "support/hash.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <map>
#include <optional>
#include <set>

namespace tessel::cost {

namespace {

using namespace ir;

struct LoopInfo {
  Expr var;
  int64_t extent;
  ForKind kind;
};

int64_t const_extent(const Expr &e) {
  if (auto *i = e.as<IntImm>()) return std::max<int64_t>(1, i->value);
  return 1; // symbolic extents are rare after simplification; count them once
}

// Machine instructions a vector of `lanes` elements of `bytes` takes in 64-byte registers, split in powers of
// two as LLVM legalizes it: x16 f32 is one, x14 three (8 + 4 + 2), x56 four. So an odd-width vector is not
// mistaken for a cheap one: counting each vector operation once favoured the widest, oddest vectors.
double vector_pieces(int lanes, int bytes) {
  int per_register = std::max(1, 64 / std::max(1, bytes));
  return double(lanes / per_register + std::popcount(unsigned(lanes % per_register)));
}

// An access's index as coefficients of the loops around it. A loop variable under a division, modulo, min, max,
// select or product of variables (a fused loop split again, a clamped border) is opaque: the index moves with it,
// by no fixed stride, and counts as strided. The other loops keep their coefficients, so that a fused parallel
// loop outside does not hide how the loops inside walk the access.
class OpaqueVars : public IRVisitor {
public:
  std::set<const ExprNode *> found;
  void visit(const Binary *b) override {
    int64_t c;
    bool nonlinear = b->op == BinaryOp::Div || b->op == BinaryOp::Mod || b->op == BinaryOp::Min ||
                     b->op == BinaryOp::Max ||
                     (b->op == BinaryOp::Mul && !is_const_int(b->a, &c) && !is_const_int(b->b, &c));
    under_ += nonlinear;
    IRVisitor::visit(b);
    under_ -= nonlinear;
  }
  void visit(const Select *op) override {
    ++under_;
    IRVisitor::visit(op);
    --under_;
  }
  void visit(const Var *v) override {
    if (under_) found.insert(v);
  }

private:
  int under_ = 0;
};

struct IndexForm {
  std::optional<Affine> affine; // in the loops that are not opaque; nullopt: the index is not understood at all
  std::map<const ExprNode *, double> opaque; // opaque loop variable -> distinct index values over its loop
  bool exact() const { return affine && opaque.empty(); }
  // Elements the index moves per iteration of `var`: 0 when it ignores the loop, 2 (strided) when unknown.
  int64_t coefficient(const Expr &var) const {
    if (!affine || opaque.count(var.get())) return 2;
    return affine->coefficient(var);
  }
  // Distinct places the index takes over a loop of `extent` iterations of `var` (the rest fixed).
  double distinct(const Expr &var, int64_t extent) const {
    auto it = opaque.find(var.get());
    if (it != opaque.end()) return it->second;
    return coefficient(var) == 0 ? 1 : double(extent);
  }
};

// An upper bound on the distinct values `e` takes while `var` runs over `extent` values, the rest fixed: a fused
// loop split again takes extent / c values in f / c and c in f % c, so the row and the column of a fused tile
// loop are told apart.
double distinct_values(const Expr &e, const Expr &var, double extent) {
  if (!uses_var(e, var)) return 1;
  if (e.same_as(var)) return extent;
  int64_t c;
  if (auto *b = e.as<Binary>()) {
    switch (b->op) {
    case BinaryOp::Add:
    case BinaryOp::Sub: return distinct_values(b->a, var, extent) * distinct_values(b->b, var, extent);
    case BinaryOp::Mul:
      if (is_const_int(b->b, &c)) return c == 0 ? 1 : distinct_values(b->a, var, extent);
      if (is_const_int(b->a, &c)) return c == 0 ? 1 : distinct_values(b->b, var, extent);
      break;
    case BinaryOp::Div:
      if (is_const_int(b->b, &c) && c > 0) return std::ceil(distinct_values(b->a, var, extent) / double(c));
      break;
    case BinaryOp::Mod:
      if (is_const_int(b->b, &c) && c > 0) return std::min(double(c), distinct_values(b->a, var, extent));
      break;
    case BinaryOp::Min:
    case BinaryOp::Max: return distinct_values(b->a, var, extent) * distinct_values(b->b, var, extent);
    default: break;
    }
  }
  return extent;
}

IndexForm index_form(const Expr &index, const std::vector<LoopInfo> &loops) {
  std::vector<Expr> vars;
  for (auto &l : loops) vars.push_back(l.var);
  IndexForm form;
  form.affine = affine(index, vars);
  if (form.affine) return form;
  OpaqueVars scan;
  index.accept(&scan);
  std::vector<Expr> linear;
  for (auto &l : loops)
    if (scan.found.count(l.var.get()))
      form.opaque[l.var.get()] = std::min(double(l.extent), distinct_values(index, l.var, double(l.extent)));
    else
      linear.push_back(l.var);
  form.affine = affine(index, linear);
  return form;
}

// Operation counts of one evaluation of an expression (vector lanes included).
struct OpCounts {
  double f_add = 0, f_mul = 0, f_div = 0, f_minmax = 0, f_math = 0, cmp_select = 0, i_arith = 0, casts = 0;
  double instructions = 0; // operations in register-wide pieces (vector_pieces)
  int max_lanes = 1;
};

struct Access {
  std::string buffer;
  Expr index;
  int elem_bytes;
  int lanes;
  bool write;
  double tile = 1; // elements one micro-kernel call touches through this operand: m x k of A, k x n of B, m x n of C
};

class ExprScan : public IRVisitor {
public:
  OpCounts ops;
  std::vector<Access> loads;
  void visit(const Binary *b) override {
    int lanes = b->type.lanes;
    ops.max_lanes = std::max(ops.max_lanes, lanes);
    if (b->type.is_float()) {
      ops.instructions += vector_pieces(lanes, b->type.bits / 8); // float only: index arithmetic is mostly hoisted
      switch (b->op) {
      case BinaryOp::Add:
      case BinaryOp::Sub: ops.f_add += lanes; break;
      case BinaryOp::Mul: ops.f_mul += lanes; break;
      case BinaryOp::Div:
      case BinaryOp::Mod: ops.f_div += lanes; break;
      case BinaryOp::Min:
      case BinaryOp::Max: ops.f_minmax += lanes; break;
      default: ops.cmp_select += lanes;
      }
    } else if (b->op >= BinaryOp::EQ) {
      ops.cmp_select += lanes;
    } else {
      ops.i_arith += lanes;
    }
    IRVisitor::visit(b);
  }
  void visit(const Select *s) override {
    ops.cmp_select += s->type.lanes;
    ops.instructions += vector_pieces(s->type.lanes, s->type.bits / 8);
    IRVisitor::visit(s);
  }
  void visit(const Call *c) override {
    ops.f_math += c->type.lanes;
    ops.instructions += vector_pieces(c->type.lanes, c->type.bits / 8);
    IRVisitor::visit(c);
  }
  void visit(const Cast *c) override {
    ops.casts += c->type.lanes;
    ops.instructions += vector_pieces(c->type.lanes, c->type.bits / 8);
    IRVisitor::visit(c);
  }
  void visit(const Load *l) override {
    std::string name = l->buffer.as<Var>() ? l->buffer.as<Var>()->name : "?";
    loads.push_back({name, l->index, std::max(1, l->type.bits / 8), l->type.lanes, false});
    ops.max_lanes = std::max(ops.max_lanes, int(l->type.lanes));
    IRVisitor::visit(l);
  }
};

double log2p(double x) { return std::log2(1.0 + std::max(0.0, x)); }
// An amount per flop (x1000, log): the efficiency features, statement and program-wide.
double per_flop(double amount, double flops) { return log2p(1e3 * amount / std::max(1.0, flops)); }

// One statement's features (FEATURES.md, "statement").
struct StatementFeatures {
  std::vector<float> f = std::vector<float>(kStatementFeatures, 0.f);
  double weight = 0; // flops x trips: which statements matter most
  // Totals the program-wide efficiency features sum over every statement (FEATURES.md 128-133).
  double flops = 0, vector_flops = 0, instructions = 0, loads = 0;
};

// Nominal L1, L2 and L3 capacities for the traffic estimates: the features describe a program, not a
// machine, and the model learns from measurements where this machine's caches really fall.
constexpr std::array<double, 3> kCacheBytes = {32.0 * 1024, 1024.0 * 1024, 32.0 * 1024 * 1024};
// The largest local array counted as registers: 64 vector registers of 64 bytes (beyond, LLVM spills it).
constexpr double kRegisterBytes = 64 * 64;

// The 7 GPU program features (FEATURES.md 121-127) start here; two of them the cubin's figures replace.
constexpr size_t kGpuSlots = 2 * kStatementFeatures + 9;
constexpr size_t kEfficiencySlots = kGpuSlots + 7;        // FEATURES.md 128-133
constexpr size_t kRegistersSlot = 4, kLocalBytesSlot = 5; // from kGpuSlots
constexpr size_t kLoopSlots = kEfficiencySlots + 6;       // FEATURES.md 134-135
// The loop body a statement shares with its siblings (FEATURES.md 14, 15 and 54): filled when the body's loop ends.
constexpr size_t kBodyStatementsSlot = 14, kBodyFlopsSlot = 15, kBodyLoadsSlot = 54;

// The statements directly in one loop's body (unrolled copies included), and what they load.
struct LoopBody {
  std::vector<size_t> statements;
  double flops = 0;        // per iteration
  double extern_loads = 0; // micro-kernel calls' loads per iteration
  struct Load {
    std::string buffer;
    Expr index;
    double pieces;
  };
  std::vector<Load> loads; // distinct (buffer, index)
  // Every distinct access of the body's statements (reads and writes of one element are one), for the
  // program's cache traffic: an unrolled tile's copies share what they read, e.g. one weight vector.
  std::vector<Access> accesses;
  std::vector<IndexForm> forms;
};

// Whether `list` (a loop body's loads or accesses) holds one of `a`'s element: same buffer, same index.
template <typename T> bool holds(const std::vector<T> &list, const Access &a) {
  return std::any_of(list.begin(), list.end(),
                     [&](const T &x) { return x.buffer == a.buffer && equal(x.index, a.index); });
}

// The buffers some access reaches at an index that is not a constant (or through an address). A small local array
// every access of which is at a constant index is what LLVM's SROA keeps in registers, so its loads and stores are
// no memory traffic: accumulators lower::promote_accumulators made, a cache stage's tile with its loops unrolled.
class VariablyIndexed : public IRVisitor {
public:
  std::set<const ExprNode *> buffers;
  using IRVisitor::visit;
  void visit(const Load *op) override {
    check(op->buffer, op->index);
    IRVisitor::visit(op);
  }
  void visit(const Store *op) override {
    check(op->buffer, op->index);
    IRVisitor::visit(op);
  }
  void visit(const AddressOf *op) override {
    buffers.insert(op->buffer.get());
    IRVisitor::visit(op);
  }

private:
  void check(const Expr &buffer, const Expr &index) {
    auto *ramp = index.as<Ramp>();
    if (!is_const_int(ramp ? ramp->base : index) || (ramp && !is_const_int(ramp->stride))) buffers.insert(buffer.get());
  }
};

class Extractor : public IRVisitor {
public:
  std::set<const ExprNode *> variably_indexed; // VariablyIndexed's buffers, found before the extraction
  std::vector<StatementFeatures> statements;
  double loop_iterations = 0;           // every loop's iterations in all: loop overhead
  double body_loads = 0;                // distinct loads of each loop body, times its iterations: register reuse
  std::array<double, 3> body_traffic{}; // bytes into caches of kCacheBytes, each loop body's accesses together
  double alloc_local_bytes = 0, alloc_global_bytes = 0;
  int allocations = 0, extern_calls = 0, guards = 0, gpu_loops = 0;

  void visit(const For *op) override {
    bool bound = is_gpu_bound(op->kind);
    gpu_loops += bound;
    loops_.push_back({op->var, const_extent(op->extent), op->kind});
    double iterations = 1;
    for (auto &l : loops_) iterations *= double(l.extent);
    if (!bound && op->kind != ForKind::Vectorized) loop_iterations += iterations; // GPU lanes are no loop overhead
    bodies_.emplace_back();
    op->body.accept(this);
    close_body(iterations);
    loops_.pop_back();
  }
  // Statements outside every loop.
  void finish() { close_body(1); }
  void visit(const Allocate *op) override {
    double bytes = double(const_extent(op->extent)) * std::max(1, op->dtype.bits / 8);
    (op->scope == MemoryScope::Global ? alloc_global_bytes : alloc_local_bytes) += bytes;
    ++allocations;
    if (op->scope == MemoryScope::Local && bytes <= kRegisterBytes && !variably_indexed.count(op->buffer.get()))
      registers_.insert(op->buffer.as<Var>()->name);
    IRVisitor::visit(op);
  }
  void visit(const IfThenElse *op) override {
    ++guards;
    IRVisitor::visit(op);
  }
  void visit(const Store *op) override {
    ExprScan scan;
    op->value.accept(&scan);
    op->index.accept(&scan);
    std::vector<Access> accesses = scan.loads;
    std::string name = op->buffer.as<Var>() ? op->buffer.as<Var>()->name : "?";
    accesses.push_back({name, op->index, std::max(1, op->value.type().bits / 8), op->value.type().lanes, true});
    statement(scan.ops, accesses, 0, 0, 0);
  }
  void visit(const ExternCall *op) override {
    ++extern_calls;
    // Micro-kernel ABI (src/lower/tensorize.cpp): C, ldc, A, lda_m, lda_k, B, ldb_k, m, n, k.
    int64_t m = 1, n = 1, k = 1;
    if (op->args.size() >= 10) {
      m = const_extent(op->args[7]), n = const_extent(op->args[8]), k = const_extent(op->args[9]);
    }
    OpCounts ops;
    ops.f_add = ops.f_mul = double(m * n * k);
    std::vector<Access> accesses;
    const double tiles[] = {double(m * n), 0, double(m * k), 0, 0, double(k * n)}; // C, A, B by argument
    for (size_t a : {size_t(0), size_t(2), size_t(5)})
      if (a < op->args.size())
        if (auto *addr = op->args[a].as<AddressOf>()) {
          std::string name = addr->buffer.as<Var>() ? addr->buffer.as<Var>()->name : "?";
          accesses.push_back({name, addr->index, std::max(1, addr->element.bits / 8), 1, a == 0, tiles[a]});
        }
    statement(ops, accesses, double(m), double(n), double(k));
  }

private:
  // Gives the statements of the innermost open body its figures: how many share it (an unrolled register
  // tile), its flops per iteration (loop overhead) and its distinct loads per flop (loads the copies share
  // are issued once, e.g. a broadcast weight).
  void close_body(double iterations) {
    if (bodies_.empty()) return;
    LoopBody b = std::move(bodies_.back());
    bodies_.pop_back();
    double loads = b.extern_loads;
    for (auto &l : b.loads) loads += l.pieces;
    body_loads += loads * iterations;
    std::array<double, 3> bytes = traffic(b.accesses, b.forms);
    for (size_t c = 0; c < bytes.size(); ++c) body_traffic[c] += bytes[c];
    for (size_t i : b.statements) {
      auto &f = statements[i].f;
      f[kBodyStatementsSlot] = float(log2p(double(b.statements.size())));
      f[kBodyFlopsSlot] = float(log2p(b.flops));
      f[kBodyLoadsSlot] = float(per_flop(loads, b.flops));
    }
  }

  // The statement's features inside the current loops; `tile_*`: a tensor intrinsic's tile.
  void statement(const OpCounts &ops, std::vector<Access> accesses, double tile_m, double tile_n, double tile_k) {
    accesses.erase(std::remove_if(accesses.begin(), accesses.end(),
                                  [&](const Access &a) { return registers_.count(a.buffer) > 0; }),
                   accesses.end());
    StatementFeatures s;
    auto &f = s.f;
    double trips = 1, parallel = 1;
    int parallel_loops = 0, gpu_bound = 0;
    for (auto &l : loops_) {
      trips *= double(l.extent);
      if (l.kind == ForKind::Parallel) parallel *= double(l.extent), ++parallel_loops;
      if (is_gpu_bound(l.kind)) ++gpu_bound;
    }
    double tile_flops = tile_m > 0 ? 2 * tile_m * tile_n * tile_k : 0;
    double flops_per = ops.f_add + ops.f_mul + ops.f_div + ops.f_minmax + ops.f_math;
    double total_flops = (flops_per + tile_flops) * trips;
    s.weight = total_flops + trips;
    int i = 0;
    // Arithmetic, per evaluation and in all.
    for (double v : {ops.f_add, ops.f_mul, ops.f_div, ops.f_minmax, ops.f_math, ops.cmp_select, ops.i_arith, ops.casts})
      f[size_t(i++)] = float(log2p(v * trips));
    f[size_t(i++)] = float(log2p(total_flops));
    f[size_t(i++)] = float(ops.max_lanes);
    // The loop nest.
    f[size_t(i++)] = float(loops_.size());
    f[size_t(i++)] = float(log2p(trips));
    f[size_t(i++)] = float(log2p(parallel));
    f[size_t(i++)] = float(parallel_loops);
    i += 2; // kBodyStatementsSlot, kBodyFlopsSlot: set when the loop body is closed
    f[size_t(i++)] = float(loops_.empty() ? 0 : log2p(double(loops_.back().extent)));
    f[size_t(i++)] = float(gpu_bound);
    // Tensor intrinsic tile.
    f[size_t(i++)] = float(log2p(tile_m));
    f[size_t(i++)] = float(log2p(tile_n));
    f[size_t(i++)] = float(log2p(tile_k));
    // Memory: the working set of the innermost 1..6 loops (unique bytes of every access), the
    // bytes moved in all, and per access kind its innermost stride and reuse.
    std::vector<IndexForm> forms;
    for (auto &a : accesses) { // a vector access's lanes are counted apart: its form is its first lane's
      auto *ramp = a.index.as<Ramp>();
      forms.push_back(index_form(ramp ? ramp->base : a.index, loops_));
    }
    double moved = 0;
    for (auto &a : accesses) moved += double(a.elem_bytes) * a.lanes * a.tile * trips;
    for (int depth = 1; depth <= 6; ++depth) f[size_t(i++)] = float(log2p(unique_bytes(accesses, forms, depth, false)));
    f[size_t(i++)] = float(log2p(moved));
    f[size_t(i++)] = float(log2p(total_flops / std::max(1.0, moved))); // arithmetic intensity (x1, log)
    // Reads and the write: stride of the innermost loop in elements (0: reused across it),
    // the reuse factor (trips of loops the index ignores), cache lines per innermost run.
    auto describe = [&](size_t a, int slot) {
      int base = i + slot * 6;
      if (a >= accesses.size()) return;
      double stride = 0, reuse = 1, strided_loops = 0;
      if (!loops_.empty()) stride = double(std::llabs(forms[a].coefficient(loops_.back().var)));
      for (auto &l : loops_) {
        int64_t c = forms[a].coefficient(l.var);
        if (c == 0) reuse *= double(l.extent);
        if (std::llabs(c) > 1) ++strided_loops;
      }
      double inner = loops_.empty() ? 1 : double(loops_.back().extent);
      double lines = stride == 0 ? 1 : std::min(inner, std::ceil(inner * stride * accesses[a].elem_bytes / 64.0));
      f[size_t(base + 0)] = float(log2p(stride));
      f[size_t(base + 1)] = float(log2p(reuse));
      f[size_t(base + 2)] = float(log2p(lines));
      f[size_t(base + 3)] = float(strided_loops);
      f[size_t(base + 4)] = forms[a].exact() ? 1.f : 0.f; // affine index
      f[size_t(base + 5)] = float(accesses[a].lanes);
    };
    // The write, then the two biggest reads (by bytes moved: lanes x element size).
    std::vector<size_t> reads;
    size_t write = accesses.size();
    for (size_t a = 0; a < accesses.size(); ++a) {
      if (accesses[a].write)
        write = a;
      else
        reads.push_back(a);
    }
    std::stable_sort(reads.begin(), reads.end(), [&](size_t x, size_t y) {
      return accesses[x].lanes * accesses[x].elem_bytes > accesses[y].lanes * accesses[y].elem_bytes;
    });
    describe(write, 0);
    describe(reads.size() > 0 ? reads[0] : accesses.size(), 1);
    describe(reads.size() > 1 ? reads[1] : accesses.size(), 2);
    i += 18;
    f[size_t(i++)] = float(reads.size());
    // Efficiency, per flop, so that it compares across workloads of any size: instructions (vector
    // operations, loads and the store, or a micro-kernel's broadcasts, loads and FMAs), loads alone,
    // and the bytes that miss each nominal cache level.
    double flops_per_trip = std::max(1.0, total_flops / std::max(1.0, trips));
    double loads = 0, stores = 0;
    for (auto &a : accesses) (a.write ? stores : loads) += vector_pieces(a.lanes, a.elem_bytes);
    double instructions = ops.instructions + loads + stores;
    if (tile_flops > 0) { // per k step: m broadcasts of A, n / lanes loads of B, m * n / lanes FMAs
      double lanes = std::min(tile_n, 16.0);
      loads = tile_k * (tile_m + tile_n / lanes);
      instructions = loads + tile_k * tile_m * tile_n / lanes + 2 * tile_m * tile_n / lanes;
    }
    s.flops = total_flops;
    s.vector_flops = ops.max_lanes > 1 || tile_flops > 0 ? total_flops : 0;
    s.instructions = instructions * trips;
    s.loads = loads * trips;
    f[size_t(i++)] = float(per_flop(instructions, flops_per_trip));
    f[size_t(i++)] = float(per_flop(loads, flops_per_trip));
    for (double bytes : traffic(accesses, forms)) f[size_t(i++)] = float(per_flop(bytes, total_flops));
    f[size_t(i++)] = float(log2p(flops_per_trip));
    if (!bodies_.empty()) {
      LoopBody &body = bodies_.back();
      body.statements.push_back(statements.size());
      body.flops += flops_per_trip;
      if (tile_flops > 0)
        body.extern_loads += loads;
      else
        for (auto &a : accesses)
          if (!a.write && !holds(body.loads, a))
            body.loads.push_back({a.buffer, a.index, vector_pieces(a.lanes, a.elem_bytes)});
      for (size_t a = 0; a < accesses.size(); ++a)
        if (!holds(body.accesses, accesses[a])) body.accesses.push_back(accesses[a]), body.forms.push_back(forms[a]);
    }
    statements.push_back(std::move(s));
  }

  // Unique bytes the accesses touch within the innermost `depth` loops: per access (a micro-kernel's: its tile),
  // the places its index takes over those loops (the product of the extents of the loops it depends on, or
  // what an opaque loop's / and % leave), times its element bytes. With
  // `whole_lines`, an access none of whose loops there walks it contiguously costs a 64-byte line per element.
  double unique_bytes(const std::vector<Access> &accesses, const std::vector<IndexForm> &forms, int depth,
                      bool whole_lines) const {
    double bytes = 0;
    for (size_t a = 0; a < accesses.size(); ++a) bytes += access_bytes(accesses[a], forms[a], depth, whole_lines);
    return bytes;
  }
  double access_bytes(const Access &a, const IndexForm &form, int depth, bool whole_lines) const {
    size_t first = loops_.size() > size_t(depth) ? loops_.size() - size_t(depth) : 0;
    double elems = a.lanes * a.tile;
    bool used_any = false, contiguous = a.lanes > 1 || a.tile > 1; // a micro-kernel walks its tile's rows
    for (size_t l = first; l < loops_.size(); ++l) {
      int64_t c = std::llabs(form.coefficient(loops_[l].var));
      if (c != 0) elems *= form.distinct(loops_[l].var, loops_[l].extent), used_any = true;
      contiguous |= c == 1;
    }
    return elems * (whole_lines && used_any && !contiguous ? 64.0 : double(a.elem_bytes));
  }

  // Bytes brought into each cache of kCacheBytes over the whole statement, roughly: the deepest sub-nest of
  // loops whose footprint fits stays in cache while it runs; each access brings its part of that footprint once
  // per execution of the sub-nest, except across the loops just outside it that leave the access where it is
  // (a GEMM's B tile while the loop over rows of A goes round): there it is still in cache.
  std::array<double, 3> traffic(const std::vector<Access> &accesses, const std::vector<IndexForm> &forms) const {
    // Each access's footprint (whole lines) within the innermost 0..all loops, computed once for the three caches.
    std::vector<std::vector<double>> footprint(accesses.size());
    std::vector<double> total(loops_.size() + 1, 0.0);
    for (size_t a = 0; a < accesses.size(); ++a)
      for (size_t depth = 0; depth <= loops_.size(); ++depth) {
        footprint[a].push_back(access_bytes(accesses[a], forms[a], int(depth), true));
        total[depth] += footprint[a].back();
      }
    std::array<double, 3> bytes{};
    for (size_t c = 0; c < kCacheBytes.size(); ++c) {
      size_t fit = 0; // loops in the sub-nest
      while (fit < loops_.size() && total[fit + 1] <= kCacheBytes[c]) ++fit;
      for (size_t a = 0; a < accesses.size(); ++a) {
        double executions = 1;
        bool resident = true; // until the first loop outside the sub-nest that moves the access
        for (size_t l = loops_.size() - fit; l-- > 0;) {
          resident = resident && forms[a].coefficient(loops_[l].var) == 0;
          if (!resident) executions *= double(loops_[l].extent);
        }
        bytes[c] += footprint[a][fit] * executions;
      }
    }
    return bytes;
  }

  std::vector<LoopInfo> loops_;
  std::vector<LoopBody> bodies_ = std::vector<LoopBody>(1); // the program's top level first
  std::set<std::string> registers_;                         // small local arrays never variably indexed
};

} // namespace

std::vector<float> program_features(const lower::LoweredProgram &program) {
  Extractor x;
  VariablyIndexed variable;
  program.kernel.body.accept(&variable);
  x.variably_indexed = std::move(variable.buffers);
  program.kernel.body.accept(&x);
  x.finish();
  std::vector<float> out(kProgramFeatures, 0.f);
  std::vector<size_t> order(x.statements.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return x.statements[a].weight > x.statements[b].weight; });
  for (size_t k = 0; k < 2 && k < order.size(); ++k)
    std::copy(x.statements[order[k]].f.begin(), x.statements[order[k]].f.end(),
              out.begin() + long(k * kStatementFeatures));
  double total_weight = 0;
  for (auto &s : x.statements) total_weight += s.weight;
  size_t i = 2 * kStatementFeatures;
  out[i++] = float(x.statements.size());
  out[i++] = float(log2p(total_weight));
  out[i++] = float(order.empty() ? 0 : x.statements[order[0]].weight / std::max(1.0, total_weight));
  out[i++] = float(log2p(x.alloc_local_bytes));
  out[i++] = float(log2p(x.alloc_global_bytes));
  out[i++] = float(x.allocations);
  out[i++] = float(x.extern_calls);
  out[i++] = float(x.guards);
  out[i++] = float(program.prepack.size());
  // Efficiency over every statement, per flop (the statement features describe only the two heaviest).
  double flops = 0, vector_flops = 0, instructions = 0, loads = 0;
  for (auto &s : x.statements)
    flops += s.flops, vector_flops += s.vector_flops, instructions += s.instructions, loads += s.loads;
  const std::array<double, 3> &traffic = x.body_traffic;
  float *efficiency = &out[kEfficiencySlots];
  efficiency[0] = float(per_flop(instructions, flops));
  efficiency[1] = float(per_flop(loads, flops));
  for (size_t c = 0; c < traffic.size(); ++c) efficiency[2 + c] = float(per_flop(traffic[c], flops));
  efficiency[5] = float(vector_flops / std::max(1.0, flops));
  out[kLoopSlots] = float(per_flop(x.loop_iterations, flops));
  out[kLoopSlots + 1] = float(per_flop(x.body_loads, flops));
  // GPU programs: the launch and what a block asks of an SM (before compilation: estimates).
  if (x.gpu_loops > 0) {
    lower::GpuResources r = lower::gpu_resources(program.kernel);
    int64_t registers = lower::estimated_registers(r);
    float *gpu = &out[kGpuSlots];
    gpu[0] = float(log2p(r.blocks));
    gpu[1] = float(log2p(r.threads_per_block));
    gpu[2] = float(log2p(r.vthreads));
    gpu[3] = float(log2p(r.shared_bytes));
    gpu[kRegistersSlot] = float(log2p(registers));
    gpu[kLocalBytesSlot] = float(log2p(std::max<int64_t>(0, registers - 255) * 4)); // spilled
    gpu[6] = float(log2p(r.thread_x_extent));
  }
  return out;
}

void set_cuda_resources(std::vector<float> &features, int registers, int64_t local_bytes) {
  if (features.size() != size_t(kProgramFeatures)) return;
  features[kGpuSlots + kRegistersSlot] = float(log2p(registers));
  features[kGpuSlots + kLocalBytesSlot] = float(log2p(local_bytes));
}

const std::vector<std::string> &feature_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> stmt = {
        "float_add_sub",    "float_mul",        "float_div",       "float_min_max",       "float_math_calls",
        "compare_select",   "int_arith",        "casts",           "total_flops",         "max_vector_lanes",
        "loop_depth",       "trip_count",       "parallel_extent", "parallel_loops",      "body_statements",
        "body_flops",       "innermost_extent", "gpu_bound_loops", "intrinsic_tile_m",    "intrinsic_tile_n",
        "intrinsic_tile_k", "working_set_1",    "working_set_2",   "working_set_3",       "working_set_4",
        "working_set_5",    "working_set_6",    "bytes_moved",     "arithmetic_intensity"};
    for (std::string who : {"write", "read0", "read1"})
      for (std::string what : {"stride", "reuse", "lines", "strided_loops", "affine", "lanes"})
        stmt.push_back(who + "_" + what);
    for (std::string n : {"reads", "instructions_per_flop", "loads_per_flop", "l1_traffic_per_flop",
                          "l2_traffic_per_flop", "l3_traffic_per_flop", "flops_per_trip", "body_loads_per_flop"})
      stmt.push_back(n);
    while (stmt.size() < size_t(kStatementFeatures)) stmt.push_back("reserved_" + std::to_string(stmt.size()));
    std::vector<std::string> all;
    for (std::string which : {"s0_", "s1_"})
      for (auto &n : stmt) all.push_back(which + n);
    for (std::string n : {"statements",
                          "total_work",
                          "heaviest_share",
                          "local_alloc_bytes",
                          "global_alloc_bytes",
                          "allocations",
                          "intrinsic_calls",
                          "guards",
                          "prepacked_inputs",
                          "gpu_blocks",
                          "gpu_threads_per_block",
                          "gpu_vthreads",
                          "gpu_shared_bytes",
                          "gpu_registers_per_thread",
                          "gpu_local_bytes_per_thread",
                          "gpu_thread_x_extent",
                          "instructions_per_flop",
                          "loads_per_flop",
                          "l1_traffic_per_flop",
                          "l2_traffic_per_flop",
                          "l3_traffic_per_flop",
                          "vector_flop_share",
                          "loop_iterations_per_flop",
                          "body_loads_per_flop"})
      all.push_back(n);
    while (all.size() < size_t(kProgramFeatures)) all.push_back("reserved_" + std::to_string(all.size()));
    return all;
  }();
  return names;
}

std::string program_hash(const lower::LoweredProgram &program) {
  std::string text = ir::to_string(program.kernel.body);
  for (auto &p : program.prepack) text += "\n#prepack\n" + ir::to_string(p.body);
  return hex16(fnv1a(text)); // as the workload hash
}

} // namespace tessel::cost
