// Tensor intrinsics beyond this machine's hardware: AMX tiles (CPU) and WMMA
// tensor cores (CUDA). Their kernels, the legality of tensorizing onto them,
// and the sketches that use them, checked against the reference interpreter
// through the intrinsics' emulations (and on real AMX when the host has it).
#include "ir/printer.h"
#include "kernel_check.h"
#include "schedules/intrinsics.h"
#include "schedules/primitives.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "support/float16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

using namespace tessel;
using tessel::testing::kernel_matches_interpreter;
using tessel::testing::op_workload;

namespace {

Target load_target(const std::string &name) {
  auto t = Target::load(std::string(TESSEL_SOURCE_DIR) + "/configs/targets/" + name + ".json");
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error());
  return t ? *t : Target{};
}

// ---------------------------------------------------------------- AMX kernels
using Bf16Kernel = void (*)(float *, int64_t, const uint16_t *, int64_t, int64_t, const uint16_t *, int64_t, int64_t,
                            int64_t, int64_t);
using I8Kernel = void (*)(int32_t *, int64_t, const int8_t *, int64_t, int64_t, const int8_t *, int64_t, int64_t,
                          int64_t, int64_t);

struct Case {
  int64_t m, n, k;
  bool a_transposed; // A read column-major (lda_k = m) instead of row-major
};
const Case kCases[] = {{1, 1, 1, false},    {16, 16, 32, false}, {16, 16, 64, false}, {17, 15, 33, false},
                       {32, 48, 96, false}, {5, 70, 7, true},    {40, 33, 65, true},  {64, 64, 128, false},
                       {3, 2, 200, false},  {31, 1, 31, true}};

// C starts non-zero: the kernels accumulate. ldc, ldb are wider than n, and A
// has padding too, so strides are exercised. In is float or bf16 (uint16_t).
template <typename In>
void check_float(void (*kernel)(float *, int64_t, const In *, int64_t, int64_t, const In *, int64_t, int64_t, int64_t,
                                int64_t),
                 decltype(kernel) reference, const Case &c) {
  std::mt19937 gen(unsigned(c.m * 131 + c.n * 17 + c.k));
  std::uniform_real_distribution<float> d(-2, 2);
  auto draw = [&] {
    if constexpr (std::is_same_v<In, float>)
      return d(gen);
    else
      return float_to_bf16(d(gen));
  };
  int64_t ldc = c.n + 3, ldb = c.n + 5, lda = (c.a_transposed ? c.m : c.k) + 2;
  std::vector<In> A(size_t(lda * (c.a_transposed ? c.k : c.m))), B(size_t(ldb * c.k));
  for (auto &x : A) x = draw();
  for (auto &x : B) x = draw();
  std::vector<float> C(size_t(ldc * c.m)), R;
  for (auto &x : C) x = d(gen);
  R = C;
  int64_t lda_m = c.a_transposed ? 1 : lda, lda_k = c.a_transposed ? lda : 1;
  kernel(C.data(), ldc, A.data(), lda_m, lda_k, B.data(), ldb, c.m, c.n, c.k);
  reference(R.data(), ldc, A.data(), lda_m, lda_k, B.data(), ldb, c.m, c.n, c.k);
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      float got = C[size_t(i * ldc + j)], want = R[size_t(i * ldc + j)];
      if (j >= c.n)
        ASSERT_EQ(got, want) << "wrote outside the tile at " << i << ", " << j;
      else
        ASSERT_NEAR(got, want, 1e-4f * float(c.k) * 4 + 1e-5f)
            << i << ", " << j << " of " << c.m << "x" << c.n << "x" << c.k;
    }
}
void check_bf16(Bf16Kernel kernel, const Case &c) { check_float<uint16_t>(kernel, tessel_ukernel_bf16_reference, c); }

