// The operator library. Conventions shared by all operators:
//  * dtype is the element type of the inputs. f32/f64 compute and store in
//    that type. f16/bf16 reductions accumulate in an f32 stage (e.g. `Cacc`)
//    followed by a stage casting to the f16/bf16 output; elementwise math
//    (softmax, layernorm, gelu) is likewise done in f32. i8 contractions
//    accumulate i32 products and produce an i32 output.
//  * Weights (conv/dense weights, biases, layernorm gamma/beta) are inputs
//    marked const.
//  * conv2d: NCHW uses data [N,C,H,W], weight OIHW [K,C/groups,R,S], output
//    [N,K,OH,OW]; NHWC uses data [N,H,W,C], weight HWIO [R,S,C/groups,K],
//    output [N,OH,OW,K]. Padding is a separate stage `pad` that selects zero
//    outside the image and reads the input at clamped indices, so every read
//    is provably in bounds. With pad=0 there is no pad stage.
//  * Pooling is NCHW. max_pool2d pads with -inf (the lowest value for i8);
//    avg_pool2d divides by the number of valid (unpadded) elements of each
//    window, i.e. count_include_pad=false like PyTorch's
//    `AvgPool2d(count_include_pad=False)`. Both require 2*pad <= kernel size
//    (as PyTorch does), so no window lies entirely in the padding.
#include "te/ops.h"

#include "te/tensor.h"
#include "te/text.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace tessel::te {

