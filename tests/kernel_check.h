// Shared by kernel tests: compile a schedule, run it on random inputs and
// compare every output with the reference interpreter.
#pragma once

#include "codegen/cpu_compiler.h"
#include "interp/interpreter.h"
#include "runtime/runtime.h"
#include "schedules/intrinsics.h"
#include "schedules/schedule.h"
#include "te/ops.h"

#include <gtest/gtest.h>

namespace tessel::testing {

// The workload of an operator spec; a bad spec fails the calling test.
inline te::Workload op_workload(const std::string &spec) {
  auto w = te::make_op_workload(spec);
  EXPECT_TRUE(w.has_value()) << (w ? "" : w.error());
  return w ? *w : te::Workload{};
}

// The tensor intrinsics a schedule uses that this host cannot run ("" when it can run them all):
// a test then checks the schedule through their emulations instead of failing for the host's lack.
inline std::string intrinsics_host_lacks(const sched::Schedule &s) {
  std::string lacking;
  Target host = Target::host();
  for (auto &stage : s.stages)
    for (auto &loop : stage.loops) {
      const sched::TensorIntrinsic *in =
          loop.tensorize.empty() ? nullptr : sched::find_tensor_intrinsic(loop.tensorize);
      if (in && !in->available_on(host) && lacking.find(in->name) == std::string::npos)
        lacking += (lacking.empty() ? "" : ", ") + in->name + " (needs " + in->required_feature + ")";
    }
  return lacking;
}

// Compiles `s` and runs it on `inputs`; every output must match `expected` (the
// interpreter's outputs for those inputs). With emulate_gpu, GPU-bound loops run
// serially on the CPU (lower::emulate_gpu_on_cpu); with emulate_intrinsics, tensor
// intrinsics run as their portable emulations.
inline ::testing::AssertionResult kernel_matches(const sched::Schedule &s, const std::vector<interp::NDArray> &inputs,
                                                 const std::vector<interp::NDArray> &expected, int threads = 1,
                                                 bool emulate_gpu = false, bool emulate_intrinsics = false) {
  auto f = lower::lower(s, "kernel");
  if (!f) return ::testing::AssertionFailure() << "lowering failed: " << f.error();
  if (emulate_gpu) *f = lower::emulate_gpu_on_cpu(*f);
  if (emulate_intrinsics) *f = lower::emulate_intrinsics(*f);
  auto k = codegen::jit_compile(*f, Target::host());
  if (!k) return ::testing::AssertionFailure() << "compilation failed: " << k.error();
  if (f->prepack.size() != 0 && !k->has_prepack()) return ::testing::AssertionFailure() << "packing lost";
  const te::Workload &w = s.workload;
  std::vector<interp::NDArray> in = inputs; // packing and kernels must not depend on the caller's copies
  auto outputs = interp::empty_outputs(w);
  for (auto &o : outputs) // poison: a kernel that skips an element must not pass by luck
    for (int64_t i = 0; i < o.size(); ++i) o.set(i, 12345);
  std::vector<void *> in_ptrs, out_ptrs;
  for (auto &a : in) in_ptrs.push_back(a.data());
  for (auto &a : outputs) out_ptrs.push_back(a.data());
  tessel_set_num_threads(threads);
  k->pack(in_ptrs);
  k->run(in_ptrs, out_ptrs);
  tessel_set_num_threads(1);
  for (size_t i = 0; i < outputs.size(); ++i) {
    interp::Comparison c = interp::compare(outputs[i], expected[i]);
    if (!c.ok) return ::testing::AssertionFailure() << w.key << " output " << w.outputs[i]->name << ": " << c.message;
  }
  return ::testing::AssertionSuccess();
}

// kernel_matches on random inputs drawn from `seed`, against the interpreter.
inline ::testing::AssertionResult kernel_matches_interpreter(const sched::Schedule &s, uint64_t seed = 7,
                                                             int threads = 1, bool emulate_gpu = false,
                                                             bool emulate_intrinsics = false) {
  auto inputs = interp::random_inputs(s.workload, seed);
  auto expected = interp::interpret(s.workload, inputs);
  if (!expected) return ::testing::AssertionFailure() << "interpreter failed: " << expected.error();
  return kernel_matches(s, inputs, *expected, threads, emulate_gpu, emulate_intrinsics);
}

} // namespace tessel::testing
