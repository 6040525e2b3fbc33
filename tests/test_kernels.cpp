// Every operator of the library, at several shapes (odd, prime and size-1
// extents included), compiled through LLVM and checked against the
// reference interpreter — serial, and with parallel outer loops on 2 threads.
#include "ir/printer.h"
#include "kernel_check.h"
#include "lower/lower.h"
#include "schedules/trace.h"
#include "te/ops.h"

#include <gtest/gtest.h>

using namespace tessel;
using tessel::testing::kernel_matches_interpreter;

namespace {

const char *kSpecs[] = {
    "matmul:M=1,N=1,K=1",
    "matmul:M=17,N=13,K=31",
    "matmul:M=64,N=48,K=1",
    "matmul:M=8,N=16,K=32,dtype=f16",
    "matmul:M=8,N=16,K=32,dtype=bf16",
    "matmul:M=7,N=9,K=33,dtype=i8",
    "batch_matmul:B=3,M=5,N=7,K=11",
    "batch_matmul:B=1,M=1,N=16,K=2",
    "dense:M=4,N=10,K=23",
    "dense:M=1,N=1,K=7",
    "conv2d:N=1,C=3,H=7,W=7,K=4,R=3,S=3,stride=1,pad=1,layout=NCHW",
    "conv2d:N=2,C=4,H=9,W=11,K=5,R=3,S=2,stride=2,pad=1,layout=NCHW",
    "conv2d:N=1,C=4,H=10,W=10,K=6,R=3,S=3,stride=1,pad=2,dilation=2,layout=NCHW",
    "conv2d:N=1,C=6,H=8,W=8,K=4,R=3,S=3,stride=1,pad=1,groups=2,layout=NCHW",
    "conv2d:N=1,C=3,H=7,W=5,K=4,R=3,S=3,stride=1,pad=1,layout=NHWC",
    "conv2d:N=2,C=4,H=9,W=9,K=8,R=1,S=1,stride=2,pad=0,layout=NHWC",
    "conv2d:N=1,C=1,H=1,W=1,K=1,R=1,S=1,stride=1,pad=0,layout=NCHW",
    "conv2d:N=1,C=8,H=6,W=6,K=8,R=3,S=3,stride=1,pad=1,groups=8,layout=NHWC",
    "depthwise_conv2d:N=1,C=5,H=9,W=7,R=3,S=3,stride=1,pad=1",
    "depthwise_conv2d:N=1,C=3,H=8,W=8,R=3,S=3,stride=2,pad=1",
    "conv2d_bias_relu:N=1,C=3,H=7,W=7,K=4,R=3,S=3,stride=1,pad=1,layout=NCHW",
    "conv2d_bias_relu:N=1,C=4,H=5,W=5,K=3,R=3,S=3,stride=1,pad=1,layout=NHWC",
    "max_pool2d:N=1,C=3,H=9,W=9,R=3,S=3,stride=2,pad=1",
    "max_pool2d:N=2,C=1,H=4,W=4,R=2,S=2,stride=2,pad=0",
    "avg_pool2d:N=1,C=3,H=9,W=9,R=3,S=3,stride=2,pad=1",
    "avg_pool2d:N=1,C=2,H=5,W=7,R=2,S=2,stride=1,pad=0",
    "softmax:M=1,N=1",
    "softmax:M=7,N=129",
    "softmax:M=3,N=10,dtype=f16",
    "layernorm:M=5,N=31",
    "layernorm:M=1,N=2",
    "gelu:M=3,N=37",
    "relu:M=5,N=13",
    "add:M=1,N=7",
    "add:M=3,N=5,dtype=i8",
    "multiply:M=11,N=3",
    "bias_add:M=6,N=19",
};

class OperatorKernel : public ::testing::TestWithParam<const char *> {};

TEST_P(OperatorKernel, MatchesInterpreter) {
  auto w = te::make_op_workload(GetParam());
  ASSERT_TRUE(w.has_value()) << w.error();
  EXPECT_TRUE(kernel_matches_interpreter(sched::default_schedule(*w), 5));
}

TEST_P(OperatorKernel, ParallelOuterLoopsMatchInterpreter) {
  auto w = te::make_op_workload(GetParam());
  ASSERT_TRUE(w.has_value()) << w.error();
  EXPECT_TRUE(kernel_matches_interpreter(sched::default_schedule(*w, /*parallel_outer=*/true), 9, 2));
}

TEST(PartitionLoops, PaddedInteriorLosesGuardsAndClampsAndStillMatches) {
  // The pad inlined: every read is clamped and guarded. Rows 1..7 and columns 1..8 of the output read no
  // padding, so the interior copy of the loops has neither a select nor a min/max; the kernel still matches.
  for (const char *spec : {"depthwise_conv2d:N=1,C=3,H=9,W=10,R=3,S=3,stride=1,pad=1",
                           "conv2d:N=1,C=2,H=9,W=10,K=3,R=3,S=3,stride=1,pad=1,layout=NCHW"}) {
    auto w = te::make_op_workload(spec).take();
    auto s = sched::replay_json(w, R"({"format":"tessel-trace","version":1,"steps":[
      {"op":"compute_inline","stage":"pad"}]})");
    ASSERT_TRUE(s) << s.error();
    auto lowered = lower::lower(*s, "k");
    ASSERT_TRUE(lowered) << lowered.error();
    std::string ir = ir::to_string(lowered->kernel.body);
    auto rows = ir.find("for (h, 1, 7)"), cols = ir.find("for (w, 1, 8)", rows);
    ASSERT_NE(rows, std::string::npos) << ir;
    ASSERT_NE(cols, std::string::npos) << ir;
    std::string interior = ir.substr(cols, ir.find("\n    }", cols) - cols);
    EXPECT_EQ(interior.find("select"), std::string::npos) << interior;
    EXPECT_EQ(interior.find("min("), std::string::npos) << interior;
    EXPECT_EQ(interior.find("max("), std::string::npos) << interior;
    EXPECT_TRUE(kernel_matches_interpreter(*s, 3)) << spec;
  }
}

TEST(PartitionLoops, ReductionsAndGuardFreeLoopsStayWhole) {
  // No padding: nothing to partition. With padding, the reduction loops (ry, rx) are never split.
  auto plain = te::make_op_workload("matmul:M=9,N=10,K=11").take();
  std::string ir = ir::to_string(lower::lower(sched::default_schedule(plain), "k")->kernel.body);
  EXPECT_EQ(ir.find("for (i, 0, 9)"), ir.rfind("for (i, 0, 9)")) << ir;
  auto w = te::make_op_workload("depthwise_conv2d:N=1,C=3,H=9,W=10,R=3,S=3,stride=1,pad=1").take();
  auto s = sched::replay_json(w, R"({"format":"tessel-trace","version":1,"steps":[
    {"op":"compute_inline","stage":"pad"}]})");
  ASSERT_TRUE(s) << s.error();
  ir = ir::to_string(lower::lower(*s, "k")->kernel.body);
  EXPECT_EQ(ir.find("for (ry, 1"), std::string::npos) << ir;
  EXPECT_EQ(ir.find("for (rx, 1"), std::string::npos) << ir;
}

std::string test_name(const ::testing::TestParamInfo<const char *> &info) {
  std::string s = std::to_string(info.index) + "_";
  for (const char *c = info.param; *c && *c != ':'; ++c) s += std::isalnum((unsigned char)*c) ? *c : '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(AllOperators, OperatorKernel, ::testing::ValuesIn(kSpecs), test_name);

} // namespace
