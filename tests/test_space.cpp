// The generated schedule space: sketches per workload, reproducible sampling,
// and the property that every sampled schedule is correct.
#include "ir/printer.h"
#include "kernel_check.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "te/ops.h"
#include "te/text.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <optional>
#include <set>

using namespace tessel;
using tessel::testing::kernel_matches_interpreter;

namespace {

te::Workload spec(const std::string &s) { return tessel::testing::op_workload(s); }

// TESSEL_SPACE_SAMPLES overrides the per-workload count (scripts/space_sweep runs thousands).
int samples() {
  const char *env = std::getenv("TESSEL_SPACE_SAMPLES");
  return env ? std::max(1, std::atoi(env)) : 200;
}

void check_samples(const std::string &s) {
  te::Workload w = spec(s);
  sched::SpaceGenerator gen(Target::host());
  auto sketches = gen.sketches(w);
  ASSERT_FALSE(sketches.empty());
  sched::Rng rng(2024);
  int n = samples();
  for (int i = 0; i < n; ++i) {
    const sched::Sketch &k = sketches[size_t(i) % sketches.size()];
    auto sch = gen.sample(w, k, rng);
    ASSERT_TRUE(sch.has_value()) << sch.error();
    auto ok = kernel_matches_interpreter(*sch, uint64_t(i), i % 3 == 0 ? 2 : 1);
    ASSERT_TRUE(ok) << "sample " << i << " of sketch " << k.name << "\n" << sched::trace_to_json(*sch);
  }
}

// How many of `n` samples (every sketch in turn) satisfy `pred`.
int count_samples(const std::string &s, int n, uint64_t seed,
                  const std::function<bool(const te::Workload &, const sched::Schedule &)> &pred) {
  te::Workload w = spec(s);
  sched::SpaceGenerator gen(Target::host());
  auto sketches = gen.sketches(w);
  sched::Rng rng(seed);
  int count = 0;
  for (int i = 0; i < n; ++i) {
    auto sch = gen.sample(w, sketches[size_t(i) % sketches.size()], rng);
    EXPECT_TRUE(sch.has_value()) << s << ": " << sch.error();
    if (!sch) break;
    count += pred(w, *sch);
  }
  return count;
}

} // namespace

TEST(Space, SketchesPerWorkload) {
  sched::SpaceGenerator gen(Target::host());
  bool fma = Target::host().has_feature("fma"); // an f32 FMA micro-kernel (AVX2 or AVX-512) exists
  auto mm = gen.sketches(spec("matmul:M=16,N=16,K=16"));
  // plain tiling, or a local accumulator (B is not constant: nothing to pack), or a tensorized tile
  ASSERT_EQ(mm.size(), fma ? 3u : 2u);
  auto dense = gen.sketches(spec("dense:M=8,N=32,K=16"));
  EXPECT_EQ(dense.size(), fma ? 5u : 4u); // W is constant: packing doubles them; only packed W fits the kernel
  bool fused = false;
  for (auto &k : dense)
    for (auto &r : k.rules) fused |= r.find("fused epilogue") != std::string::npos;
  EXPECT_TRUE(fused);
  auto relu = gen.sketches(spec("relu:M=4,N=8"));
  ASSERT_EQ(relu.size(), 1u);
  EXPECT_EQ(relu[0].name, "elementwise");
}

TEST(Space, SamplingIsReproducible) {
  te::Workload w = spec("conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW");
  sched::SpaceGenerator gen(Target::host());
  auto sketches = gen.sketches(w);
  for (auto &k : sketches) {
    sched::Rng a(7), b(7), c(8);
    auto s1 = gen.sample(w, k, a), s2 = gen.sample(w, k, b);
    ASSERT_TRUE(s1.has_value() && s2.has_value());
    EXPECT_EQ(sched::trace_to_json(*s1), sched::trace_to_json(*s2));
    // Replaying the sampled trace reproduces the program exactly.
    auto r = sched::replay_json(w, sched::trace_to_json(*s1));
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(ir::to_string(lower::lower(*r, "k")->kernel.body), ir::to_string(lower::lower(*s1, "k")->kernel.body));
    (void)c;
  }
  sched::Rng a(1), b(2);
  std::set<std::string> distinct;
  for (int i = 0; i < 20; ++i) distinct.insert(sched::trace_to_json(*gen.sample(w, sketches[0], a)));
  EXPECT_GT(distinct.size(), 5u) << "sampling should explore different tile sizes";
}