void check_i8(I8Kernel kernel, const Case &c) {
  std::mt19937 gen(unsigned(c.m * 7 + c.n * 31 + c.k));
  std::uniform_int_distribution<int> d(-128, 127);
  int64_t ldc = c.n + 1, ldb = c.n + 7, lda = (c.a_transposed ? c.m : c.k) + 9;
  std::vector<int8_t> A(size_t(lda * (c.a_transposed ? c.k : c.m))), B(size_t(ldb * c.k));
  for (auto &x : A) x = int8_t(d(gen));
  for (auto &x : B) x = int8_t(d(gen));
  std::vector<int32_t> C(size_t(ldc * c.m)), R;
  for (auto &x : C) x = d(gen) * 1000;
  R = C;
  int64_t lda_m = c.a_transposed ? 1 : lda, lda_k = c.a_transposed ? lda : 1;
  kernel(C.data(), ldc, A.data(), lda_m, lda_k, B.data(), ldb, c.m, c.n, c.k);
  tessel_ukernel_i8_reference(R.data(), ldc, A.data(), lda_m, lda_k, B.data(), ldb, c.m, c.n, c.k);
  ASSERT_EQ(C, R) << c.m << "x" << c.n << "x" << c.k; // integer sums are exact
}

} // namespace

TEST(AmxKernels, EmulatedTilesMatchTheReference) {
  for (const Case &c : kCases) {
    check_bf16(tessel_ukernel_bf16_amx_emulated, c);
    check_i8(tessel_ukernel_i8_amx_emulated, c);
  }
}

TEST(AmxKernels, HardwareTilesMatchTheReference) {
  if (!tessel_amx_usable()) GTEST_SKIP() << "this CPU has no AMX (or Linux refused the tile state)";
  for (const Case &c : kCases) {
    check_bf16(tessel_ukernel_bf16_amx, c);
    check_i8(tessel_ukernel_i8_amx, c);
  }
}

// The f32 FMA micro-kernels run where the host has their ISA; on other hosts the
// schedules that use them are still checked through the emulation (F32FmaTensorize).
using F32Kernel = void (*)(float *, int64_t, const float *, int64_t, int64_t, const float *, int64_t, int64_t, int64_t,
                           int64_t);
class F32FmaKernel : public ::testing::TestWithParam<std::pair<const char *, F32Kernel>> {};

TEST_P(F32FmaKernel, MatchesTheReference) {
  auto [name, kernel] = GetParam();
  const sched::TensorIntrinsic *in = sched::find_tensor_intrinsic(name);
  ASSERT_NE(in, nullptr) << name;
  if (!in->available_on(Target::host())) GTEST_SKIP() << "host lacks " << in->required_feature << " for " << name;
  for (const Case &c : kCases) check_float<float>(kernel, tessel_ukernel_f32_reference, c);
}

// The AVX-512 BF16 kernel over the same shapes: full 64-column tiles (their own unmasked loop), ragged ones, odd k
// (a last pair with a zero partner) and column-major A.
TEST(CpuKernels, Avx512Bf16DotMatchesTheReference) {
  const sched::TensorIntrinsic *in = sched::find_tensor_intrinsic("avx512_bf16_dot");
  ASSERT_NE(in, nullptr);
  if (!in->available_on(Target::host()))
    GTEST_SKIP() << "host lacks " << in->required_feature << " for avx512_bf16_dot";
  for (const Case &c : kCases) check_bf16(tessel_ukernel_bf16_dot_avx512, c);
}

INSTANTIATE_TEST_SUITE_P(
    CpuKernels, F32FmaKernel,
    ::testing::Values(std::pair<const char *, F32Kernel>{"avx512_fma_f32", tessel_ukernel_f32_fma_avx512},
                      std::pair<const char *, F32Kernel>{"avx2_fma_f32", tessel_ukernel_f32_fma_avx2}),
    [](const auto &info) { return std::string(info.param.first); });

// ------------------------------------------------------------ the AMX space
namespace {
// Samples of the tensorize sketch for an AMX target, each checked with the
// AMX kernels emulated; returns how many used `intrinsic`.
int check_amx_samples(const std::string &spec, const std::string &intrinsic, int n) {
  te::Workload w = op_workload(spec);
  Target amx = load_target("cpu-avx512-amx");
  sched::SpaceGenerator gen(amx);
  std::vector<sched::Sketch> tensorized;
  for (auto &k : gen.sketches(w))
    if (k.tensorize) tensorized.push_back(k);
  EXPECT_FALSE(tensorized.empty()) << spec;
  int used = 0;
  sched::Rng rng(17);
  for (int i = 0; i < n && !tensorized.empty(); ++i) {
    const sched::Sketch &k = tensorized[size_t(i) % tensorized.size()];
    auto s = gen.sample(w, k, rng);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error());
    if (!s) return used;
    std::string json = sched::trace_to_json(*s);
    used += json.find("\"" + intrinsic + "\"") != std::string::npos;
    EXPECT_TRUE(kernel_matches_interpreter(*s, uint64_t(i), i % 2 ? 2 : 1, false, /*emulate_intrinsics=*/true))
        << "sample " << i << " of " << k.name << "\n"
        << json;
  }
  return used;
}
} // namespace

