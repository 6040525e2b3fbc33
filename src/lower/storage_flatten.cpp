// Pass 2: multi-dimensional tensors become flat, row-major buffers; Realize
// becomes Allocate.
#include "lower/lower.h"

#include "ir/op.h"
#include "ir/visitor.h"

#include <unordered_map>

namespace tessel::lower {

using namespace ir;

namespace {

struct BufferInfo {
  Expr var;
  std::vector<Expr> mins;
  std::vector<int64_t> strides;
};

class Flattener : public IRMutator {
public:
  std::unordered_map<const TensorNode *, BufferInfo> buffers;
  using IRMutator::mutate;

  // Row-major; `row_pad` unused elements follow each innermost row. Returns the elements to allocate.
  int64_t add(const Tensor &t, Expr var, std::vector<Expr> mins, const std::vector<int64_t> &extents,
              int64_t row_pad = 0) {
    BufferInfo b{std::move(var), std::move(mins), std::vector<int64_t>(extents.size(), 1)};
    std::vector<int64_t> padded = extents;
    if (!padded.empty()) padded.back() += row_pad;
    for (int d = int(padded.size()) - 2; d >= 0; --d) b.strides[d] = b.strides[d + 1] * padded[d + 1];
    buffers[t.get()] = std::move(b);
    int64_t total = 1;
    for (int64_t e : padded) total *= e;
    return total;
  }

  Expr flat_index(const Tensor &t, const std::vector<Expr> &indices) {
    auto it = buffers.find(t.get());
    TESSEL_CHECK(it != buffers.end(), "internal: tensor " + t->name + " has no storage at this point");
    const BufferInfo &b = it->second;
    Expr idx;
    for (size_t d = 0; d < indices.size(); ++d) {
      Expr term = (mutate(indices[d]) - b.mins[d]) * Expr(b.strides[d]);
      idx = idx.defined() ? idx + term : term;
    }
    return idx.defined() ? idx : Expr(int64_t(0));
  }

protected:
  Expr visit(const TensorRead *op, const Expr &) override {
    return Load::make(op->tensor->dtype, buffers.at(op->tensor.get()).var, flat_index(op->tensor, op->indices));
  }
  Stmt visit(const TensorWrite *op, const Stmt &) override {
    Expr v = mutate(op->value);
    return Store::make(buffers.at(op->tensor.get()).var, v, flat_index(op->tensor, op->indices));
  }
  Stmt visit(const Realize *op, const Stmt &) override {
    Expr var = Var::make(DataType::handle(), op->tensor->name);
    std::vector<Expr> mins;
    std::vector<int64_t> extents;
    for (auto &r : op->region) {
      mins.push_back(r.min);
      int64_t e;
      TESSEL_CHECK(is_const_int(r.extent, &e),
                   "internal: realize of " + op->tensor->name + " has a non-constant extent");
      extents.push_back(e);
    }
    int64_t total = add(op->tensor, var, mins, extents, op->row_pad);
    Stmt body = mutate(op->body);
    return Allocate::make(var, op->tensor->dtype, Expr(total), op->scope, body);
  }
};

} // namespace

Stmt storage_flatten(const Stmt &s, const std::vector<Tensor> &args, const std::vector<Expr> &arg_vars) {
  Flattener f;
  for (size_t i = 0; i < args.size(); ++i)
    f.add(args[i], arg_vars[i], std::vector<Expr>(args[i]->shape.size(), Expr(int64_t(0))), args[i]->shape);
  return f.mutate(s);
}

} // namespace tessel::lower
