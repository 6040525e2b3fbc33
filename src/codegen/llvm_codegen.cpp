// Loop IR -> LLVM IR for CPUs.
//
// Values of f16/bf16 type are held as f32 in registers ("compute type") and
// converted at loads, stores and casts; this matches the interpreter's
// round-at-store semantics and works on every x86 CPU. bf16 conversions are
// emitted as integer bit operations (round to nearest even) so they vectorize.
#include "codegen/llvm_codegen.h"

#include "ir/op.h"
#include "ir/printer.h"
#include "ir/simplify.h"
#include "ir/visitor.h"
#include "schedules/intrinsics.h"
#include "support/error.h"

#include <initializer_list>
#include <limits>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <unordered_map>
#include <unordered_set>

namespace tessel::codegen {

using namespace ir;

namespace {

class CodeGen : public IRVisitor {
public:
  CodeGen(llvm::LLVMContext &ctx, llvm::Module &mod, const Target &target)
      : ctx_(ctx), mod_(mod), target_(target), b_(ctx) {
    llvm::FastMathFlags fmf;
    fmf.setAllowContract(true); // lets the back end fuse multiply-adds
    // Division by a constant or loop-invariant value becomes multiplication by its reciprocal, computed once
    // (layernorm's sum of X / 768 divided every element; vdivps is ~10x a multiply): within 1 ulp of the quotient.
    // 1 / sqrt(x) becomes the rsqrt estimate and a Newton step: within 2.4 ulp (every float in [1, 4), Zen 4).
    fmf.setAllowReciprocal(true);
    b_.setFastMathFlags(fmf);
  }

  void build(const lower::LoweredFunc &f) {
    std::vector<llvm::Type *> params(f.args.size(), b_.getPtrTy());
    auto *fty = llvm::FunctionType::get(b_.getVoidTy(), params, false);
    fn_ = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, f.name, mod_);
    set_attributes(fn_);
    for (size_t i = 0; i < f.args.size(); ++i) {
      llvm::Argument *a = fn_->getArg(unsigned(i));
      a->setName(f.arg_tensors[i]->name);
      a->addAttr(llvm::Attribute::NoAlias);
      a->addAttr(llvm::Attribute::NoCapture);
      sym_[f.args[i].get()] = a;
    }
    auto *entry = llvm::BasicBlock::Create(ctx_, "entry", fn_);
    b_.SetInsertPoint(entry);
    f.body.accept(this);
    b_.CreateRetVoid();

    // NAME_packed(void **args): the uniform entry point used by runners.
    auto *pty = llvm::FunctionType::get(b_.getInt32Ty(), {b_.getPtrTy()}, false);
    auto *packed = llvm::Function::Create(pty, llvm::Function::ExternalLinkage, f.name + "_packed", mod_);
    set_attributes(packed);
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", packed));
    std::vector<llvm::Value *> args;
    for (size_t i = 0; i < f.args.size(); ++i) {
      llvm::Value *p = b_.CreateGEP(b_.getPtrTy(), packed->getArg(0), b_.getInt64(int64_t(i)));
      args.push_back(b_.CreateLoad(b_.getPtrTy(), p));
    }
    b_.CreateCall(fn_, args);
    b_.CreateRet(b_.getInt32(0));

    std::string err;
    llvm::raw_string_ostream os(err);
    if (llvm::verifyModule(mod_, &os)) throw Error("internal: generated LLVM IR is invalid: " + os.str());
  }

private:
  // ------------------------------------------------------------------ types
  llvm::Type *scalar_compute_type(DataType t) {
    switch (t.code) {
    case DataType::Float: return t.bits == 64 ? b_.getDoubleTy() : b_.getFloatTy();
    case DataType::BFloat: return b_.getFloatTy();
    case DataType::Int:
    case DataType::UInt: return b_.getIntNTy(t.bits);
    case DataType::Handle: return b_.getPtrTy();
    }
    return nullptr;
  }
  llvm::Type *compute_type(DataType t) {
    llvm::Type *s = scalar_compute_type(t.element_of());
    return t.lanes > 1 ? llvm::FixedVectorType::get(s, t.lanes) : s;
  }
  llvm::Type *storage_type(DataType t) {
    DataType s = t.element_of();
    llvm::Type *e = s.code == DataType::Float && s.bits == 16 ? b_.getHalfTy()
                    : s.code == DataType::BFloat              ? b_.getInt16Ty()
                    : s.is_bool()                             ? b_.getInt8Ty()
                                                              : scalar_compute_type(s);
    return t.lanes > 1 ? llvm::FixedVectorType::get(e, t.lanes) : e;
  }
  llvm::Type *with_lanes(llvm::Type *scalar, int lanes) {
    return lanes > 1 ? llvm::FixedVectorType::get(scalar, lanes) : scalar;
  }
  llvm::Constant *splat(int lanes, llvm::Constant *c) {
    return lanes > 1 ? llvm::ConstantVector::getSplat(llvm::ElementCount::getFixed(lanes), c) : c;
  }