namespace {

using ir::cast;
using ir::make_const;

// ------------------------------------------------------------ parameter kinds
enum class Kind { PosInt, NonNegInt, PosFloat, Dtype, Layout };

struct ParamDef {
  std::string name;
  Kind kind;
  std::string default_value; // empty: required
  std::string help;
};

struct Value {
  int64_t i = 0;
  double f = 0;
  DataType dtype;
  std::string text; // canonical spelling
  int column = 0;   // 1-based column of the value in the spec; 0 when defaulted
};

// A semantic error about the combination of values; `keys` are the keys to
// blame, the first one the user spelled out provides the column.
struct SpecError {
  std::vector<std::string> keys;
  std::string message;
};

class Args {
public:
  std::map<std::string, Value> values;
  int64_t i(const std::string &k) const { return values.at(k).i; }
  double f(const std::string &k) const { return values.at(k).f; }
  DataType dtype() const { return values.at("dtype").dtype; }
  const std::string &s(const std::string &k) const { return values.at(k).text; }
};

struct Built {
  std::vector<Tensor> inputs, outputs;
};
using Builder = std::function<Built(const Args &)>;

struct OpDef {
  std::string name, summary, example;
  std::vector<ParamDef> params;
  std::vector<DataType> dtypes;
  Builder build;
};

// ------------------------------------------------------------------ helpers
std::string to_s(int64_t v) { return std::to_string(v); }

// Shortest text that reads back to the same double.
std::string format_double(double v) {
  char buf[64];
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// Precision plan of an operator for a given input dtype.
struct Prec {
  DataType in, acc, out;
  bool cast_stage() const { return acc != out; } // a separate stage rounds acc -> out
};
Prec contraction_prec(DataType dt) {
  if (dt == DataType::i8()) return {dt, DataType::i32(), DataType::i32()};
  if (dt == DataType::f16() || dt == DataType::bf16()) return {dt, DataType::f32(), dt};
  return {dt, dt, dt};
}
Expr up(const Prec &p, Expr e) { return p.acc == p.in ? e : cast(p.acc, std::move(e)); }
Expr down(const Prec &p, Expr e) { return p.acc == p.out ? e : cast(p.out, std::move(e)); }

Expr clamp(Expr x, int64_t lo, int64_t hi) { return ir::min(ir::max(std::move(x), Expr(lo)), Expr(hi)); }
// x * c without a `* 1` in the printed form.
Expr scaled(Expr x, int64_t c) { return c == 1 ? x : x * Expr(c); }

// The `pad` stage: `data` with `pad` elements of `fill` on each side of the
// spatial dimensions hd and wd. Reads use clamped indices (always in bounds)
// and the select discards them outside the image.
Tensor pad_stage(const Tensor &data, int64_t pad, int hd, int wd, Expr fill, const std::vector<std::string> &names) {
  std::vector<int64_t> shape = data->shape;
  int64_t H = shape[hd], W = shape[wd];
  shape[hd] += 2 * pad;
  shape[wd] += 2 * pad;
  return compute(
      shape,
      [&](Index i) {
        std::vector<Expr> idx(i.begin(), i.end());
        Expr h = i[hd], w = i[wd];
        idx[hd] = clamp(h - Expr(pad), 0, H - 1);
        idx[wd] = clamp(w - Expr(pad), 0, W - 1);
        Expr inside = h >= Expr(pad) && h < Expr(H + pad) && w >= Expr(pad) && w < Expr(W + pad);
        return ir::select(inside, data(idx), fill);
      },
      "pad", names);
}

// Output extent of a sliding window, or a SpecError naming `keys` (kernel key
// first, then input key).
int64_t window_out(int64_t in, int64_t pad, int64_t kernel, int64_t dilation, int64_t stride, const char *dim,
                   std::vector<std::string> keys) {
  int64_t extent = dilation * (kernel - 1) + 1;
  if (in + 2 * pad < extent) {
    std::string msg = "the output " + std::string(dim) + " is not positive: the window spans " + to_s(extent) + " (" +
                      keys[0] + "=" + to_s(kernel) + (dilation > 1 ? ", dilation=" + to_s(dilation) : "") +
                      ") but the padded input has " + keys[1] + " + 2*pad = " + to_s(in + 2 * pad) +
                      "; use a smaller window or more padding";
    throw SpecError{std::move(keys), msg};
  }
  return (in + 2 * pad - extent) / stride + 1;
}

// --------------------------------------------------------------- operators
Built build_matmul(const Args &a) {
  int64_t M = a.i("M"), N = a.i("N"), K = a.i("K");
  Prec p = contraction_prec(a.dtype());
  Tensor A = placeholder({M, K}, p.in, "A");
  Tensor B = placeholder({K, N}, p.in, "B");
  IterVar k = reduce_axis(K, "k");
  Tensor C = compute({M, N}, [&](Index i) { return sum(up(p, A(i[0], k)) * up(p, B(k, i[1])), {k}); },
                     p.cast_stage() ? "Cacc" : "C", {"i", "j"});
  if (p.cast_stage()) C = compute({M, N}, [&](Index i) { return down(p, C(i[0], i[1])); }, "C", {"i", "j"});
  return {{A, B}, {C}};
}

Built build_batch_matmul(const Args &a) {
  int64_t Bn = a.i("B"), M = a.i("M"), N = a.i("N"), K = a.i("K");
  Prec p = contraction_prec(a.dtype());
  Tensor A = placeholder({Bn, M, K}, p.in, "A");
  Tensor B = placeholder({Bn, K, N}, p.in, "B");
  IterVar k = reduce_axis(K, "k");
  Tensor C = compute({Bn, M, N}, [&](Index i) { return sum(up(p, A(i[0], i[1], k)) * up(p, B(i[0], k, i[2])), {k}); },
                     p.cast_stage() ? "Cacc" : "C", {"b", "i", "j"});
  if (p.cast_stage())
    C = compute({Bn, M, N}, [&](Index i) { return down(p, C(i[0], i[1], i[2])); }, "C", {"b", "i", "j"});
  return {{A, B}, {C}};
}

Built build_dense(const Args &a) {
  int64_t M = a.i("M"), N = a.i("N"), K = a.i("K");
  Prec p = contraction_prec(a.dtype());
  DataType bias_t = p.in == DataType::i8() ? DataType::i32() : p.in; // quantized bias is i32
  Tensor X = placeholder({M, K}, p.in, "X");
  Tensor Wt = placeholder({N, K}, p.in, "W", /*is_constant=*/true);
  Tensor bias = placeholder({N}, bias_t, "bias", /*is_constant=*/true);
  IterVar k = reduce_axis(K, "k");
  Tensor XW =
      compute({M, N}, [&](Index i) { return sum(up(p, X(i[0], k)) * up(p, Wt(i[1], k)), {k}); }, "matmul", {"i", "j"});
  Tensor Y = compute({M, N}, [&](Index i) { return down(p, XW(i[0], i[1]) + up(p, bias(i[1]))); }, "Y", {"i", "j"});
  return {{X, Wt, bias}, {Y}};
}

struct ConvParams {
  int64_t N, C, H, W, K, R, S, stride, pad, dilation, groups;
  bool nhwc;
  DataType dtype;
  bool bias_relu;
};

Built build_conv(const ConvParams &c, const std::vector<std::string> &key_names) {
  // key_names: the spec's names for (C, K, groups), for error messages.
  if (c.C % c.groups != 0)
    throw SpecError{{"groups", key_names[0]},
                    key_names[0] + "=" + to_s(c.C) + " is not divisible by groups=" + to_s(c.groups)};
  if (c.K % c.groups != 0)
    throw SpecError{{"groups", key_names[1]},
                    key_names[1] + "=" + to_s(c.K) + " is not divisible by groups=" + to_s(c.groups)};
  int64_t OH = window_out(c.H, c.pad, c.R, c.dilation, c.stride, "height", {"R", "H", "pad", "dilation"});
  int64_t OW = window_out(c.W, c.pad, c.S, c.dilation, c.stride, "width", {"S", "W", "pad", "dilation"});
  Prec p = contraction_prec(c.dtype);
  const int64_t Cg = c.C / c.groups, Kg = c.K / c.groups;
  const int hd = c.nhwc ? 1 : 2, wd = c.nhwc ? 2 : 3, cd = c.nhwc ? 3 : 1;

  std::vector<int64_t> dshape =
      c.nhwc ? std::vector<int64_t>{c.N, c.H, c.W, c.C} : std::vector<int64_t>{c.N, c.C, c.H, c.W};
  std::vector<int64_t> wshape =
      c.nhwc ? std::vector<int64_t>{c.R, c.S, Cg, c.K} : std::vector<int64_t>{c.K, Cg, c.R, c.S};
  std::vector<int64_t> oshape =
      c.nhwc ? std::vector<int64_t>{c.N, OH, OW, c.K} : std::vector<int64_t>{c.N, c.K, OH, OW};
  std::vector<std::string> names =
      c.nhwc ? std::vector<std::string>{"n", "h", "w", "c"} : std::vector<std::string>{"n", "c", "h", "w"};
  Tensor data = placeholder(dshape, p.in, "data");
  Tensor weight = placeholder(wshape, p.in, "weight", /*is_constant=*/true);
  Tensor padded = c.pad > 0 ? pad_stage(data, c.pad, hd, wd, ir::make_zero(p.in), names) : data;

  IterVar rc = reduce_axis(Cg, "rc"), ry = reduce_axis(c.R, "ry"), rx = reduce_axis(c.S, "rx");
  std::vector<IterVar> raxes;
  if (Cg > 1) raxes.push_back(rc); // depthwise: the single input channel needs no axis
  raxes.push_back(ry);
  raxes.push_back(rx);
  bool needs_epilogue = c.bias_relu || p.cast_stage();
  Tensor conv = compute(
      oshape,
      [&](Index i) {
        Expr k = i[cd];
        Expr r = Cg > 1 ? rc.var : Expr(int64_t(0));
        // Input channel: the first channel of k's group plus the reduced one.
        Expr ch = r;
        if (c.groups > 1) {
          Expr group = Kg == 1 ? k : k / Expr(Kg);
          ch = Cg > 1 ? group * Expr(Cg) + r : group;
        }
        Expr h = scaled(i[hd], c.stride) + scaled(ry.var, c.dilation);
        Expr w = scaled(i[wd], c.stride) + scaled(rx.var, c.dilation);
        Expr x = c.nhwc ? padded(i[0], h, w, ch) : padded(i[0], ch, h, w);
        Expr wt = c.nhwc ? weight(ry, rx, r, k) : weight(k, r, ry, rx);
        return sum(up(p, x) * up(p, wt), raxes);
      },
      needs_epilogue && !c.bias_relu ? "conv_acc" : "conv", names);
  if (!needs_epilogue) return {{data, weight}, {conv}};
  if (!c.bias_relu) {
    Tensor out = compute(
        oshape, [&](Index i) { return down(p, conv(std::vector<Expr>(i.begin(), i.end()))); }, "conv", names);
    return {{data, weight}, {out}};
  }
  DataType bias_t = p.in == DataType::i8() ? DataType::i32() : p.in;
  Tensor bias = placeholder({c.K}, bias_t, "bias", /*is_constant=*/true);
  Tensor out = compute(
      oshape,
      [&](Index i) {
        Expr v = conv(std::vector<Expr>(i.begin(), i.end())) + up(p, bias(i[cd]));
        return down(p, ir::max(v, ir::make_zero(p.acc)));
      },
      "out", names);
  return {{data, weight, bias}, {out}};
}

ConvParams conv_params(const Args &a, bool bias_relu) {
  return {a.i("N"),  a.i("C"),      a.i("H"),   a.i("W"),        a.i("K"),      a.i("R"),
          a.i("S"),  a.i("stride"), a.i("pad"), a.i("dilation"), a.i("groups"), a.s("layout") == "NHWC",
          a.dtype(), bias_relu};
}

Built build_conv2d(const Args &a) { return build_conv(conv_params(a, false), {"C", "K"}); }
Built build_conv2d_bias_relu(const Args &a) { return build_conv(conv_params(a, true), {"C", "K"}); }
Built build_depthwise(const Args &a) {
  int64_t C = a.i("C");
  ConvParams c{a.i("N"),      C,          a.i("H"),        a.i("W"), C * a.i("multiplier"),   a.i("R"),  a.i("S"),
               a.i("stride"), a.i("pad"), a.i("dilation"), C,        a.s("layout") == "NHWC", a.dtype(), false};
  return build_conv(c, {"C", "multiplier"});
}

void check_pool_pad(const Args &a) {
  if (2 * a.i("pad") > a.i("R") || 2 * a.i("pad") > a.i("S"))
    throw SpecError{{"pad", "R", "S"},
                    "pad=" + to_s(a.i("pad")) + " is more than half the window (R=" + to_s(a.i("R")) +
                        ", S=" + to_s(a.i("S")) + "); windows would lie entirely in the padding"};
}

Built build_pool(const Args &a, bool is_max) {
  int64_t N = a.i("N"), C = a.i("C"), H = a.i("H"), W = a.i("W"), R = a.i("R"), S = a.i("S");
  int64_t st = a.i("stride"), pad = a.i("pad");
  check_pool_pad(a);
  int64_t OH = window_out(H, pad, R, 1, st, "height", {"R", "H", "pad", "stride"});
  int64_t OW = window_out(W, pad, S, 1, st, "width", {"S", "W", "pad", "stride"});
  DataType dt = a.dtype();
  std::vector<std::string> names = {"n", "c", "h", "w"};
  Tensor data = placeholder({N, C, H, W}, dt, "data");
  Expr fill = is_max ? ir::min_value(dt) : ir::make_zero(dt);
  Tensor padded = pad > 0 ? pad_stage(data, pad, 2, 3, fill, names) : data;
  IterVar r = reduce_axis(R, "r"), s = reduce_axis(S, "s");
  auto window = [&](Index i) { return padded(i[0], i[1], scaled(i[2], st) + r.var, scaled(i[3], st) + s.var); };
  if (is_max) {
    Tensor pool = compute(
        {N, C, OH, OW},
        [&](Index i) {
          return max_reduce(window(i), {r, s});
        },
        "pool", names);
    return {{data}, {pool}};
  }
  Prec p = contraction_prec(dt);
  Tensor total = compute(
      {N, C, OH, OW},
      [&](Index i) {
        return sum(up(p, window(i)), {r, s});
      },
      "pool_sum", names);
  Tensor pool = compute(
      {N, C, OH, OW},
      [&](Index i) {
        Expr count;
        if (pad == 0) {
          count = make_const(p.acc, double(R * S));
        } else {
          // Valid rows/columns of the window [h*stride - pad, h*stride - pad + R).
          Expr h = scaled(i[2], st), w = scaled(i[3], st);
          Expr rows = ir::min(h + Expr(R - pad), Expr(H)) - ir::max(h - Expr(pad), Expr(int64_t(0)));
          Expr cols = ir::min(w + Expr(S - pad), Expr(W)) - ir::max(w - Expr(pad), Expr(int64_t(0)));
          count = cast(p.acc, rows * cols);
        }
        return down(p, total(i[0], i[1], i[2], i[3]) / count);
      },
      "pool", names);
  return {{data}, {pool}};
}

Built build_softmax(const Args &a) {
  int64_t M = a.i("M"), N = a.i("N");
  Prec p = contraction_prec(a.dtype());
  Tensor X = placeholder({M, N}, p.in, "X");
  IterVar k = reduce_axis(N, "k");
  Tensor rowmax = compute({M}, [&](Index i) { return max_reduce(X(i[0], k), {k}); }, "rowmax", {"i"});
  Tensor e =
      compute({M, N}, [&](Index i) { return ir::exp(up(p, X(i[0], i[1])) - up(p, rowmax(i[0]))); }, "exps", {"i", "j"});
  IterVar k2 = reduce_axis(N, "k");
  Tensor rowsum = compute({M}, [&](Index i) { return sum(e(i[0], k2), {k2}); }, "rowsum", {"i"});
  Tensor Y = compute({M, N}, [&](Index i) { return down(p, e(i[0], i[1]) / rowsum(i[0])); }, "Y", {"i", "j"});
  return {{X}, {Y}};
}

Built build_layernorm(const Args &a) {
  int64_t M = a.i("M"), N = a.i("N");
  Prec p = contraction_prec(a.dtype());
  Tensor X = placeholder({M, N}, p.in, "X");
  Tensor gamma = placeholder({N}, p.in, "gamma", /*is_constant=*/true);
  Tensor beta = placeholder({N}, p.in, "beta", /*is_constant=*/true);
  Expr n = make_const(p.acc, double(N));
  IterVar k = reduce_axis(N, "k");
  Tensor mean = compute({M}, [&](Index i) { return sum(up(p, X(i[0], k)) / n, {k}); }, "mean", {"i"});
  IterVar k2 = reduce_axis(N, "k");
  Tensor var = compute({M},
                       [&](Index i) {
                         Expr d = up(p, X(i[0], k2)) - mean(i[0]);
                         return sum(d * d / n, {k2});
                       },
                       "variance", {"i"});
  Expr eps = make_const(p.acc, a.f("eps"));
  Tensor Y = compute({M, N},
                     [&](Index i) {
                       Expr norm = (up(p, X(i[0], i[1])) - mean(i[0])) * ir::rsqrt(var(i[0]) + eps);
                       return down(p, norm * up(p, gamma(i[1])) + up(p, beta(i[1])));
                     },
                     "Y", {"i", "j"});
  return {{X, gamma, beta}, {Y}};
}

Built build_gelu(const Args &a) {
  int64_t M = a.i("M"), N = a.i("N");
  Prec p = contraction_prec(a.dtype());
  Tensor X = placeholder({M, N}, p.in, "X");
  Tensor Y = compute({M, N},
                     [&](Index i) {
                       Expr x = up(p, X(i[0], i[1]));
                       Expr inner = ir::erf(x * make_const(p.acc, 0.70710678118654752440)); // x / sqrt(2)
                       return down(p, make_const(p.acc, 0.5) * x * (make_const(p.acc, 1.0) + inner));
                     },
                     "Y", {"i", "j"});
  return {{X}, {Y}};
}

Built build_relu(const Args &a) {
  int64_t M = a.i("M"), N = a.i("N");
  Tensor X = placeholder({M, N}, a.dtype(), "X");
  Tensor Y =
      compute({M, N}, [&](Index i) { return ir::max(X(i[0], i[1]), ir::make_zero(a.dtype())); }, "Y", {"i", "j"});
  return {{X}, {Y}};
}

Built build_binary(const Args &a, bool is_add) {
  int64_t M = a.i("M"), N = a.i("N");
  Tensor A = placeholder({M, N}, a.dtype(), "A");
  Tensor B = placeholder({M, N}, a.dtype(), "B");
  Tensor C =
      compute({M, N}, [&](Index i) { return is_add ? A(i[0], i[1]) + B(i[0], i[1]) : A(i[0], i[1]) * B(i[0], i[1]); },
              "C", {"i", "j"});
  return {{A, B}, {C}};
}

Built build_bias_add(const Args &a) {
  int64_t M = a.i("M"), N = a.i("N");
  Tensor X = placeholder({M, N}, a.dtype(), "X");
  Tensor bias = placeholder({N}, a.dtype(), "bias", /*is_constant=*/true);
  Tensor Y = compute({M, N}, [&](Index i) { return X(i[0], i[1]) + bias(i[1]); }, "Y", {"i", "j"});
  return {{X, bias}, {Y}};
}

// ------------------------------------------------------------------- table
ParamDef dim(std::string name, std::string help) { return {std::move(name), Kind::PosInt, "", std::move(help)}; }
ParamDef dtype_param() { return {"dtype", Kind::Dtype, "f32", "element type of the inputs"}; }

const std::vector<OpDef> &op_table() {
  static const std::vector<OpDef> table = [] {
    const std::vector<DataType> contraction = {DataType::f32(), DataType::f64(), DataType::f16(), DataType::bf16(),
                                               DataType::i8()};
    const std::vector<DataType> floats = {DataType::f32(), DataType::f64(), DataType::f16(), DataType::bf16()};
    const std::vector<DataType> &all = contraction;
    auto conv_keys = [](bool depthwise) {
      std::vector<ParamDef> k = {dim("N", "batch size"), dim("C", "input channels"), dim("H", "input height"),
                                 dim("W", "input width")};
      if (!depthwise) k.push_back(dim("K", "output channels"));
      k.push_back(dim("R", "kernel height"));
      k.push_back(dim("S", "kernel width"));
      if (depthwise) k.push_back({"multiplier", Kind::PosInt, "1", "output channels per input channel"});
      k.push_back({"stride", Kind::PosInt, "1", "stride in both spatial dimensions"});
      k.push_back({"pad", Kind::NonNegInt, "0", "zero padding on each side, both spatial dimensions"});
      k.push_back({"dilation", Kind::PosInt, "1", "kernel dilation in both spatial dimensions"});
      if (!depthwise) k.push_back({"groups", Kind::PosInt, "1", "channel groups (C and K divisible by it)"});
      k.push_back({"layout", Kind::Layout, "NCHW",
                   "NCHW (weight OIHW [K,C/groups,R,S]) or NHWC (weight HWIO [R,S,C/groups,K])"});
      k.push_back(dtype_param());
      return k;
    };
    std::vector<ParamDef> pool_keys = {dim("N", "batch size"),
                                       dim("C", "channels"),
                                       dim("H", "input height"),
                                       dim("W", "input width"),
                                       dim("R", "window height"),
                                       dim("S", "window width"),
                                       {"stride", Kind::PosInt, "1", "stride in both spatial dimensions"},
                                       {"pad", Kind::NonNegInt, "0", "padding on each side (2*pad <= R and S)"},
                                       dtype_param()};
    std::vector<ParamDef> mn = {dim("M", "rows"), dim("N", "columns"), dtype_param()};
    std::vector<OpDef> t;
    t.push_back(
        {"matmul",
         "C[i,j] = sum_k A[i,k] * B[k,j]",
         "matmul:M=256,N=256,K=256,dtype=f32",
         {dim("M", "rows of A and C"), dim("N", "columns of B and C"), dim("K", "reduction length"), dtype_param()},
         contraction,
         build_matmul});
    t.push_back({"batch_matmul",
                 "C[b,i,j] = sum_k A[b,i,k] * B[b,k,j]",
                 "batch_matmul:B=12,M=128,N=128,K=64",
                 {dim("B", "batch size"), dim("M", "rows of A and C"), dim("N", "columns of B and C"),
                  dim("K", "reduction length"), dtype_param()},
                 contraction,
                 build_batch_matmul});
    t.push_back({"dense",
                 "Y[i,j] = sum_k X[i,k] * W[j,k] + bias[j] (W [N,K] and bias const)",
                 "dense:M=128,N=768,K=768",
                 {dim("M", "rows (tokens)"), dim("N", "output features"), dim("K", "input features"), dtype_param()},
                 contraction,
                 build_dense});
    t.push_back({"conv2d", "2-D convolution with a separate padding stage",
                 "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,layout=NCHW", conv_keys(false), contraction,
                 build_conv2d});
    t.push_back({"depthwise_conv2d", "depthwise 2-D convolution (conv2d with groups=C, K=C*multiplier)",
                 "depthwise_conv2d:N=1,C=32,H=112,W=112,R=3,S=3,stride=1,pad=1", conv_keys(true), contraction,
                 build_depthwise});
    t.push_back({"conv2d_bias_relu", "conv2d followed by a per-channel bias and relu (bias [K] const)",
                 "conv2d_bias_relu:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1", conv_keys(false), contraction,
                 build_conv2d_bias_relu});
    t.push_back({"max_pool2d", "2-D max pooling, NCHW, padding with -inf",
                 "max_pool2d:N=1,C=64,H=112,W=112,R=3,S=3,stride=2,pad=1", pool_keys, all,
                 [](const Args &a) { return build_pool(a, true); }});
    t.push_back({"avg_pool2d", "2-D average pooling, NCHW, averaging valid elements only (count_include_pad=false)",
                 "avg_pool2d:N=1,C=2048,H=7,W=7,R=7,S=7", pool_keys, floats,
                 [](const Args &a) { return build_pool(a, false); }});
    t.push_back({"softmax", "softmax over the last axis of X[M,N] (max, exp, sum, divide stages)",
                 "softmax:M=1536,N=128", mn, floats, build_softmax});
    std::vector<ParamDef> ln = {dim("M", "rows"),
                                dim("N", "normalized length"),
                                {"eps", Kind::PosFloat, "1e-05", "added to the variance"},
                                dtype_param()};
    t.push_back({"layernorm", "layer normalization over the last axis (gamma, beta [N] const)", "layernorm:M=128,N=768",
                 ln, floats, build_layernorm});
    t.push_back({"gelu", "Y = 0.5 * x * (1 + erf(x / sqrt(2)))", "gelu:M=128,N=3072", mn, floats, build_gelu});
    t.push_back({"relu", "Y = max(X, 0)", "relu:M=1024,N=1024", mn, all, build_relu});
    t.push_back({"add", "C = A + B, elementwise", "add:M=128,N=768", mn, all,
                 [](const Args &a) { return build_binary(a, true); }});
    t.push_back({"multiply", "C = A * B, elementwise", "multiply:M=128,N=768", mn, all,
                 [](const Args &a) { return build_binary(a, false); }});
    t.push_back(
        {"bias_add", "Y[i,j] = X[i,j] + bias[j] (bias const)", "bias_add:M=128,N=768", mn, all, build_bias_add});
    return t;
  }();
  return table;
}

std::string known_ops() {
  std::string s;
  for (auto &op : op_table()) s += (s.empty() ? "" : ", ") + op.name;
  return s;
}

// ------------------------------------------------------------------ parsing
struct ParseError {
  int column; // 1-based; 0 when no single column applies
  std::string message;
};

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit((unsigned char)c)) return false;
  return true;
}

