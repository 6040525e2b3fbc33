// The tensor-expression language, C++ form:
//
//   Tensor A = placeholder({M, K}, DataType::f32(), "A");
//   Tensor B = placeholder({K, N}, DataType::f32(), "B");
//   IterVar k = reduce_axis(K, "k");
//   Tensor C = compute({M, N}, [&](Index i) { return sum(A(i[0], k) * B(k, i[1]), {k}); }, "C");
//
// Misuse (type mismatch, wrong arity) throws tessel::Error; make_workload()
// and the text parser catch it and report a value (see support/error.h).
#pragma once

#include "ir/ir.h"
#include "ir/op.h"

#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace tessel::te {

using ir::DataType;
using ir::Expr;
using ir::IterVar;

inline Expr as_expr(const Expr &e) { return e; }
inline Expr as_expr(const IterVar &iv) { return iv.var; }
inline Expr as_expr(int v) { return Expr(v); }

// A handle to an input or computed tensor; call it with indices to read it.
class Tensor {
public:
  Tensor() = default;
  Tensor(ir::Tensor node) : node_(std::move(node)) {}
  Expr operator()(std::vector<Expr> indices) const;
  template <typename... Ts> Expr operator()(Ts... indices) const {
    return (*this)(std::vector<Expr>{as_expr(indices)...});
  }
  const ir::Tensor &node() const { return node_; }
  const ir::TensorNode *operator->() const { return node_.get(); }
  bool defined() const { return node_ != nullptr; }
  operator const ir::Tensor &() const { return node_; }

private:
  ir::Tensor node_;
};

using Index = const std::vector<Expr> &;

Tensor placeholder(std::vector<int64_t> shape, DataType dtype, std::string name, bool is_constant = false);
// `axis_names` default to i, j, k, l, ... (printed in the text form).
Tensor compute(std::vector<int64_t> shape, const std::function<Expr(Index)> &fn, std::string name,
               std::vector<std::string> axis_names = {});
IterVar reduce_axis(int64_t extent, std::string name);
Expr var(IterVar iv);

Expr sum(Expr source, std::vector<IterVar> axes);
Expr max_reduce(Expr source, std::vector<IterVar> axes);
Expr min_reduce(Expr source, std::vector<IterVar> axes);

} // namespace tessel::te
