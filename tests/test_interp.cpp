// The reference interpreter and NDArray: storage and conversions, compare(),
// and the numerics of every operator against independent hand-written loops.
#include "interp/interpreter.h"
#include "support/float16.h"
#include "te/ops.h"
#include "te/tensor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>

using namespace tessel;
using namespace tessel::interp;
using ir::DataType;
using Shape = std::vector<int64_t>;

namespace {

te::Workload build(const std::string &spec) {
  auto w = te::make_op_workload(spec);
  EXPECT_TRUE(w) << spec << ": " << (w ? "" : w.error());
  return w ? w.take() : te::Workload{};
}

std::vector<NDArray> run(const te::Workload &w, const std::vector<NDArray> &inputs) {
  auto r = interpret(w, inputs);
  EXPECT_TRUE(r) << w.key << ": " << (r ? "" : r.error());
  return r ? r.take() : std::vector<NDArray>{};
}

NDArray from(const std::vector<double> &values, Shape shape, DataType dt) {
  NDArray a(std::move(shape), dt);
  EXPECT_EQ(a.size(), int64_t(values.size()));
  for (int64_t i = 0; i < a.size() && i < int64_t(values.size()); ++i) a.set(i, values[size_t(i)]);
  return a;
}

void expect_close(const NDArray &actual, const NDArray &expected, const std::string &what) {
  Comparison c = compare(actual, expected);
  EXPECT_TRUE(c.ok) << what << ": " << c.message;
}

void expect_equal(const NDArray &actual, const NDArray &expected, const std::string &what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
  for (int64_t i = 0; i < actual.size(); ++i)
    ASSERT_EQ(actual.get(i), expected.get(i)) << what << " at flat index " << i;
}

te::Workload make(std::vector<ir::Tensor> inputs, std::vector<ir::Tensor> outputs) {
  auto w = te::make_workload("", std::move(inputs), std::move(outputs));
  EXPECT_TRUE(w) << (w ? "" : w.error());
  return w ? w.take() : te::Workload{};
}

} // namespace

// ------------------------------------------------------------------ NDArray
TEST(NDArray, AlignedZeroedStorage) {
  for (DataType dt : {DataType::f32(), DataType::f16(), DataType::i8(), DataType::f64(), DataType::boolean()}) {
    NDArray a({3, 5, 7}, dt);
    EXPECT_EQ(a.size(), 105);
    EXPECT_EQ(a.bytes(), 105 * dt.bytes());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, 0u);
    for (int64_t i = 0; i < a.size(); ++i) ASSERT_EQ(a.get(i), 0.0);
  }
  NDArray scalar({}, DataType::f32());
  EXPECT_EQ(scalar.size(), 1);
  scalar.set(0, 2.5);
  EXPECT_EQ(scalar.get(0), 2.5);
}

TEST(NDArray, ConversionsRoundAndWrap) {
  NDArray f({4}, DataType::f32());
  f.set(0, 0.1);
  EXPECT_EQ(f.get(0), double(0.1f));
  NDArray d({1}, DataType::f64());
  d.set(0, 0.1);
  EXPECT_EQ(d.get(0), 0.1);
  // f16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1).
  NDArray h({3}, DataType::f16());
  h.set(0, 1.0 + std::ldexp(1.0, -11));
  EXPECT_EQ(h.get(0), 1.0);
  h.set(1, 1.0 + 3 * std::ldexp(1.0, -11)); // ties to even: 1 + 2^-9
  EXPECT_EQ(h.get(1), 1.0 + std::ldexp(1.0, -9));
  h.set(2, 70000); // beyond the f16 range
  EXPECT_TRUE(std::isinf(h.get(2)));
  NDArray b({2}, DataType::bf16());
  b.set(0, 1.0 + std::ldexp(1.0, -8)); // halfway: ties to even
  EXPECT_EQ(b.get(0), 1.0);
  b.set(1, 3.14159);
  EXPECT_EQ(b.get(1), 3.140625);
  NDArray i8({4}, DataType::i8());
  i8.set(0, 200);
  EXPECT_EQ(i8.get(0), -56);
  i8.set(1, -129);
  EXPECT_EQ(i8.get(1), 127);
  i8.set(2, -2.7); // truncation toward zero
  EXPECT_EQ(i8.get(2), -2);
  NDArray i32({1}, DataType::i32());
  i32.set(0, 4294967297.0);
  EXPECT_EQ(i32.get(0), 1);
  NDArray i64({1}, DataType::i64());
  i64.set(0, -123456789012.0);
  EXPECT_EQ(i64.get(0), -123456789012.0);
  NDArray bl({2}, DataType::boolean());
  bl.set(0, 5);
  EXPECT_EQ(bl.get(0), 1);
  EXPECT_EQ(bl.get(1), 0);
}