// Parses one value; `column` is where it starts.
Value parse_value(const ParamDef &p, std::string_view text, int column, const OpDef &op) {
  Value v;
  v.column = column;
  std::string t(text);
  auto fail = [&](const std::string &what) -> ParseError {
    return {column, p.name + " must be " + what + ", got '" + t + "'"};
  };
  switch (p.kind) {
  case Kind::PosInt:
  case Kind::NonNegInt: {
    const char *what = p.kind == Kind::PosInt ? "a positive integer" : "a non-negative integer";
    if (!all_digits(t)) throw fail(what);
    if (t.size() > 10 || std::stoll(t) > (int64_t(1) << 31) - 1) throw fail(std::string(what) + " below 2^31");
    v.i = std::stoll(t);
    if (p.kind == Kind::PosInt && v.i < 1) throw fail(what);
    v.text = std::to_string(v.i);
    break;
  }
  case Kind::PosFloat: {
    char *end = nullptr;
    double d = t.empty() ? 0 : std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(d) || !(d > 0) || std::isspace((unsigned char)t[0]))
      throw fail("a positive number");
    v.f = d;
    v.text = format_double(d);
    break;
  }
  case Kind::Dtype: {
    auto dt = DataType::parse(t);
    std::string allowed;
    bool ok = false;
    for (auto &d : op.dtypes) {
      allowed += (allowed.empty() ? "" : ", ") + d.str();
      ok |= dt && *dt == d;
    }
    if (!ok) throw fail("one of " + allowed + " for " + op.name);
    v.dtype = *dt;
    v.text = dt->str();
    break;
  }
  case Kind::Layout: {
    std::string u = t;
    for (char &c : u) c = char(std::toupper((unsigned char)c));
    if (u != "NCHW" && u != "NHWC") throw fail("NCHW or NHWC");
    v.text = u;
    break;
  }
  }
  return v;
}

