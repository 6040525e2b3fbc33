#include "ir/ir.h"

#include "ir/visitor.h"
#include "support/error.h"

#include <cmath>
#include <limits>

namespace tessel::ir {

std::string DataType::str() const {
  std::string s;
  switch (code) {
  case Int: s = "i" + std::to_string(bits); break;
  case UInt: s = bits == 1 ? "bool" : "u" + std::to_string(bits); break;
  case Float: s = "f" + std::to_string(bits); break;
  case BFloat: s = "bf" + std::to_string(bits); break;
  case Handle: s = "handle"; break;
  }
  if (lanes > 1) s += "x" + std::to_string(lanes);
  return s;
}

std::optional<DataType> DataType::parse(std::string_view n) {
  if (n == "f32") return f32();
  if (n == "f16") return f16();
  if (n == "bf16") return bf16();
  if (n == "f64") return f64();
  if (n == "i8") return i8();
  if (n == "i32") return i32();
  if (n == "i64") return i64();
  if (n == "bool") return boolean();
  return std::nullopt;
}

// `static_assert(true)` lets each use end with a semicolon, like a declaration.
#define ACCEPT(T)                                                                                                      \
  void T::accept(IRVisitor *v) const { v->visit(this); }                                                               \
  static_assert(true)
ACCEPT(IntImm);
ACCEPT(FloatImm);
ACCEPT(Var);
ACCEPT(Cast);
ACCEPT(Binary);
ACCEPT(Not);
ACCEPT(Select);
ACCEPT(Call);
ACCEPT(Load);
ACCEPT(Ramp);
ACCEPT(Broadcast);
ACCEPT(Let);
ACCEPT(TensorRead);
ACCEPT(Reduce);
ACCEPT(For);
ACCEPT(Store);
ACCEPT(TensorWrite);
ACCEPT(Allocate);
ACCEPT(Realize);
ACCEPT(IfThenElse);
ACCEPT(LetStmt);
ACCEPT(Block);
ACCEPT(Evaluate);
ACCEPT(AddressOf);
ACCEPT(ExternCall);
#undef ACCEPT

Expr::Expr(int v) : Expr(IntImm::make(DataType::i32(), v)) {}
Expr::Expr(int64_t v) : Expr(IntImm::make(DataType::index(), v)) {}
Expr::Expr(float v) : Expr(FloatImm::make(DataType::f32(), v)) {}
Expr::Expr(double v) : Expr(FloatImm::make(DataType::f32(), v)) {}

// TESSEL_CHECK builds its message only when the check fails: node constructors run millions of times per tuning run.

Expr IntImm::make(DataType t, int64_t v) {
  TESSEL_CHECK(t.is_scalar() && (t.is_integer() || t.is_bool()), "IntImm of non-integer type " + t.str());
  if (t.is_bool())
    v = v != 0;
  else if (t.bits < 64) { // wrap to the type's width so constants are canonical
    int64_t m = int64_t(1) << t.bits;
    v = ((v % m) + m) % m;
    if (t.is_int() && v >= m / 2) v -= m;
  }
  return std::make_shared<IntImm>(t, v);
}
Expr FloatImm::make(DataType t, double v) {
  TESSEL_CHECK(t.is_scalar() && t.is_float(), "FloatImm of non-float type " + t.str());
  if (t.bits == 32 && std::isfinite(v)) v = double(float(v));
  return std::make_shared<FloatImm>(t, v);
}
Expr Var::make(DataType t, std::string name) { return std::make_shared<Var>(t, std::move(name)); }
Expr Cast::make(DataType t, Expr v) {
  TESSEL_CHECK(v.defined(), "cast of an undefined expression");
  TESSEL_CHECK(t.lanes == v.type().lanes, "cast changes vector width: " + v.type().str() + " to " + t.str());
  if (v.type() == t) return v;
  return std::make_shared<Cast>(t, std::move(v));
}

const char *binary_op_name(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add: return "+";
  case BinaryOp::Sub: return "-";
  case BinaryOp::Mul: return "*";
  case BinaryOp::Div: return "/";
  case BinaryOp::Mod: return "%";
  case BinaryOp::Min: return "min";
  case BinaryOp::Max: return "max";
  case BinaryOp::EQ: return "==";
  case BinaryOp::NE: return "!=";
  case BinaryOp::LT: return "<";
  case BinaryOp::LE: return "<=";
  case BinaryOp::GT: return ">";
  case BinaryOp::GE: return ">=";
  case BinaryOp::And: return "&&";
  case BinaryOp::Or: return "||";
  }
  return "?";
}
Expr Binary::make(BinaryOp op, Expr a, Expr b) {
  TESSEL_CHECK(a.defined() && b.defined(), "binary operator on an undefined expression");
  TESSEL_CHECK(a.type() == b.type(), std::string("operands of '") + binary_op_name(op) +
                                         "' have different types: " + a.type().str() + " and " + b.type().str());
  DataType t = a.type();
  if (is_comparison(op)) t = DataType::boolean().with_lanes(a.type().lanes);
  if (op == BinaryOp::And || op == BinaryOp::Or)
    TESSEL_CHECK(a.type().is_bool(),
                 std::string("'") + binary_op_name(op) + "' needs bool operands, got " + a.type().str());
  if (op == BinaryOp::Mod) TESSEL_CHECK(!a.type().is_float(), "'%' needs integer operands, got " + a.type().str());
  if (a.type().is_bool())
    TESSEL_CHECK(op == BinaryOp::And || op == BinaryOp::Or || op == BinaryOp::EQ || op == BinaryOp::NE,
                 std::string("'") + binary_op_name(op) + "' is not defined on bool");
  return std::make_shared<Binary>(t, op, std::move(a), std::move(b));
}
Expr Not::make(Expr v) {
  TESSEL_CHECK(v.type().is_bool(), "'!' needs a bool operand, got " + v.type().str());
  return std::make_shared<Not>(std::move(v));
}
Expr Select::make(Expr c, Expr t, Expr f) {
  TESSEL_CHECK(c.type().is_bool(), "select condition must be bool, got " + c.type().str());
  TESSEL_CHECK(t.type() == f.type(),
               "select branches have different types: " + t.type().str() + " and " + f.type().str());
  TESSEL_CHECK(c.type().lanes == 1 || c.type().lanes == t.type().lanes,
               "select condition lanes differ from value lanes");
  return std::make_shared<Select>(std::move(c), std::move(t), std::move(f));
}