  // storage <-> compute conversions for 16-bit floats
  llvm::Value *from_storage(llvm::Value *v, DataType t) {
    DataType s = t.element_of();
    if (s.code == DataType::Float && s.bits == 16) return b_.CreateFPExt(v, compute_type(t));
    if (s.code == DataType::BFloat) {
      llvm::Value *w = b_.CreateZExt(v, with_lanes(b_.getInt32Ty(), t.lanes));
      w = b_.CreateShl(w, splat(t.lanes, b_.getInt32(16)));
      return b_.CreateBitCast(w, compute_type(t));
    }
    if (s.is_bool()) return b_.CreateICmpNE(v, llvm::Constant::getNullValue(v->getType()));
    return v;
  }
  llvm::Value *to_storage(llvm::Value *v, DataType t) {
    DataType s = t.element_of();
    if (s.code == DataType::Float && s.bits == 16) return b_.CreateFPTrunc(v, storage_type(t));
    if (s.code == DataType::BFloat) {
      int n = t.lanes;
      llvm::Type *i32 = with_lanes(b_.getInt32Ty(), n);
      llvm::Value *bits = b_.CreateBitCast(v, i32);
      llvm::Value *lsb = b_.CreateAnd(b_.CreateLShr(bits, splat(n, b_.getInt32(16))), splat(n, b_.getInt32(1)));
      llvm::Value *rounded = b_.CreateAdd(b_.CreateAdd(bits, splat(n, b_.getInt32(0x7fff))), lsb);
      llvm::Value *nan = b_.CreateOr(bits, splat(n, b_.getInt32(0x400000)));
      llvm::Value *is_nan = b_.CreateFCmpUNO(v, v);
      llvm::Value *r = b_.CreateSelect(is_nan, nan, rounded);
      return b_.CreateTrunc(b_.CreateLShr(r, splat(n, b_.getInt32(16))), storage_type(t));
    }
    if (s.is_bool()) return b_.CreateZExt(v, storage_type(t));
    return v;
  }

  void set_attributes(llvm::Function *f) {
    f->addFnAttr(llvm::Attribute::NoUnwind);
    if (!target_.cpu.empty()) f->addFnAttr("target-cpu", target_.cpu);
    if (!target_.features.empty()) f->addFnAttr("target-features", target_.features);
    // LLVM keeps 256-bit vectors on AVX-512 parts unless told otherwise.
    f->addFnAttr("prefer-vector-width", std::to_string(target_.vector_bits));
    f->addFnAttr("min-legal-vector-width", std::to_string(target_.vector_bits));
  }

  // ------------------------------------------------------------ expressions
  llvm::Value *gen(const Expr &e) {
    e.accept(this);
    return value_;
  }
  void gen(const Stmt &s) { s.accept(this); }

  using IRVisitor::visit;

  void visit(const IntImm *op) override { value_ = llvm::ConstantInt::get(compute_type(op->type), op->value, true); }
  void visit(const FloatImm *op) override { value_ = llvm::ConstantFP::get(compute_type(op->type), op->value); }
  void visit(const Var *op) override {
    auto it = sym_.find(op);
    if (it == sym_.end()) throw Error("internal: variable " + op->name + " is not defined here");
    value_ = it->second;
  }

  void visit(const Cast *op) override {
    DataType from = op->value.type(), to = op->type;
    llvm::Value *v = gen(op->value);
    llvm::Type *ty = compute_type(to);
    if (from.is_float() && to.is_float()) {
      // Cast into a 16-bit float rounds through its storage format.
      unsigned fb = v->getType()->getScalarSizeInBits(), tb = ty->getScalarSizeInBits();
      if (fb < tb)
        v = b_.CreateFPExt(v, ty);
      else if (fb > tb)
        v = b_.CreateFPTrunc(v, ty);
      if (to.bits == 16) v = from_storage(to_storage(v, to), to);
    } else if (from.is_float()) {
      if (to.is_bool())
        v = b_.CreateFCmpUNE(v, llvm::Constant::getNullValue(v->getType()));
      else
        v = to.is_uint() ? b_.CreateFPToUI(v, ty) : b_.CreateFPToSI(v, ty);
    } else if (to.is_float()) {
      v = from.is_uint() ? b_.CreateUIToFP(v, ty) : b_.CreateSIToFP(v, ty);
      if (to.bits == 16) v = from_storage(to_storage(v, to), to);
    } else if (to.is_bool()) {
      v = b_.CreateICmpNE(v, llvm::Constant::getNullValue(v->getType()));
    } else {
      v = b_.CreateIntCast(v, ty, from.is_int());
    }
    value_ = v;
  }

  llvm::Value *floor_div(llvm::Value *a, llvm::Value *b, const Expr &be, bool mod) {
    int64_t c;
    if (is_const_int(be, &c) && c > 0 && (c & (c - 1)) == 0) {
      int shift = 0;
      while ((int64_t(1) << shift) < c) ++shift;
      if (mod) return b_.CreateAnd(a, llvm::ConstantInt::get(a->getType(), c - 1));
      return b_.CreateAShr(a, llvm::ConstantInt::get(a->getType(), shift));
    }
    llvm::Value *q = b_.CreateSDiv(a, b), *r = b_.CreateSRem(a, b);
    llvm::Value *zero = llvm::Constant::getNullValue(a->getType());
    llvm::Value *adjust =
        b_.CreateAnd(b_.CreateICmpNE(r, zero), b_.CreateICmpNE(b_.CreateICmpSLT(r, zero), b_.CreateICmpSLT(b, zero)));
    if (mod) return b_.CreateSelect(adjust, b_.CreateAdd(r, b), r);
    return b_.CreateSelect(adjust, b_.CreateSub(q, llvm::ConstantInt::get(a->getType(), 1)), q);
  }