TEST(AmxSpace, Bf16MatmulRunsOnAmxTiles) {
  EXPECT_EQ(check_amx_samples("matmul:M=48,N=64,K=80,dtype=bf16", "amx_bf16", 24), 24);
}
TEST(AmxSpace, Int8MatmulRunsOnAmxTiles) {
  EXPECT_EQ(check_amx_samples("matmul:M=40,N=48,K=96,dtype=i8", "amx_int8", 24), 24);
}
TEST(AmxSpace, Bf16BatchMatmul) {
  EXPECT_EQ(check_amx_samples("batch_matmul:B=2,M=20,N=32,K=40,dtype=bf16", "amx_bf16", 12), 12);
}
TEST(AmxSpace, Int8DenseWithPackedWeights) {
  EXPECT_GT(check_amx_samples("dense:M=16,N=32,K=64,dtype=i8", "amx_int8", 12), 0);
}

TEST(AmxSpace, TheCpuBackEndRefusesAmxWithoutTheFeature) {
  te::Workload w = op_workload("matmul:M=32,N=32,K=32,dtype=i8");
  sched::SpaceGenerator gen(load_target("cpu-avx512-amx"));
  auto sketches = gen.sketches(w);
  sched::Rng rng(1);
  auto s = gen.sample(w, sketches.back(), rng);
  ASSERT_TRUE(s.has_value()) << s.error();
  auto p = lower::lower(*s, "k");
  ASSERT_TRUE(p.has_value()) << p.error();
  Target avx512 = load_target("cpu-avx512");
  auto k = codegen::jit_compile(*p, avx512);
  ASSERT_FALSE(k.has_value());
  EXPECT_NE(k.error().find("needs the CPU feature amx-int8"), std::string::npos) << k.error();
  EXPECT_NE(k.error().find("--emulate-intrinsics"), std::string::npos) << k.error();
}

// ------------------------------------------------------- tensor cores (WMMA)
namespace {
// `prefix` names the intrinsics' family ("wmma_f16_"); the shape is a sampled decision.
void check_tensor_core_samples(const std::string &spec, const std::string &prefix, int n, size_t min_shapes = 2) {
  te::Workload w = op_workload(spec);
  Target target = load_target("h100");
  sched::SpaceGenerator gen(target);
  gen.set_validator([&](const sched::Schedule &sch) {
    auto p = lower::lower(sch, "k");
    return p ? lower::check_gpu_limits(p->kernel, target) : Status::error(p.error());
  });
  auto sketches = gen.sketches(w);
  ASSERT_EQ(sketches[0].name, "gpu-tensorcore") << spec;
  sched::Rng rng(23);
  std::set<std::string> shapes;
  for (int i = 0; i < n; ++i) {
    auto s = gen.sample(w, sketches[0], rng);
    ASSERT_TRUE(s.has_value()) << s.error();
    std::string json = sched::trace_to_json(*s);
    EXPECT_NE(json.find("\"" + prefix), std::string::npos) << json;
    EXPECT_NE(json.find("\"scope\":\"fragment\""), std::string::npos) << json;
    auto p = lower::lower(*s, "k");
    ASSERT_TRUE(p.has_value()) << p.error();
    lower::GpuResources r = lower::gpu_resources(p->kernel);
    ASSERT_EQ(r.warp_intrinsics.size(), 1u);
    EXPECT_EQ(r.warp_intrinsics[0].rfind(prefix, 0), 0u) << r.warp_intrinsics[0];
    shapes.insert(r.warp_intrinsics[0]);
    EXPECT_EQ(r.threads_per_block % 32, 0) << "warps are whole";
    EXPECT_GT(r.shared_bytes, 0);
    ASSERT_TRUE(kernel_matches_interpreter(*s, uint64_t(i), 1, /*emulate_gpu=*/true)) << "sample " << i << "\n" << json;
    // The trace is the contract: it replays to the same program.
    auto again = sched::replay_json(w, json);
    ASSERT_TRUE(again.has_value()) << again.error();
    auto q = lower::lower(*again, "k");
    ASSERT_TRUE(q.has_value());
    EXPECT_EQ(ir::to_string(p->kernel.body), ir::to_string(q->kernel.body));
  }
  EXPECT_GE(shapes.size(), min_shapes) << "m16n16k16, m32n8k16 and m8n32k16 are all in the space";
}
} // namespace