// A sample's choices replay to the same schedule. Changing one changes every step it drives: a tile
// size of the accumulated stage and of its local accumulator together, which one edited trace step
// cannot do. Every changed sample is still correct.
TEST(Space, ChoicesReplayAndAChangedTileChangesBothStagesItDrives) {
  te::Workload w = spec("matmul:M=48,N=64,K=32");
  sched::SpaceGenerator gen(Target::host());
  auto sketches = gen.sketches(w);
  auto k = std::find_if(sketches.begin(), sketches.end(), [](auto &s) { return s.cache_write && !s.pack; });
  ASSERT_NE(k, sketches.end());
  sched::Rng rng(11);
  sched::Decisions made;
  auto s = gen.sample(w, *k, rng, &made);
  ASSERT_TRUE(s.has_value()) << s.error();
  ASSERT_EQ(made.bounds.size(), made.picks.size());
  ASSERT_FALSE(made.picks.empty());
  sched::Decisions again = made;
  auto r = gen.resample(w, *k, again, rng);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(sched::trace_to_json(*r), sched::trace_to_json(*s));
  EXPECT_EQ(again, made);

  // The split steps of each stage, as (stage, factor) in order.
  auto splits = [](const sched::Schedule &x, const std::string &stage) {
    std::vector<int64_t> f;
    for (auto &step : x.trace)
      if (step.op == "split" && step.stage == stage) f.push_back(step.ints[1]);
    return f;
  };
  int both = 0, checked = 0;
  for (size_t i = 0; i < made.picks.size(); ++i)
    for (int64_t pick = 0; pick < made.bounds[i]; ++pick) {
      if (pick == made.picks[i]) continue;
      sched::Decisions changed = made;
      changed.picks[i] = pick;
      auto c = gen.resample(w, *k, changed, rng);
      ASSERT_TRUE(c.has_value()) << "choice " << i << " = " << pick << ": " << c.error();
      both += splits(*c, "C") != splits(*s, "C") && splits(*c, "C_local") != splits(*s, "C_local");
      if (checked++ < 6) {
        auto ok = kernel_matches_interpreter(*c, uint64_t(i));
        ASSERT_TRUE(ok) << "choice " << i << " = " << pick << "\n" << sched::trace_to_json(*c);
      }
    }
  EXPECT_GT(both, 0) << "no single choice changed the tiles of both C and its local accumulator";
}

// Property: every sampled schedule compiles and matches the interpreter.
TEST(SpaceProperty, Matmul) { check_samples("matmul:M=24,N=40,K=18"); }
TEST(SpaceProperty, BatchMatmul) { check_samples("batch_matmul:B=2,M=12,N=20,K=9"); }
TEST(SpaceProperty, Conv2dNCHW) { check_samples("conv2d:N=1,C=4,H=10,W=10,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW"); }
TEST(SpaceProperty, Conv2dNHWC) { check_samples("conv2d:N=1,C=4,H=9,W=9,K=8,R=3,S=3,stride=2,pad=1,layout=NHWC"); }
TEST(SpaceProperty, DepthwiseConv2d) { check_samples("depthwise_conv2d:N=1,C=8,H=10,W=10,R=3,S=3,stride=1,pad=1"); }
TEST(SpaceProperty, Conv2dBiasRelu) {
  check_samples("conv2d_bias_relu:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW");
}
// A 1x1 convolution whose rows (w = 10) are not whole vectors: some samples fuse h and w into one
// axis (every access stays dense), and they match like the others. A 3x3 one with padding never does.
TEST(SpaceProperty, Conv1x1FusesRowsWhereVectorsDoNotDivideThem) {
  const std::string one = "conv2d:N=1,C=8,H=8,W=10,K=8,R=1,S=1,stride=1,pad=0,layout=NCHW";
  check_samples(one);
  auto fused_rows = [](const te::Workload &, const sched::Schedule &sch) {
    for (auto &st : sch.trace)
      if (st.op == "fuse" && st.ints == std::vector<int64_t>{2, 3}) return true;
    return false;
  };
  EXPECT_GT(count_samples(one, 40, 5, fused_rows), 0) << one;
  EXPECT_EQ(count_samples("conv2d:N=1,C=8,H=8,W=10,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW", 40, 5, fused_rows), 0)
      << "padded rows do not fuse densely";
}