  void visit(const Binary *op) override {
    llvm::Value *a = gen(op->a), *b = gen(op->b);
    DataType t = op->a.type();
    bool f = t.is_float(), s = !t.is_uint();
    bool index = t.element_of() == DataType::index(); // index math never wraps (proven in bounds)
    switch (op->op) {
    case BinaryOp::Add: value_ = f ? b_.CreateFAdd(a, b) : b_.CreateAdd(a, b, "", false, index); return;
    case BinaryOp::Sub: value_ = f ? b_.CreateFSub(a, b) : b_.CreateSub(a, b, "", false, index); return;
    case BinaryOp::Mul: value_ = f ? b_.CreateFMul(a, b) : b_.CreateMul(a, b, "", false, index); return;
    case BinaryOp::Div:
      value_ = f ? b_.CreateFDiv(a, b) : s ? floor_div(a, b, op->b, false) : b_.CreateUDiv(a, b);
      return;
    case BinaryOp::Mod: value_ = s ? floor_div(a, b, op->b, true) : b_.CreateURem(a, b); return;
    case BinaryOp::Min:
      value_ = f ? b_.CreateBinaryIntrinsic(llvm::Intrinsic::minnum, a, b)
                 : b_.CreateSelect(s ? b_.CreateICmpSLT(a, b) : b_.CreateICmpULT(a, b), a, b);
      return;
    case BinaryOp::Max:
      value_ = f ? b_.CreateBinaryIntrinsic(llvm::Intrinsic::maxnum, a, b)
                 : b_.CreateSelect(s ? b_.CreateICmpSGT(a, b) : b_.CreateICmpUGT(a, b), a, b);
      return;
    case BinaryOp::EQ: value_ = f ? b_.CreateFCmpOEQ(a, b) : b_.CreateICmpEQ(a, b); return;
    case BinaryOp::NE: value_ = f ? b_.CreateFCmpUNE(a, b) : b_.CreateICmpNE(a, b); return;
    case BinaryOp::LT:
      value_ = f ? b_.CreateFCmpOLT(a, b) : s ? b_.CreateICmpSLT(a, b) : b_.CreateICmpULT(a, b);
      return;
    case BinaryOp::LE:
      value_ = f ? b_.CreateFCmpOLE(a, b) : s ? b_.CreateICmpSLE(a, b) : b_.CreateICmpULE(a, b);
      return;
    case BinaryOp::GT:
      value_ = f ? b_.CreateFCmpOGT(a, b) : s ? b_.CreateICmpSGT(a, b) : b_.CreateICmpUGT(a, b);
      return;
    case BinaryOp::GE:
      value_ = f ? b_.CreateFCmpOGE(a, b) : s ? b_.CreateICmpSGE(a, b) : b_.CreateICmpUGE(a, b);
      return;
    case BinaryOp::And: value_ = b_.CreateAnd(a, b); return;
    case BinaryOp::Or: value_ = b_.CreateOr(a, b); return;
    }
  }

  void visit(const Not *op) override { value_ = b_.CreateNot(gen(op->value)); }
  void visit(const Select *op) override {
    if (masked_padded_load(op)) return;
    llvm::Value *c = gen(op->cond), *t = gen(op->true_value), *f = gen(op->false_value);
    value_ = b_.CreateSelect(c, t, f);
  }

  static bool broadcast_const(const Expr &e, int64_t *v) {
    auto *b = e.as<Broadcast>();
    return b && is_const_int(b->value, v);
  }