const char *intrinsic_name(Intrinsic f) {
  switch (f) {
  case Intrinsic::Exp: return "exp";
  case Intrinsic::Log: return "log";
  case Intrinsic::Sqrt: return "sqrt";
  case Intrinsic::Rsqrt: return "rsqrt";
  case Intrinsic::Tanh: return "tanh";
  case Intrinsic::Erf: return "erf";
  case Intrinsic::Abs: return "abs";
  case Intrinsic::Floor: return "floor";
  case Intrinsic::Ceil: return "ceil";
  case Intrinsic::Pow: return "pow";
  }
  return "?";
}

Expr Call::make(Intrinsic f, std::vector<Expr> args) {
  size_t arity = f == Intrinsic::Pow ? 2 : 1;
  TESSEL_CHECK(args.size() == arity, std::string(intrinsic_name(f)) + " takes " + std::to_string(arity) +
                                         " argument(s), got " + std::to_string(args.size()));
  DataType t = args[0].type();
  for (auto &a : args) TESSEL_CHECK(a.type() == t, std::string(intrinsic_name(f)) + ": arguments differ in type");
  if (f != Intrinsic::Abs)
    TESSEL_CHECK(t.is_float(), std::string(intrinsic_name(f)) + " needs a floating-point argument, got " + t.str() +
                                   " (cast it, e.g. f32(x))");
  return std::make_shared<Call>(t, f, std::move(args));
}

Expr Load::make(DataType t, Expr buffer, Expr index) {
  TESSEL_CHECK(buffer.type().is_handle(), "load from a non-buffer");
  TESSEL_CHECK(index.type().element_of() == DataType::index(), "load index must be i64, got " + index.type().str());
  return std::make_shared<Load>(t.with_lanes(index.type().lanes), std::move(buffer), std::move(index));
}
Expr AddressOf::make(Expr buffer, Expr index, DataType element) {
  TESSEL_CHECK(buffer.type().is_handle(), "address of a non-buffer");
  TESSEL_CHECK(index.type() == DataType::index(), "address index must be a scalar i64");
  return std::make_shared<AddressOf>(std::move(buffer), std::move(index), element);
}