// Output channels blocked by the vector width (NCHWc accumulators, weights packed to match) where rows
// are not whole vectors: a sketch of its own, with and without a fused epilogue.
TEST(SpaceProperty, ChannelBlockedConvolutions) {
  for (std::string c : {"conv2d:N=1,C=8,H=6,W=10,K=32,R=3,S=3,stride=1,pad=1,layout=NCHW",
                        "conv2d_bias_relu:N=1,C=8,H=6,W=10,K=32,R=3,S=3,stride=1,pad=1,layout=NCHW"}) {
    sched::SpaceGenerator gen(Target::host());
    auto sketches = gen.sketches(spec(c));
    EXPECT_TRUE(std::any_of(sketches.begin(), sketches.end(), [](auto &k) { return k.channels; })) << c;
    check_samples(c);
  }
  // Depthwise: the channel axis also indexes the (non-constant) input, so there is nothing to block.
  sched::SpaceGenerator gen(Target::host());
  for (auto &k : gen.sketches(spec("depthwise_conv2d:N=1,C=32,H=6,W=10,R=3,S=3,stride=1,pad=1")))
    EXPECT_FALSE(k.channels) << k.name;
}

// Softmax's exps costs an exp per element and two stages read it: some samples keep it in a buffer
// (computed once) instead of inlining it into both; layernorm has no elementwise intermediate to keep.
TEST(Space, CostlyIntermediatesAndPaddingsMayStayInABuffer) {
  auto kept_in_buffer = [](const te::Workload &w, const sched::Schedule &sch) {
    for (auto &t : w.stages)
      if (t->body.as<ir::Reduce>() == nullptr && !w.is_output(t) &&
          std::none_of(sch.trace.begin(), sch.trace.end(),
                       [&](const sched::Step &st) { return st.op == "compute_inline" && st.stage == t->name; }))
        return true;
    return false;
  };
  EXPECT_GT(count_samples("softmax:M=12,N=40", 24, 3, kept_in_buffer), 0) << "exps was always inlined";
  EXPECT_EQ(count_samples("layernorm:M=12,N=48", 24, 3, kept_in_buffer), 0);
  // A convolution's padding, read at h + ry: some samples keep it in a buffer, some inline it. A
  // depthwise convolution does too little per padded element (9 multiply-adds) to pay for the pass.
  const char *conv = "conv2d:N=1,C=8,H=7,W=7,K=16,R=3,S=3,stride=1,pad=1";
  int kept = count_samples(conv, 24, 3, kept_in_buffer);
  EXPECT_GT(kept, 0) << conv << ": the padding was always inlined";
  EXPECT_LT(kept, 24) << conv << ": the padding was never inlined";
  EXPECT_EQ(count_samples("depthwise_conv2d:N=1,C=16,H=10,W=10,R=3,S=3,stride=2,pad=1", 24, 3, kept_in_buffer), 0);
  // Schedules for several threads always inline it (each core would read what the others wrote).
  te::Workload w = spec(conv);
  sched::SpaceGenerator two(Target::host(), /*threads=*/2);
  auto sketches = two.sketches(w);
  sched::Rng rng(3);
  for (int i = 0; i < 24; ++i) {
    auto sch = two.sample(w, sketches[size_t(i) % sketches.size()], rng);
    ASSERT_TRUE(sch.has_value()) << sch.error();
    EXPECT_FALSE(kept_in_buffer(w, *sch)) << "sample " << i;
  }
}