TEST(NDArray, FillRandomIsDeterministic) {
  NDArray a({1000}, DataType::f32()), b({1000}, DataType::f32()), c({1000}, DataType::f32());
  a.fill_random(7);
  b.fill_random(7);
  c.fill_random(8);
  bool differs = false;
  double lo = 1, hi = -1;
  for (int64_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a.get(i), b.get(i));
    differs |= a.get(i) != c.get(i);
    lo = std::min(lo, a.get(i));
    hi = std::max(hi, a.get(i));
  }
  EXPECT_TRUE(differs);
  EXPECT_GE(lo, -1.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_LT(lo, -0.9);
  EXPECT_GT(hi, 0.9);
  NDArray r({100}, DataType::f64());
  r.fill_random(1, 2.0, 3.0);
  for (int64_t i = 0; i < r.size(); ++i) ASSERT_TRUE(r.get(i) >= 2.0 && r.get(i) < 3.0);
  for (DataType dt : {DataType::f16(), DataType::bf16()}) {
    NDArray n({5000}, dt); // rounding to a narrow type must not reach hi
    n.fill_random(5);
    for (int64_t i = 0; i < n.size(); ++i) ASSERT_TRUE(n.get(i) >= -1.0 && n.get(i) < 1.0) << dt.str();
  }
  for (DataType dt : {DataType::i8(), DataType::i32(), DataType::i64()}) {
    NDArray q({2000}, dt);
    q.fill_random(3);
    int seen[9] = {};
    for (int64_t i = 0; i < q.size(); ++i) {
      double v = q.get(i);
      ASSERT_TRUE(v >= -4 && v <= 4 && v == std::floor(v)) << v;
      seen[int(v) + 4]++;
    }
    for (int s : seen) EXPECT_GT(s, 0) << dt.str();
  }
}

// ------------------------------------------------------------------ compare
TEST(Compare, PassesWithinToleranceFailsBeyond) {
  NDArray e = from({1, -2, 3, 100}, {2, 2}, DataType::f32());
  NDArray a = from({1, -2, 3, 100}, {2, 2}, DataType::f32());
  EXPECT_TRUE(compare(a, e).ok);
  // Allowed error at element 0: 1e-4 * 1 + 1e-5 * 100 = 1.1e-3.
  a.set(0, 1.001);
  EXPECT_TRUE(compare(a, e).ok);
  a.set(0, 1.002);
  Comparison c = compare(a, e);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.worst_index, 0);
  EXPECT_NEAR(c.max_abs_error, 0.002, 1e-6);
  EXPECT_NE(c.message.find("flat index 0 [0, 0]"), std::string::npos) << c.message;
  EXPECT_NE(c.message.find("got 1.00199997"), std::string::npos) << c.message;
  EXPECT_NE(c.message.find("expected 1"), std::string::npos) << c.message;
  a.set(0, 1);
  a.set(3, 100.5); // allowed 1e-2 + 1e-3
  c = compare(a, e);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.worst_index, 3);
  EXPECT_NE(c.message.find("[1, 1]"), std::string::npos) << c.message;
  EXPECT_NE(c.message.find("1 of 4 elements"), std::string::npos) << c.message;
  // An explicit, looser tolerance accepts it.
  EXPECT_TRUE(compare(a, e, Tolerance{1e-2, 0}).ok);
}

TEST(Compare, NaNShapeDtypeAndIntegers) {
  double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  NDArray e = from({nan, 1, inf}, {3}, DataType::f32());
  EXPECT_TRUE(compare(from({nan, 1, inf}, {3}, DataType::f32()), e).ok);
  Comparison c = compare(from({0, 1, inf}, {3}, DataType::f32()), e);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.worst_index, 0);
  c = compare(from({nan, nan, inf}, {3}, DataType::f32()), e);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.worst_index, 1);
  EXPECT_FALSE(compare(from({nan, 1, -inf}, {3}, DataType::f32()), e).ok);

  c = compare(NDArray({3}, DataType::f32()), NDArray({4}, DataType::f32()));
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.message.find("f32[3]"), std::string::npos) << c.message;
  EXPECT_NE(c.message.find("f32[4]"), std::string::npos) << c.message;
  c = compare(NDArray({3}, DataType::f16()), NDArray({3}, DataType::f32()));
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.message.find("f16[3]"), std::string::npos) << c.message;

  NDArray ie = from({1000, 2, 3}, {3}, DataType::i32());
  EXPECT_TRUE(compare(from({1000, 2, 3}, {3}, DataType::i32()), ie).ok);
  c = compare(from({1000, 2, 4}, {3}, DataType::i32()), ie);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.worst_index, 2);

  // Per-dtype tolerances.
  EXPECT_EQ(Tolerance::for_dtype(DataType::f16()).rtol, 1e-2);
  EXPECT_EQ(Tolerance::for_dtype(DataType::bf16()).atol_rel, 8e-3);
  EXPECT_EQ(Tolerance::for_dtype(DataType::f64()).rtol, 1e-10);
  EXPECT_EQ(Tolerance::for_dtype(DataType::i8()).rtol, 0);
  // bf16 accepts a 1% error, f32 does not.
  EXPECT_TRUE(compare(from({1.01}, {1}, DataType::bf16()), from({1}, {1}, DataType::bf16())).ok);
  EXPECT_FALSE(compare(from({1.01}, {1}, DataType::f32()), from({1}, {1}, DataType::f32())).ok);
}