  // A padded read, select(c, buf[s + min(max(ramp(b, 1, L), lo), hi)], z), as pad stages make it
  // (or with one end of the clamp, where loop partitioning proved the other):
  // indices clamped into the buffer, zero outside. Where every lane c selects lies within [lo, hi]
  // (c bounds the same ramp, shifted), the clamp changes nothing that is used: a load of
  // buf[s + ramp(b, 1, L)] masked by c (lanes c rules out are never read) replaces the gather. A ramp of
  // stride 2 to 4 loads the span its lanes cover, masked lane by lane, and picks every stride-th element.
  bool masked_padded_load(const Select *op) {
    auto *ld = op->true_value.as<Load>();
    if (!ld || ld->type.is_scalar()) return false;
    Expr scalar, clamp = ld->index;
    if (auto *add = ld->index.as<Binary>(); add && add->op == BinaryOp::Add) {
      auto *ba = add->a.as<Broadcast>(), *bb = add->b.as<Broadcast>();
      if (ba)
        scalar = ba->value, clamp = add->b;
      else if (bb)
        scalar = bb->value, clamp = add->a;
      else
        return false;
    }
    // The clamp: min and max with constants, either or both (loop partitioning drops the ends it proves).
    std::optional<int64_t> lo, hi;
    for (auto *b = clamp.as<Binary>(); b && (b->op == BinaryOp::Min || b->op == BinaryOp::Max);
         b = clamp.as<Binary>()) {
      int64_t k = 0;
      if (!broadcast_const(b->b, &k) || (b->op == BinaryOp::Min ? hi : lo)) return false;
      (b->op == BinaryOp::Min ? hi : lo) = k;
      clamp = b->a;
    }
    auto *r = short_stride_ramp(clamp);
    if (!r || (!lo && !hi)) return false;
    std::vector<Expr> conjuncts, todo = {op->cond};
    while (!todo.empty()) {
      Expr e = todo.back();
      todo.pop_back();
      if (auto *a = e.as<Binary>(); a && a->op == BinaryOp::And)
        todo.push_back(a->a), todo.push_back(a->b);
      else
        conjuncts.push_back(e);
    }
    bool lo_ok = false, hi_ok = false;
    for (auto &c : conjuncts) { // X cmp k with X = ramp + d: bounds the clamped ramp by k - d
      auto *cmp = c.as<Binary>();
      auto *x = cmp ? cmp->a.as<Ramp>() : nullptr;
      int64_t k = 0, d = 0;
      if (!x || x->lanes != r->lanes || !equal(x->stride, r->stride) || !broadcast_const(cmp->b, &k) ||
          !is_const_int(simplify(x->base - r->base), &d))
        continue;
      lo_ok |= lo && ((cmp->op == BinaryOp::GE && k - d >= *lo) || (cmp->op == BinaryOp::GT && k + 1 - d >= *lo));
      hi_ok |= hi && ((cmp->op == BinaryOp::LT && k - 1 - d <= *hi) || (cmp->op == BinaryOp::LE && k - d <= *hi));
    }
    lo_ok |= !lo, hi_ok |= !hi;
    if (!lo_ok || !hi_ok) return false;
    DataType t = ld->type;
    llvm::Type *elem = storage_type(t.element_of());
    llvm::Value *start = gen(scalar.defined() ? simplify(scalar + r->base) : r->base);
    llvm::Value *p = b_.CreateInBoundsGEP(elem, gen(ld->buffer), start);
    llvm::Value *mask = gen(op->cond);
    llvm::Align align(t.element_of().bytes());
    int64_t stride = 1;
    is_const_int(r->stride, &stride);
    llvm::Value *raw;
    if (stride == 1) {
      raw = b_.CreateMaskedLoad(storage_type(t), p, align, mask);
    } else { // the span the lanes cover, masked lane by lane, then every stride-th element
      int span = int(stride) * (t.lanes - 1) + 1;
      std::vector<int> spread;
      for (int j = 0; j < span; ++j) spread.push_back(j % stride == 0 ? int(j / stride) : t.lanes);
      llvm::Value *wide_mask = b_.CreateShuffleVector(mask, llvm::Constant::getNullValue(mask->getType()), spread);
      raw = b_.CreateMaskedLoad(llvm::FixedVectorType::get(elem, unsigned(span)), p, align, wide_mask);
      raw = every_stride(raw, int(stride), t.lanes);
    }
    value_ = b_.CreateSelect(mask, from_storage(raw, t), gen(op->false_value)); // masked-off lanes: z
    return true;
  }

  // Lanes 0, s, 2s, ... of `wide`.
  llvm::Value *every_stride(llvm::Value *wide, int stride, int lanes) {
    std::vector<int> pick;
    for (int i = 0; i < lanes; ++i) pick.push_back(i * stride);
    return b_.CreateShuffleVector(wide, pick);
  }

  // Calls a scalar libm function lane by lane (for functions without an LLVM intrinsic).
  llvm::Value *libm(const char *f32_name, const char *f64_name, llvm::Value *x) {
    llvm::Type *ty = x->getType();
    llvm::Type *st = ty->getScalarType();
    auto callee =
        mod_.getOrInsertFunction(st->isDoubleTy() ? f64_name : f32_name, llvm::FunctionType::get(st, {st}, false));
    if (auto *vt = llvm::dyn_cast<llvm::FixedVectorType>(ty)) {
      llvm::Value *out = llvm::UndefValue::get(vt);
      for (unsigned i = 0; i < vt->getNumElements(); ++i)
        out = b_.CreateInsertElement(out, b_.CreateCall(callee, {b_.CreateExtractElement(x, i)}), i);
      return out;
    }
    return b_.CreateCall(callee, {x});
  }

