#include "interp/interpreter.h"

#include "support/float16.h"
#include "support/memory.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>

// Each stage body is compiled once into a tree of small evaluator nodes with
// variables mapped to slots in flat arrays, then evaluated per output point.
// Floating-point nodes return double and integer/bool nodes int64, so the type
// dispatch happens at compile time, not per element.

namespace tessel::interp {

namespace {

using ir::BinaryOp;
using ir::Expr;
using ir::Intrinsic;
using ir::ReduceOp;

struct Ctx {
  int64_t *is; // integer variable slots (loop axes, integer lets)
  double *fs;  // floating-point let slots
};

struct INode {
  virtual ~INode() = default;
  virtual int64_t eval(const Ctx &c) const = 0;
};
struct FNode {
  virtual ~FNode() = default;
  virtual double eval(const Ctx &c) const = 0;
};

// ------------------------------------------------------------ conversions
// Rounds a double to the precision of a float type.
enum class FKind : uint8_t { F64, F32, F16, BF16 };
FKind fkind(ir::DataType t) {
  if (t.code == ir::DataType::BFloat) return FKind::BF16;
  if (t.bits == 16) return FKind::F16;
  if (t.bits == 64) return FKind::F64;
  return FKind::F32;
}
template <FKind K> inline double round_to(double v) {
  if constexpr (K == FKind::F64) return v;
  if constexpr (K == FKind::F32) return double(float(v));
  if constexpr (K == FKind::F16) return f16_to_float(float_to_f16(float(v)));
  if constexpr (K == FKind::BF16) return bf16_to_float(float_to_bf16(float(v)));
  return v;
}
double round_to(double v, ir::DataType t) {
  switch (fkind(t)) {
  case FKind::F64: return v;
  case FKind::F32: return round_to<FKind::F32>(v);
  case FKind::F16: return round_to<FKind::F16>(v);
  case FKind::BF16: return round_to<FKind::BF16>(v);
  }
  return v;
}

// Wraps an int64 to a narrower integer type (two's complement), bool to 0/1.
int64_t wrap_to(int64_t v, ir::DataType t) {
  if (t.is_bool()) return v != 0;
  if (t.bits >= 64) return v;
  uint64_t m = (uint64_t(1) << t.bits) - 1;
  uint64_t u = uint64_t(v) & m;
  if (t.is_int() && (u >> (t.bits - 1))) u |= ~m;
  return int64_t(u);
}

// Float to integer: truncation toward zero, NaN -> 0, saturating at int64.
int64_t trunc_to_int(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 9223372036854775807.0) return std::numeric_limits<int64_t>::max();
  if (v <= -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
  return int64_t(v);
}

int64_t floor_div(int64_t a, int64_t b) {
  if (b == 0) throw Error("integer division by zero");
  if (b == -1) return int64_t(0 - uint64_t(a)); // avoids INT64_MIN / -1 overflow
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t floor_mod(int64_t a, int64_t b) {
  if (b == 0) throw Error("integer modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// ------------------------------------------------------------------ leaves
struct IConst final : INode {
  int64_t v;
  explicit IConst(int64_t x) : v(x) {}
  int64_t eval(const Ctx &) const override { return v; }
};
struct FConst final : FNode {
  double v;
  explicit FConst(double x) : v(x) {}
  double eval(const Ctx &) const override { return v; }
};
struct ISlot final : INode {
  int slot;
  explicit ISlot(int s) : slot(s) {}
  int64_t eval(const Ctx &c) const override { return c.is[slot]; }
};
struct FSlot final : FNode {
  int slot;
  explicit FSlot(int s) : slot(s) {}
  double eval(const Ctx &c) const override { return c.fs[slot]; }
};

// ------------------------------------------------------------------- casts
template <FKind K> struct FRound final : FNode { // float -> float
  const FNode *a;
  explicit FRound(const FNode *x) : a(x) {}
  double eval(const Ctx &c) const override { return round_to<K>(a->eval(c)); }
};
template <FKind K> struct IToF final : FNode { // int -> float
  const INode *a;
  explicit IToF(const INode *x) : a(x) {}
  double eval(const Ctx &c) const override { return round_to<K>(double(a->eval(c))); }
};
struct FToI final : INode { // float -> int (truncating), then wrapped
  const FNode *a;
  ir::DataType t;
  FToI(const FNode *x, ir::DataType ty) : a(x), t(ty) {}
  int64_t eval(const Ctx &c) const override {
    double v = a->eval(c);
    if (t.is_bool()) return v != 0;
    return wrap_to(trunc_to_int(v), t);
  }
};
struct IWrap final : INode { // int -> int
  const INode *a;
  ir::DataType t;
  IWrap(const INode *x, ir::DataType ty) : a(x), t(ty) {}
  int64_t eval(const Ctx &c) const override { return wrap_to(a->eval(c), t); }
};

// --------------------------------------------------------------- arithmetic
// The comparisons and min/max, shared by the float and integer nodes.
template <BinaryOp OP, typename T> constexpr int64_t compare(T x, T y) {
  if constexpr (OP == BinaryOp::EQ) return x == y;
  if constexpr (OP == BinaryOp::NE) return x != y;
  if constexpr (OP == BinaryOp::LT) return x < y;
  if constexpr (OP == BinaryOp::LE) return x <= y;
  if constexpr (OP == BinaryOp::GT) return x > y;
  if constexpr (OP == BinaryOp::GE) return x >= y;
  return 0;
}
template <BinaryOp OP, typename T> constexpr T min_max(T x, T y) {
  if constexpr (OP == BinaryOp::Min) return y < x ? y : x;
  return x < y ? y : x;
}

template <BinaryOp OP> struct FBin final : FNode {
  const FNode *a, *b;
  FBin(const FNode *x, const FNode *y) : a(x), b(y) {}
  double eval(const Ctx &c) const override {
    double x = a->eval(c), y = b->eval(c);
    if constexpr (OP == BinaryOp::Add) return x + y;
    if constexpr (OP == BinaryOp::Sub) return x - y;
    if constexpr (OP == BinaryOp::Mul) return x * y;
    if constexpr (OP == BinaryOp::Div) return x / y;
    if constexpr (OP == BinaryOp::Min || OP == BinaryOp::Max) return min_max<OP>(x, y);
    return 0;
  }
};
template <BinaryOp OP> struct FCmp final : INode {
  const FNode *a, *b;
  FCmp(const FNode *x, const FNode *y) : a(x), b(y) {}
  int64_t eval(const Ctx &c) const override { return compare<OP>(a->eval(c), b->eval(c)); }
};
template <BinaryOp OP> struct IBin final : INode {
  const INode *a, *b;
  IBin(const INode *x, const INode *y) : a(x), b(y) {}
  int64_t eval(const Ctx &c) const override {
    int64_t x = a->eval(c), y = b->eval(c);
    // Wrapping arithmetic through uint64: no signed-overflow UB.
    if constexpr (OP == BinaryOp::Add) return int64_t(uint64_t(x) + uint64_t(y));
    if constexpr (OP == BinaryOp::Sub) return int64_t(uint64_t(x) - uint64_t(y));
    if constexpr (OP == BinaryOp::Mul) return int64_t(uint64_t(x) * uint64_t(y));
    if constexpr (OP == BinaryOp::Div) return floor_div(x, y);
    if constexpr (OP == BinaryOp::Mod) return floor_mod(x, y);
    if constexpr (OP == BinaryOp::Min || OP == BinaryOp::Max) return min_max<OP>(x, y);
    if constexpr (ir::is_comparison(OP)) return compare<OP>(x, y);
    if constexpr (OP == BinaryOp::And) return (x != 0) & (y != 0); // eager: both sides are pure
    if constexpr (OP == BinaryOp::Or) return (x != 0) | (y != 0);
    return 0;
  }
};
struct INot final : INode {
  const INode *a;
  explicit INot(const INode *x) : a(x) {}
  int64_t eval(const Ctx &c) const override { return a->eval(c) == 0; }
};
// Select is eager: both sides are evaluated (accesses are in bounds either way).
struct FSelect final : FNode {
  const INode *cond;
  const FNode *t, *f;
  FSelect(const INode *c, const FNode *x, const FNode *y) : cond(c), t(x), f(y) {}
  double eval(const Ctx &c) const override {
    int64_t k = cond->eval(c);
    double x = t->eval(c), y = f->eval(c);
    return k ? x : y;
  }
};
struct ISelect final : INode {
  const INode *cond, *t, *f;
  ISelect(const INode *c, const INode *x, const INode *y) : cond(c), t(x), f(y) {}
  int64_t eval(const Ctx &c) const override {
    int64_t k = cond->eval(c);
    int64_t x = t->eval(c), y = f->eval(c);
    return k ? x : y;
  }
};
template <Intrinsic F> struct FCall final : FNode {
  const FNode *a, *b;
  FCall(const FNode *x, const FNode *y) : a(x), b(y) {}
  double eval(const Ctx &c) const override {
    double x = a->eval(c);
    if constexpr (F == Intrinsic::Exp) return std::exp(x);
    if constexpr (F == Intrinsic::Log) return std::log(x);
    if constexpr (F == Intrinsic::Sqrt) return std::sqrt(x);
    if constexpr (F == Intrinsic::Rsqrt) return 1.0 / std::sqrt(x);
    if constexpr (F == Intrinsic::Tanh) return std::tanh(x);
    if constexpr (F == Intrinsic::Erf) return std::erf(x);
    if constexpr (F == Intrinsic::Abs) return std::fabs(x);
    if constexpr (F == Intrinsic::Floor) return std::floor(x);
    if constexpr (F == Intrinsic::Ceil) return std::ceil(x);
    if constexpr (F == Intrinsic::Pow) return std::pow(x, b->eval(c));
    return 0;
  }
};
struct IAbs final : INode {
  const INode *a;
  explicit IAbs(const INode *x) : a(x) {}
  int64_t eval(const Ctx &c) const override {
    int64_t v = a->eval(c);
    return v < 0 ? int64_t(0 - uint64_t(v)) : v;
  }
};
// Let: evaluates the value into a slot, then the body.
template <typename V> void set_slot(const Ctx &c, const V *value, int slot) {
  if constexpr (std::is_same_v<V, FNode>)
    c.fs[slot] = value->eval(c);
  else
    c.is[slot] = value->eval(c);
}
template <typename V> struct FLet final : FNode {
  const V *value;
  const FNode *body;
  int slot;
  FLet(const V *v, const FNode *b, int s) : value(v), body(b), slot(s) {}
  double eval(const Ctx &c) const override {
    set_slot(c, value, slot);
    return body->eval(c);
  }
};
template <typename V> struct ILet final : INode {
  const V *value;
  const INode *body;
  int slot;
  ILet(const V *v, const INode *b, int s) : value(v), body(b), slot(s) {}
  int64_t eval(const Ctx &c) const override {
    set_slot(c, value, slot);
    return body->eval(c);
  }
};

// -------------------------------------------------------------- tensor reads
// One index of a read: an affine combination of loop-variable slots (the
// common case, evaluated without virtual calls) or a compiled expression.
struct IndexTerm {
  static constexpr int kMaxTerms = 4;
  int nterms = 0;
  int slot[kMaxTerms] = {};
  int64_t coef[kMaxTerms] = {};
  int64_t offset = 0;
  const INode *node = nullptr;
  int64_t extent = 0, stride = 0;

  int64_t value(const Ctx &c) const {
    if (node) return node->eval(c);
    uint64_t v = uint64_t(offset); // wrapping, like the integer nodes: no UB
    for (int t = 0; t < nterms; ++t) v += uint64_t(coef[t]) * uint64_t(c.is[slot[t]]);
    return int64_t(v);
  }
};

// Index of a read, checked at run time: every dimension's value is compared
// with its extent (an error, never a wild access).
struct CheckedIndex {
  std::vector<IndexTerm> idx;
  const ir::TensorNode *tensor = nullptr;

  [[noreturn]] void out_of_bounds(size_t d, int64_t v) const {
    throw Error("read of " + tensor->name + ": index " + std::to_string(d) + " is " + std::to_string(v) +
                ", outside [0, " + std::to_string(idx[d].extent) + ")");
  }
  int64_t flat(const Ctx &c) const {
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) {
      const IndexTerm &t = idx[d];
      int64_t v = t.value(c);
      if (uint64_t(v) >= uint64_t(t.extent)) out_of_bounds(d, v);
      off += v * t.stride;
    }
    return off;
  }
};

// Index of a read whose every dimension is affine in loop variables and was
// proven in bounds over the loops' ranges when compiled: the flat offset is a
// single affine combination, with no per-element checks.
struct AffineIndex {
  static constexpr int kMaxTerms = 8;
  int nterms = 0;
  int slot[kMaxTerms] = {};
  int64_t coef[kMaxTerms] = {};
  int64_t offset = 0;
  int64_t flat(const Ctx &c) const {
    uint64_t v = uint64_t(offset); // wrapping, like the integer nodes: no UB
    for (int t = 0; t < nterms; ++t) v += uint64_t(coef[t]) * uint64_t(c.is[slot[t]]);
    return int64_t(v);
  }
};

enum class Elem : uint8_t { F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64 };
template <Elem E> inline double load_float(const uint8_t *p, int64_t i) {
  if constexpr (E == Elem::F32) return reinterpret_cast<const float *>(p)[i];
  if constexpr (E == Elem::F64) return reinterpret_cast<const double *>(p)[i];
  if constexpr (E == Elem::F16) return f16_to_float(reinterpret_cast<const uint16_t *>(p)[i]);
  if constexpr (E == Elem::BF16) return bf16_to_float(reinterpret_cast<const uint16_t *>(p)[i]);
  return 0;
}
template <Elem E> inline int64_t load_int(const uint8_t *p, int64_t i) {
  if constexpr (E == Elem::I8) return reinterpret_cast<const int8_t *>(p)[i];
  if constexpr (E == Elem::I16) return reinterpret_cast<const int16_t *>(p)[i];
  if constexpr (E == Elem::I32) return reinterpret_cast<const int32_t *>(p)[i];
  if constexpr (E == Elem::I64) return reinterpret_cast<const int64_t *>(p)[i];
  if constexpr (E == Elem::U8) return p[i];
  if constexpr (E == Elem::U16) return reinterpret_cast<const uint16_t *>(p)[i];
  if constexpr (E == Elem::U32) return reinterpret_cast<const uint32_t *>(p)[i];
  if constexpr (E == Elem::U64) return int64_t(reinterpret_cast<const uint64_t *>(p)[i]);
  return 0;
}
template <Elem E, typename Index> struct FRead final : FNode {
  const uint8_t *data;
  Index index;
  FRead(const uint8_t *d, Index i) : data(d), index(std::move(i)) {}
  double eval(const Ctx &c) const override { return load_float<E>(data, index.flat(c)); }
};
template <Elem E, typename Index> struct IRead final : INode {
  const uint8_t *data;
  Index index;
  IRead(const uint8_t *d, Index i) : data(d), index(std::move(i)) {}
  int64_t eval(const Ctx &c) const override { return load_int<E>(data, index.flat(c)); }
};

std::optional<Elem> elem_of(ir::DataType t) {
  switch (t.code) {
  case ir::DataType::Float:
    if (t.bits == 32) return Elem::F32;
    if (t.bits == 64) return Elem::F64;
    if (t.bits == 16) return Elem::F16;
    break;
  case ir::DataType::BFloat:
    if (t.bits == 16) return Elem::BF16;
    break;
  case ir::DataType::Int:
    if (t.bits == 8) return Elem::I8;
    if (t.bits == 16) return Elem::I16;
    if (t.bits == 32) return Elem::I32;
    if (t.bits == 64) return Elem::I64;
    break;
  case ir::DataType::UInt:
    if (t.bits == 1 || t.bits == 8) return Elem::U8;
    if (t.bits == 16) return Elem::U16;
    if (t.bits == 32) return Elem::U32;
    if (t.bits == 64) return Elem::U64;
    break;
  case ir::DataType::Handle: break;
  }
  return std::nullopt;
}

// Instantiates the read node for an element type and index kind.
template <typename Index> std::unique_ptr<FNode> make_fread(Elem e, const uint8_t *d, Index idx) {
  switch (e) {
  case Elem::F32: return std::make_unique<FRead<Elem::F32, Index>>(d, std::move(idx));
  case Elem::F64: return std::make_unique<FRead<Elem::F64, Index>>(d, std::move(idx));
  case Elem::F16: return std::make_unique<FRead<Elem::F16, Index>>(d, std::move(idx));
  case Elem::BF16: return std::make_unique<FRead<Elem::BF16, Index>>(d, std::move(idx));
  default: return nullptr;
  }
}
template <typename Index> std::unique_ptr<INode> make_iread(Elem e, const uint8_t *d, Index idx) {
  switch (e) {
  case Elem::I8: return std::make_unique<IRead<Elem::I8, Index>>(d, std::move(idx));
  case Elem::I16: return std::make_unique<IRead<Elem::I16, Index>>(d, std::move(idx));
  case Elem::I32: return std::make_unique<IRead<Elem::I32, Index>>(d, std::move(idx));
  case Elem::I64: return std::make_unique<IRead<Elem::I64, Index>>(d, std::move(idx));
  case Elem::U8: return std::make_unique<IRead<Elem::U8, Index>>(d, std::move(idx));
  case Elem::U16: return std::make_unique<IRead<Elem::U16, Index>>(d, std::move(idx));
  case Elem::U32: return std::make_unique<IRead<Elem::U32, Index>>(d, std::move(idx));
  case Elem::U64: return std::make_unique<IRead<Elem::U64, Index>>(d, std::move(idx));
  default: return nullptr;
  }
}

// ------------------------------------------------------------------ compiler
class Compiler {
public:
  explicit Compiler(const std::unordered_map<const ir::TensorNode *, const NDArray *> &buffers) : buffers_(buffers) {}

  // Binds a loop variable ranging over [0, extent).
  int bind_int(const Expr &var, int64_t extent) {
    int s = num_islots_++;
    islot_[var.get()] = s;
    slot_extent_[s] = extent;
    return s;
  }
  int num_islots() const { return num_islots_; }
  int num_fslots() const { return num_fslots_; }

  const FNode *cf(const Expr &e) {
    check_scalar(e);
    if (!e.type().is_float()) throw Error("internal: expected a floating-point expression, got " + e.type().str());
    switch (e.kind()) {
    case ir::ExprKind::FloatImm: return fnode<FConst>(round_to(e.as<ir::FloatImm>()->value, e.type()));
    case ir::ExprKind::Var: {
      auto it = fslot_.find(e.get());
      if (it == fslot_.end()) throw Error("free variable " + e.as<ir::Var>()->name);
      return fnode<FSlot>(it->second);
    }
    case ir::ExprKind::Cast: {
      const Expr &v = e.as<ir::Cast>()->value;
      check_scalar(v);
      if (v.type().is_float()) {
        const FNode *a = cf(v);
        switch (fkind(e.type())) {
        case FKind::F64: return a; // computing in double already
        case FKind::F32: return fnode<FRound<FKind::F32>>(a);
        case FKind::F16: return fnode<FRound<FKind::F16>>(a);
        case FKind::BF16: return fnode<FRound<FKind::BF16>>(a);
        }
      }
      const INode *a = ci(v);
      switch (fkind(e.type())) {
      case FKind::F64: return fnode<IToF<FKind::F64>>(a);
      case FKind::F32: return fnode<IToF<FKind::F32>>(a);
      case FKind::F16: return fnode<IToF<FKind::F16>>(a);
      case FKind::BF16: return fnode<IToF<FKind::BF16>>(a);
      }
      break;
    }
    case ir::ExprKind::Binary: {
      auto *op = e.as<ir::Binary>();
      const FNode *a = cf(op->a), *b = cf(op->b);
      switch (op->op) {
      case BinaryOp::Add: return fnode<FBin<BinaryOp::Add>>(a, b);
      case BinaryOp::Sub: return fnode<FBin<BinaryOp::Sub>>(a, b);
      case BinaryOp::Mul: return fnode<FBin<BinaryOp::Mul>>(a, b);
      case BinaryOp::Div: return fnode<FBin<BinaryOp::Div>>(a, b);
      case BinaryOp::Min: return fnode<FBin<BinaryOp::Min>>(a, b);
      case BinaryOp::Max: return fnode<FBin<BinaryOp::Max>>(a, b);
      default: break;
      }
      throw Error(std::string("operator '") + ir::binary_op_name(op->op) + "' on floating-point operands");
    }
    case ir::ExprKind::Select: {
      auto *s = e.as<ir::Select>();
      return fnode<FSelect>(ci(s->cond), cf(s->true_value), cf(s->false_value));
    }
    case ir::ExprKind::Call: {
      auto *call = e.as<ir::Call>();
      const FNode *a = cf(call->args.at(0));
      const FNode *b = call->args.size() > 1 ? cf(call->args[1]) : nullptr;
      switch (call->func) {
      case Intrinsic::Exp: return fnode<FCall<Intrinsic::Exp>>(a, b);
      case Intrinsic::Log: return fnode<FCall<Intrinsic::Log>>(a, b);
      case Intrinsic::Sqrt: return fnode<FCall<Intrinsic::Sqrt>>(a, b);
      case Intrinsic::Rsqrt: return fnode<FCall<Intrinsic::Rsqrt>>(a, b);
      case Intrinsic::Tanh: return fnode<FCall<Intrinsic::Tanh>>(a, b);
      case Intrinsic::Erf: return fnode<FCall<Intrinsic::Erf>>(a, b);
      case Intrinsic::Abs: return fnode<FCall<Intrinsic::Abs>>(a, b);
      case Intrinsic::Floor: return fnode<FCall<Intrinsic::Floor>>(a, b);
      case Intrinsic::Ceil: return fnode<FCall<Intrinsic::Ceil>>(a, b);
      case Intrinsic::Pow:
        if (!b) throw Error("pow takes two arguments");
        return fnode<FCall<Intrinsic::Pow>>(a, b);
      }
      break;
    }
    case ir::ExprKind::Let: return compile_let<FNode>(e);
    case ir::ExprKind::TensorRead: return compile_read<FNode>(e);
    default: break;
    }
    return unsupported<FNode>(e);
  }

  const INode *ci(const Expr &e) {
    check_scalar(e);
    if (e.type().is_float()) throw Error("internal: expected an integer expression, got " + e.type().str());
    switch (e.kind()) {
    case ir::ExprKind::IntImm: return inode<IConst>(e.as<ir::IntImm>()->value);
    case ir::ExprKind::Var: {
      auto it = islot_.find(e.get());
      if (it == islot_.end()) throw Error("free variable " + e.as<ir::Var>()->name);
      return inode<ISlot>(it->second);
    }
    case ir::ExprKind::Cast: {
      const Expr &v = e.as<ir::Cast>()->value;
      check_scalar(v);
      if (v.type().is_float()) return inode<FToI>(cf(v), e.type());
      const INode *a = ci(v);
      // Widening (or bool -> int) keeps the value: no node needed.
      if (v.type().is_bool() ||
          (v.type().bits <= e.type().bits && v.type().is_int() == e.type().is_int() && !e.type().is_bool()))
        return a;
      return inode<IWrap>(a, e.type());
    }
    case ir::ExprKind::Binary: {
      auto *op = e.as<ir::Binary>();
      if (op->a.type().is_float()) {
        const FNode *a = cf(op->a), *b = cf(op->b);
        switch (op->op) {
        case BinaryOp::EQ: return inode<FCmp<BinaryOp::EQ>>(a, b);
        case BinaryOp::NE: return inode<FCmp<BinaryOp::NE>>(a, b);
        case BinaryOp::LT: return inode<FCmp<BinaryOp::LT>>(a, b);
        case BinaryOp::LE: return inode<FCmp<BinaryOp::LE>>(a, b);
        case BinaryOp::GT: return inode<FCmp<BinaryOp::GT>>(a, b);
        case BinaryOp::GE: return inode<FCmp<BinaryOp::GE>>(a, b);
        default: throw Error(std::string("operator '") + ir::binary_op_name(op->op) + "' yields a float here");
        }
      }
      const INode *a = ci(op->a), *b = ci(op->b);
      switch (op->op) {
      case BinaryOp::Add: return inode<IBin<BinaryOp::Add>>(a, b);
      case BinaryOp::Sub: return inode<IBin<BinaryOp::Sub>>(a, b);
      case BinaryOp::Mul: return inode<IBin<BinaryOp::Mul>>(a, b);
      case BinaryOp::Div: return inode<IBin<BinaryOp::Div>>(a, b);
      case BinaryOp::Mod: return inode<IBin<BinaryOp::Mod>>(a, b);
      case BinaryOp::Min: return inode<IBin<BinaryOp::Min>>(a, b);
      case BinaryOp::Max: return inode<IBin<BinaryOp::Max>>(a, b);
      case BinaryOp::EQ: return inode<IBin<BinaryOp::EQ>>(a, b);
      case BinaryOp::NE: return inode<IBin<BinaryOp::NE>>(a, b);
      case BinaryOp::LT: return inode<IBin<BinaryOp::LT>>(a, b);
      case BinaryOp::LE: return inode<IBin<BinaryOp::LE>>(a, b);
      case BinaryOp::GT: return inode<IBin<BinaryOp::GT>>(a, b);
      case BinaryOp::GE: return inode<IBin<BinaryOp::GE>>(a, b);
      case BinaryOp::And: return inode<IBin<BinaryOp::And>>(a, b);
      case BinaryOp::Or: return inode<IBin<BinaryOp::Or>>(a, b);
      }
      break;
    }
    case ir::ExprKind::Not: return inode<INot>(ci(e.as<ir::Not>()->value));
    case ir::ExprKind::Select: {
      auto *s = e.as<ir::Select>();
      return inode<ISelect>(ci(s->cond), ci(s->true_value), ci(s->false_value));
    }
    case ir::ExprKind::Call: {
      auto *call = e.as<ir::Call>();
      if (call->func == Intrinsic::Abs && call->args.size() == 1) return inode<IAbs>(ci(call->args[0]));
      throw Error(std::string(ir::intrinsic_name(call->func)) + " on an integer argument");
    }
    case ir::ExprKind::Let: return compile_let<INode>(e);
    case ir::ExprKind::TensorRead: return compile_read<INode>(e);
    default: break;
    }
    return unsupported<INode>(e);
  }

private:
  template <typename N, typename... Args> const FNode *fnode(Args &&...args) {
    auto p = std::make_unique<N>(std::forward<Args>(args)...);
    const FNode *r = p.get();
    fnodes_.push_back(std::move(p));
    return r;
  }
  template <typename N, typename... Args> const INode *inode(Args &&...args) {
    auto p = std::make_unique<N>(std::forward<Args>(args)...);
    const INode *r = p.get();
    inodes_.push_back(std::move(p));
    return r;
  }

  static void check_scalar(const Expr &e) {
    if (!e.defined()) throw Error("undefined expression");
    if (!e.type().is_scalar()) throw Error("vector expression of type " + e.type().str() + " in a tensor expression");
    if (e.type().is_handle()) throw Error("buffer handle in a tensor expression");
  }

  template <typename N> const N *unsupported(const Expr &e) {
    const char *what = "this expression";
    switch (e.kind()) {
    case ir::ExprKind::Load: what = "Load"; break;
    case ir::ExprKind::Ramp: what = "Ramp"; break;
    case ir::ExprKind::Broadcast: what = "Broadcast"; break;
    case ir::ExprKind::Reduce: what = "a reduction nested inside an expression"; break;
    default: break;
    }
    throw Error(std::string(what) + " is not allowed in a tensor expression");
  }

  template <typename N> const N *compile_let(const Expr &e) {
    auto *l = e.as<ir::Let>();
    // The value is compiled before the variable comes into scope.
    if (l->value.type().is_float()) return compile_let_body<N>(l, cf(l->value), fslot_, num_fslots_);
    return compile_let_body<N>(l, ci(l->value), islot_, num_islots_);
  }
  // Binds the Let's variable to a fresh slot of `slots` while compiling its body.
  template <typename N, typename V>
  const N *compile_let_body(const ir::Let *l, const V *value, std::unordered_map<const ir::ExprNode *, int> &slots,
                            int &num_slots) {
    const ir::ExprNode *key = l->var.get();
    int slot = num_slots++;
    auto it = slots.find(key);
    std::optional<int> saved = it != slots.end() ? std::optional<int>(it->second) : std::nullopt;
    slots[key] = slot;
    const N *body = compile_as<N>(l->body);
    if (saved)
      slots[key] = *saved;
    else
      slots.erase(key);
    return make_let<N, V>(value, body, slot);
  }
  template <typename N> const N *compile_as(const Expr &e) {
    if constexpr (std::is_same_v<N, FNode>)
      return cf(e);
    else
      return ci(e);
  }
  template <typename N, typename V> const N *make_let(const V *value, const N *body, int slot) {
    if constexpr (std::is_same_v<N, FNode>)
      return fnode<FLet<V>>(value, body, slot);
    else
      return inode<ILet<V>>(value, body, slot);
  }

  static int64_t buf_stride(const std::vector<int64_t> &shape, size_t d) {
    int64_t s = 1;
    for (size_t i = d + 1; i < shape.size(); ++i) s *= shape[i];
    return s;
  }

  // Accumulates `scale * e` into `t` when e is affine in integer slots
  // (constants, variables, +, -, * by a constant, widening casts).
  bool affine(const Expr &e, int64_t scale, IndexTerm &t) {
    if (e.type().is_float() || !e.type().is_scalar() || e.type().is_bool()) return false;
    if (auto *i = e.as<ir::IntImm>()) {
      int64_t v;
      return !__builtin_mul_overflow(scale, i->value, &v) && !__builtin_add_overflow(t.offset, v, &t.offset);
    }
    if (auto *v = e.as<ir::Var>()) {
      auto s = islot_.find(v);
      if (s == islot_.end()) return false; // compile_read reports the free variable
      for (int k = 0; k < t.nterms; ++k)
        if (t.slot[k] == s->second) return !__builtin_add_overflow(t.coef[k], scale, &t.coef[k]);
      if (t.nterms == IndexTerm::kMaxTerms) return false;
      t.slot[t.nterms] = s->second;
      t.coef[t.nterms++] = scale;
      return true;
    }
    if (auto *c = e.as<ir::Cast>()) {
      const DataType from = c->value.type();
      if (!from.is_int() || !e.type().is_int() || from.bits > e.type().bits) return false;
      return affine(c->value, scale, t);
    }
    auto *b = e.as<ir::Binary>();
    if (!b) return false;
    int64_t k;
    switch (b->op) {
    case BinaryOp::Add: return affine(b->a, scale, t) && affine(b->b, scale, t);
    case BinaryOp::Sub:
      return scale != std::numeric_limits<int64_t>::min() && affine(b->a, scale, t) && affine(b->b, -scale, t);
    case BinaryOp::Mul: {
      int64_t scaled;
      if (ir::is_const_int(b->b, &k)) return !__builtin_mul_overflow(scale, k, &scaled) && affine(b->a, scaled, t);
      if (ir::is_const_int(b->a, &k)) return !__builtin_mul_overflow(scale, k, &scaled) && affine(b->b, scaled, t);
      return false;
    }
    default: return false;
    }
  }

  template <typename N> const N *compile_read(const Expr &e) {
    auto *r = e.as<ir::TensorRead>();
    const ir::TensorNode *t = r->tensor.get();
    auto it = buffers_.find(t);
    if (it == buffers_.end())
      throw Error("reads " + t->name + ", which is neither an input nor an earlier stage of the workload");
    const NDArray *buf = it->second;
    if (r->indices.size() != buf->shape().size())
      throw Error("reads " + t->name + " with " + std::to_string(r->indices.size()) + " indices, but it has " +
                  std::to_string(buf->shape().size()) + " dimensions");
    const ir::DataType dt = buf->dtype();
    const std::optional<Elem> elem = elem_of(dt);
    if (!elem) throw Error("unsupported dtype " + dt.str() + " of " + t->name);
    if (dt.is_float() != std::is_same_v<N, FNode>)
      throw Error("internal: " + dt.str() + " read of " + t->name + " in the wrong kind of expression");
    const uint8_t *data = static_cast<const uint8_t *>(buf->data());

    std::vector<IndexTerm> idx(r->indices.size());
    for (size_t d = 0; d < idx.size(); ++d) {
      IndexTerm &term = idx[d];
      if (!affine(r->indices[d], 1, term)) {
        term = IndexTerm{};
        term.node = ci(r->indices[d]);
      }
      term.extent = buf->shape()[d];
      term.stride = buf_stride(buf->shape(), d);
    }
    std::unique_ptr<N> node;
    if (std::optional<AffineIndex> fast = prove_affine(idx)) {
      if constexpr (std::is_same_v<N, FNode>)
        node = make_fread(*elem, data, *fast);
      else
        node = make_iread(*elem, data, *fast);
    } else {
      CheckedIndex checked{std::move(idx), t};
      if constexpr (std::is_same_v<N, FNode>)
        node = make_fread(*elem, data, std::move(checked));
      else
        node = make_iread(*elem, data, std::move(checked));
    }
    const N *raw = node.get();
    if constexpr (std::is_same_v<N, FNode>)
      fnodes_.push_back(std::move(node));
    else
      inodes_.push_back(std::move(node));
    return raw;
  }

  // When every dimension is affine in slots with known ranges and provably
  // within its extent, folds the read into one affine flat offset.
  std::optional<AffineIndex> prove_affine(const std::vector<IndexTerm> &idx) const {
    AffineIndex out;
    for (const IndexTerm &t : idx) {
      if (t.node) return std::nullopt;
      // 128-bit interval arithmetic: the proof itself cannot overflow.
      __int128 lo = t.offset, hi = t.offset;
      for (int k = 0; k < t.nterms; ++k) {
        auto range = slot_extent_.find(t.slot[k]);
        if (range == slot_extent_.end()) return std::nullopt; // e.g. a let-bound variable
        __int128 a = 0, b = __int128(t.coef[k]) * (range->second - 1);
        lo += std::min(a, b);
        hi += std::max(a, b);
      }
      if (lo < 0 || hi >= t.extent) return std::nullopt; // left to the run-time check
      // Modular (unsigned) arithmetic: the total is in range even if a partial product wraps.
      out.offset = int64_t(uint64_t(out.offset) + uint64_t(t.offset) * uint64_t(t.stride));
      for (int k = 0; k < t.nterms; ++k) {
        int j = 0;
        while (j < out.nterms && out.slot[j] != t.slot[k]) ++j;
        if (j == out.nterms) {
          if (out.nterms == AffineIndex::kMaxTerms) return std::nullopt;
          out.slot[out.nterms] = t.slot[k];
          out.coef[out.nterms++] = 0;
        }
        out.coef[j] = int64_t(uint64_t(out.coef[j]) + uint64_t(t.coef[k]) * uint64_t(t.stride));
      }
    }
    return out;
  }

  const std::unordered_map<const ir::TensorNode *, const NDArray *> &buffers_;
  std::unordered_map<const ir::ExprNode *, int> islot_, fslot_;
  std::unordered_map<int, int64_t> slot_extent_; // loop-variable slots only
  int num_islots_ = 0, num_fslots_ = 0;
  std::vector<std::unique_ptr<FNode>> fnodes_;
  std::vector<std::unique_ptr<INode>> inodes_;
};

// ------------------------------------------------------------------- stores
void store_float(NDArray &out, int64_t i, double v) {
  uint8_t *p = static_cast<uint8_t *>(out.data());
  ir::DataType t = out.dtype();
  if (t.code == ir::DataType::Float && t.bits == 32)
    reinterpret_cast<float *>(p)[i] = float(v);
  else if (t.code == ir::DataType::Float && t.bits == 64)
    reinterpret_cast<double *>(p)[i] = v;
  else
    out.set(i, v);
}
void store_int(NDArray &out, int64_t i, int64_t v) {
  uint8_t *p = static_cast<uint8_t *>(out.data());
  ir::DataType t = out.dtype();
  v = wrap_to(v, t);
  switch (t.bytes()) {
  case 1: reinterpret_cast<uint8_t *>(p)[i] = uint8_t(v); break;
  case 2: reinterpret_cast<uint16_t *>(p)[i] = uint16_t(v); break;
  case 4: reinterpret_cast<uint32_t *>(p)[i] = uint32_t(v); break;
  default: reinterpret_cast<uint64_t *>(p)[i] = uint64_t(v); break;
  }
}

// Calls fn(flat_index) for every point of the stage's iteration space, with
// the spatial axes' slots set.
template <typename F> void for_each_point(const std::vector<int64_t> &shape, int64_t *slots, F &&fn) {
  const size_t nd = shape.size();
  for (size_t d = 0; d < nd; ++d) {
    slots[d] = 0;
    if (shape[d] <= 0) return;
  }
  int64_t flat = 0;
  for (;;) {
    fn(flat++);
    size_t d = nd;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++slots[d] < shape[d]) break;
      slots[d] = 0;
    }
  }
}

// Reduces `eval()` over the reduce axes whose slots start at `slots`.
template <ReduceOp OP, typename T, typename Eval>
T reduce_loop(T acc, const std::vector<int64_t> &extents, int64_t *slots, Eval &&eval) {
  const size_t nr = extents.size();
  for (size_t d = 0; d < nr; ++d) slots[d] = 0;
  const int64_t inner = extents[nr - 1];
  int64_t *last = &slots[nr - 1];
  for (;;) {
    for (*last = 0; *last < inner; ++*last) {
      T v = eval();
      if constexpr (OP == ReduceOp::Sum) {
        if constexpr (std::is_same_v<T, int64_t>)
          acc = int64_t(uint64_t(acc) + uint64_t(v));
        else
          acc += v;
      } else if constexpr (OP == ReduceOp::Max) {
        acc = acc < v ? v : acc;
      } else {
        acc = v < acc ? v : acc;
      }
    }
    *last = 0;
    size_t d = nr - 1;
    for (;;) {
      if (d == 0) return acc;
      --d;
      if (++slots[d] < extents[d]) break;
      slots[d] = 0;
    }
  }
}

double float_identity(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum: return 0;
  case ReduceOp::Max: return -std::numeric_limits<double>::infinity();
  case ReduceOp::Min: return std::numeric_limits<double>::infinity();
  }
  return 0;
}
int64_t int_identity(ReduceOp op, ir::DataType t) {
  int64_t v = 0;
  if (op == ReduceOp::Sum) return 0;
  if (ir::is_const_int(op == ReduceOp::Max ? ir::min_value(t) : ir::max_value(t), &v)) return v;
  return op == ReduceOp::Max ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
}

// Reports the finished fraction of the whole interpretation, now and then.
struct ProgressTracker {
  const Progress *callback = nullptr;
  double total = 1, done = 0, per_point = 0;
  int64_t countdown = 0;
  void tick() {
    if (!callback || !*callback || --countdown > 0) return;
    countdown = 1 << 14;
    (*callback)(std::min(1.0, done / total));
  }
  void advance(double work) { done += work; }
};

void run_stage(const ir::Tensor &stage, NDArray &out,
               const std::unordered_map<const ir::TensorNode *, const NDArray *> &buffers, ProgressTracker &pt) {
  Compiler comp(buffers);
  const size_t nd = stage->axes.size();
  if (nd != stage->shape.size())
    throw Error("has " + std::to_string(nd) + " axes for a rank-" + std::to_string(stage->shape.size()) + " shape");
  for (auto &ax : stage->axes) comp.bind_int(ax.var, ax.extent);
  const ir::Reduce *red = stage->body.as<ir::Reduce>();
  std::vector<int64_t> rext;
  if (red)
    for (auto &ax : red->axes) {
      comp.bind_int(ax.var, ax.extent);
      rext.push_back(ax.extent);
    }
  const Expr &value = red ? red->source : stage->body;
  const bool is_float = value.type().is_float();
  const FNode *fbody = nullptr;
  const INode *ibody = nullptr;
  if (is_float)
    fbody = comp.cf(value);
  else
    ibody = comp.ci(value);
  if (out.dtype().is_float() != is_float)
    throw Error("computes " + value.type().str() + " values into a tensor of type " + out.dtype().str());

  std::vector<int64_t> islots(size_t(comp.num_islots()) + 1, 0);
  std::vector<double> fslots(size_t(comp.num_fslots()) + 1, 0);
  Ctx ctx{islots.data(), fslots.data()};
  int64_t *spatial = islots.data(), *rslots = islots.data() + nd;

  if (!red) {
    if (is_float)
      for_each_point(stage->shape, spatial, [&](int64_t i) {
        store_float(out, i, fbody->eval(ctx));
        pt.advance(1), pt.tick();
      });
    else
      for_each_point(stage->shape, spatial, [&](int64_t i) {
        store_int(out, i, ibody->eval(ctx));
        pt.advance(1), pt.tick();
      });
    return;
  }
  for (int64_t e : rext)
    if (e <= 0) throw Error("has an empty reduction axis");
  double per_point = 1;
  for (int64_t e : rext) per_point *= double(e);
  auto run = [&](auto op_tag) {
    constexpr ReduceOp OP = decltype(op_tag)::value;
    if (is_float) {
      double init = float_identity(OP);
      for_each_point(stage->shape, spatial, [&](int64_t i) {
        store_float(out, i, reduce_loop<OP, double>(init, rext, rslots, [&] { return fbody->eval(ctx); }));
        pt.advance(per_point), pt.tick();
      });
    } else {
      int64_t init = int_identity(OP, value.type());
      for_each_point(stage->shape, spatial, [&](int64_t i) {
        store_int(out, i, reduce_loop<OP, int64_t>(init, rext, rslots, [&] { return ibody->eval(ctx); }));
        pt.advance(per_point), pt.tick();
      });
    }
  };
  switch (red->op) {
  case ReduceOp::Sum: run(std::integral_constant<ReduceOp, ReduceOp::Sum>{}); break;
  case ReduceOp::Max: run(std::integral_constant<ReduceOp, ReduceOp::Max>{}); break;
  case ReduceOp::Min: run(std::integral_constant<ReduceOp, ReduceOp::Min>{}); break;
  }
}

std::string describe(const ir::TensorNode &t) {
  std::string s = t.dtype.str() + "[";
  for (size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}
std::string describe(const NDArray &a) {
  std::string s = a.dtype().str() + "[";
  for (size_t i = 0; i < a.shape().size(); ++i) s += (i ? ", " : "") + std::to_string(a.shape()[i]);
  return s + "]";
}

} // namespace

std::vector<NDArray> random_inputs(const te::Workload &w, uint64_t seed) {
  std::vector<NDArray> out;
  for (size_t i = 0; i < w.inputs.size(); ++i) {
    out.emplace_back(w.inputs[i]->shape, w.inputs[i]->dtype);
    out.back().fill_random(seed + i);
  }
  return out;
}

std::vector<NDArray> empty_outputs(const te::Workload &w) {
  std::vector<NDArray> out;
  for (auto &o : w.outputs) out.emplace_back(o->shape, o->dtype);
  return out;
}

Status check_run_fits_in_memory(const te::Workload &w, bool with_reference) {
  return check_run_fits_in_memory(w, with_reference, available_memory_bytes());
}

Status check_run_fits_in_memory(const te::Workload &w, bool with_reference, int64_t available_bytes) {
  if (available_bytes <= 0) return Status::ok(); // unknown: nothing to compare with
  // In double: shapes up to 2^40 elements of 8 bytes, summed over many tensors, stay exact enough.
  auto bytes = [](const ir::Tensor &t) {
    double n = t->dtype.bytes();
    for (int64_t e : t->shape) n *= double(e);
    return n;
  };
  double total = 0;
  const ir::Tensor *largest = nullptr;
  auto add = [&](const ir::Tensor &t, int copies) {
    total += copies * bytes(t);
    if (!largest || bytes(t) > bytes(*largest)) largest = &t;
  };
  for (auto &t : w.inputs) add(t, 1);
  // Each stage: the kernel's buffer (an output, or an intermediate at most this large), and the interpreter's copy.
  for (auto &t : w.stages) add(t, with_reference ? 2 : 1);
  if (total <= double(available_bytes) * 0.9) return Status::ok(); // leave room for code, packing and the OS
  std::string shape;
  for (int64_t e : (*largest)->shape) shape += (shape.empty() ? "" : ", ") + std::to_string(e);
  std::string hint = with_reference && total / 2 <= double(available_bytes) * 0.9
                         ? "; --no-verify skips the interpreter's copies"
                         : "; use smaller shapes";
  return Status::error((*largest)->name + " needs " + human_bytes(bytes(*largest)) + " (" + (*largest)->dtype.str() +
                       "[" + shape + "]); the run needs " + human_bytes(total) + " in all (inputs, outputs, " +
                       "intermediates" + (with_reference ? " and the interpreter's reference copies" : "") +
                       ") and this machine has " + human_bytes(double(available_bytes)) + " available" + hint);
}

Expected<std::vector<NDArray>> interpret(const te::Workload &w, const std::vector<NDArray> &inputs,
                                         const Progress &progress) {
  ProgressTracker pt;
  pt.callback = &progress;
  pt.total = 0;
  for (auto &s : w.stages) {
    double points = 1;
    for (auto e : s->shape) points *= double(e);
    if (auto *r = s->body.as<ir::Reduce>())
      for (auto &ax : r->axes) points *= double(ax.extent);
    pt.total += points;
  }
  pt.total = std::max(pt.total, 1.0);
  if (inputs.size() != w.inputs.size())
    return make_error("the workload takes " + std::to_string(w.inputs.size()) + " input(s) but " +
                      std::to_string(inputs.size()) + " were given");
  std::unordered_map<const ir::TensorNode *, const NDArray *> buffers;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ir::TensorNode &t = *w.inputs[i];
    if (inputs[i].shape() != t.shape || inputs[i].dtype() != t.dtype)
      return make_error("input " + std::to_string(i) + " (" + t.name + ") should be " + describe(t) + ", got " +
                        describe(inputs[i]));
    if (!inputs[i].data()) return make_error("input " + std::to_string(i) + " (" + t.name + ") has no storage");
    buffers[&t] = &inputs[i];
  }
  std::unordered_map<const ir::TensorNode *, NDArray> values;
  for (auto &s : w.stages) {
    std::string where = "stage " + s->name;
    try {
      if (s->is_input()) return make_error(where + " has no body");
      NDArray out(s->shape, s->dtype);
      run_stage(s, out, buffers, pt);
      buffers[s.get()] = &values.emplace(s.get(), std::move(out)).first->second;
    } catch (const Error &e) {
      return make_error("interpreter: in " + where + ": " + e.what());
    } catch (const std::exception &e) {
      return make_error("interpreter: in " + where + ": " + e.what());
    }
  }
  if (progress) progress(1.0);
  std::vector<NDArray> result;
  for (auto &o : w.outputs) {
    auto it = values.find(o.get());
    if (it == values.end()) return make_error("interpreter: output " + o->name + " is not a stage of the workload");
    result.push_back(it->second);
  }
  return result;
}

} // namespace tessel::interp