// --------------------------------------------------------------- operators
namespace {

struct ConvCase {
  int64_t N, C, H, W, K, R, S, stride, pad, dilation, groups;
  bool nhwc;
};

std::string conv_spec(const ConvCase &c, const std::string &op = "conv2d", const std::string &dtype = "f32") {
  auto s = [](int64_t v) { return std::to_string(v); };
  return op + ":N=" + s(c.N) + ",C=" + s(c.C) + ",H=" + s(c.H) + ",W=" + s(c.W) + ",K=" + s(c.K) + ",R=" + s(c.R) +
         ",S=" + s(c.S) + ",stride=" + s(c.stride) + ",pad=" + s(c.pad) + ",dilation=" + s(c.dilation) +
         ",groups=" + s(c.groups) + ",layout=" + (c.nhwc ? "NHWC" : "NCHW") + ",dtype=" + dtype;
}

// Direct convolution with explicit bounds checks instead of a padded copy.
NDArray conv_reference(const ConvCase &c, const NDArray &data, const NDArray &weight, DataType out_t,
                       const NDArray *bias = nullptr, bool relu = false) {
  int64_t OH = (c.H + 2 * c.pad - c.dilation * (c.R - 1) - 1) / c.stride + 1;
  int64_t OW = (c.W + 2 * c.pad - c.dilation * (c.S - 1) - 1) / c.stride + 1;
  int64_t Cg = c.C / c.groups, Kg = c.K / c.groups;
  Shape oshape = c.nhwc ? Shape{c.N, OH, OW, c.K} : Shape{c.N, c.K, OH, OW};
  NDArray out(oshape, out_t);
  auto didx = [&](int64_t n, int64_t ch, int64_t h, int64_t w) {
    return c.nhwc ? ((n * c.H + h) * c.W + w) * c.C + ch : ((n * c.C + ch) * c.H + h) * c.W + w;
  };
  auto widx = [&](int64_t k, int64_t rc, int64_t r, int64_t s) {
    return c.nhwc ? ((r * c.S + s) * Cg + rc) * c.K + k : ((k * Cg + rc) * c.R + r) * c.S + s;
  };
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t k = 0; k < c.K; ++k)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = 0;
          int64_t g = k / Kg;
          for (int64_t rc = 0; rc < Cg; ++rc)
            for (int64_t r = 0; r < c.R; ++r)
              for (int64_t s = 0; s < c.S; ++s) {
                int64_t ih = oh * c.stride - c.pad + r * c.dilation, iw = ow * c.stride - c.pad + s * c.dilation;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                acc += data.get(didx(n, g * Cg + rc, ih, iw)) * weight.get(widx(k, rc, r, s));
              }
          if (bias) acc += bias->get(k);
          if (relu) acc = std::max(acc, 0.0);
          int64_t o = c.nhwc ? ((n * OH + oh) * OW + ow) * c.K + k : ((n * c.K + k) * OH + oh) * OW + ow;
          out.set(o, acc);
        }
  return out;
}

NDArray matmul_reference(const NDArray &A, const NDArray &B, DataType out_t, int64_t batch = 0) {
  bool batched = A.shape().size() == 3;
  int64_t Bn = batched ? A.shape()[0] : 1, M = A.shape()[batched], K = A.shape()[batched + 1],
          N = B.shape()[batched + 1];
  NDArray C(batched ? Shape{Bn, M, N} : Shape{M, N}, out_t);
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += A.get((b * M + i) * K + k) * B.get((b * K + k) * N + j);
        C.set((b * M + i) * N + j, acc);
      }
  return C;
}

} // namespace