std::string key_list(const OpDef &op) {
  std::string s;
  for (auto &p : op.params) s += (s.empty() ? "" : ", ") + p.name;
  return s;
}

// Parses and builds; errors come back as ParseError (column + message).
Workload build_spec(std::string_view spec) {
  size_t colon = spec.find(':');
  std::string name(spec.substr(0, colon));
  if (name.empty()) throw ParseError{1, "missing operator name before ':' (known operators: " + known_ops() + ")"};
  const OpDef *op = nullptr;
  for (auto &o : op_table())
    if (o.name == name) op = &o;
  if (!op) throw ParseError{1, "unknown operator '" + name + "'; known operators: " + known_ops()};

  Args args;
  const int end_column = int(spec.size()) + 1;
  if (colon != std::string_view::npos) {
    size_t pos = colon + 1;
    for (;;) {
      size_t comma = spec.find(',', pos);
      size_t stop = comma == std::string_view::npos ? spec.size() : comma;
      std::string_view item = spec.substr(pos, stop - pos);
      int item_col = int(pos) + 1;
      if (item.empty())
        throw ParseError{item_col,
                         "empty parameter; expected KEY=VALUE (keys of " + op->name + ": " + key_list(*op) + ")"};
      size_t eq = item.find('=');
      if (eq == std::string_view::npos)
        throw ParseError{item_col, "expected KEY=VALUE, got '" + std::string(item) + "' (missing '=')"};
      std::string key(item.substr(0, eq));
      if (key.empty()) throw ParseError{item_col, "missing key before '='"};
      const ParamDef *p = nullptr;
      for (auto &d : op->params)
        if (d.name == key) p = &d;
      if (!p)
        throw ParseError{item_col, "unknown key '" + key + "' for " + op->name + "; valid keys: " + key_list(*op)};
      if (auto it = args.values.find(key); it != args.values.end())
        throw ParseError{item_col, "duplicate key '" + key + "' (already given at column " +
                                       std::to_string(it->second.column - int(key.size()) - 1) + ")"};
      int value_col = item_col + int(eq) + 1;
      args.values[key] = parse_value(*p, item.substr(eq + 1), value_col, *op);
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
  }
  for (auto &p : op->params) {
    if (args.values.count(p.name)) continue;
    if (p.default_value.empty())
      throw ParseError{end_column, "missing required key '" + p.name + "' (" + op->name + " needs " + [&] {
                         std::string s;
                         for (auto &q : op->params)
                           if (q.default_value.empty()) s += (s.empty() ? "" : ", ") + q.name;
                         return s;
                       }() + ")"};
    args.values[p.name] = parse_value(p, p.default_value, 0, *op);
  }

  std::string key = op->name + ":";
  for (size_t i = 0; i < op->params.size(); ++i)
    key += (i ? "," : "") + op->params[i].name + "=" + args.values[op->params[i].name].text;

  Built b;
  try {
    b = op->build(args);
  } catch (const SpecError &e) {
    int col = end_column;
    for (auto &k : e.keys)
      if (auto it = args.values.find(k); it != args.values.end() && it->second.column > 0) {
        col = it->second.column;
        break;
      }
    throw ParseError{col, e.message};
  } catch (const Error &e) {
    throw ParseError{0, std::string("cannot build ") + op->name + ": " + e.what()};
  }
  std::vector<ir::Tensor> ins, outs;
  for (auto &t : b.inputs) ins.push_back(t.node());
  for (auto &t : b.outputs) outs.push_back(t.node());
  Expected<Workload> w = make_workload(key, std::move(ins), std::move(outs));
  if (!w) throw ParseError{0, "cannot build " + op->name + ": " + w.error()};
  return w.take();
}

} // namespace

