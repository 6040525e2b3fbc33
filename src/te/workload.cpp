#include "te/workload.h"

#include "ir/bounds.h"
#include "ir/printer.h"
#include "ir/visitor.h"
#include "support/hash.h"
#include "te/text.h"

#include <algorithm>
#include <functional>
#include <set>
#include <unordered_set>

namespace tessel::te {

namespace {

std::vector<const ir::TensorRead *> reads_of(const ir::Expr &e) { return ir::collect_reads(e); }

// Operations per evaluation point: arithmetic nodes, plus one per reduction step.
struct OpCounter : ir::IRVisitor {
  using IRVisitor::visit;
  double ops = 0;
  void visit(const ir::Binary *op) override {
    if (!ir::is_comparison(op->op) && op->op != ir::BinaryOp::And && op->op != ir::BinaryOp::Or &&
        !op->type.is_bool() && !(op->a.type() == ir::DataType::index()))
      ops += 1;
    IRVisitor::visit(op);
  }
  void visit(const ir::Call *op) override {
    ops += 1;
    IRVisitor::visit(op);
  }
};

} // namespace

uint64_t Workload::structural_hash() const {
  // FNV-1a over the canonical text: fixed, portable, and independent of names.
  return fnv1a(to_text(*this, /*canonical_names=*/true));
}

std::string Workload::hash_hex() const { return hex16(structural_hash()); }

double Workload::flops() const {
  double total = 0;
  for (auto &s : stages) {
    double points = 1;
    for (auto e : s->shape) points *= double(e);
    OpCounter c;
    if (auto *r = s->body.as<ir::Reduce>()) {
      for (auto &ax : r->axes) points *= double(ax.extent);
      r->source.accept(&c);
      c.ops += 1;
    } else {
      s->body.accept(&c);
    }
    total += points * c.ops;
  }
  return total;
}

std::vector<ir::Tensor> Workload::consumers(const ir::Tensor &t) const {
  std::vector<ir::Tensor> out;
  for (auto &s : stages) {
    for (auto *r : reads_of(s->body))
      if (r->tensor == t) {
        out.push_back(s);
        break;
      }
  }
  return out;
}

bool Workload::is_output(const ir::Tensor &t) const {
  return std::find(outputs.begin(), outputs.end(), t) != outputs.end();
}

static Status check_bounds(const ir::Tensor &stage) {
  ir::ConstScope scope;
  for (auto &ax : stage->axes) scope[ax.var.get()] = {0, ax.extent - 1};
  if (auto *r = stage->body.as<ir::Reduce>())
    for (auto &ax : r->axes) scope[ax.var.get()] = {0, ax.extent - 1};
  for (auto *read : reads_of(stage->body)) {
    for (size_t d = 0; d < read->indices.size(); ++d) {
      ir::ConstRange r = ir::constant_bounds(read->indices[d], scope);
      int64_t extent = read->tensor->shape[d];
      if (!r.min || !r.max || *r.min < 0 || *r.max >= extent) {
        std::string range = "[" + (r.min ? std::to_string(*r.min) : std::string("-inf")) + ", " +
                            (r.max ? std::to_string(*r.max) : std::string("+inf")) + "]";
        return Status::error("in " + stage->name + ": index " + std::to_string(d) + " of " + read->tensor->name + " (" +
                             ir::to_string(read->indices[d]) + ") may range over " + range +
                             " but the dimension has extent " + std::to_string(extent) +
                             "; keep indices in bounds, e.g. clamp with min/max and guard with select");
      }
    }
  }
  return Status::ok();
}

Expected<Workload> make_workload(std::string key, std::vector<ir::Tensor> inputs, std::vector<ir::Tensor> outputs) {
  if (outputs.empty()) return make_error("a workload needs at least one output tensor");
  Workload w;
  std::unordered_set<const ir::TensorNode *> visited, on_path;
  std::string cycle;
  std::function<bool(const ir::Tensor &)> visit = [&](const ir::Tensor &t) -> bool {
    if (t->is_input() || visited.count(t.get())) return true;
    visited.insert(t.get());
    for (auto *r : reads_of(t->body))
      if (!visit(r->tensor)) return false;
    w.stages.push_back(t);
    return true;
  };
  for (auto &o : outputs) {
    if (!o) return make_error("undefined output tensor");
    if (o->is_input()) return make_error("output " + o->name + " is an input; outputs must be computed tensors");
    visit(o);
  }
  std::set<std::string> names;
  for (auto &i : inputs) {
    if (!i || !i->is_input())
      return make_error("argument " + (i ? i->name : std::string("?")) + " is not an input tensor");
    if (!names.insert(i->name).second) return make_error("two tensors are named " + i->name + "; names must be unique");
  }
  // Element counts stay far from int64 overflow (buffer sizes, flat indices, byte counts).
  constexpr int64_t kMaxElements = int64_t(1) << 40;
  for (const std::vector<ir::Tensor> *list : {&inputs, &w.stages})
    for (auto &t : *list) {
      __int128 n = 1;
      for (int64_t e : t->shape) n *= e > 0 ? e : 1;
      if (n > kMaxElements) return make_error("tensor " + t->name + " would have more than 2^40 elements");
    }
  for (auto &s : w.stages) {
    if (!names.insert(s->name).second) return make_error("two tensors are named " + s->name + "; names must be unique");
    for (auto *r : reads_of(s->body)) {
      if (r->tensor->is_input() && std::find(inputs.begin(), inputs.end(), r->tensor) == inputs.end())
        return make_error("stage " + s->name + " reads " + r->tensor->name + ", which is not a declared input");
    }
    if (Status st = check_bounds(s); !st) return make_error(st.message());
  }
  w.inputs = std::move(inputs);
  w.outputs = std::move(outputs);
  w.key = key.empty() ? "te:" + w.hash_hex() : std::move(key);
  return w;
}

} // namespace tessel::te