TEST(Interp, MatmulMatchesLoops) {
  for (Shape s : {Shape{1, 1, 1}, Shape{7, 13, 5}, Shape{33, 17, 29}, Shape{2, 64, 1}}) {
    std::string spec = "matmul:M=" + std::to_string(s[0]) + ",N=" + std::to_string(s[1]) + ",K=" + std::to_string(s[2]);
    te::Workload w = build(spec);
    auto in = random_inputs(w, 42);
    auto out = run(w, in);
    ASSERT_EQ(out.size(), 1u);
    expect_close(out[0], matmul_reference(in[0], in[1], DataType::f32()), spec);
  }
  te::Workload b = build("batch_matmul:B=3,M=5,N=7,K=11");
  auto in = random_inputs(b, 1);
  expect_close(run(b, in)[0], matmul_reference(in[0], in[1], DataType::f32()), b.key);
}

TEST(Interp, DenseMatchesLoops) {
  te::Workload w = build("dense:M=5,N=7,K=13");
  auto in = random_inputs(w, 3);
  NDArray expected({5, 7}, DataType::f32());
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 7; ++j) {
      double acc = in[2].get(j);
      for (int64_t k = 0; k < 13; ++k) acc += in[0].get(i * 13 + k) * in[1].get(j * 13 + k);
      expected.set(i * 7 + j, acc);
    }
  expect_close(run(w, in)[0], expected, w.key);
}

TEST(Interp, MatmulI8IsExact) {
  te::Workload w = build("matmul:M=9,N=11,K=31,dtype=i8");
  auto in = random_inputs(w, 5);
  auto out = run(w, in);
  ASSERT_EQ(out[0].dtype(), DataType::i32());
  expect_equal(out[0], matmul_reference(in[0], in[1], DataType::i32()), w.key);
  // Values large enough that an i8 accumulator would overflow.
  for (int64_t i = 0; i < in[0].size(); ++i) in[0].set(i, 127);
  for (int64_t i = 0; i < in[1].size(); ++i) in[1].set(i, -128);
  out = run(w, in);
  EXPECT_EQ(out[0].get(0), 127.0 * -128 * 31);
}

TEST(Interp, ReducedPrecisionRoundsLikeAKernel) {
  for (const char *dt : {"f16", "bf16"}) {
    te::Workload w = build(std::string("matmul:M=6,N=5,K=37,dtype=") + dt);
    auto in = random_inputs(w, 9);
    auto out = run(w, in);
    DataType t = *DataType::parse(dt);
    ASSERT_EQ(out[0].dtype(), t);
    // Accumulated in f32 (here: double rounded to f32 once), then rounded to dt.
    NDArray acc = matmul_reference(in[0], in[1], DataType::f32());
    NDArray expected({6, 5}, t);
    for (int64_t i = 0; i < acc.size(); ++i) expected.set(i, acc.get(i));
    expect_equal(out[0], expected, w.key);
    // And the result is close to the exact product at the dtype's tolerance.
    expect_close(out[0], matmul_reference(in[0], in[1], t), w.key);
  }
}

TEST(Interp, Conv2dMatchesLoops) {
  std::vector<ConvCase> cases = {
      {1, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, false},   // same padding
      {2, 5, 9, 7, 3, 3, 2, 2, 1, 1, 1, false},   // stride, odd sizes, R != S
      {1, 4, 11, 10, 6, 3, 3, 2, 2, 2, 2, false}, // dilation and groups
      {1, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, true},    // NHWC
      {2, 6, 7, 9, 4, 2, 3, 3, 2, 2, 2, true},    // NHWC, everything
      {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, false},   // size 1
      {1, 2, 5, 5, 3, 5, 5, 1, 0, 1, 1, true},    // kernel covers the image
      {1, 8, 6, 6, 8, 3, 3, 1, 1, 1, 8, false},   // depthwise as groups=C
  };
  for (auto &c : cases) {
    std::string spec = conv_spec(c);
    te::Workload w = build(spec);
    auto in = random_inputs(w, 11);
    auto out = run(w, in);
    ASSERT_EQ(out.size(), 1u);
    expect_close(out[0], conv_reference(c, in[0], in[1], DataType::f32()), spec);
  }
}