const std::vector<OpInfo> &list_ops() {
  static const std::vector<OpInfo> infos = [] {
    std::vector<OpInfo> v;
    for (auto &op : op_table()) {
      OpInfo info{op.name, op.summary, {}, op.example};
      for (auto &p : op.params) {
        std::string help = p.help;
        if (p.kind == Kind::Dtype) {
          help += " (";
          for (size_t i = 0; i < op.dtypes.size(); ++i) help += (i ? ", " : "") + op.dtypes[i].str();
          help += ")";
        }
        info.params.push_back({p.name, p.default_value, help});
      }
      v.push_back(std::move(info));
    }
    return v;
  }();
  return infos;
}

Expected<Workload> make_op_workload(std::string_view spec) {
  try {
    return build_spec(spec);
  } catch (const ParseError &e) {
    std::string msg = "workload spec '" + std::string(spec) + "': ";
    if (e.column > 0) msg += "column " + std::to_string(e.column) + ": ";
    return make_error(msg + e.message);
  } catch (const Error &e) {
    return make_error("workload spec '" + std::string(spec) + "': " + e.what());
  } catch (const std::exception &e) {
    return make_error("workload spec '" + std::string(spec) + "': " + e.what());
  }
}

Expected<Workload> load_workload(std::string_view spec_or_path) {
  std::string s(spec_or_path);
  std::error_code ec;
  if (!s.empty() && std::filesystem::is_regular_file(s, ec)) {
    std::ifstream in(s, std::ios::binary);
    if (!in) return make_error("cannot read workload file '" + s + "'");
    std::stringstream buf;
    buf << in.rdbuf();
    if (std::filesystem::path(s).extension() == ".spec")
      return make_error("'" + s +
                        "' is a suite of workload specs (one per line), not a single workload; pass one of "
                        "its lines, or the suite to a command that takes one");
    return parse_workload(buf.str(), s);
  }
  if (!s.empty() && std::filesystem::exists(s, ec))
    return make_error("'" + s + "' is not a regular file; expected a workload file or a spec OP:KEY=VAL,...");
  std::string name = s.substr(0, s.find(':'));
  bool known = false;
  for (auto &op : op_table()) known |= op.name == name;
  if (s.find(':') != std::string::npos || known) return make_op_workload(s);
  if (s.find('/') != std::string::npos || s.find('.') != std::string::npos)
    return make_error("workload file '" + s + "' does not exist");
  return make_error("'" + s +
                    "' is neither a workload file nor a spec OP:KEY=VAL,... (known operators: " + known_ops() + ")");
}

