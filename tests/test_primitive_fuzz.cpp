// Random primitive sequences: every step either is refused with an error or
// yields a schedule whose kernel matches the interpreter. Never silently
// wrong code, never a crash.
#include "kernel_check.h"
#include "schedules/primitives.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "te/ops.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace tessel;

namespace {

sched::Step random_step(const sched::Schedule &s, sched::Rng &rng) {
  static const char *ops[] = {
      "split",      "split_nparts", "fuse",           "reorder",          "parallel",           "vectorize",
      "unroll",     "auto_unroll",  "compute_inline", "compute_at",       "reverse_compute_at", "cache_write",
      "cache_read", "rfactor",      "rfactor_last",   "transform_layout", "cache_write_layout", "split_exact",
      "tensorize",  "bind"};
  const sched::Stage &st = s.stages[size_t(rng.below(int64_t(s.stages.size())))];
  sched::Step step;
  step.op = ops[rng.below(20)];
  step.stage = st.tensor->name;
  int64_t nl = int64_t(st.loops.size());
  auto loop = [&] {
    return st.leaves.empty() || rng.below(8) == 0 ? rng.below(nl + 2) - 1
                                                  : st.leaves[size_t(rng.below(int64_t(st.leaves.size())))];
  };
  auto other_stage = [&] { return s.stages[size_t(rng.below(int64_t(s.stages.size())))].tensor->name; };
  if (step.op == "split" || step.op == "split_nparts" || step.op == "split_exact")
    step.ints = {loop(), rng.below(9)};
  else if (step.op == "fuse") {
    int64_t p = st.leaves.empty() ? 0 : rng.below(int64_t(st.leaves.size()));
    step.ints = {st.leaves.empty() ? 0 : st.leaves[size_t(p)],
                 size_t(p + 1) < st.leaves.size() ? st.leaves[size_t(p + 1)] : loop()};
  } else if (step.op == "reorder") {
    std::vector<int64_t> order(st.leaves.begin(), st.leaves.end());
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(rng.below(int64_t(i)))]);
    order.resize(size_t(rng.below(int64_t(order.size()) + 1)));
    step.ints = order;
  } else if (step.op == "auto_unroll")
    step.ints = {loop(), rng.below(70)};
  else if (step.op == "compute_at" || step.op == "reverse_compute_at") {
    step.str = other_stage();
    const sched::Stage *t = nullptr;
    for (auto &x : s.stages)
      if (x.tensor->name == step.str) t = &x;
    step.ints = {t && !t->leaves.empty() ? t->leaves[size_t(rng.below(int64_t(t->leaves.size())))] : 0};
  } else if (step.op == "cache_write") {
    static const char *scopes[] = {"local", "global", "fragment"};
    step.str = scopes[rng.below(3)];
  } else if (step.op == "bind") {
    static const char *tags[] = {"threadIdx.x", "threadIdx.y", "blockIdx.x", "vthread"};
    step.ints = {loop()};
    step.str = tags[rng.below(4)];
  } else if (step.op == "cache_read") {
    step.stage = rng.below(2) && !s.workload.inputs.empty() ? s.workload.inputs[0]->name : other_stage();
    step.str = other_stage() + ":local";
  } else if (step.op == "transform_layout") {
    const auto &in = s.workload.inputs[size_t(rng.below(int64_t(s.workload.inputs.size())))];
    step.stage = in->name;
    int64_t rank = int64_t(in->shape.size());
    std::vector<int64_t> perm;
    for (int64_t i = 0; i <= rank; ++i) perm.push_back(i);
    for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[size_t(rng.below(int64_t(i)))]);
    step.ints = {rng.below(rank), 1 + rng.below(6)};
    step.ints.insert(step.ints.end(), perm.begin(), perm.end());
  } else if (step.op == "tensorize") {
    step.ints = {loop()};
    static const char *names[] = {"avx512_fma_f32",     "amx_bf16",          "amx_int8",
                                  "wmma_f16_m16n16k16", "wmma_i8_m16n16k16", "no_such_intrinsic"};
    step.str = names[rng.below(6)];
  } else if (step.op == "cache_write_layout") {
    int64_t rank = int64_t(st.tensor->shape.size());
    std::vector<int64_t> perm;
    for (int64_t i = 0; i <= rank; ++i) perm.push_back(i);
    for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[size_t(rng.below(int64_t(i)))]);
    step.ints = {rng.below(std::max<int64_t>(rank, 1)), 1 + rng.below(4)};
    step.ints.insert(step.ints.end(), perm.begin(), perm.end());
    step.str = "local";
  } else if (step.op != "compute_inline")
    step.ints = {loop()};
  return step;
}

} // namespace