TEST(Interp, DepthwiseAndBiasRelu) {
  for (bool nhwc : {false, true}) {
    ConvCase c{1, 3, 7, 6, 6, 3, 3, 2, 1, 1, 3, nhwc}; // multiplier 2
    std::string spec = std::string("depthwise_conv2d:N=1,C=3,H=7,W=6,R=3,S=3,multiplier=2,stride=2,pad=1,layout=") +
                       (nhwc ? "NHWC" : "NCHW");
    te::Workload w = build(spec);
    auto in = random_inputs(w, 13);
    expect_close(run(w, in)[0], conv_reference(c, in[0], in[1], DataType::f32()), spec);

    ConvCase b{2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, nhwc};
    te::Workload wb = build(conv_spec(b, "conv2d_bias_relu"));
    auto ib = random_inputs(wb, 17);
    auto ob = run(wb, ib);
    expect_close(ob[0], conv_reference(b, ib[0], ib[1], DataType::f32(), &ib[2], true), wb.key);
    int zeros = 0;
    for (int64_t i = 0; i < ob[0].size(); ++i) zeros += ob[0].get(i) == 0;
    EXPECT_GT(zeros, 0); // relu clipped something
  }
}

TEST(Interp, ConvI8IsExact) {
  ConvCase c{1, 4, 6, 6, 4, 3, 3, 1, 1, 1, 2, false};
  te::Workload w = build(conv_spec(c, "conv2d", "i8"));
  auto in = random_inputs(w, 19);
  auto out = run(w, in);
  ASSERT_EQ(out[0].dtype(), DataType::i32());
  expect_equal(out[0], conv_reference(c, in[0], in[1], DataType::i32()), w.key);
}

TEST(Interp, PoolsMatchLoops) {
  struct P {
    int64_t N, C, H, W, R, S, st, pad;
  };
  for (P p :
       {P{1, 2, 7, 7, 3, 3, 2, 1}, P{2, 3, 6, 5, 2, 3, 1, 1}, P{1, 1, 4, 4, 4, 4, 1, 0}, P{1, 2, 5, 5, 1, 1, 2, 0}}) {
    auto s = [](int64_t v) { return std::to_string(v); };
    std::string keys = ":N=" + s(p.N) + ",C=" + s(p.C) + ",H=" + s(p.H) + ",W=" + s(p.W) + ",R=" + s(p.R) +
                       ",S=" + s(p.S) + ",stride=" + s(p.st) + ",pad=" + s(p.pad);
    te::Workload mx = build("max_pool2d" + keys), av = build("avg_pool2d" + keys);
    auto in = random_inputs(mx, 23);
    auto omax = run(mx, in), oavg = run(av, in);
    int64_t OH = (p.H + 2 * p.pad - p.R) / p.st + 1, OW = (p.W + 2 * p.pad - p.S) / p.st + 1;
    NDArray emax({p.N, p.C, OH, OW}, DataType::f32()), eavg({p.N, p.C, OH, OW}, DataType::f32());
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            double m = -INFINITY, sum = 0;
            int count = 0;
            for (int64_t r = 0; r < p.R; ++r)
              for (int64_t q = 0; q < p.S; ++q) {
                int64_t h = oh * p.st - p.pad + r, w = ow * p.st - p.pad + q;
                if (h < 0 || h >= p.H || w < 0 || w >= p.W) continue;
                double v = in[0].get(((n * p.C + c) * p.H + h) * p.W + w);
                m = std::max(m, v);
                sum += v;
                ++count;
              }
            int64_t o = ((n * p.C + c) * OH + oh) * OW + ow;
            emax.set(o, m);
            eavg.set(o, sum / count); // count_include_pad=false
          }
    expect_equal(omax[0], emax, mx.key);
    expect_close(oavg[0], eavg, av.key);
  }
}