// A padding kept in a buffer is read with plain loads: no bounds test is left in the convolution's loops,
// and the program is right. An intermediate a reduction reads without a window (A scaled, read at
// [i, k]) is always inlined.
TEST(Space, PaddingKeptInABufferLeavesTheConvolutionWithoutBoundsTests) {
  te::Workload w = spec("conv2d:N=1,C=8,H=7,W=7,K=16,R=3,S=3,stride=1,pad=1");
  sched::SpaceGenerator gen(Target::host());
  auto sketches = gen.sketches(w);
  sched::Rng rng(5);
  int kept = 0;
  for (int i = 0; i < 48 && kept < 6; ++i) {
    auto sch = gen.sample(w, sketches[size_t(i) % sketches.size()], rng);
    ASSERT_TRUE(sch.has_value()) << sch.error();
    if (sch->find("pad")->attach == sched::Attach::Inline) continue;
    ++kept;
    auto p = lower::lower(*sch, "k");
    ASSERT_TRUE(p.has_value()) << p.error();
    std::string ir = ir::to_string(p->kernel.body);
    size_t conv = ir.find("conv");
    ASSERT_NE(conv, std::string::npos) << ir;
    EXPECT_EQ(ir.find("select(", conv), std::string::npos) << "sample " << i << ":\n" << ir;
    ASSERT_TRUE(kernel_matches_interpreter(*sch, uint64_t(i))) << sched::trace_to_json(*sch);
  }
  EXPECT_GT(kept, 0);
  auto scaled = te::parse_workload("input A: f32[8, 8]\ninput B: f32[8, 8]\n"
                                   "A2[i, k] = A[i, k] * 2.0\n"
                                   "C[i, j] = sum(k: A2[i, k] * B[k, j])\n");
  ASSERT_TRUE(scaled.has_value()) << scaled.error();
  sched::Rng r2(5);
  for (auto &k : gen.sketches(*scaled))
    for (int i = 0; i < 8; ++i) {
      auto sch = gen.sample(*scaled, k, r2);
      ASSERT_TRUE(sch.has_value()) << sch.error();
      EXPECT_EQ(sch->find("A2")->attach, sched::Attach::Inline) << k.name;
    }
}

