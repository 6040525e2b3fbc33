#include "te/tensor.h"

#include "ir/visitor.h"
#include "support/error.h"

namespace tessel::te {

Expr Tensor::operator()(std::vector<Expr> indices) const {
  TESSEL_CHECK(node_ != nullptr, "read of an undefined tensor");
  return ir::TensorRead::make(node_, std::move(indices));
}

static void check_shape(const std::vector<int64_t> &shape, const std::string &name) {
  for (size_t d = 0; d < shape.size(); ++d)
    TESSEL_CHECK(shape[d] > 0, "tensor " + name + ": dimension " + std::to_string(d) + " has extent " +
                                   std::to_string(shape[d]) + "; extents must be positive");
}

static void check_name(const std::string &name) {
  TESSEL_CHECK(!name.empty(), "tensor names must not be empty");
  bool ok = std::isalpha((unsigned char)name[0]) || name[0] == '_';
  for (char c : name) ok &= std::isalnum((unsigned char)c) || c == '_';
  TESSEL_CHECK(ok, "tensor name '" + name + "' must be an identifier (letters, digits, '_')");
}

Tensor placeholder(std::vector<int64_t> shape, DataType dtype, std::string name, bool is_constant) {
  check_name(name);
  check_shape(shape, name);
  TESSEL_CHECK(!dtype.is_handle() && dtype.is_scalar(), "tensor " + name + " has invalid dtype " + dtype.str());
  auto n = std::make_shared<ir::TensorNode>();
  n->name = std::move(name);
  n->shape = std::move(shape);
  n->dtype = dtype;
  n->is_constant = is_constant;
  return Tensor(n);
}

Tensor compute(std::vector<int64_t> shape, const std::function<Expr(Index)> &fn, std::string name,
               std::vector<std::string> axis_names) {
  check_name(name);
  check_shape(shape, name);
  static const char *defaults[] = {"i", "j", "k", "l", "m", "n", "o", "p"};
  auto n = std::make_shared<ir::TensorNode>();
  std::vector<Expr> vars;
  for (size_t d = 0; d < shape.size(); ++d) {
    std::string an = d < axis_names.size() ? axis_names[d] : (d < 8 ? defaults[d] : "ax" + std::to_string(d));
    Expr v = ir::Var::make(DataType::index(), an);
    vars.push_back(v);
    n->axes.push_back(IterVar{v, shape[d], false});
  }
  Expr body = fn(vars);
  TESSEL_CHECK(body.defined(), "compute " + name + ": the body is undefined");
  // A reduction may only be the whole body: it defines the init/update structure.
  struct NestedReduce : ir::IRVisitor {
    using IRVisitor::visit;
    bool found = false;
    void visit(const ir::Reduce *) override { found = true; }
  };
  const ir::Reduce *top = body.as<ir::Reduce>();
  NestedReduce nested;
  (top ? top->source : body).accept(&nested);
  TESSEL_CHECK(!nested.found, "compute " + name +
                                  ": a reduction must be the whole body (split it into its own stage, e.g. "
                                  "S[i] = sum(k: ...) then Y[i] = f(S[i]))");
  TESSEL_CHECK(!body.type().is_bool() && body.type().is_scalar(),
               "compute " + name + ": the body has type " + body.type().str() + "; tensors hold numbers (cast it)");
  n->name = std::move(name);
  n->shape = std::move(shape);
  n->dtype = body.type();
  n->body = body;
  return Tensor(n);
}

IterVar reduce_axis(int64_t extent, std::string name) {
  TESSEL_CHECK(extent > 0, "reduce axis " + name + " has extent " + std::to_string(extent) + "; must be positive");
  return IterVar{ir::Var::make(DataType::index(), std::move(name)), extent, true};
}
Expr var(IterVar iv) { return iv.var; }

Expr sum(Expr source, std::vector<IterVar> axes) { return ir::Reduce::make(ir::ReduceOp::Sum, source, axes); }
Expr max_reduce(Expr source, std::vector<IterVar> axes) { return ir::Reduce::make(ir::ReduceOp::Max, source, axes); }
Expr min_reduce(Expr source, std::vector<IterVar> axes) { return ir::Reduce::make(ir::ReduceOp::Min, source, axes); }

} // namespace tessel::te
