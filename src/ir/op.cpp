#include "ir/op.h"

#include "ir/printer.h"
#include "support/error.h"

namespace tessel::ir {

static bool is_literal(const Expr &e) { return e.as<IntImm>() || e.as<FloatImm>(); }

static Expr retype_literal(const Expr &lit, DataType t) {
  DataType s = t.element_of();
  if (auto *i = lit.as<IntImm>()) return Broadcast::make(make_const(s, double(i->value)), t.lanes);
  auto *f = lit.as<FloatImm>();
  TESSEL_CHECK(s.is_float(), "float literal " + format_float(f->value, lit.type()) +
                                 " used with an integer operand of type " + t.str() + "; write an integer or cast");
  return Broadcast::make(make_const(s, f->value), t.lanes);
}

void match_types(Expr &a, Expr &b, const char *op) {
  TESSEL_CHECK(a.defined() && b.defined(), std::string("operator '") + op + "' on an undefined expression");
  if (a.type() == b.type()) return;
  bool la = is_literal(a), lb = is_literal(b);
  if (la && !lb) {
    a = retype_literal(a, b.type());
    return;
  }
  if (lb && !la) {
    b = retype_literal(b, a.type());
    return;
  }
  if (la && lb) { // two literals: a float beats an integer, then the wider type wins (no silent wrap)
    bool a_wins = a.type().is_float() != b.type().is_float() ? a.type().is_float() : a.type().bits >= b.type().bits;
    if (a_wins)
      b = retype_literal(b, a.type());
    else
      a = retype_literal(a, b.type());
    return;
  }
  if (a.type().is_vector() != b.type().is_vector()) {
    if (a.type().is_scalar())
      a = Broadcast::make(a, b.type().lanes);
    else
      b = Broadcast::make(b, a.type().lanes);
    if (a.type() == b.type()) return;
  }
  throw Error(std::string("type mismatch in '") + op + "': " + a.type().str() + " vs " + b.type().str() +
              "; add an explicit cast such as " + b.type().str() + "(x)");
}

Expr binary(BinaryOp op, Expr a, Expr b) {
  match_types(a, b, binary_op_name(op));
  return Binary::make(op, std::move(a), std::move(b));
}
Expr operator+(Expr a, Expr b) { return binary(BinaryOp::Add, std::move(a), std::move(b)); }
Expr operator-(Expr a, Expr b) { return binary(BinaryOp::Sub, std::move(a), std::move(b)); }
Expr operator*(Expr a, Expr b) { return binary(BinaryOp::Mul, std::move(a), std::move(b)); }
Expr operator/(Expr a, Expr b) { return binary(BinaryOp::Div, std::move(a), std::move(b)); }
Expr operator%(Expr a, Expr b) { return binary(BinaryOp::Mod, std::move(a), std::move(b)); }
Expr operator-(Expr a) {
  if (auto *i = a.as<IntImm>()) return IntImm::make(a.type(), -i->value);
  if (auto *f = a.as<FloatImm>()) return FloatImm::make(a.type(), -f->value);
  return make_zero(a.type()) - a;
}
Expr operator==(Expr a, Expr b) { return binary(BinaryOp::EQ, std::move(a), std::move(b)); }
Expr operator!=(Expr a, Expr b) { return binary(BinaryOp::NE, std::move(a), std::move(b)); }
Expr operator<(Expr a, Expr b) { return binary(BinaryOp::LT, std::move(a), std::move(b)); }
Expr operator<=(Expr a, Expr b) { return binary(BinaryOp::LE, std::move(a), std::move(b)); }
Expr operator>(Expr a, Expr b) { return binary(BinaryOp::GT, std::move(a), std::move(b)); }
Expr operator>=(Expr a, Expr b) { return binary(BinaryOp::GE, std::move(a), std::move(b)); }
Expr operator&&(Expr a, Expr b) { return binary(BinaryOp::And, std::move(a), std::move(b)); }
Expr operator||(Expr a, Expr b) { return binary(BinaryOp::Or, std::move(a), std::move(b)); }
Expr logical_not(Expr a) { return Not::make(std::move(a)); }
Expr min(Expr a, Expr b) { return binary(BinaryOp::Min, std::move(a), std::move(b)); }
Expr max(Expr a, Expr b) { return binary(BinaryOp::Max, std::move(a), std::move(b)); }

Expr select(Expr c, Expr t, Expr f) {
  match_types(t, f, "select");
  return Select::make(std::move(c), std::move(t), std::move(f));
}
Expr cast(DataType t, Expr v) {
  TESSEL_CHECK(v.defined(), "cast of an undefined expression");
  DataType to = t.with_lanes(v.type().lanes); // before v is moved from
  return Cast::make(to, std::move(v));
}
Expr call(Intrinsic f, std::vector<Expr> args) {
  if (args.size() == 2) match_types(args[0], args[1], intrinsic_name(f));
  if (args.size() >= 1 && is_literal(args[0]) && args[0].type().is_int() && f != Intrinsic::Abs)
    args[0] = make_const(DataType::f32(), double(args[0].as<IntImm>()->value));
  return Call::make(f, std::move(args));
}
Expr exp(Expr x) { return call(Intrinsic::Exp, {std::move(x)}); }
Expr log(Expr x) { return call(Intrinsic::Log, {std::move(x)}); }
Expr sqrt(Expr x) { return call(Intrinsic::Sqrt, {std::move(x)}); }
Expr rsqrt(Expr x) { return call(Intrinsic::Rsqrt, {std::move(x)}); }
Expr tanh(Expr x) { return call(Intrinsic::Tanh, {std::move(x)}); }
Expr erf(Expr x) { return call(Intrinsic::Erf, {std::move(x)}); }
Expr abs(Expr x) { return call(Intrinsic::Abs, {std::move(x)}); }
Expr floor(Expr x) { return call(Intrinsic::Floor, {std::move(x)}); }
Expr ceil(Expr x) { return call(Intrinsic::Ceil, {std::move(x)}); }
Expr pow(Expr x, Expr y) { return call(Intrinsic::Pow, {std::move(x), std::move(y)}); }

} // namespace tessel::ir