TEST(Interp, SoftmaxRowsSumToOne) {
  te::Workload w = build("softmax:M=7,N=33");
  auto in = random_inputs(w, 29);
  for (int64_t i = 0; i < 33; ++i) in[0].set(i, 50.0 + i); // large values: max subtraction matters
  auto out = run(w, in);
  NDArray expected({7, 33}, DataType::f32());
  for (int64_t i = 0; i < 7; ++i) {
    double m = -INFINITY, total = 0, sum = 0;
    for (int64_t j = 0; j < 33; ++j) m = std::max(m, in[0].get(i * 33 + j));
    for (int64_t j = 0; j < 33; ++j) total += std::exp(in[0].get(i * 33 + j) - m);
    for (int64_t j = 0; j < 33; ++j) {
      expected.set(i * 33 + j, std::exp(in[0].get(i * 33 + j) - m) / total);
      sum += out[0].get(i * 33 + j);
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << i;
  }
  expect_close(out[0], expected, w.key);
  for (const char *dt : {"f16", "bf16"}) {
    te::Workload h = build(std::string("softmax:M=3,N=10,dtype=") + dt);
    auto o = run(h, random_inputs(h, 3));
    double sum = 0;
    for (int64_t j = 0; j < 10; ++j) sum += o[0].get(j);
    EXPECT_NEAR(sum, 1.0, 2e-2) << dt;
  }
}

TEST(Interp, LayernormNormalizes) {
  te::Workload w = build("layernorm:M=4,N=101");
  auto in = random_inputs(w, 31);
  for (int64_t j = 0; j < 101; ++j) {
    in[1].set(j, 1.0); // gamma
    in[2].set(j, 0.0); // beta
  }
  auto out = run(w, in);
  for (int64_t i = 0; i < 4; ++i) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < 101; ++j) mean += out[0].get(i * 101 + j) / 101;
    for (int64_t j = 0; j < 101; ++j) var += std::pow(out[0].get(i * 101 + j) - mean, 2) / 101;
    EXPECT_NEAR(mean, 0.0, 1e-5);
    EXPECT_NEAR(var, 1.0, 1e-3); // eps=1e-5 shrinks it a little
  }
  // With random gamma and beta, against loops.
  in = random_inputs(w, 37);
  out = run(w, in);
  NDArray expected({4, 101}, DataType::f32());
  for (int64_t i = 0; i < 4; ++i) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < 101; ++j) mean += in[0].get(i * 101 + j) / 101;
    for (int64_t j = 0; j < 101; ++j) var += std::pow(in[0].get(i * 101 + j) - mean, 2) / 101;
    for (int64_t j = 0; j < 101; ++j)
      expected.set(i * 101 + j, (in[0].get(i * 101 + j) - mean) / std::sqrt(var + 1e-5) * in[1].get(j) + in[2].get(j));
  }
  expect_close(out[0], expected, w.key);
}

TEST(Interp, GeluKnownValues) {
  te::Workload w = build("gelu:M=1,N=5");
  NDArray x = from({-1, 0, 1, 2, -3}, {1, 5}, DataType::f32());
  auto out = run(w, {x});
  NDArray expected = from({-0.15865525393145707, 0, 0.8413447460685429, 1.9544997361036416, -0.004049694849288955},
                          {1, 5}, DataType::f32());
  expect_close(out[0], expected, w.key);
  te::Workload w64 = build("gelu:M=1,N=5,dtype=f64");
  auto o64 = run(w64, {from({-1, 0, 1, 2, -3}, {1, 5}, DataType::f64())});
  EXPECT_NEAR(o64[0].get(2), 0.8413447460685429, 1e-15);
}

TEST(Interp, ElementwiseOps) {
  for (const char *dt : {"f32", "i8", "f16"}) {
    std::string suffix = std::string(":M=3,N=7,dtype=") + dt;
    te::Workload relu = build("relu" + suffix), add = build("add" + suffix), mul = build("multiply" + suffix),
                 bias = build("bias_add" + suffix);
    auto in = random_inputs(add, 41);
    auto r = run(relu, {in[0]})[0], a = run(add, in)[0], m = run(mul, in)[0];
    NDArray b_vec({7}, in[0].dtype());
    b_vec.fill_random(43);
    auto b = run(bias, {in[0], b_vec})[0];
    for (int64_t i = 0; i < 21; ++i) {
      double x = in[0].get(i), y = in[1].get(i);
      NDArray e({1}, in[0].dtype());
      e.set(0, std::max(x, 0.0));
      EXPECT_EQ(r.get(i), e.get(0)) << dt;
      e.set(0, x + y);
      EXPECT_EQ(a.get(i), e.get(0)) << dt;
      e.set(0, x * y);
      EXPECT_EQ(m.get(i), e.get(0)) << dt;
      e.set(0, x + b_vec.get(i % 7));
      EXPECT_EQ(b.get(i), e.get(0)) << dt;
    }
  }
}

