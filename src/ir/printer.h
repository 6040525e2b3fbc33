// Human-readable text of the loop IR (what `tessel show --ir` prints).
#pragma once

#include "ir/ir.h"

#include <ostream>
#include <string>

namespace tessel::ir {

std::string to_string(const Expr &e);
std::string to_string(const Stmt &s);
std::ostream &operator<<(std::ostream &os, const Expr &e);
std::ostream &operator<<(std::ostream &os, const Stmt &s);

// Shortest decimal text that reads back to the same value of type `t`.
std::string format_float(double v, DataType t);

} // namespace tessel::ir
