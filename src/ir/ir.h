// The loop IR: small immutable expression and statement nodes (Halide-style).
//
// One expression language serves both the tensor-expression front end (which
// adds TensorRead and Reduce) and the lowered loop program (Load/Store on flat
// buffers, Ramp/Broadcast for vectors). Nodes are shared and never mutated;
// passes rebuild what they change through IRMutator.
#pragma once

#include "ir/type.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tessel::ir {

class IRVisitor;

enum class ExprKind : uint8_t {
  IntImm,
  FloatImm,
  Var,
  Cast,
  Binary,
  Not,
  Select,
  Call,
  Load,
  Ramp,
  Broadcast,
  Let,
  TensorRead,
  Reduce,
  AddressOf
};
enum class StmtKind : uint8_t {
  For,
  Store,
  TensorWrite,
  Allocate,
  Realize,
  IfThenElse,
  LetStmt,
  Block,
  Evaluate,
  ExternCall
};

struct ExprNode {
  ExprNode(ExprKind k, DataType t) : kind(k), type(t) {}
  virtual ~ExprNode() = default;
  virtual void accept(IRVisitor *v) const = 0;
  const ExprKind kind;
  const DataType type;
};

struct StmtNode {
  explicit StmtNode(StmtKind k) : kind(k) {}
  virtual ~StmtNode() = default;
  virtual void accept(IRVisitor *v) const = 0;
  const StmtKind kind;
};

// A handle to an immutable expression node. Arithmetic operators live in ir/op.h.
class Expr {
public:
  Expr() = default;
  template <typename T> Expr(std::shared_ptr<T> n) : node_(std::move(n)) {}
  Expr(int v);     // i32 literal (adapts to the other operand's type in arithmetic)
  Expr(int64_t v); // index literal
  Expr(float v);
  Expr(double v); // f32 literal

  bool defined() const { return node_ != nullptr; }
  const ExprNode *get() const { return node_.get(); }
  const ExprNode *operator->() const { return node_.get(); }
  DataType type() const { return node_->type; }
  ExprKind kind() const { return node_->kind; }
  template <typename T> const T *as() const {
    return node_ && node_->kind == T::kKind ? static_cast<const T *>(node_.get()) : nullptr;
  }
  bool same_as(const Expr &o) const { return node_ == o.node_; }
  void accept(IRVisitor *v) const { node_->accept(v); }

private:
  std::shared_ptr<const ExprNode> node_;
};

class Stmt {
public:
  Stmt() = default;
  template <typename T> Stmt(std::shared_ptr<T> n) : node_(std::move(n)) {}
  bool defined() const { return node_ != nullptr; }
  const StmtNode *get() const { return node_.get(); }
  const StmtNode *operator->() const { return node_.get(); }
  StmtKind kind() const { return node_->kind; }
  template <typename T> const T *as() const {
    return node_ && node_->kind == T::kKind ? static_cast<const T *>(node_.get()) : nullptr;
  }
  bool same_as(const Stmt &o) const { return node_ == o.node_; }
  void accept(IRVisitor *v) const { node_->accept(v); }

private:
  std::shared_ptr<const StmtNode> node_;
};

#define TESSEL_IR_NODE(Base, KindEnum, Name)                                                                           \
  static constexpr KindEnum kKind = KindEnum::Name;                                                                    \
  void accept(IRVisitor *v) const override;

// ---------------------------------------------------------------- expressions
struct IntImm : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, IntImm)
  IntImm(DataType t, int64_t v) : ExprNode(kKind, t), value(v) {}
  int64_t value;
  static Expr make(DataType t, int64_t v);
};

struct FloatImm : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, FloatImm)
  FloatImm(DataType t, double v) : ExprNode(kKind, t), value(v) {}
  double value;
  static Expr make(DataType t, double v);
};

// Variables compare by identity (node pointer), never by name.
struct Var : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Var)
  Var(DataType t, std::string n) : ExprNode(kKind, t), name(std::move(n)) {}
  std::string name;
  static Expr make(DataType t, std::string name);
};

