// The generated schedule space: sketches per workload, reproducible sampling,
// and the property that every sampled schedule is correct.
#include "ir/printer.h"
#include "kernel_check.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "te/ops.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

using namespace tessel;
using tessel::testing::kernel_matches_interpreter;

namespace {

te::Workload spec(const std::string &s) {
  auto w = te::make_op_workload(s);
  EXPECT_TRUE(w.has_value()) << (w ? "" : w.error());
  return *w;
}

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

} // namespace

TEST(Space, SketchesPerWorkload) {
  sched::SpaceGenerator gen(Target::host());
  auto mm = gen.sketches(spec("matmul:M=16,N=16,K=16"));
  ASSERT_EQ(mm.size(), 2u); // plain tiling, or a local accumulator (B is not constant: nothing to pack)
  auto dense = gen.sketches(spec("dense:M=8,N=32,K=16"));
  EXPECT_EQ(dense.size(), 4u); // W is constant: packing doubles the sketches
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

// Property: every sampled schedule compiles and matches the interpreter.
TEST(SpaceProperty, Matmul) { check_samples("matmul:M=24,N=40,K=18"); }
TEST(SpaceProperty, BatchMatmul) { check_samples("batch_matmul:B=2,M=12,N=20,K=9"); }
TEST(SpaceProperty, Conv2dNCHW) { check_samples("conv2d:N=1,C=4,H=10,W=10,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW"); }
TEST(SpaceProperty, Conv2dNHWC) { check_samples("conv2d:N=1,C=4,H=9,W=9,K=8,R=3,S=3,stride=2,pad=1,layout=NHWC"); }
TEST(SpaceProperty, DepthwiseConv2d) { check_samples("depthwise_conv2d:N=1,C=8,H=10,W=10,R=3,S=3,stride=1,pad=1"); }
TEST(SpaceProperty, Conv2dBiasRelu) {
  check_samples("conv2d_bias_relu:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW");
}
TEST(SpaceProperty, Softmax) { check_samples("softmax:M=12,N=40"); }
TEST(SpaceProperty, Layernorm) { check_samples("layernorm:M=12,N=48"); }
TEST(SpaceProperty, DenseWithPackedWeights) { check_samples("dense:M=12,N=48,K=20"); }
