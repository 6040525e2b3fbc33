// Every operator of the library, at several shapes (odd, prime and size-1
// extents included), compiled through LLVM and checked against the
// reference interpreter — serial, and with parallel outer loops on 2 threads.
#include "kernel_check.h"
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

std::string test_name(const ::testing::TestParamInfo<const char *> &info) {
  std::string s = std::to_string(info.index) + "_";
  for (const char *c = info.param; *c && *c != ':'; ++c) s += std::isalnum((unsigned char)*c) ? *c : '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(AllOperators, OperatorKernel, ::testing::ValuesIn(kSpecs), test_name);

} // namespace