namespace {
// "LABEL@REST" -> {LABEL, REST} when LABEL is a C identifier; else {"", text}.
std::pair<std::string, std::string> split_label(const std::string &text) {
  size_t at = text.find('@');
  if (at == std::string::npos || at == 0) return {"", text};
  std::string label = text.substr(0, at);
  if (std::isdigit((unsigned char)label[0])) return {"", text};
  for (char c : label)
    if (!std::isalnum((unsigned char)c) && c != '_') return {"", text};
  return {label, text.substr(at + 1)};
}
} // namespace

Expected<std::vector<SuiteEntry>> load_workloads(const std::vector<std::string> &args) {
  std::vector<SuiteEntry> entries;
  for (auto &labelled : args) {
    auto [label, arg] = split_label(labelled);
    if (arg.size() > 5 && arg.substr(arg.size() - 5) == ".spec") {
      std::ifstream in(arg);
      if (!in) return make_error("cannot read suite file " + arg);
      std::string line;
      for (int no = 1; std::getline(in, line); ++no) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        std::istringstream words(line);
        std::string labelled_spec, weight;
        if (!(words >> labelled_spec)) continue;
        auto [line_label, spec] = split_label(labelled_spec);
        double w = 1;
        if (words >> weight) {
          if (weight.size() < 2 || weight[0] != 'x')
            return make_error(arg + ":" + std::to_string(no) + ": after the spec, only a weight like x4 may follow");
          try {
            w = std::stod(weight.substr(1));
          } catch (const std::exception &) {
            return make_error(arg + ":" + std::to_string(no) + ": weight '" + weight + "' is not a number");
          }
          if (w <= 0) return make_error(arg + ":" + std::to_string(no) + ": the weight must be positive");
        }
        auto wl = make_op_workload(spec);
        if (!wl) return make_error(arg + ":" + std::to_string(no) + ": " + wl.error());
        entries.push_back({spec, line_label, wl.take(), w});
      }
      continue;
    }
    auto wl = load_workload(arg);
    if (!wl) return make_error(wl.error());
    entries.push_back({arg, label, wl.take(), 1});
  }
  if (entries.empty()) return make_error("no workloads: give workload specs, .te files or .spec suites");
  return entries;
}

} // namespace tessel::te