TEST(TensorCoreSpace, F16Matmul) { check_tensor_core_samples("matmul:M=64,N=96,K=48,dtype=f16", "wmma_f16_", 20); }
TEST(TensorCoreSpace, Bf16Matmul) { check_tensor_core_samples("matmul:M=32,N=64,K=64,dtype=bf16", "wmma_bf16_", 12); }
TEST(TensorCoreSpace, F16BatchMatmul) {
  check_tensor_core_samples("batch_matmul:B=3,M=32,N=32,K=32,dtype=f16", "wmma_f16_", 12);
}
TEST(TensorCoreSpace, OnlyM8N32FitsRowsOf24) {
  check_tensor_core_samples("matmul:M=24,N=64,K=32,dtype=f16", "wmma_f16_m8n32k16", 8, 1);
}
TEST(TensorCoreSpace, Int8Matmul) { check_tensor_core_samples("matmul:M=48,N=32,K=64,dtype=i8", "wmma_i8_", 12); }

TEST(TensorCoreSpace, OnlyWhenShapesAndTargetAllow) {
  Target h100 = load_target("h100");
  auto names = [](const Target &t, const std::string &spec) {
    std::vector<std::string> out;
    for (auto &k : sched::SpaceGenerator(t).sketches(op_workload(spec))) out.push_back(k.name);
    return out;
  };
  auto has_tc = [&](const Target &t, const std::string &spec) {
    auto n = names(t, spec);
    return std::find(n.begin(), n.end(), "gpu-tensorcore") != n.end();
  };
  EXPECT_TRUE(has_tc(h100, "matmul:M=32,N=32,K=32,dtype=f16"));
  EXPECT_TRUE(has_tc(h100, "matmul:M=24,N=32,K=32,dtype=f16")) << "m8n32k16 tiles 24 x 32";
  EXPECT_FALSE(has_tc(h100, "matmul:M=20,N=32,K=32,dtype=f16")) << "20 is not a multiple of 8";
  EXPECT_FALSE(has_tc(h100, "matmul:M=32,N=32,K=24,dtype=f16")) << "k must be a multiple of 16";
  EXPECT_FALSE(has_tc(h100, "matmul:M=32,N=32,K=32,dtype=f32")) << "no f32 WMMA intrinsic";
  Target no_tc = h100;
  no_tc.gpu->tensor_cores.clear();
  EXPECT_FALSE(has_tc(no_tc, "matmul:M=32,N=32,K=32,dtype=f16"));
  EXPECT_FALSE(has_tc(load_target("cpu-avx512"), "matmul:M=32,N=32,K=32,dtype=f16"));

  // A tensor-core schedule is refused for a device without that shape.
  te::Workload w = op_workload("matmul:M=32,N=32,K=32,dtype=f16");
  sched::SpaceGenerator gen(h100);
  sched::Rng rng(2);
  auto s = gen.sample(w, gen.sketches(w)[0], rng);
  ASSERT_TRUE(s.has_value()) << s.error();
  auto p = lower::lower(*s, "k");
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(lower::check_gpu_limits(p->kernel, h100));
  Status st = lower::check_gpu_limits(p->kernel, no_tc);
  EXPECT_FALSE(st);
  EXPECT_NE(st.message().find("f16->f32 tensor cores, which h100 does not list"), std::string::npos) << st.message();
  // Without emulation the CPU back end refuses the warp-level call.
  EXPECT_FALSE(codegen::jit_compile(*p, Target::host()).has_value());
}

// --------------------------------------------------------------- legality
namespace {
std::string err(const Status &s) { return s ? "" : s.message(); }
template <typename T> std::string err(const Expected<T> &e) { return e ? "" : e.error(); }

// matmul f16 with C's accumulator in a fragment, tiled 16 x 16 x 16 at the warp loop.
sched::Schedule fragment_schedule(const std::string &spec = "matmul:M=32,N=32,K=32,dtype=f16") {
  sched::Schedule s = sched::default_schedule(op_workload(spec));
  auto frag = sched::cache_write(s, "Cacc", ir::MemoryScope::Fragment);
  EXPECT_TRUE(frag.has_value()) << err(frag);
  EXPECT_TRUE(sched::compute_inline(s, "Cacc"));
  return s;
}
} // namespace