Stmt ExternCall::make(std::string name, std::vector<Expr> args) {
  for (auto &a : args)
    TESSEL_CHECK(a.type().is_handle() || a.type().is_scalar(),
                 "extern call " + name + ": arguments are addresses or scalars, got " + a.type().str());
  return std::make_shared<ExternCall>(std::move(name), std::move(args));
}

Expr Ramp::make(Expr base, Expr stride, int lanes) {
  TESSEL_CHECK(base.type().is_scalar() && base.type() == stride.type(), "ramp base/stride must be matching scalars");
  TESSEL_CHECK(lanes > 1, "ramp needs at least two lanes");
  return std::make_shared<Ramp>(base.type().with_lanes(lanes), std::move(base), std::move(stride), lanes);
}
Expr Broadcast::make(Expr value, int lanes) {
  TESSEL_CHECK(value.type().is_scalar(), "broadcast of a vector");
  if (lanes == 1) return value;
  return std::make_shared<Broadcast>(value.type().with_lanes(lanes), std::move(value), lanes);
}
Expr Let::make(Expr var, Expr value, Expr body) {
  TESSEL_CHECK(var.as<Var>() && var.type() == value.type(), "let binds a variable to a value of its type");
  return std::make_shared<Let>(std::move(var), std::move(value), std::move(body));
}

Expr TensorRead::make(Tensor t, std::vector<Expr> indices) {
  TESSEL_CHECK(t != nullptr, "read of an undefined tensor");
  TESSEL_CHECK(indices.size() == t->shape.size(), "tensor " + t->name + " has " + std::to_string(t->shape.size()) +
                                                      " dimension(s) but is indexed with " +
                                                      std::to_string(indices.size()));
  for (auto &i : indices) {
    TESSEL_CHECK(i.defined(), "undefined index into " + t->name);
    TESSEL_CHECK(i.type().is_integer() && i.type().is_scalar(),
                 "index into " + t->name + " must be an integer, got " + i.type().str());
    if (i.type() != DataType::index()) i = Cast::make(DataType::index(), i);
  }
  return std::make_shared<TensorRead>(std::move(t), std::move(indices));
}

const char *reduce_op_name(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum: return "sum";
  case ReduceOp::Max: return "max";
  case ReduceOp::Min: return "min";
  }
  return "?";
}
Expr Reduce::make(ReduceOp op, Expr source, std::vector<IterVar> axes) {
  TESSEL_CHECK(source.defined(), "reduction of an undefined expression");
  TESSEL_CHECK(!axes.empty(), "reduction needs at least one axis");
  TESSEL_CHECK(source.type().is_scalar() && !source.type().is_bool(),
               "cannot reduce a value of type " + source.type().str());
  for (auto &a : axes) {
    TESSEL_CHECK(a.extent > 0, "reduction axis " + a.var.as<Var>()->name + " has extent " + std::to_string(a.extent) +
                                   "; extents must be positive");
    a.is_reduce = true;
  }
  return std::make_shared<Reduce>(op, std::move(source), std::move(axes));
}
Expr Reduce::identity() const {
  switch (op) {
  case ReduceOp::Sum: return make_zero(type);
  case ReduceOp::Max: return min_value(type);
  case ReduceOp::Min: return max_value(type);
  }
  return Expr();
}
Expr Reduce::combine(Expr acc, Expr value) const {
  switch (op) {
  case ReduceOp::Sum: return Binary::make(BinaryOp::Add, std::move(acc), std::move(value));
  case ReduceOp::Max: return Binary::make(BinaryOp::Max, std::move(acc), std::move(value));
  case ReduceOp::Min: return Binary::make(BinaryOp::Min, std::move(acc), std::move(value));
  }
  return Expr();
}