struct Cast : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Cast)
  Cast(DataType t, Expr v) : ExprNode(kKind, t), value(std::move(v)) {}
  Expr value;
  static Expr make(DataType t, Expr v);
};

// Integer Div/Mod round toward negative infinity (floor semantics), so index
// arithmetic stays correct for negative values.
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Mod, Min, Max, EQ, NE, LT, LE, GT, GE, And, Or };
const char *binary_op_name(BinaryOp op); // "+", "min", "<=", "&&", ...
constexpr bool is_comparison(BinaryOp op) { return op >= BinaryOp::EQ && op <= BinaryOp::GE; }

struct Binary : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Binary)
  Binary(DataType t, BinaryOp o, Expr x, Expr y) : ExprNode(kKind, t), op(o), a(std::move(x)), b(std::move(y)) {}
  BinaryOp op;
  Expr a, b;
  // Operands must already share a type (see ir/op.h for coercing helpers).
  static Expr make(BinaryOp op, Expr a, Expr b);
};

struct Not : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Not)
  explicit Not(Expr v) : ExprNode(kKind, v.type()), value(std::move(v)) {}
  Expr value;
  static Expr make(Expr v);
};

struct Select : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Select)
  Select(Expr c, Expr t, Expr f)
      : ExprNode(kKind, t.type()), cond(std::move(c)), true_value(std::move(t)), false_value(std::move(f)) {}
  Expr cond, true_value, false_value;
  static Expr make(Expr c, Expr t, Expr f);
};

enum class Intrinsic : uint8_t { Exp, Log, Sqrt, Rsqrt, Tanh, Erf, Abs, Floor, Ceil, Pow };
const char *intrinsic_name(Intrinsic f);

struct Call : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Call)
  Call(DataType t, Intrinsic f, std::vector<Expr> a) : ExprNode(kKind, t), func(f), args(std::move(a)) {}
  Intrinsic func;
  std::vector<Expr> args;
  static Expr make(Intrinsic f, std::vector<Expr> args);
};

// A read of a flat buffer. `buffer` is a Var of handle type; the index has as
// many lanes as the result (a Ramp for contiguous vector loads).
struct Load : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Load)
  Load(DataType t, Expr buf, Expr idx) : ExprNode(kKind, t), buffer(std::move(buf)), index(std::move(idx)) {}
  Expr buffer;
  Expr index;
  static Expr make(DataType element_type, Expr buffer, Expr index);
};

// The address of element `index` of a flat buffer (a handle), for extern calls.
struct AddressOf : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, AddressOf)
  AddressOf(Expr buf, Expr idx, DataType elem)
      : ExprNode(kKind, DataType::handle()), buffer(std::move(buf)), index(std::move(idx)), element(elem) {}
  Expr buffer, index;
  DataType element;
  static Expr make(Expr buffer, Expr index, DataType element);
};

// base, base + stride, ..., base + (lanes-1)*stride.
struct Ramp : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Ramp)
  Ramp(DataType t, Expr b, Expr s, int l) : ExprNode(kKind, t), base(std::move(b)), stride(std::move(s)), lanes(l) {}
  Expr base, stride;
  int lanes;
  static Expr make(Expr base, Expr stride, int lanes);
};

struct Broadcast : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Broadcast)
  Broadcast(DataType t, Expr v, int l) : ExprNode(kKind, t), value(std::move(v)), lanes(l) {}
  Expr value;
  int lanes;
  static Expr make(Expr value, int lanes);
};

struct Let : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Let)
  Let(Expr v, Expr val, Expr b)
      : ExprNode(kKind, b.type()), var(std::move(v)), value(std::move(val)), body(std::move(b)) {}
  Expr var, value, body;
  static Expr make(Expr var, Expr value, Expr body);
};

// --------------------------------------------------------- tensor expressions
struct TensorNode;
using Tensor = std::shared_ptr<const TensorNode>;

