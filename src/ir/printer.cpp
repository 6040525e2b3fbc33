#include "ir/printer.h"

#include "ir/visitor.h"

#include <charconv>
#include <cmath>
#include <sstream>

namespace tessel::ir {

std::string format_float(double v, DataType t) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::to_chars_result r =
      t.bits == 64 ? std::to_chars(buf, buf + sizeof buf, v) : std::to_chars(buf, buf + sizeof buf, float(v));
  std::string s(buf, r.ptr);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

namespace {
class Printer : public IRVisitor {
public:
  explicit Printer(std::ostream &o) : os(o) {}
  using IRVisitor::visit;

  void visit(const IntImm *op) override {
    os << op->value;
    if (op->type != DataType::index() && op->type != DataType::i32() && !op->type.is_bool())
      os << "_" << op->type.str();
  }
  void visit(const FloatImm *op) override {
    os << format_float(op->value, op->type);
    if (op->type != DataType::f32()) os << "_" << op->type.str();
  }
  void visit(const Var *op) override { os << op->name; }
  void visit(const Cast *op) override {
    os << op->type.str() << "(";
    op->value.accept(this);
    os << ")";
  }
  void visit(const Binary *op) override {
    if (op->op == BinaryOp::Min || op->op == BinaryOp::Max) {
      os << binary_op_name(op->op) << "(";
      op->a.accept(this);
      os << ", ";
      op->b.accept(this);
      os << ")";
      return;
    }
    os << "(";
    op->a.accept(this);
    os << " " << binary_op_name(op->op) << " ";
    op->b.accept(this);
    os << ")";
  }
  void visit(const Not *op) override {
    os << "!";
    op->value.accept(this);
  }
  void visit(const Select *op) override {
    os << "select(";
    op->cond.accept(this);
    os << ", ";
    op->true_value.accept(this);
    os << ", ";
    op->false_value.accept(this);
    os << ")";
  }
  void visit(const Call *op) override {
    os << intrinsic_name(op->func) << "(";
    for (size_t i = 0; i < op->args.size(); ++i) {
      if (i) os << ", ";
      op->args[i].accept(this);
    }
    os << ")";
  }
  void visit(const Load *op) override {
    op->buffer.accept(this);
    os << "[";
    op->index.accept(this);
    os << "]";
  }
  void visit(const Ramp *op) override {
    os << "ramp(";
    op->base.accept(this);
    os << ", ";
    op->stride.accept(this);
    os << ", " << op->lanes << ")";
  }
  void visit(const Broadcast *op) override {
    os << "x" << op->lanes << "(";
    op->value.accept(this);
    os << ")";
  }
  void visit(const Let *op) override {
    os << "(let " << op->var.as<Var>()->name << " = ";
    op->value.accept(this);
    os << " in ";
    op->body.accept(this);
    os << ")";
  }
  void visit(const TensorRead *op) override {
    os << op->tensor->name << "[";
    for (size_t i = 0; i < op->indices.size(); ++i) {
      if (i) os << ", ";
      op->indices[i].accept(this);
    }
    os << "]";
  }
  void visit(const Reduce *op) override {
    os << reduce_op_name(op->op) << "(";
    for (size_t i = 0; i < op->axes.size(); ++i) {
      if (i) os << ", ";
      os << op->axes[i].var.as<Var>()->name << " < " << op->axes[i].extent;
    }
    os << ": ";
    op->source.accept(this);
    os << ")";
  }

  void visit(const AddressOf *op) override {
    os << "&";
    op->buffer.accept(this);
    os << "[";
    op->index.accept(this);
    os << "]";
  }
  void visit(const ExternCall *op) override {
    indent();
    os << "call " << op->name << "(";
    for (size_t i = 0; i < op->args.size(); ++i) {
      if (i) os << ", ";
      op->args[i].accept(this);
    }
    os << ")\n";
  }

  void indent() { os << std::string(depth * 2, ' '); }
  void visit(const For *op) override {
    indent();
    os << for_kind_name(op->kind) << " (" << op->var.as<Var>()->name << ", ";
    op->min.accept(this);
    os << ", ";
    op->extent.accept(this);
    os << ")";
    if (!op->thread_tag.empty()) os << " @" << op->thread_tag;
    os << " {\n";
    body(op->body);
    indent();
    os << "}\n";
  }
  void visit(const Store *op) override {
    indent();
    op->buffer.accept(this);
    os << "[";
    op->index.accept(this);
    os << "] = ";
    op->value.accept(this);
    os << "\n";
  }
  void visit(const TensorWrite *op) override {
    indent();
    os << op->tensor->name << "[";
    for (size_t i = 0; i < op->indices.size(); ++i) {
      if (i) os << ", ";
      op->indices[i].accept(this);
    }
    os << "] = ";
    op->value.accept(this);
    os << "\n";
  }
  void visit(const Allocate *op) override {
    indent();
    op->buffer.accept(this);
    os << " = allocate " << op->dtype.str() << "[";
    op->extent.accept(this);
    os << "] in " << memory_scope_name(op->scope) << "\n";
    op->body.accept(this);
  }
  void visit(const Realize *op) override {
    indent();
    os << "realize " << op->tensor->name << "(";
    for (size_t i = 0; i < op->region.size(); ++i) {
      if (i) os << ", ";
      os << "[";
      op->region[i].min.accept(this);
      os << ", ";
      op->region[i].extent.accept(this);
      os << ")";
    }
    os << ")";
    if (op->row_pad) os << " rows padded by " << op->row_pad;
    os << " in " << memory_scope_name(op->scope) << " {\n";
    body(op->body);
    indent();
    os << "}\n";
  }
  void visit(const IfThenElse *op) override {
    indent();
    os << "if (";
    op->cond.accept(this);
    os << ") {\n";
    body(op->then_case);
    if (op->else_case.defined()) {
      indent();
      os << "} else {\n";
      body(op->else_case);
    }
    indent();
    os << "}\n";
  }
  void visit(const LetStmt *op) override {
    indent();
    os << "let " << op->var.as<Var>()->name << " = ";
    op->value.accept(this);
    os << "\n";
    op->body.accept(this);
  }
  void visit(const Evaluate *op) override {
    indent();
    op->value.accept(this);
    os << "\n";
  }
  void body(const Stmt &s) {
    ++depth;
    s.accept(this);
    --depth;
  }

  std::ostream &os;
  int depth = 0;
};
} // namespace

std::ostream &operator<<(std::ostream &os, const Expr &e) {
  if (!e.defined()) return os << "(undefined)";
  Printer p(os);
  e.accept(&p);
  return os;
}
std::ostream &operator<<(std::ostream &os, const Stmt &s) {
  if (!s.defined()) return os << "(undefined)\n";
  Printer p(os);
  s.accept(&p);
  return os;
}
std::string to_string(const Expr &e) {
  std::ostringstream os;
  os << e;
  return os.str();
}
std::string to_string(const Stmt &s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

} // namespace tessel::ir