const char *for_kind_name(ForKind k) {
  switch (k) {
  case ForKind::Serial: return "for";
  case ForKind::Parallel: return "parallel";
  case ForKind::Vectorized: return "vectorized";
  case ForKind::Unrolled: return "unrolled";
  case ForKind::GpuBlock: return "gpu_block";
  case ForKind::GpuThread: return "gpu_thread";
  case ForKind::Vthread: return "vthread";
  }
  return "?";
}
const char *memory_scope_name(MemoryScope s) {
  switch (s) {
  case MemoryScope::Global: return "global";
  case MemoryScope::Local: return "local";
  case MemoryScope::Shared: return "shared";
  case MemoryScope::Fragment: return "fragment";
  }
  return "?";
}

Stmt For::make(Expr var, Expr min, Expr extent, ForKind kind, Stmt body, std::string tag) {
  TESSEL_CHECK(var.as<Var>() && var.type() == DataType::index(), "loop variable must be an i64 Var");
  TESSEL_CHECK(min.type() == DataType::index() && extent.type() == DataType::index(), "loop bounds must be i64");
  TESSEL_CHECK(body.defined(), "loop without a body");
  return std::make_shared<For>(std::move(var), std::move(min), std::move(extent), kind, std::move(body),
                               std::move(tag));
}
Stmt For::with(const Stmt &self, Stmt b, ForKind k, std::string tag) const {
  if (b.same_as(body) && k == kind && tag == thread_tag) return self;
  return make(var, min, extent, k, std::move(b), std::move(tag));
}

Stmt Store::make(Expr buffer, Expr value, Expr index) {
  TESSEL_CHECK(buffer.type().is_handle(), "store to a non-buffer");
  TESSEL_CHECK(index.type().lanes == value.type().lanes, "store index and value lanes differ");
  return std::make_shared<Store>(std::move(buffer), std::move(value), std::move(index));
}
Stmt TensorWrite::make(Tensor t, Expr value, std::vector<Expr> indices) {
  TESSEL_CHECK(indices.size() == t->shape.size(), "write to " + t->name + " with wrong number of indices");
  TESSEL_CHECK(value.type() == t->dtype,
               "write of " + value.type().str() + " into " + t->name + " of type " + t->dtype.str());
  return std::make_shared<TensorWrite>(std::move(t), std::move(value), std::move(indices));
}
Stmt Allocate::make(Expr buffer, DataType dtype, Expr extent, MemoryScope scope, Stmt body) {
  TESSEL_CHECK(buffer.type().is_handle(), "allocate needs a handle variable");
  return std::make_shared<Allocate>(std::move(buffer), dtype, std::move(extent), scope, std::move(body));
}
Stmt Realize::make(Tensor t, std::vector<Range> region, MemoryScope scope, Stmt body, int64_t row_pad) {
  return std::make_shared<Realize>(std::move(t), std::move(region), scope, std::move(body), row_pad);
}
Stmt IfThenElse::make(Expr cond, Stmt then_case, Stmt else_case) {
  TESSEL_CHECK(cond.type().is_bool() && cond.type().is_scalar(), "if condition must be a scalar bool");
  return std::make_shared<IfThenElse>(std::move(cond), std::move(then_case), std::move(else_case));
}
Stmt LetStmt::make(Expr var, Expr value, Stmt body) {
  TESSEL_CHECK(var.as<Var>() && var.type() == value.type(), "let binds a variable to a value of its type");
  return std::make_shared<LetStmt>(std::move(var), std::move(value), std::move(body));
}
Stmt Block::make(std::vector<Stmt> stmts) {
  std::vector<Stmt> flat;
  for (auto &s : stmts) {
    if (!s.defined()) continue;
    if (auto *b = s.as<Block>())
      flat.insert(flat.end(), b->stmts.begin(), b->stmts.end());
    else
      flat.push_back(s);
  }
  if (flat.size() == 1) return flat[0];
  return std::make_shared<Block>(std::move(flat));
}
Stmt Evaluate::make(Expr value) { return std::make_shared<Evaluate>(std::move(value)); }

Expr make_const(DataType t, double value) {
  DataType s = t.element_of();
  Expr c = s.is_float() ? FloatImm::make(s, value) : IntImm::make(s, int64_t(value));
  return Broadcast::make(c, t.lanes);
}
Expr make_zero(DataType t) { return make_const(t, 0); }