// An iteration axis of a computation: a variable and its extent [0, extent).
struct IterVar {
  Expr var;
  int64_t extent = 0;
  bool is_reduce = false;
};

// A tensor: an input (placeholder, no body) or the result of a computation.
struct TensorNode {
  std::string name;
  std::vector<int64_t> shape;
  DataType dtype;
  bool is_constant = false;  // inputs only: known ahead of time (weights at inference)
  std::vector<IterVar> axes; // one spatial axis per dimension (computations only)
  Expr body;                 // undefined for inputs; may be a Reduce at the top level
  bool is_input() const { return !body.defined(); }
};

// Reads tensor[indices...] (multi-dimensional, before storage flattening).
struct TensorRead : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, TensorRead)
  TensorRead(Tensor t, std::vector<Expr> idx)
      : ExprNode(kKind, t->dtype), tensor(std::move(t)), indices(std::move(idx)) {}
  Tensor tensor;
  std::vector<Expr> indices;
  static Expr make(Tensor t, std::vector<Expr> indices);
};

enum class ReduceOp : uint8_t { Sum, Max, Min };
const char *reduce_op_name(ReduceOp op);

// A commutative reduction of `source` over `axes`, only ever the top of a body.
struct Reduce : ExprNode {
  TESSEL_IR_NODE(ExprNode, ExprKind, Reduce)
  Reduce(ReduceOp o, Expr s, std::vector<IterVar> ax)
      : ExprNode(kKind, s.type()), op(o), source(std::move(s)), axes(std::move(ax)) {}
  ReduceOp op;
  Expr source;
  std::vector<IterVar> axes;
  static Expr make(ReduceOp op, Expr source, std::vector<IterVar> axes);
  Expr identity() const;                    // 0, -inf, +inf (or integer limits)
  Expr combine(Expr acc, Expr value) const; // acc + value, max(acc, value), ...
};

// ----------------------------------------------------------------- statements
enum class ForKind : uint8_t { Serial, Parallel, Vectorized, Unrolled, GpuBlock, GpuThread, Vthread };
const char *for_kind_name(ForKind k);
// Whether a loop of this kind is bound to GPU blocks, threads or virtual threads.
inline bool is_gpu_bound(ForKind k) {
  return k == ForKind::GpuBlock || k == ForKind::GpuThread || k == ForKind::Vthread;
}

struct For : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, For)
  For(Expr v, Expr mn, Expr ext, ForKind k, Stmt b, std::string tag)
      : StmtNode(kKind), var(std::move(v)), min(std::move(mn)), extent(std::move(ext)), kind(k), body(std::move(b)),
        thread_tag(std::move(tag)) {}
  Expr var, min, extent;
  ForKind kind;
  Stmt body;
  std::string thread_tag; // "blockIdx.x", "threadIdx.y" for GPU-bound loops
  static Stmt make(Expr var, Expr min, Expr extent, ForKind kind, Stmt body, std::string tag = "");
  // This loop with a new body, kind and tag; `self` itself when nothing changed.
  Stmt with(const Stmt &self, Stmt body, ForKind kind, std::string tag) const;
};

struct Store : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, Store)
  Store(Expr buf, Expr val, Expr idx)
      : StmtNode(kKind), buffer(std::move(buf)), value(std::move(val)), index(std::move(idx)) {}
  Expr buffer, value, index;
  static Stmt make(Expr buffer, Expr value, Expr index);
};

// tensor[indices...] = value (before storage flattening).
struct TensorWrite : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, TensorWrite)
  TensorWrite(Tensor t, Expr val, std::vector<Expr> idx)
      : StmtNode(kKind), tensor(std::move(t)), value(std::move(val)), indices(std::move(idx)) {}
  Tensor tensor;
  Expr value;
  std::vector<Expr> indices;
  static Stmt make(Tensor t, Expr value, std::vector<Expr> indices);
};