TEST(PrimitiveFuzz, EveryAcceptedScheduleIsCorrect) {
  const char *specs[] = {"matmul:M=6,N=10,K=7",
                         "conv2d_bias_relu:N=1,C=3,H=5,W=5,K=4,R=3,S=3,stride=1,pad=1",
                         "softmax:M=3,N=12",
                         "dense:M=4,N=8,K=6",
                         "layernorm:M=3,N=8",
                         "depthwise_conv2d:N=1,C=3,H=6,W=6,R=3,S=3,stride=2,pad=1",
                         "matmul:M=32,N=16,K=16,dtype=f16",
                         "matmul:M=16,N=32,K=48,dtype=i8"};
  constexpr int kSpecs = sizeof(specs) / sizeof(specs[0]);
  sched::Rng rng(31337);
  int accepted_steps = 0, refused_steps = 0, schedules = 0, refused_at_lowering = 0;
  // TESSEL_FUZZ_ROUNDS for a longer run; 400 keeps CTest quick.
  const char *env = std::getenv("TESSEL_FUZZ_ROUNDS");
  const int rounds = env ? std::max(1, std::atoi(env)) : 400;
  for (int round = 0; round < rounds; ++round) {
    auto w = te::make_op_workload(specs[round % kSpecs]);
    ASSERT_TRUE(w.has_value());
    sched::Schedule s = sched::default_schedule(*w);
    int len = 1 + int(rng.below(8));
    for (int i = 0; i < len; ++i) {
      sched::Step step = random_step(s, rng);
      sched::Schedule before = s;
      Status st = sched::apply_step(s, step);
      if (!st) {
        ++refused_steps;
        EXPECT_FALSE(st.message().empty());
        s = before; // a refused step must not be half-applied: replay from the trace to be sure
        continue;
      }
      ++accepted_steps;
    }
    // The trace of what was accepted replays to the same schedule...
    auto replayed = sched::replay_json(*w, sched::trace_to_json(s));
    ASSERT_TRUE(replayed.has_value()) << replayed.error() << "\n" << sched::trace_to_json(s);
    // ...and computes the right thing, or lowering refuses it with a reason: a
    // fragment that no warp-level intrinsic computes, or a tensorized tile whose
    // access strides do not fit the intrinsic (checked on the lowered indices).
    // GPU loops and intrinsics this CPU lacks are emulated.
    std::string json = sched::trace_to_json(s);
    auto lowered = lower::lower(*replayed, "k");
    if (!lowered) {
      EXPECT_TRUE(lowered.error().find("fragment") != std::string::npos || lowered.error().rfind("tensorize ", 0) == 0)
          << lowered.error() << "\n"
          << json;
      ++refused_at_lowering;
    } else {
      bool gpu = json.find("\"bind\"") != std::string::npos;
      bool foreign = json.find("amx_") != std::string::npos || json.find("wmma_") != std::string::npos;
      ASSERT_TRUE(tessel::testing::kernel_matches_interpreter(*replayed, uint64_t(round), 1, gpu, foreign)) << json;
    }
    ++schedules;
  }
  EXPECT_GT(accepted_steps, rounds / 2);
  EXPECT_GT(refused_steps, rounds / 4);
  EXPECT_EQ(schedules, rounds);
  EXPECT_LT(refused_at_lowering, rounds / 4);
}