// Softmax and layernorm are row-wise (every intermediate is a row reduction or a row-wise elementwise
// stage): their "rowwise" sketch computes every intermediate inside the output's loop over rows, in
// buffers of just those rows, and the programs are right (two-dimensional and batched rows). GEMMs,
// convolutions and plain elementwise workloads have no such sketch.
TEST(Space, RowWiseWorkloadsComputeIntermediatesPerBlockOfRows) {
  auto batched = te::parse_workload("input S: f32[2, 3, 40]\n"
                                    "m[b, i] = max(k: S[b, i, k])\n"
                                    "e[b, i, j] = exp(S[b, i, j] - m[b, i])\n"
                                    "s[b, i] = sum(k: e[b, i, k])\n"
                                    "P[b, i, j] = e[b, i, j] / s[b, i]\n");
  ASSERT_TRUE(batched.has_value()) << batched.error();
  sched::SpaceGenerator gen(Target::host());
  auto rowwise = [&](const te::Workload &w) {
    auto ks = gen.sketches(w);
    auto k = std::find_if(ks.begin(), ks.end(), [](auto &x) { return x.rowwise; });
    return k == ks.end() ? std::optional<sched::Sketch>() : std::optional<sched::Sketch>(*k);
  };
  for (auto s : {"matmul:M=16,N=16,K=16", "dense:M=8,N=32,K=16", "relu:M=4,N=8",
                 "conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW", "gelu:M=4,N=8"})
    EXPECT_FALSE(rowwise(spec(s))) << s;
  std::vector<te::Workload> ws{spec("softmax:M=12,N=40"), spec("layernorm:M=12,N=48"), *batched};
  for (const te::Workload &w : ws) {
    auto k = rowwise(w);
    ASSERT_TRUE(k) << w.key;
    const ir::Tensor &y = w.outputs[0];
    sched::Rng rng(11);
    for (int i = 0; i < 24; ++i) {
      auto sch = gen.sample(w, *k, rng);
      ASSERT_TRUE(sch.has_value()) << sch.error();
      for (auto &st : sch->stages) {
        if (st.tensor->name == y->name || st.attach == sched::Attach::Inline) continue;
        EXPECT_EQ(st.attach, sched::Attach::At) << st.tensor->name << " in sample " << i;
        EXPECT_EQ(st.attach_stage, y->name) << st.tensor->name << " in sample " << i;
      }
      auto p = lower::lower(*sch, "k");
      ASSERT_TRUE(p.has_value()) << p.error();
      std::string ir = ir::to_string(p->kernel.body);
      for (auto &st : sch->stages) { // every buffer holds some rows, never the whole tensor
        size_t at = ir.find(st.tensor->name + " = allocate f32[");
        if (st.tensor->name == y->name || at == std::string::npos) continue;
        int64_t whole = 1;
        for (int64_t e : st.tensor->shape) whole *= e;
        EXPECT_LT(std::stoll(ir.substr(at + st.tensor->name.size() + 16)), whole)
            << st.tensor->name << " in sample " << i << ":\n"
            << ir;
      }
      ASSERT_TRUE(kernel_matches_interpreter(*sch, uint64_t(i), i % 2 ? 2 : 1)) << w.key << " sample " << i << "\n"
                                                                                << sched::trace_to_json(*sch);
    }
  }
}

TEST(SpaceProperty, Softmax) { check_samples("softmax:M=12,N=40"); }
TEST(SpaceProperty, Layernorm) { check_samples("layernorm:M=12,N=48"); }
TEST(SpaceProperty, DenseWithPackedWeights) { check_samples("dense:M=12,N=48,K=20"); }

// CUDA: sampled GPU schedules respect the device's limits, and their index
// arithmetic and shared-memory regions are right (GPU loops emulated on the CPU).
namespace {
Target h100() {
  auto t = Target::load(std::string(TESSEL_SOURCE_DIR) + "/configs/targets/h100.json");
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error());
  return *t;
}

void check_gpu_samples(const std::string &s, int n) {
  te::Workload w = spec(s);
  Target target = h100();
  sched::SpaceGenerator gen(target);
  gen.set_validator([&](const sched::Schedule &sch) {
    auto p = lower::lower(sch, "k");
    return p ? lower::check_gpu_limits(p->kernel, target) : Status::error(p.error());
  });
  auto sketches = gen.sketches(w);
  sched::Rng rng(99);
  for (int i = 0; i < n; ++i) {
    const sched::Sketch &k = sketches[size_t(i) % sketches.size()];
    auto sch = gen.sample(w, k, rng);
    ASSERT_TRUE(sch.has_value()) << sch.error();
    auto p = lower::lower(*sch, "k");
    ASSERT_TRUE(p.has_value()) << p.error();
    lower::GpuResources r = lower::gpu_resources(p->kernel);
    EXPECT_LE(r.threads_per_block, target.gpu->max_threads_per_block);
    EXPECT_LE(r.shared_bytes, target.gpu->shared_memory_per_block);
    EXPECT_GE(r.blocks, 1);
    ASSERT_TRUE(kernel_matches_interpreter(*sch, uint64_t(i), 1, /*emulate_gpu=*/true))
        << "sample " << i << " of " << k.name << "\n"
        << sched::trace_to_json(*sch);
  }
}
} // namespace