TEST(TensorIntrinsicLegality, ClearErrors) {
  struct Case {
    std::string what, expect;
    std::function<std::string()> apply;
  };
  std::vector<Case> cases = {
      {"warp-level intrinsic on a global stage", "cache_write the contraction with scope fragment",
       [] {
         sched::Schedule s = sched::default_schedule(op_workload("matmul:M=16,N=16,K=16,dtype=f16"));
         (void)sched::reorder(s, "Cacc", {2, 0, 1});
         return err(sched::tensorize(s, "Cacc", 2, "wmma_f16_m16n16k16"));
       }},
      {"CPU intrinsic on a fragment", "only warp-level tensor intrinsics",
       [] {
         sched::Schedule s = sched::default_schedule(op_workload("matmul:M=16,N=16,K=16,dtype=bf16"));
         (void)sched::cache_write(s, "Cacc", ir::MemoryScope::Fragment);
         (void)sched::reorder(s, "Cacc_fragment", {2, 0, 1});
         return err(sched::tensorize(s, "Cacc_fragment", 2, "amx_bf16"));
       }},
      {"WMMA tile of the wrong shape", "computes m16n16k16 tiles",
       [] {
         sched::Schedule s = fragment_schedule();
         (void)sched::reorder(s, "Cacc_fragment", {2, 0, 1});
         return err(sched::tensorize(s, "Cacc_fragment", 2, "wmma_f16_m16n16k16"));
       }},
      {"WMMA with the wrong dtype", "computes f32 += bf16 * bf16",
       [] {
         sched::Schedule s = sched::default_schedule(op_workload("matmul:M=16,N=16,K=16,dtype=f16"));
         (void)sched::cache_write(s, "Cacc", ir::MemoryScope::Fragment);
         (void)sched::reorder(s, "Cacc_fragment", {2, 0, 1});
         return err(sched::tensorize(s, "Cacc_fragment", 2, "wmma_bf16_m16n16k16"));
       }},
      {"WMMA under threadIdx.x", "whose lanes are threadIdx.x",
       [] {
         sched::Schedule s = sched::default_schedule(op_workload("matmul:M=32,N=16,K=16,dtype=f16"));
         (void)sched::cache_write(s, "Cacc", ir::MemoryScope::Fragment);
         auto sp = sched::split(s, "Cacc_fragment", 0, 16);
         (void)sched::reorder(s, "Cacc_fragment", {sp->outer, 2, sp->inner, 1});
         (void)sched::bind(s, "Cacc_fragment", sp->outer, "threadIdx.x");
         return err(sched::tensorize(s, "Cacc_fragment", 2, "wmma_f16_m16n16k16"));
       }},
      {"binding threadIdx.x after WMMA", "bind its loops to threadIdx.y",
       [] {
         sched::Schedule s = sched::default_schedule(op_workload("matmul:M=32,N=16,K=16,dtype=f16"));
         (void)sched::cache_write(s, "Cacc", ir::MemoryScope::Fragment);
         auto sp = sched::split(s, "Cacc_fragment", 0, 16);
         (void)sched::reorder(s, "Cacc_fragment", {sp->outer, 2, sp->inner, 1});
         EXPECT_TRUE(sched::tensorize(s, "Cacc_fragment", 2, "wmma_f16_m16n16k16"));
         return err(sched::bind(s, "Cacc_fragment", sp->outer, "threadIdx.x"));
       }},
      {"cache_read into a fragment", "holds only the accumulators",
       [] {
         sched::Schedule s = sched::default_schedule(op_workload("matmul:M=16,N=16,K=16,dtype=f16"));
         return err(sched::cache_read(s, "A", "Cacc", ir::MemoryScope::Fragment));
       }},
      {"cache_write of an elementwise stage into a fragment", "is not a reduction",
       [] {
         sched::Schedule s = sched::default_schedule(op_workload("relu:M=16,N=16"));
         return err(sched::cache_write(s, s.stages.back().tensor->name, ir::MemoryScope::Fragment));
       }},
      {"tile whose B operand is not contiguous along j", "does not fit avx512_fma_f32",
       [] { // dense reads W[j, k]: only a packed W (transform_layout) makes it fit
         sched::Schedule s = sched::default_schedule(op_workload("dense:M=16,N=16,K=16"));
         (void)sched::reorder(s, "matmul", {2, 0, 1});
         return err(sched::tensorize(s, "matmul", 2, "avx512_fma_f32"));
       }},
      {"fragment never tensorized", "not tensorized with a warp-level intrinsic",
       [] { return err(lower::lower(fragment_schedule(), "k")); }},
  };
  for (auto &c : cases) {
    std::string e = c.apply();
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.what << ": got '" << e << "'";
  }
}