bool is_const_int(const Expr &e, int64_t *value) {
  if (auto *i = e.as<IntImm>()) {
    if (value) *value = i->value;
    return true;
  }
  if (auto *b = e.as<Broadcast>()) return is_const_int(b->value, value);
  return false;
}
bool is_const_value(const Expr &e, int64_t expected) {
  int64_t v;
  if (is_const_int(e, &v)) return v == expected;
  if (auto *f = e.as<FloatImm>()) return f->value == double(expected);
  if (auto *b = e.as<Broadcast>()) return is_const_value(b->value, expected);
  return false;
}
bool is_one(const Expr &e) { return is_const_value(e, 1); }

bool equal(const Expr &a, const Expr &b) {
  if (a.same_as(b)) return true;
  if (!a.defined() || !b.defined() || a.kind() != b.kind() || a.type() != b.type()) return false;
  switch (a.kind()) {
  case ExprKind::IntImm: return a.as<IntImm>()->value == b.as<IntImm>()->value;
  case ExprKind::FloatImm: return a.as<FloatImm>()->value == b.as<FloatImm>()->value;
  case ExprKind::Var: return false; // identity only, checked above
  case ExprKind::Cast: return equal(a.as<Cast>()->value, b.as<Cast>()->value);
  case ExprKind::Binary: {
    auto *x = a.as<Binary>(), *y = b.as<Binary>();
    return x->op == y->op && equal(x->a, y->a) && equal(x->b, y->b);
  }
  case ExprKind::Not: return equal(a.as<Not>()->value, b.as<Not>()->value);
  case ExprKind::Select: {
    auto *x = a.as<Select>(), *y = b.as<Select>();
    return equal(x->cond, y->cond) && equal(x->true_value, y->true_value) && equal(x->false_value, y->false_value);
  }
  case ExprKind::Call: {
    auto *x = a.as<Call>(), *y = b.as<Call>();
    if (x->func != y->func || x->args.size() != y->args.size()) return false;
    for (size_t i = 0; i < x->args.size(); ++i)
      if (!equal(x->args[i], y->args[i])) return false;
    return true;
  }
  case ExprKind::Load: {
    auto *x = a.as<Load>(), *y = b.as<Load>();
    return equal(x->buffer, y->buffer) && equal(x->index, y->index);
  }
  case ExprKind::Ramp: {
    auto *x = a.as<Ramp>(), *y = b.as<Ramp>();
    return x->lanes == y->lanes && equal(x->base, y->base) && equal(x->stride, y->stride);
  }
  case ExprKind::Broadcast:
    return a.as<Broadcast>()->lanes == b.as<Broadcast>()->lanes &&
           equal(a.as<Broadcast>()->value, b.as<Broadcast>()->value);
  case ExprKind::AddressOf: {
    auto *x = a.as<AddressOf>(), *y = b.as<AddressOf>();
    return equal(x->buffer, y->buffer) && equal(x->index, y->index);
  }
  case ExprKind::TensorRead: {
    auto *x = a.as<TensorRead>(), *y = b.as<TensorRead>();
    if (x->tensor != y->tensor) return false;
    for (size_t i = 0; i < x->indices.size(); ++i)
      if (!equal(x->indices[i], y->indices[i])) return false;
    return true;
  }
  default: return false; // Let, Reduce: identity only
  }
}
bool is_zero(const Expr &e) { return is_const_value(e, 0); }

Expr min_value(DataType t) {
  DataType s = t.element_of();
  Expr c;
  if (s.is_float())
    c = FloatImm::make(s, -std::numeric_limits<double>::infinity());
  else if (s.is_int())
    c = IntImm::make(s, s.bits == 64 ? std::numeric_limits<int64_t>::min() : -(int64_t(1) << (s.bits - 1)));
  else
    c = IntImm::make(s, 0);
  return Broadcast::make(c, t.lanes);
}
Expr max_value(DataType t) {
  DataType s = t.element_of();
  Expr c;
  if (s.is_float())
    c = FloatImm::make(s, std::numeric_limits<double>::infinity());
  else if (s.is_int())
    c = IntImm::make(s, s.bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t(1) << (s.bits - 1)) - 1);
  else
    c = IntImm::make(s, s.bits == 1 ? 1 : (s.bits == 64 ? -1 : (int64_t(1) << s.bits) - 1));
  return Broadcast::make(c, t.lanes);
}

} // namespace tessel::ir
