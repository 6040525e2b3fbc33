// Loop IR -> CUDA C++. Values of f16/bf16 type are computed in float and
// rounded where stored or cast, as on the CPU back end and in the interpreter.
#include "codegen/cuda_codegen.h"

#include "codegen/cuda_prelude.h"
#include "ir/visitor.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace tessel::codegen {

using namespace ir;

std::string cuda_storage_type(DataType t) {
  t = t.element_of();
  if (t.is_bool()) return "bool";
  switch (t.code) {
  case DataType::Float: return t.bits == 16 ? "tessel_f16" : t.bits == 32 ? "float" : "double";
  case DataType::BFloat: return "tessel_bf16";
  case DataType::Int: return "int" + std::to_string(t.bits) + "_t";
  case DataType::UInt: return "uint" + std::to_string(t.bits) + "_t";
  case DataType::Handle: return "void *";
  }
  return "void";
}

namespace {

bool narrow_float(DataType t) { return t.is_float() && t.bits == 16; }

// The type expressions of `t` are computed in.
std::string compute_type(DataType t) { return narrow_float(t) ? "float" : cuda_storage_type(t); }

std::string float_literal(double v, DataType t) {
  bool f32 = t.bits != 64;
  if (std::isinf(v)) return std::string(v < 0 ? "(-" : "(") + (f32 ? "TESSEL_INF_F32)" : "TESSEL_INF_F64)");
  if (std::isnan(v)) return f32 ? "(TESSEL_INF_F32 - TESSEL_INF_F32)" : "(TESSEL_INF_F64 - TESSEL_INF_F64)";
  char buf[64];
  std::snprintf(buf, sizeof buf, f32 ? "%.9g" : "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return f32 ? s + "f" : s;
}

class CudaPrinter : public IRVisitor {
public:
  using IRVisitor::visit;
  std::ostringstream out;

  // A C identifier for each variable, unique in the source (names repeat across loop nests).
  std::string name_of(const Expr &v) { return name_of(v.as<Var>()); }
  std::string name_of(const Var *var) {
    auto it = names_.find(var);
    if (it != names_.end()) return it->second;
    std::string base;
    for (char c : var->name) base += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
    if (base.empty() || std::isdigit(static_cast<unsigned char>(base[0]))) base = "v" + base;
    std::string name = base;
    for (int i = 1; used_.count(name); ++i) name = base + "_" + std::to_string(i);
    used_.insert(name);
    return names_[var] = name;
  }
  void reserve(const std::string &name) { used_.insert(name); }

  std::string expr(const Expr &e) {
    e.accept(this);
    return value_;
  }
  void stmt(const Stmt &s) { s.accept(this); }
  void line(const std::string &s) { out << std::string(size_t(indent_) * 2, ' ') << s << "\n"; }
  void open(const std::string &s) {
    line(s.empty() ? "{" : s + " {");
    ++indent_;
  }
  void close() {
    --indent_;
    line("}");
  }
  std::string error;
  std::vector<lower::RegisterAccumulator> accumulators; // of the kernel being printed
  bool index32 = false;                                 // the kernel's index arithmetic is 32-bit

  // The C type expressions of `t` are computed in, index arithmetic narrowed where the kernel allows.
  std::string ctype(DataType t) const {
    return index32 && t.element_of() == DataType::index() ? "int32_t" : compute_type(t);
  }

  // ---------------------------------------------------------------- expressions
  void visit(const IntImm *op) override {
    if (op->type.is_bool())
      value_ = op->value ? "true" : "false";
    else if (op->type.bits == 64 && !(index32 && op->type == DataType::index()))
      value_ = std::to_string(op->value) + "LL";
    else if (op->type.bits == 32 || op->type.bits == 64) // a 64-bit index literal in a 32-bit kernel
      value_ = std::to_string(op->value);
    else
      value_ = "((" + cuda_storage_type(op->type) + ")" + std::to_string(op->value) + ")";
  }
  void visit(const FloatImm *op) override { value_ = float_literal(op->value, op->type); }
  void visit(const Var *op) override {
    const std::string &n = op->name;
    if (n.rfind("threadIdx.", 0) == 0 || n.rfind("blockIdx.", 0) == 0)
      value_ = "((" + ctype(DataType::index()) + ")" + n + ")";
    else
      value_ = name_of(op);
  }
  void visit(const Cast *op) override {
    std::string v = expr(op->value);
    DataType to = op->type, from = op->value.type();
    if (narrow_float(to)) { // round through the 16-bit format
      std::string conv = to.code == DataType::BFloat ? "tessel_to_bf16" : "tessel_to_f16";
      value_ = "tessel_to_f32(" + conv + "((float)(" + v + ")))";
    } else if (to.is_bool()) {
      value_ = "((" + v + ") != 0)";
    } else if (narrow_float(from) && to == DataType::f32()) {
      value_ = v;
    } else {
      value_ = "((" + ctype(to) + ")(" + v + "))";
    }
  }
  void visit(const Binary *op) override {
    std::string a = expr(op->a), b = expr(op->b);
    DataType t = op->a.type();
    bool f = t.is_float(), s = t.is_int();
    std::string ct = ctype(t);
    auto infix = [&](const char *o) { value_ = "(" + a + " " + o + " " + b + ")"; };
    int64_t c = 0;
    bool pow2 = is_const_int(op->b, &c) && c > 0 && (c & (c - 1)) == 0;
    int shift = 0;
    while (pow2 && (int64_t(1) << shift) < c) ++shift;
    switch (op->op) {
    case BinaryOp::Add: return infix("+");
    case BinaryOp::Sub: return infix("-");
    case BinaryOp::Mul: return infix("*");
    case BinaryOp::Div:
      if (f || !s) return infix("/");
      if (pow2) { // floor division by 2^k is an arithmetic shift
        value_ = "(" + a + " >> " + std::to_string(shift) + ")";
        return;
      }
      value_ = "tessel_floordiv<" + ct + ">(" + a + ", " + b + ")";
      return;
    case BinaryOp::Mod:
      if (f) {
        value_ = "fmod(" + a + ", " + b + ")";
        return;
      }
      if (!s) return infix("%");
      if (pow2) {
        value_ = "(" + a + " & " + std::to_string(c - 1) + (ct == "int64_t" ? "LL)" : ")");
        return;
      }
      value_ = "tessel_floormod<" + ct + ">(" + a + ", " + b + ")";
      return;
    case BinaryOp::Min:
    case BinaryOp::Max: {
      bool mn = op->op == BinaryOp::Min;
      if (f) // IEEE minNum/maxNum, as on the CPU
        value_ = std::string(mn ? "fmin" : "fmax") + (ct == "double" ? "" : "f") + "(" + a + ", " + b + ")";
      else
        value_ = std::string(mn ? "tessel_min<" : "tessel_max<") + ct + ">(" + a + ", " + b + ")";
      return;
    }
    case BinaryOp::EQ: return infix("==");
    case BinaryOp::NE: return infix("!=");
    case BinaryOp::LT: return infix("<");
    case BinaryOp::LE: return infix("<=");
    case BinaryOp::GT: return infix(">");
    case BinaryOp::GE: return infix(">=");
    case BinaryOp::And: return infix("&&");
    case BinaryOp::Or: return infix("||");
    }
  }
  void visit(const Not *op) override { value_ = "(!" + expr(op->value) + ")"; }
  void visit(const Select *op) override {
    std::string c = expr(op->cond), t = expr(op->true_value), f = expr(op->false_value);
    value_ = "(" + c + " ? " + t + " : " + f + ")";
  }
  void visit(const Call *op) override {
    std::vector<std::string> a;
    for (auto &x : op->args) a.push_back(expr(x));
    DataType t = op->type;
    std::string sfx = compute_type(t) == "double" ? "" : "f";
    auto fn = [&](const std::string &name) {
      std::string s = name + "(";
      for (size_t i = 0; i < a.size(); ++i) s += (i ? ", " : "") + a[i];
      value_ = s + ")";
    };
    if (!t.is_float()) {
      if (op->func == Intrinsic::Abs) {
        value_ = "(" + a[0] + " < 0 ? -" + a[0] + " : " + a[0] + ")";
        return;
      }
      error = std::string("intrinsic ") + intrinsic_name(op->func) + " on integers";
      value_ = "0";
      return;
    }
    switch (op->func) {
    case Intrinsic::Exp: return fn("exp" + sfx);
    case Intrinsic::Log: return fn("log" + sfx);
    case Intrinsic::Sqrt: return fn("sqrt" + sfx);
    case Intrinsic::Rsqrt: value_ = "(" + float_literal(1.0, t) + " / sqrt" + sfx + "(" + a[0] + "))"; return;
    case Intrinsic::Tanh: return fn("tanh" + sfx);
    case Intrinsic::Erf: return fn("erf" + sfx);
    case Intrinsic::Abs: return fn("fabs" + sfx);
    case Intrinsic::Floor: return fn("floor" + sfx);
    case Intrinsic::Ceil: return fn("ceil" + sfx);
    case Intrinsic::Pow: return fn("pow" + sfx);
    }
  }
  void visit(const Load *op) override {
    std::string v = name_of(op->buffer) + "[" + expr(op->index) + "]";
    value_ = narrow_float(op->type) ? "tessel_to_f32(" + v + ")" : v;
  }
  void visit(const AddressOf *op) override { value_ = "(&" + name_of(op->buffer) + "[" + expr(op->index) + "])"; }
  void visit(const Let *op) override {
    std::string val = expr(op->value), var = name_of(op->var);
    std::string body = expr(op->body);
    value_ = "([&]() { const " + ctype(op->value.type()) + " " + var + " = " + val + "; return " + body + "; }())";
  }
  void visit(const Ramp *) override { unsupported("vector ramp"); }
  void visit(const Broadcast *) override { unsupported("vector broadcast"); }
  void visit(const TensorRead *) override { unsupported("tensor read before storage flattening"); }
  void visit(const Reduce *) override { unsupported("reduction before lowering"); }

  // ----------------------------------------------------------------- statements
  void visit(const For *op) override {
    std::string v = name_of(op->var), mn = expr(op->min), ext = expr(op->extent);
    // Unrolled, and loops that pick register-accumulator tiles: the tile indices must become constants.
    if (op->kind == ForKind::Unrolled || picks_accumulator_tile(op->body, op->var)) line("#pragma unroll");
    std::string end = is_zero(op->min) ? ext : "(" + mn + " + " + ext + ")";
    open("for (" + ctype(op->var.type()) + " " + v + " = " + mn + "; " + v + " < " + end + "; ++" + v + ")");
    stmt(op->body);
    close();
  }
  void visit(const Store *op) override {
    std::string v = expr(op->value), idx = expr(op->index);
    DataType t = op->value.type();
    if (narrow_float(t)) v = (t.code == DataType::BFloat ? "tessel_to_bf16(" : "tessel_to_f16(") + v + ")";
    line(name_of(op->buffer) + "[" + idx + "] = " + v + ";");
  }
  void visit(const Allocate *op) override {
    int64_t n = 0;
    for (auto &a : accumulators)
      if (a.buffer.same_as(op->buffer)) { // WMMA fragments in registers
        open("");
        line("tessel_acc<" + std::to_string(a.m) + ", " + std::to_string(a.n) + ", " + std::to_string(a.k) + ", " +
             cuda_storage_type(a.dtype) + "> " + name_of(op->buffer) + "[" + std::to_string(a.count) + "];");
        stmt(op->body);
        close();
        return;
      }
    if (op->scope != MemoryScope::Local || !is_const_int(op->extent, &n)) {
      error = std::string("a ") + memory_scope_name(op->scope) + " allocation (" + op->buffer.as<Var>()->name +
              ") inside a kernel";
      return;
    }
    open("");
    line(cuda_storage_type(op->dtype) + " " + name_of(op->buffer) + "[" + std::to_string(n) + "];");
    stmt(op->body);
    close();
  }
  void visit(const IfThenElse *op) override {
    open("if (" + expr(op->cond) + ")");
    stmt(op->then_case);
    if (op->else_case.defined()) {
      --indent_;
      line("} else {");
      ++indent_;
      stmt(op->else_case);
    }
    close();
  }
  void visit(const LetStmt *op) override {
    std::string val = expr(op->value);
    open("");
    line("const " + ctype(op->value.type()) + " " + name_of(op->var) + " = " + val + ";");
    stmt(op->body);
    close();
  }
  void visit(const Block *op) override {
    for (auto &s : op->stmts) stmt(s);
  }
  void visit(const Evaluate *op) override { line("(void)" + expr(op->value) + ";"); }
  void visit(const ExternCall *op) override {
    std::string s = op->name + "(";
    for (size_t i = 0; i < op->args.size(); ++i) s += (i ? ", " : "") + expr(op->args[i]);
    line(s + ");");
  }
  void visit(const Realize *) override { unsupported("realize before storage flattening"); }
  void visit(const TensorWrite *) override { unsupported("tensor write before storage flattening"); }

private:
  static bool picks_accumulator_tile(const Stmt &s, const Expr &var) {
    struct V : IRVisitor {
      Expr var;
      bool found = false;
      using IRVisitor::visit;
      void visit(const ExternCall *op) override {
        bool acc = op->name.size() > 4 && op->name.compare(op->name.size() - 4, 4, "_acc") == 0;
        found |= acc && op->args.size() > 1 && uses_var(op->args[1], var);
      }
    } v;
    v.var = var;
    s.accept(&v);
    return v.found;
  }
  void unsupported(const std::string &what) {
    if (error.empty()) error = what + " in a GPU kernel";
    value_ = "0";
  }
  std::map<const Var *, std::string> names_;
  std::set<std::string> used_;
  std::string value_;
  int indent_ = 0;
};

DataType buffer_type(const Expr &buffer, const lower::GpuProgram &g) {
  for (size_t i = 0; i < g.args.size(); ++i)
    if (g.args[i].same_as(buffer)) return g.arg_tensors[i]->dtype;
  for (auto &w : g.workspace)
    if (w.buffer.same_as(buffer)) return w.dtype;
  return DataType::f32();
}

std::string dims(const std::array<int64_t, 3> &d) {
  return "{" + std::to_string(d[0]) + ", " + std::to_string(d[1]) + ", " + std::to_string(d[2]) + "}";
}

} // namespace

Expected<CudaSource> generate_cuda(const lower::LoweredProgram &p, const Target &target) {
  if (!target.is_cuda()) return make_error("target " + target.name + " is not a CUDA target");
  auto g = lower::lower_gpu_kernels(p, target);
  if (!g) return make_error(g.error());
  CudaSource src;
  src.program = g.take();
  const lower::GpuProgram &prog = src.program;
  CudaPrinter pr;
  for (const char *reserved :
       {"tessel_arena", "threadIdx", "blockIdx", "blockDim", "gridDim", "int64_t", "float",  "double", "int",
        "for",          "if",        "else",     "const",    "return",  "char",    "long",   "short",  "signed",
        "unsigned",     "void",      "bool",     "true",     "false",   "auto",    "static", "inline"})
    pr.reserve(reserved);
  for (auto &a : prog.args) pr.name_of(a); // parameters keep their tensor names where possible
  for (auto &w : prog.workspace) pr.name_of(w.buffer);
  pr.out << kCudaPrelude << "\n";
  pr.out << "// Tessel kernels for " << target.name << " (" << (target.gpu ? target.gpu->arch : target.cpu)
         << "): " << prog.kernels.size() << " launch(es)\n";
  for (auto &k : prog.kernels) {
    int64_t threads = k.block[0] * k.block[1] * k.block[2];
    pr.line("// grid " + dims(k.grid) + ", block " + dims(k.block) + ", " + std::to_string(k.shared_bytes) +
            " bytes of shared memory");
    std::string params;
    for (auto &b : k.params)
      params +=
          (params.empty() ? "" : ", ") + cuda_storage_type(buffer_type(b, prog)) + " *__restrict__ " + pr.name_of(b);
    pr.accumulators = k.accumulators;
    pr.index32 = k.index32;
    pr.open("TESSEL_KERNEL(" + std::to_string(threads) + ") " + k.name + "(" + params + ")");
    if (!k.shared.empty()) {
      pr.line("TESSEL_ARENA(tessel_arena);");
      for (auto &s : k.shared) {
        std::string t = cuda_storage_type(s.dtype);
        pr.line(t + " *__restrict__ " + pr.name_of(s.buffer) + " = (" + t + " *)(tessel_arena + " +
                std::to_string(s.offset) + ");");
      }
    }
    pr.stmt(k.body);
    pr.close();
    pr.out << "\n";
  }
  if (!pr.error.empty()) return make_error(p.kernel.name + ": " + pr.error);
  // The host emulation entry: arguments as the program's, workspace allocated here.
  src.host_entry = prog.name + "_host_run";
  pr.out << "#if !defined(__CUDACC__)\n";
  pr.open("extern \"C\" int " + src.host_entry + "(void **args)");
  for (size_t i = 0; i < prog.args.size(); ++i) {
    std::string t = cuda_storage_type(prog.arg_tensors[i]->dtype);
    pr.line(t + " *" + pr.name_of(prog.args[i]) + " = (" + t + " *)args[" + std::to_string(i) + "];");
  }
  for (size_t i = 0; i < prog.workspace.size(); ++i) {
    const lower::Workspace &w = prog.workspace[i];
    std::string t = cuda_storage_type(w.dtype), n = pr.name_of(w.buffer);
    pr.line("std::vector<" + t + "> " + n + "_storage(" + std::to_string(w.elements) + ");");
    pr.line(t + " *" + n + " = " + n + "_storage.data();");
  }
  for (auto &k : prog.kernels) {
    std::string call;
    for (auto &b : k.params) call += (call.empty() ? "" : ", ") + pr.name_of(b);
    pr.line("tessel_host::launch(" + dims(k.grid) + ", " + dims(k.block) + ", " + std::to_string(k.shared_bytes) +
            ", [&] { " + k.name + "(" + call + "); });");
  }
  pr.line("return 0;");
  pr.close();
  pr.out << "#endif\n";
  src.source = pr.out.str();
  return src;
}

} // namespace tessel::codegen