TEST(GpuSpace, SketchesBindBlocksAndThreads) {
  sched::SpaceGenerator gen(h100());
  te::Workload w = spec("matmul:M=64,N=64,K=32");
  auto sketches = gen.sketches(w);
  ASSERT_EQ(sketches.size(), 3u);
  EXPECT_EQ(sketches[0].name, "gpu-cross-thread"); // 4096 outputs over K=32: qualifies
  EXPECT_EQ(sketches[2].name, "gpu-tile+shared");
  sched::Rng rng(3);
  auto s = gen.sample(w, sketches[2], rng);
  ASSERT_TRUE(s.has_value()) << s.error();
  std::string json = sched::trace_to_json(*s);
  for (const char *tag : {"blockIdx.x", "threadIdx.x", "vthread", "\"scope\":\"shared\""})
    EXPECT_NE(json.find(tag), std::string::npos) << tag << " in\n" << json;
  auto p = lower::lower(*s, "k");
  ASSERT_TRUE(p.has_value());
  EXPECT_GT(lower::gpu_resources(p->kernel).shared_bytes, 0);
  // The CPU back end refuses GPU-bound loops; emulation is explicit.
  EXPECT_FALSE(codegen::jit_compile(*p, Target::host()).has_value());
}

TEST(GpuSpace, LimitsAreEnforced) {
  Target small = h100();
  small.gpu->max_threads_per_block = 4;
  sched::SpaceGenerator gen(small);
  gen.set_validator([&](const sched::Schedule &sch) {
    auto p = lower::lower(sch, "k");
    return p ? lower::check_gpu_limits(p->kernel, small) : Status::error(p.error());
  });
  te::Workload w = spec("matmul:M=64,N=64,K=16");
  sched::Rng rng(5);
  for (int i = 0; i < 10; ++i) {
    auto s = gen.sample(w, gen.sketches(w).back(), rng);
    ASSERT_TRUE(s.has_value()) << s.error();
    EXPECT_LE(lower::gpu_resources(lower::lower(*s, "k")->kernel).threads_per_block, 4);
  }
}

TEST(GpuSpaceProperty, Matmul) { check_gpu_samples("matmul:M=32,N=48,K=24", 40); }
TEST(GpuSpaceProperty, Conv2dNCHW) {
  check_gpu_samples("conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW", 40);
}
TEST(GpuSpaceProperty, Conv2dBiasRelu) {
  check_gpu_samples("conv2d_bias_relu:N=1,C=4,H=6,W=6,K=8,R=3,S=3,stride=1,pad=1,layout=NHWC", 40);
}
TEST(GpuSpaceProperty, Softmax) { check_gpu_samples("softmax:M=8,N=40", 40); }
TEST(GpuSpaceProperty, DenseAndLayernorm) {
  check_gpu_samples("dense:M=16,N=32,K=24", 30);
  check_gpu_samples("layernorm:M=8,N=32", 30);
}

TEST(GpuSpace, CrossThreadReductionOfRows) {
  sched::SpaceGenerator gen(h100());
  te::Workload w = spec("softmax:M=4,N=256");
  auto sketches = gen.sketches(w);
  ASSERT_EQ(sketches[0].name, "gpu-cross-thread");
  sched::Rng rng(11);
  auto s = gen.sample(w, sketches[0], rng);
  ASSERT_TRUE(s.has_value()) << s.error();
  auto p = lower::lower(*s, "k");
  ASSERT_TRUE(p.has_value());
  EXPECT_GE(lower::gpu_resources(p->kernel).threads_per_block, 32);
  EXPECT_TRUE(kernel_matches_interpreter(*s, 1, 1, /*emulate_gpu=*/true));
}
TEST(GpuSpaceProperty, RowReductions) {
  check_gpu_samples("softmax:M=6,N=96", 30);
  check_gpu_samples("layernorm:M=5,N=64", 30);
}