// -------------------------------------------------------- expression semantics
TEST(Interp, CastsDivisionAndIntermediateRounding) {
  using namespace te;
  Tensor A = placeholder({6}, DataType::f32(), "A");
  Tensor I = placeholder({6}, DataType::i32(), "I");
  Tensor trunc = compute(
      {6}, [&](Index i) { return cast(DataType::i32(), A(i[0])); }, "trunc");
  Tensor wrap = compute(
      {6}, [&](Index i) { return cast(DataType::i8(), I(i[0]) * 100); }, "wrap");
  Tensor fdiv = compute(
      {6}, [&](Index i) { return I(i[0]) / 4; }, "fdiv");
  Tensor fmod = compute(
      {6}, [&](Index i) { return I(i[0]) % 4; }, "fmod");
  // Casting to f16 inside an f32 expression rounds through f16.
  Tensor half = compute(
      {6}, [&](Index i) { return cast(DataType::f32(), cast(DataType::f16(), A(i[0]))); }, "half");
  // An f16 intermediate tensor is stored rounded and read back rounded.
  Tensor h16 = compute(
      {6}, [&](Index i) { return cast(DataType::f16(), A(i[0]) * 3.0f); }, "h16");
  Tensor back = compute(
      {6}, [&](Index i) { return cast(DataType::f32(), h16(i[0])); }, "back");
  // Select is eager but picks the right side; comparisons yield bool.
  Tensor sel = compute(
      {6}, [&](Index i) { return select(A(i[0]) > 0.0f, A(i[0]), -A(i[0])); }, "sel");
  te::Workload w = make({A.node(), I.node()},
                        {trunc.node(), wrap.node(), fdiv.node(), fmod.node(), half.node(), back.node(), sel.node()});
  NDArray a = from({-2.7, 2.7, 0.1, -0.5, 1000.3, 3.3}, {6}, DataType::f32());
  NDArray in = from({-7, 7, -8, 2, 3, -1}, {6}, DataType::i32());
  auto out = run(w, {a, in});
  ASSERT_EQ(out.size(), 7u);
  std::vector<double> t = {-2, 2, 0, 0, 1000, 3};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[0].get(i), t[i]) << i;
  std::vector<double> wr = {68, -68, -32, -56, 44, -100}; // I * 100 wrapped to i8
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[1].get(i), wr[i]) << i;
  std::vector<double> q = {-2, 1, -2, 0, 0, -1}, r = {1, 3, 0, 2, 3, 3};
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(out[2].get(i), q[i]) << i;
    EXPECT_EQ(out[3].get(i), r[i]) << i;
    float ai = float(a.get(i));
    EXPECT_EQ(out[4].get(i), double(f16_to_float(float_to_f16(ai)))) << i;
    EXPECT_EQ(out[5].get(i), double(f16_to_float(float_to_f16(float(double(ai) * 3.0))))) << i;
    EXPECT_EQ(out[6].get(i), std::fabs(a.get(i))) << i;
  }
}

TEST(Interp, IntrinsicsAndLet) {
  using namespace te;
  Tensor A = placeholder({4}, DataType::f64(), "A");
  std::vector<std::function<Expr(Expr)>> fns = {
      [](Expr x) { return ir::exp(x); },   [](Expr x) { return ir::log(x); },   [](Expr x) { return ir::sqrt(x); },
      [](Expr x) { return ir::rsqrt(x); }, [](Expr x) { return ir::tanh(x); },  [](Expr x) { return ir::erf(x); },
      [](Expr x) { return ir::abs(-x); },  [](Expr x) { return ir::floor(x); }, [](Expr x) { return ir::ceil(x); },
      [](Expr x) { return ir::pow(x, x); }};
  std::vector<std::function<double(double)>> refs = {
      [](double x) { return std::exp(x); },  [](double x) { return std::log(x); },
      [](double x) { return std::sqrt(x); }, [](double x) { return 1 / std::sqrt(x); },
      [](double x) { return std::tanh(x); }, [](double x) { return std::erf(x); },
      [](double x) { return std::fabs(x); }, [](double x) { return std::floor(x); },
      [](double x) { return std::ceil(x); }, [](double x) { return std::pow(x, x); }};
  std::vector<ir::Tensor> outs;
  for (size_t f = 0; f < fns.size(); ++f)
    outs.push_back(compute(
                       {4}, [&](Index i) { return fns[f](A(i[0])); }, "f" + std::to_string(f))
                       .node());
  // let t = A[i] * 2 in t + t; and an integer let used as an index.
  Expr t = ir::Var::make(DataType::f64(), "t");
  outs.push_back(compute(
                     {4}, [&](Index i) { return ir::Let::make(t, A(i[0]) * 2.0, t + t); }, "flet")
                     .node());
  Expr j = ir::Var::make(DataType::index(), "j");
  outs.push_back(compute(
                     {4},
                     [&](Index i) {
                       return ir::Let::make(j, 3 - i[0], A(ir::max(ir::min(j, Expr(int64_t(3))), Expr(int64_t(0)))));
                     },
                     "ilet")
                     .node());
  te::Workload w = make({A.node()}, outs);
  NDArray a = from({0.5, 1.25, 2.0, 3.75}, {4}, DataType::f64());
  auto out = run(w, {a});
  ASSERT_EQ(out.size(), fns.size() + 2);
  for (size_t f = 0; f < fns.size(); ++f)
    for (int64_t i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(out[f].get(i), refs[f](a.get(i))) << "intrinsic " << f;
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(out[fns.size()].get(i), 4 * a.get(i));
    EXPECT_EQ(out[fns.size() + 1].get(i), a.get(3 - i));
  }
}