  // a * b + acc, fused where the target can (the inline math functions' polynomials).
  llvm::Value *fma(llvm::Value *a, llvm::Value *b, llvm::Value *acc) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {a->getType()}, {a, b, acc});
  }

  // exp of f32 (scalar or vector), inline: LLVM has no vector exp of its own (llvm.exp on a vector
  // becomes one libm call per lane), and inline arithmetic lets unrolled scalar code be
  // SLP-vectorized where a call could not be. Cephes' expf: x = n ln2 + r
  // with |r| <= ln2/2, a degree-6 polynomial for e^r, 2^n built in the exponent bits; within
  // 2 ulp of expf over [-87.3, 88.7], NaN propagated, overflow to +inf, underflow to 0.
  llvm::Value *inline_expf(llvm::Value *x) {
    llvm::Type *vt = x->getType();
    auto c = [&](float v) { return llvm::ConstantFP::get(vt, v); };
    llvm::Value *hi = c(88.7228390f), *lo = c(-87.3365448f);
    llvm::Value *clamped = b_.CreateSelect(b_.CreateFCmpOGT(x, hi), hi, x);
    clamped = b_.CreateSelect(b_.CreateFCmpOLT(clamped, lo), lo, clamped);
    llvm::Value *fx = b_.CreateUnaryIntrinsic(llvm::Intrinsic::floor, fma(clamped, c(1.44269504088896341f), c(0.5f)));
    llvm::Value *r = fma(fx, c(-0.693359375f), clamped);
    r = fma(fx, c(2.12194440e-4f), r);
    llvm::Value *p = c(1.9875691500e-4f);
    for (float k : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
      p = fma(p, r, c(k));
    llvm::Value *y = fma(p, b_.CreateFMul(r, r), b_.CreateFAdd(r, c(1.0f)));
    llvm::Type *it = b_.getInt32Ty();
    if (auto *v = llvm::dyn_cast<llvm::FixedVectorType>(vt)) it = llvm::FixedVectorType::get(it, v->getNumElements());
    llvm::Value *n = b_.CreateFPToSI(fx, it);
    // 2^n as (n + 127) << 23; n is within [-126, 128] after the clamp; 128 is split as 2^127 * 2.
    llvm::Value *n1 =
        b_.CreateSelect(b_.CreateICmpSGT(n, llvm::ConstantInt::get(it, 127)), llvm::ConstantInt::get(it, 127), n);
    llvm::Value *scale = b_.CreateBitCast(b_.CreateShl(b_.CreateAdd(n1, llvm::ConstantInt::get(it, 127)), 23), vt);
    llvm::Value *out = b_.CreateFMul(y, scale);
    out = b_.CreateSelect(b_.CreateICmpSGT(n, llvm::ConstantInt::get(it, 127)), b_.CreateFMul(out, c(2.0f)), out);
    out = b_.CreateSelect(b_.CreateFCmpOGT(x, hi), c(std::numeric_limits<float>::infinity()), out);
    out = b_.CreateSelect(b_.CreateFCmpOLT(x, lo), c(0.0f), out);
    return b_.CreateSelect(b_.CreateFCmpUNO(x, x), x, out); // NaN in, NaN out
  }

  // Odd rational approximations of f32 erf and tanh, inline for the same reasons as exp (a libm call per lane
  // made GELU ~40x slower than its loads). x is clamped where the function is +-1 in f32; then
  // f(x) = x P(x^2) / Q(x^2), the minimax coefficients Eigen and XLA use; within 5e-7 relative of the true
  // value (test_codegen). NaN passes through (the clamps' comparisons are false for it).
  llvm::Value *odd_rational(llvm::Value *x, float limit, std::initializer_list<float> p,
                            std::initializer_list<float> q) {
    llvm::Type *vt = x->getType();
    auto c = [&](float v) { return llvm::ConstantFP::get(vt, v); };
    llvm::Value *clamped = b_.CreateSelect(b_.CreateFCmpOGT(x, c(limit)), c(limit), x);
    clamped = b_.CreateSelect(b_.CreateFCmpOLT(clamped, c(-limit)), c(-limit), clamped);
    llvm::Value *x2 = b_.CreateFMul(clamped, clamped);
    auto horner = [&](std::initializer_list<float> k) { // highest degree first
      llvm::Value *acc = c(*k.begin());
      for (auto it = k.begin() + 1; it != k.end(); ++it) acc = fma(acc, x2, c(*it));
      return acc;
    };
    return b_.CreateFDiv(b_.CreateFMul(clamped, horner(p)), horner(q));
  }
  llvm::Value *inline_erff(llvm::Value *x) {
    return odd_rational(x, 4.0f,
                        {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f, -5.69250639462346e-05f,
                         -7.34990630326855e-04f, -2.95459980854025e-03f, -1.60960333262415e-02f},
                        {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f, -7.37332916720468e-03f,
                         -1.42647390514189e-02f});
  }
  llvm::Value *inline_tanhf(llvm::Value *x) {
    llvm::Value *r =
        odd_rational(x, 7.90531110763549805f,
                     {-2.76076847742355e-16f, 2.00018790482477e-13f, -8.60467152213735e-11f, 5.12229709037114e-08f,
                      1.48572235717979e-05f, 6.37261928875436e-04f, 4.89352455891786e-03f},
                     {1.19825839466702e-06f, 1.18534705686654e-04f, 2.26843463243900e-03f, 4.89352518554385e-03f});
    // Below 0.0004, tanh(x) = x in f32 (and the rational form loses the sign of -0).
    llvm::Value *tiny = b_.CreateFCmpOLT(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x),
                                         llvm::ConstantFP::get(x->getType(), 0.0004f));
    return b_.CreateSelect(tiny, x, r);
  }

  void visit(const Call *op) override {
    std::vector<llvm::Value *> args;
    for (auto &a : op->args) args.push_back(gen(a));
    llvm::Value *x = args[0];
    bool f = op->type.is_float();
    switch (op->func) {
    case Intrinsic::Exp:
      if (x->getType()->getScalarType()->isFloatTy())
        value_ = inline_expf(x);
      else
        value_ = b_.CreateUnaryIntrinsic(llvm::Intrinsic::exp, x);
      return;
    case Intrinsic::Log: value_ = b_.CreateUnaryIntrinsic(llvm::Intrinsic::log, x); return;
    case Intrinsic::Sqrt: value_ = b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, x); return;
    case Intrinsic::Rsqrt:
      value_ =
          b_.CreateFDiv(llvm::ConstantFP::get(x->getType(), 1.0), b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, x));
      return;
    case Intrinsic::Floor: value_ = b_.CreateUnaryIntrinsic(llvm::Intrinsic::floor, x); return;
    case Intrinsic::Ceil: value_ = b_.CreateUnaryIntrinsic(llvm::Intrinsic::ceil, x); return;
    case Intrinsic::Pow: value_ = b_.CreateBinaryIntrinsic(llvm::Intrinsic::pow, x, args[1]); return;
    case Intrinsic::Tanh:
      value_ = x->getType()->getScalarType()->isFloatTy() ? inline_tanhf(x) : libm("tanhf", "tanh", x);
      return;
    case Intrinsic::Erf:
      value_ = x->getType()->getScalarType()->isFloatTy() ? inline_erff(x) : libm("erff", "erf", x);
      return;
    case Intrinsic::Abs:
      if (f)
        value_ = b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
      else
        value_ = b_.CreateSelect(b_.CreateICmpSLT(x, llvm::Constant::getNullValue(x->getType())), b_.CreateNeg(x), x);
      return;
    }
  }

  // Contiguous when the index is Ramp(base, 1, lanes).
  const Ramp *dense_ramp(const Expr &index) {
    auto *r = index.as<Ramp>();
    return r && is_one(r->stride) ? r : nullptr;
  }
  // Ramp(base, s, lanes) with a constant stride of 1 to 4: read as the span it covers and a shuffle
  // (a stride-2 convolution's inputs), which beats a gather by far.
  static const Ramp *short_stride_ramp(const Expr &index) {
    auto *r = index.as<Ramp>();
    int64_t s = 0;
    return r && is_const_int(r->stride, &s) && s >= 1 && s <= 4 ? r : nullptr;
  }

  void visit(const Load *op) override {
    llvm::Value *buf = gen(op->buffer);
    DataType t = op->type;
    llvm::Type *elem = storage_type(t.element_of());
    unsigned align = unsigned(t.element_of().bytes());
    llvm::Value *raw;
    if (t.is_scalar()) {
      raw = b_.CreateAlignedLoad(elem, b_.CreateInBoundsGEP(elem, buf, gen(op->index)), llvm::Align(align));
    } else if (auto *r = dense_ramp(op->index)) {
      llvm::Value *p = b_.CreateInBoundsGEP(elem, buf, gen(r->base));
      raw = b_.CreateAlignedLoad(storage_type(t), p, llvm::Align(align));
    } else if (auto *r = short_stride_ramp(op->index)) { // every element between the lanes lies in the buffer too
      int64_t stride = 0;
      is_const_int(r->stride, &stride);
      llvm::Value *p = b_.CreateInBoundsGEP(elem, buf, gen(r->base));
      auto *span = llvm::FixedVectorType::get(elem, unsigned(stride * (t.lanes - 1) + 1));
      raw = every_stride(b_.CreateAlignedLoad(span, p, llvm::Align(align)), int(stride), t.lanes);
    } else {
      llvm::Value *ptrs = b_.CreateInBoundsGEP(elem, buf, gen(op->index));
      raw = b_.CreateMaskedGather(storage_type(t), ptrs, llvm::Align(align));
    }
    value_ = from_storage(raw, t);
  }

  void visit(const Ramp *op) override {
    llvm::Value *base = gen(op->base), *stride = gen(op->stride);
    std::vector<llvm::Constant *> iota;
    for (int i = 0; i < op->lanes; ++i) iota.push_back(llvm::ConstantInt::get(base->getType(), i));
    llvm::Value *steps = b_.CreateMul(b_.CreateVectorSplat(op->lanes, stride), llvm::ConstantVector::get(iota));
    value_ = b_.CreateAdd(b_.CreateVectorSplat(op->lanes, base), steps);
  }
  void visit(const Broadcast *op) override { value_ = b_.CreateVectorSplat(op->lanes, gen(op->value)); }
  void visit(const Let *op) override {
    llvm::Value *v = gen(op->value);
    Binding bind(sym_, op->var.get(), v);
    value_ = gen(op->body);
  }
  void visit(const TensorRead *op) override {
    throw Error("internal: tensor read of " + op->tensor->name + " reached code generation (not flattened)");
  }
  void visit(const AddressOf *op) override {
    value_ = b_.CreateInBoundsGEP(storage_type(op->element), gen(op->buffer), gen(op->index));
  }
  void visit(const ExternCall *op) override {
    std::vector<llvm::Value *> args;
    std::vector<llvm::Type *> types;
    for (auto &a : op->args) {
      args.push_back(gen(a));
      types.push_back(args.back()->getType());
    }
    if (const sched::TensorIntrinsic *t = sched::intrinsic_of_symbol(op->name)) {
      if (t->target_kind != "cpu")
        throw Error("tensor intrinsic " + t->name + " runs on " + t->target_kind +
                    " devices; the CPU back end runs it only emulated (GPU emulation or --emulate-intrinsics)");
      if (!target_.has_feature(t->required_feature))
        throw Error("tensor intrinsic " + t->name + " needs the CPU feature " + t->required_feature +
                    ", which target " + target_.name + " lacks (check it on this CPU with --emulate-intrinsics)");
    }
    auto callee = mod_.getOrInsertFunction(op->name, llvm::FunctionType::get(b_.getVoidTy(), types, false));
    b_.CreateCall(callee, args);
  }
  void visit(const Reduce *) override { throw Error("internal: reduction reached code generation"); }

  // ------------------------------------------------------------- statements
  struct Binding {
    Binding(std::unordered_map<const ExprNode *, llvm::Value *> &m, const ExprNode *k, llvm::Value *v)
        : map(m), key(k) {
      auto it = m.find(k);
      if (it != m.end()) old = it->second;
      m[k] = v;
    }
    ~Binding() {
      if (old)
        map[key] = old;
      else
        map.erase(key);
    }
    std::unordered_map<const ExprNode *, llvm::Value *> &map;
    const ExprNode *key;
    llvm::Value *old = nullptr;
  };

  void visit(const Store *op) override {
    llvm::Value *buf = gen(op->buffer);
    DataType t = op->value.type();
    llvm::Value *v = to_storage(gen(op->value), t);
    llvm::Type *elem = storage_type(t.element_of());
    llvm::Align align(unsigned(t.element_of().bytes()));
    if (t.is_scalar()) {
      b_.CreateAlignedStore(v, b_.CreateInBoundsGEP(elem, buf, gen(op->index)), align);
    } else if (auto *r = dense_ramp(op->index)) {
      b_.CreateAlignedStore(v, b_.CreateInBoundsGEP(elem, buf, gen(r->base)), align);
    } else {
      b_.CreateMaskedScatter(v, b_.CreateInBoundsGEP(elem, buf, gen(op->index)), align);
    }
  }

  void visit(const TensorWrite *op) override {
    throw Error("internal: tensor write to " + op->tensor->name + " reached code generation");
  }
  void visit(const Realize *op) override {
    throw Error("internal: realize of " + op->tensor->name + " reached code generation");
  }

  // for (v = min; v < min + extent; ++v) body
  void emit_loop(const Expr &var, llvm::Value *begin, llvm::Value *end, const Stmt &body) {
    llvm::BasicBlock *pre = b_.GetInsertBlock();
    auto *header = llvm::BasicBlock::Create(ctx_, var.as<Var>()->name + ".header", fn_);
    auto *loop = llvm::BasicBlock::Create(ctx_, var.as<Var>()->name + ".body", fn_);
    auto *exit = llvm::BasicBlock::Create(ctx_, var.as<Var>()->name + ".exit", fn_);
    b_.CreateBr(header);
    b_.SetInsertPoint(header);
    llvm::PHINode *phi = b_.CreatePHI(b_.getInt64Ty(), 2, var.as<Var>()->name);
    phi->addIncoming(begin, pre);
    b_.CreateCondBr(b_.CreateICmpSLT(phi, end), loop, exit);
    b_.SetInsertPoint(loop);
    {
      Binding bind(sym_, var.get(), phi);
      gen(body);
    }
    llvm::Value *next = b_.CreateAdd(phi, b_.getInt64(1), "", true, true);
    phi->addIncoming(next, b_.GetInsertBlock());
    b_.CreateBr(header);
    b_.SetInsertPoint(exit);
  }

  void visit(const For *op) override {
    switch (op->kind) {
    case ForKind::GpuBlock:
    case ForKind::GpuThread:
    case ForKind::Vthread:
      throw Error("loop " + op->var.as<Var>()->name + " is bound to a GPU thread index (" + op->thread_tag +
                  "); the CPU back end cannot compile it: use a GPU target");
    case ForKind::Parallel: emit_parallel(op); return;
    default: break;
    }
    llvm::Value *mn = gen(op->min), *ext = gen(op->extent);
    emit_loop(op->var, mn, b_.CreateAdd(mn, ext), op->body);
  }

  // Variables (and buffers) the body reads from enclosing scopes.
  std::vector<const ExprNode *> free_vars(const Stmt &body) {
    struct Collect : IRVisitor {
      using IRVisitor::visit;
      std::vector<const ExprNode *> order;
      std::unordered_set<const ExprNode *> seen;
      void visit(const Var *op) override {
        if (seen.insert(op).second) order.push_back(op);
      }
    } c;
    body.accept(&c);
    std::vector<const ExprNode *> out;
    for (auto *v : c.order)
      if (sym_.count(v)) out.push_back(v);
    return out;
  }

  // The body becomes a task `void task(i64 begin, i64 end, ptr closure)` run
  // by the thread pool; captured values travel in a struct on the stack.
  void emit_parallel(const For *op) {
    llvm::Value *mn = gen(op->min), *ext = gen(op->extent);
    std::vector<const ExprNode *> captured = free_vars(op->body);
    captured.erase(std::remove(captured.begin(), captured.end(), op->var.get()), captured.end());
    std::vector<llvm::Type *> fields{b_.getInt64Ty()};
    for (auto *v : captured) fields.push_back(sym_.at(v)->getType());
    auto *closure_ty = llvm::StructType::get(ctx_, fields);
    llvm::Value *closure = entry_alloca(closure_ty);
    b_.CreateStore(mn, b_.CreateStructGEP(closure_ty, closure, 0));
    for (size_t i = 0; i < captured.size(); ++i)
      b_.CreateStore(sym_.at(captured[i]), b_.CreateStructGEP(closure_ty, closure, unsigned(i + 1)));

    auto *task_ty = llvm::FunctionType::get(b_.getVoidTy(), {b_.getInt64Ty(), b_.getInt64Ty(), b_.getPtrTy()}, false);
    auto *task = llvm::Function::Create(task_ty, llvm::Function::InternalLinkage,
                                        fn_->getName() + "." + op->var.as<Var>()->name + ".task", mod_);
    set_attributes(task);
    auto *pool_ty = llvm::FunctionType::get(b_.getVoidTy(), {b_.getInt64Ty(), b_.getPtrTy(), b_.getPtrTy()}, false);
    b_.CreateCall(mod_.getOrInsertFunction("tessel_parallel_for", pool_ty), {ext, task, closure});

    // Generate the task body in its own function and scope.
    llvm::IRBuilderBase::InsertPointGuard guard(b_);
    llvm::Function *saved_fn = fn_;
    auto saved_sym = sym_;
    fn_ = task;
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", task));
    llvm::Value *env = task->getArg(2);
    llvm::Value *tmin = b_.CreateLoad(b_.getInt64Ty(), b_.CreateStructGEP(closure_ty, env, 0));
    sym_.clear();
    for (size_t i = 0; i < captured.size(); ++i)
      sym_[captured[i]] = b_.CreateLoad(fields[i + 1], b_.CreateStructGEP(closure_ty, env, unsigned(i + 1)));
    llvm::Value *begin = b_.CreateAdd(tmin, task->getArg(0)), *end = b_.CreateAdd(tmin, task->getArg(1));
    emit_loop(op->var, begin, end, op->body);
    b_.CreateRetVoid();
    fn_ = saved_fn;
    sym_ = std::move(saved_sym);
  }

  llvm::Value *entry_alloca(llvm::Type *ty, llvm::Value *count = nullptr, unsigned align = 64) {
    llvm::IRBuilder<> eb(&fn_->getEntryBlock(), fn_->getEntryBlock().begin());
    llvm::AllocaInst *a = eb.CreateAlloca(ty, count);
    a->setAlignment(llvm::Align(align));
    return a;
  }

  void visit(const Allocate *op) override {
    int64_t n;
    int64_t bytes_per = op->dtype.bytes();
    llvm::Value *mem;
    bool heap = !(is_const_int(op->extent, &n) && n * bytes_per <= 32 * 1024);
    if (!heap) {
      mem = entry_alloca(storage_type(op->dtype), b_.getInt64(n));
    } else {
      auto *alloc_ty = llvm::FunctionType::get(b_.getPtrTy(), {b_.getInt64Ty()}, false);
      llvm::Value *bytes = b_.CreateMul(gen(op->extent), b_.getInt64(bytes_per));
      mem = b_.CreateCall(mod_.getOrInsertFunction("tessel_alloc", alloc_ty), {bytes});
      if (auto *call = llvm::dyn_cast<llvm::CallInst>(mem)) call->addRetAttr(llvm::Attribute::NoAlias);
    }
    {
      Binding bind(sym_, op->buffer.get(), mem);
      gen(op->body);
    }
    if (heap) {
      auto *free_ty = llvm::FunctionType::get(b_.getVoidTy(), {b_.getPtrTy()}, false);
      b_.CreateCall(mod_.getOrInsertFunction("tessel_free", free_ty), {mem});
    }
  }

  void visit(const IfThenElse *op) override {
    llvm::Value *c = gen(op->cond);
    auto *then_bb = llvm::BasicBlock::Create(ctx_, "then", fn_);
    auto *merge = llvm::BasicBlock::Create(ctx_, "endif", fn_);
    auto *else_bb = op->else_case.defined() ? llvm::BasicBlock::Create(ctx_, "else", fn_) : merge;
    b_.CreateCondBr(c, then_bb, else_bb);
    b_.SetInsertPoint(then_bb);
    gen(op->then_case);
    b_.CreateBr(merge);
    if (op->else_case.defined()) {
      b_.SetInsertPoint(else_bb);
      gen(op->else_case);
      b_.CreateBr(merge);
    }
    b_.SetInsertPoint(merge);
  }

  void visit(const LetStmt *op) override {
    llvm::Value *v = gen(op->value);
    Binding bind(sym_, op->var.get(), v);
    gen(op->body);
  }
  void visit(const Block *op) override {
    for (auto &s : op->stmts) gen(s);
  }
  void visit(const Evaluate *op) override { gen(op->value); }

  llvm::LLVMContext &ctx_;
  llvm::Module &mod_;
  const Target &target_;
  llvm::IRBuilder<> b_;
  llvm::Function *fn_ = nullptr;
  llvm::Value *value_ = nullptr;
  std::unordered_map<const ExprNode *, llvm::Value *> sym_;
};

} // namespace

std::unique_ptr<llvm::Module> build_llvm_module(const std::vector<const lower::LoweredFunc *> &funcs,
                                                const Target &target, llvm::LLVMContext &ctx) {
  auto mod = std::make_unique<llvm::Module>(funcs.empty() ? "empty" : funcs.back()->name, ctx);
  mod->setTargetTriple(target.triple);
  for (auto *f : funcs) CodeGen(ctx, *mod, target).build(*f);
  return mod;
}

} // namespace tessel::codegen