TEST(TensorIntrinsics, RegistryIsConsistent) {
  for (auto &in : sched::tensor_intrinsics()) {
    EXPECT_EQ(sched::find_tensor_intrinsic(in.name), &in);
    EXPECT_EQ(sched::intrinsic_of_symbol(in.runtime_symbol), &in) << in.name;
    EXPECT_EQ(sched::intrinsic_of_symbol(in.emulation_symbol), nullptr) << in.name;
    EXPECT_TRUE(in.target_kind == "cpu" || in.target_kind == "cuda") << in.name;
    EXPECT_EQ(in.warp_level, in.target_kind == "cuda") << in.name;
    EXPECT_EQ(in.available_on(load_target("h100")), in.target_kind == "cuda") << in.name;
  }
  EXPECT_TRUE(sched::find_tensor_intrinsic("amx_bf16")->available_on(load_target("cpu-avx512-amx")));
  EXPECT_FALSE(sched::find_tensor_intrinsic("amx_bf16")->available_on(load_target("cpu-avx512")));
}

// The smallest tensor-core schedule, by hand: one fragment at the root, one WMMA.
TEST(TensorCoreSpace, HandWrittenScheduleAndLaneLimits) {
  Target h100 = load_target("h100");
  auto build = [](int64_t lanes) {
    sched::Schedule s = sched::default_schedule(op_workload("matmul:M=16,N=16,K=16,dtype=f16"));
    EXPECT_TRUE(sched::cache_write(s, "Cacc", ir::MemoryScope::Fragment).has_value());
    EXPECT_TRUE(sched::compute_inline(s, "Cacc"));
    EXPECT_TRUE(sched::reorder(s, "Cacc_fragment", {2, 0, 1}));
    EXPECT_TRUE(sched::tensorize(s, "Cacc_fragment", 2, "wmma_f16_m16n16k16"));
    auto sp = sched::split(s, "C", 1, lanes); // the write-back's columns over threadIdx.x
    EXPECT_TRUE(sp.has_value());
    EXPECT_TRUE(sched::bind(s, "C", sp->inner, "threadIdx.x"));
    return s;
  };
  sched::Schedule half_warp = build(16); // 16 lanes: not a whole warp
  auto p = lower::lower(half_warp, "k");
  ASSERT_TRUE(p.has_value()) << p.error();
  Status st = lower::check_gpu_limits(p->kernel, h100);
  EXPECT_FALSE(st);
  EXPECT_NE(st.message().find("threadIdx.x is a warp's 32 lanes"), std::string::npos) << st.message();
  EXPECT_TRUE(kernel_matches_interpreter(half_warp, 5, 1, /*emulate_gpu=*/true)); // computes right, cannot launch

  sched::Schedule none = sched::default_schedule(op_workload("matmul:M=16,N=16,K=16,dtype=f16"));
  ASSERT_TRUE(sched::cache_write(none, "Cacc", ir::MemoryScope::Fragment).has_value());
  ASSERT_TRUE(sched::reorder(none, "Cacc_fragment", {2, 0, 1}));
  ASSERT_TRUE(sched::tensorize(none, "Cacc_fragment", 2, "wmma_f16_m16n16k16"));
  auto q = lower::lower(none, "k");
  ASSERT_TRUE(q.has_value()) << q.error();
  lower::GpuResources r = lower::gpu_resources(q->kernel);
  EXPECT_EQ(r.threads_per_block, 32) << "a warp-level kernel runs at least one whole warp";
  EXPECT_EQ(r.local_bytes, 16 * 16 * 4 / 32) << "a 16 x 16 f32 fragment is 8 registers per lane";
  EXPECT_TRUE(lower::check_gpu_limits(q->kernel, h100));
  EXPECT_TRUE(kernel_matches_interpreter(none, 6, 1, /*emulate_gpu=*/true));
}