TEST(Interp, IntegerReductionsAndIdentities) {
  using namespace te;
  Tensor I = placeholder({3, 4}, DataType::i32(), "I");
  IterVar k = reduce_axis(4, "k");
  Tensor mx = compute(
      {3}, [&](Index i) { return max_reduce(I(i[0], k), {k}); }, "mx");
  IterVar k2 = reduce_axis(4, "k");
  Tensor mn = compute(
      {3}, [&](Index i) { return min_reduce(I(i[0], k2), {k2}); }, "mn");
  IterVar a = reduce_axis(3, "a"), b = reduce_axis(4, "b");
  Tensor total = compute(
      {1},
      [&](Index) {
        return sum(I(a, b), {a, b});
      },
      "total");
  te::Workload w = make({I.node()}, {mx.node(), mn.node(), total.node()});
  NDArray in = from({-5, -9, -7, -6, 1, 2, 3, 4, 0, -1, 7, 2}, {3, 4}, DataType::i32());
  auto out = run(w, {in});
  EXPECT_EQ(out[0].get(0), -5);
  EXPECT_EQ(out[0].get(1), 4);
  EXPECT_EQ(out[0].get(2), 7);
  EXPECT_EQ(out[1].get(0), -9);
  EXPECT_EQ(out[1].get(2), -1);
  EXPECT_EQ(out[2].get(0), -9);
}

TEST(Interp, DivisionByZeroIsAnError) {
  using namespace te;
  Tensor I = placeholder({3}, DataType::i32(), "I");
  Tensor J = placeholder({3}, DataType::i32(), "J");
  Tensor D = compute(
      {3}, [&](Index i) { return I(i[0]) / J(i[0]); }, "D");
  te::Workload w = make({I.node(), J.node()}, {D.node()});
  auto r = interpret(w, {from({1, 2, 3}, {3}, DataType::i32()), from({1, 0, 1}, {3}, DataType::i32())});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("division by zero"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("stage D"), std::string::npos) << r.error();
}

TEST(Interp, OutOfBoundsReadIsAnErrorNotACrash) {
  using namespace te;
  Tensor A = placeholder({4}, DataType::f32(), "A");
  Tensor B = compute(
      {4}, [&](Index i) { return A(i[0] + 1); }, "B");
  // make_workload rejects this; assemble the workload by hand to test the
  // interpreter's own check.
  EXPECT_FALSE(te::make_workload("", {A.node()}, {B.node()}));
  te::Workload w;
  w.key = "oob";
  w.inputs = {A.node()};
  w.outputs = {B.node()};
  w.stages = {B.node()};
  auto r = interpret(w, {NDArray({4}, DataType::f32())});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("read of A: index 0 is 4, outside [0, 4)"), std::string::npos) << r.error();
}

TEST(Interp, InputMismatchErrors) {
  te::Workload w = build("matmul:M=2,N=3,K=4");
  auto r = interpret(w, {NDArray({2, 4}, DataType::f32())});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("takes 2 input(s) but 1 were given"), std::string::npos) << r.error();
  r = interpret(w, {NDArray({2, 4}, DataType::f32()), NDArray({4, 4}, DataType::f32())});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("input 1 (B) should be f32[4, 3], got f32[4, 4]"), std::string::npos) << r.error();
  r = interpret(w, {NDArray({2, 4}, DataType::f16()), NDArray({4, 3}, DataType::f32())});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("input 0 (A) should be f32[2, 4], got f16[2, 4]"), std::string::npos) << r.error();
  auto outs = empty_outputs(w);
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(outs[0].get(5), 0.0);
}

TEST(Interp, Matmul256IsFast) {
  te::Workload w = build("matmul:M=256,N=256,K=256");
  auto in = random_inputs(w, 1);
  auto start = std::chrono::steady_clock::now();
  auto out = run(w, in);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(out.size(), 1u);
  // Spot-check a few elements against loops.
  for (int64_t idx : {int64_t(0), int64_t(12345), int64_t(256 * 256 - 1)}) {
    double acc = 0;
    int64_t i = idx / 256, j = idx % 256;
    for (int64_t k = 0; k < 256; ++k) acc += in[0].get(i * 256 + k) * in[1].get(k * 256 + j);
    EXPECT_NEAR(out[0].get(idx), acc, 1e-4);
  }
  RecordProperty("seconds", std::to_string(seconds));
#ifdef NDEBUG
  EXPECT_LT(seconds, 2.0);
#endif
}
