// Arithmetic on expressions with Tessel's typing rules, shared by the C++
// tensor-expression API and the text parser:
//  * operands of the same type combine to that type;
//  * a literal (IntImm/FloatImm constant) adopts the other operand's type;
//  * anything else is a type mismatch: the user writes an explicit cast.
#pragma once

#include "ir/ir.h"

namespace tessel::ir {

// Coerces both operands to a common type or throws tessel::Error.
void match_types(Expr &a, Expr &b, const char *op_name);

Expr operator+(Expr a, Expr b);
Expr operator-(Expr a, Expr b);
Expr operator*(Expr a, Expr b);
Expr operator/(Expr a, Expr b); // floor division for integers
Expr operator%(Expr a, Expr b); // floor modulo for integers
Expr operator-(Expr a);
Expr operator==(Expr a, Expr b);
Expr operator!=(Expr a, Expr b);
Expr operator<(Expr a, Expr b);
Expr operator<=(Expr a, Expr b);
Expr operator>(Expr a, Expr b);
Expr operator>=(Expr a, Expr b);
Expr operator&&(Expr a, Expr b);
Expr operator||(Expr a, Expr b);
Expr logical_not(Expr a);
Expr min(Expr a, Expr b);
Expr max(Expr a, Expr b);
Expr binary(BinaryOp op, Expr a, Expr b); // coercing form of Binary::make
Expr select(Expr cond, Expr t, Expr f);
Expr cast(DataType t, Expr v);
Expr exp(Expr x);
Expr log(Expr x);
Expr sqrt(Expr x);
Expr rsqrt(Expr x);
Expr tanh(Expr x);
Expr erf(Expr x);
Expr abs(Expr x);
Expr floor(Expr x);
Expr ceil(Expr x);
Expr pow(Expr x, Expr y);
Expr call(Intrinsic f, std::vector<Expr> args); // coercing form of Call::make

} // namespace tessel::ir
