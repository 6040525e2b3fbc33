// A 3-layer MLP on Tessel kernels linked from a kernel library (mlp.h, built by
// tessel_add_kernels from a tuning database). Weights are packed once, then each
// inference calls the three prepacked kernels.
//   mlp --check        compare the output with Tessel's reference interpreter
//   mlp --bench N      median time of N inferences (and of oneDNN's, when built with it)
#include "mlp.h"

#include "jit/load_best.h"

#ifdef MLP_WITH_ONEDNN
#include <dnnl.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Buffer { // 64-byte aligned floats
  explicit Buffer(size_t n) : n(n), p(static_cast<float *>(std::aligned_alloc(64, (n * 4 + 63) / 64 * 64))) {}
  ~Buffer() { std::free(p); }
  Buffer(const Buffer &) = delete;
  size_t n;
  float *p;
};

void fill(Buffer &b, unsigned seed, float scale) {
  for (size_t i = 0; i < b.n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    b.p[i] = (float((seed >> 8) & 0xffff) / 65535.0f - 0.5f) * scale;
  }
}

void *packed(int64_t bytes) { return std::aligned_alloc(64, size_t((bytes + 63) / 64 * 64)); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class F> double time_us(F &&f, int repeats) {
  for (int i = 0; i < 10; ++i) f(); // warm caches and the thread pool
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) f();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / 10);
  }
  return median(t);
}

} // namespace

int main(int argc, char **argv) {
  bool check = false;
  int bench = 0, threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--check")
      check = true;
    else if (a == "--bench" && i + 1 < argc)
      bench = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: mlp [--check] [--bench N] [--threads N]\n");
      return 2;
    }
  }
  Buffer x(784), w1(512 * 784), b1(512), w2(256 * 512), b2(256), w3(10 * 256), b3(10);
  Buffer h1(512), h2(256), y(10);
  fill(x, 1, 2), fill(w1, 2, 0.1f), fill(b1, 3, 0.1f), fill(w2, 4, 0.1f), fill(b2, 5, 0.1f), fill(w3, 6, 0.1f),
      fill(b3, 7, 0.1f);

  // Weights and biases are constants: packed once, into the kernels' own layouts.
  void *w1p = packed(mlp_fc1_W_packed_bytes()), *b1p = packed(mlp_fc1_b_packed_bytes());
  void *w2p = packed(mlp_fc2_W_packed_bytes()), *b2p = packed(mlp_fc2_b_packed_bytes());
  void *w3p = packed(mlp_fc3_W_packed_bytes()), *b3p = packed(mlp_fc3_b_packed_bytes());
  mlp_fc1_pack_W(w1.p, w1p), mlp_fc1_pack_b(b1.p, b1p), mlp_fc2_pack_W(w2.p, w2p), mlp_fc2_pack_b(b2.p, b2p);
  mlp_fc3_pack_W(w3.p, w3p), mlp_fc3_pack_b(b3.p, b3p);
  auto infer = [&] {
    mlp_fc1_prepacked(x.p, w1p, b1p, h1.p, threads);
    mlp_fc2_prepacked(h1.p, w2p, b2p, h2.p, threads);
    mlp_fc3_prepacked(h2.p, w3p, b3p, y.p, threads);
  };
  infer();
  std::printf("output   ");
  for (int i = 0; i < 10; ++i) std::printf("%.4f ", y.p[i]);
  std::printf("\n");

  if (check) { // the reference interpreter, layer by layer on its own outputs
    Buffer r1(512), r2(256), r3(10);
    const std::string dir = MLP_SOURCE_DIR;
    tessel::Status s = tessel::reference(dir + "/fc1.te", {x.p, w1.p, b1.p}, {r1.p});
    if (s) s = tessel::reference(dir + "/fc2.te", {r1.p, w2.p, b2.p}, {r2.p});
    if (s) s = tessel::reference(dir + "/fc3.te", {r2.p, w3.p, b3.p}, {r3.p});
    if (!s) {
      std::fprintf(stderr, "mlp: reference: %s\n", s.message().c_str());
      return 1;
    }
    double worst = 0, scale = 0;
    for (int i = 0; i < 10; ++i)
      worst = std::max(worst, double(std::fabs(y.p[i] - r3.p[i]))), scale = std::max(scale, double(std::fabs(r3.p[i])));
    bool ok = worst <= 1e-4 * std::max(1.0, scale);
    std::printf("check    %s: max abs error %.3g against the reference interpreter\n", ok ? "ok" : "MISMATCH", worst);
    if (!ok) return 1;
  }
  if (bench > 0) {
    std::printf("tessel   %.2f us per inference (median of %d x 10, %d thread%s)\n", time_us(infer, bench), bench,
                threads, threads == 1 ? "" : "s");
#ifdef MLP_WITH_ONEDNN
    using namespace dnnl;
    engine eng(engine::kind::cpu, 0);
    stream st(eng);
    struct Layer {
      inner_product_forward prim;
      memory src, wei, bias, dst;
    };
    auto layer = [&](float *in, int k, float *wt, float *bs, int n, float *out, bool relu) {
      memory::desc src_md({1, k}, memory::data_type::f32, memory::format_tag::nc);
      memory::desc wei_any({n, k}, memory::data_type::f32, memory::format_tag::any);
      memory::desc bias_md({n}, memory::data_type::f32, memory::format_tag::a);
      memory::desc dst_md({1, n}, memory::data_type::f32, memory::format_tag::nc);
      primitive_attr attr;
      if (relu) {
        post_ops po;
        po.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f); // oneDNN 2.x (Debian 12)
        attr.set_post_ops(po);
      }
      inner_product_forward::desc d(prop_kind::forward_inference, src_md, wei_any, bias_md, dst_md);
      inner_product_forward::primitive_desc pd(d, attr, eng);
      memory user_w({{n, k}, memory::data_type::f32, memory::format_tag::oi}, eng, wt);
      memory w(pd.weights_desc(), eng); // weights reordered once, as Tessel packs them once
      reorder(user_w, w).execute(st, user_w, w);
      return Layer{inner_product_forward(pd), memory(src_md, eng, in), w, memory(bias_md, eng, bs),
                   memory(dst_md, eng, out)};
    };
    Buffer d1(512), d2(256), d3(10);
    std::vector<Layer> net = {layer(x.p, 784, w1.p, b1.p, 512, d1.p, true),
                              layer(d1.p, 512, w2.p, b2.p, 256, d2.p, true),
                              layer(d2.p, 256, w3.p, b3.p, 10, d3.p, false)};
    auto infer_dnnl = [&] {
      for (auto &l : net)
        l.prim.execute(
            st, {{DNNL_ARG_SRC, l.src}, {DNNL_ARG_WEIGHTS, l.wei}, {DNNL_ARG_BIAS, l.bias}, {DNNL_ARG_DST, l.dst}});
      st.wait();
    };
    std::printf("onednn   %.2f us per inference (inner_product + ReLU post-op, same weights)\n",
                time_us(infer_dnnl, bench));
    double diff = 0;
    for (int i = 0; i < 10; ++i) diff = std::max(diff, double(std::fabs(d3.p[i] - y.p[i])));
    std::printf("onednn   output differs from Tessel's by at most %.3g\n", diff);
#endif
  }
  for (void *p : {w1p, b1p, w2p, b2p, w3p, b3p}) std::free(p);
  return 0;
}