// Fragment: a CUDA warp's tensor-core accumulator, spread over the warp's
// registers; only warp-level tensor intrinsics compute it.
enum class MemoryScope : uint8_t { Global, Local, Shared, Fragment };
const char *memory_scope_name(MemoryScope s);

// Storage for `extent` elements of `dtype`, visible in `body` through `buffer`.
struct Allocate : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, Allocate)
  Allocate(Expr buf, DataType t, Expr ext, MemoryScope s, Stmt b)
      : StmtNode(kKind), buffer(std::move(buf)), dtype(t), extent(std::move(ext)), scope(s), body(std::move(b)) {}
  Expr buffer;
  DataType dtype;
  Expr extent;
  MemoryScope scope;
  Stmt body;
  static Stmt make(Expr buffer, DataType dtype, Expr extent, MemoryScope scope, Stmt body);
};

// A region [min, min+extent) per dimension.
struct Range {
  Expr min, extent;
};

// Marks where an intermediate tensor lives and which region of it is computed
// (before storage flattening turns it into an Allocate).
struct Realize : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, Realize)
  Realize(Tensor t, std::vector<Range> r, MemoryScope s, Stmt b, int64_t pad)
      : StmtNode(kKind), tensor(std::move(t)), region(std::move(r)), scope(s), body(std::move(b)), row_pad(pad) {}
  Tensor tensor;
  std::vector<Range> region;
  MemoryScope scope;
  Stmt body;
  int64_t row_pad = 0; // unused elements after each innermost row (shared memory: spreads rows over banks)
  static Stmt make(Tensor t, std::vector<Range> region, MemoryScope scope, Stmt body, int64_t row_pad = 0);
};

struct IfThenElse : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, IfThenElse)
  IfThenElse(Expr c, Stmt t, Stmt e)
      : StmtNode(kKind), cond(std::move(c)), then_case(std::move(t)), else_case(std::move(e)) {}
  Expr cond;
  Stmt then_case, else_case; // else_case may be undefined
  static Stmt make(Expr cond, Stmt then_case, Stmt else_case = Stmt());
};

struct LetStmt : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, LetStmt)
  LetStmt(Expr v, Expr val, Stmt b) : StmtNode(kKind), var(std::move(v)), value(std::move(val)), body(std::move(b)) {}
  Expr var, value;
  Stmt body;
  static Stmt make(Expr var, Expr value, Stmt body);
};

struct Block : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, Block)
  explicit Block(std::vector<Stmt> s) : StmtNode(kKind), stmts(std::move(s)) {}
  std::vector<Stmt> stmts;
  // Flattens nested blocks and drops undefined statements; one statement stays itself.
  static Stmt make(std::vector<Stmt> stmts);
};

struct Evaluate : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, Evaluate)
  explicit Evaluate(Expr v) : StmtNode(kKind), value(std::move(v)) {}
  Expr value;
  static Stmt make(Expr value);
};

// A call of a runtime function (a tensorized micro-kernel) with addresses and
// i64 arguments.
struct ExternCall : StmtNode {
  TESSEL_IR_NODE(StmtNode, StmtKind, ExternCall)
  ExternCall(std::string n, std::vector<Expr> a) : StmtNode(kKind), name(std::move(n)), args(std::move(a)) {}
  std::string name;
  std::vector<Expr> args;
  static Stmt make(std::string name, std::vector<Expr> args);
};

#undef TESSEL_IR_NODE

// ------------------------------------------------------------------ helpers
Expr make_const(DataType t, double value); // typed constant (broadcast for vectors)
Expr make_zero(DataType t);
bool is_const_int(const Expr &e, int64_t *value = nullptr);
bool is_const_value(const Expr &e, int64_t expected_value);
bool is_one(const Expr &e);
// Deep structural equality (variables by identity).
bool equal(const Expr &a, const Expr &b);
bool is_zero(const Expr &e);
Expr min_value(DataType t); // lowest finite value, or -inf for floats
Expr max_value(DataType t);

} // namespace tessel::ir
