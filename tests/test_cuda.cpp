// The CUDA back end without a GPU: sampled GPU schedules of every operator
// family become CUDA that NVRTC compiles for sm_80 and sm_90 with resources
// read back from the cubin and checked against the target, and the same
// generated source, compiled as C++ under the host emulation in its prelude,
// matches the interpreter.
#include "codegen/cuda_compiler.h"
#include "codegen/cuda_driver.h"
#include "interp/interpreter.h"
#include "kernel_check.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "temp_dir.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace tessel;

namespace {

Target gpu_target(const std::string &name) {
  auto t = Target::load(name);
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error());
  return *t;
}

struct Sample {
  sched::Schedule schedule;
  lower::LoweredProgram program;
  codegen::CudaSource cuda;
};

// `n` schedules of `spec` for `target` (every sketch in turn, or only `sketch`), each lowered to CUDA
// under the name s<i>.
std::vector<Sample> sample_cuda(const std::string &spec, const Target &target, int n, const std::string &sketch = "",
                                uint64_t seed = 2024) {
  te::Workload w = tessel::testing::op_workload(spec);
  sched::SpaceGenerator gen(target);
  gen.set_validator([target](const sched::Schedule &s) {
    auto p = lower::lower(s, "k");
    return p ? lower::check_gpu_limits(p->kernel, target) : Status::error(p.error());
  });
  std::vector<sched::Sketch> sketches;
  for (auto &k : gen.sketches(w))
    if (sketch.empty() || k.name == sketch) sketches.push_back(k);
  EXPECT_FALSE(sketches.empty()) << spec << ": no sketch " << sketch;
  std::vector<Sample> out;
  sched::Rng rng(seed);
  for (int i = 0; i < n && !sketches.empty(); ++i) {
    auto s = gen.sample(w, sketches[size_t(i) % sketches.size()], rng);
    EXPECT_TRUE(s.has_value()) << spec << ": " << s.error();
    if (!s) break;
    auto p = lower::lower(*s, "s" + std::to_string(i));
    EXPECT_TRUE(p.has_value()) << p.error();
    if (!p) break;
    auto cuda = codegen::generate_cuda(*p, target);
    EXPECT_TRUE(cuda.has_value()) << spec << " sample " << i << ": " << cuda.error() << "\n"
                                  << sched::trace_to_json(*s);
    if (!cuda) break;
    out.push_back({s.take(), p.take(), cuda.take()});
  }
  return out;
}

std::string joined_source(const std::vector<Sample> &samples) {
  std::string src;
  for (auto &s : samples) src += s.cuda.source;
  return src;
}

// The samples' CUDA, all in one NVRTC program, for `arch`; every kernel is in the cubin and fits the target.
void check_nvrtc(const std::vector<Sample> &samples, const Target &target, const std::string &what) {
  std::string why;
  if (!codegen::nvrtc_available(&why)) GTEST_SKIP() << "NVRTC is not available here: " << why;
  auto bin = codegen::compile_cuda(joined_source(samples), target.gpu->arch);
  ASSERT_TRUE(bin.has_value()) << what << ": " << bin.error();
  int fit = 0, kernels = 0;
  std::string over;
  for (auto &s : samples) {
    auto usage = codegen::cuda_kernel_usage(s.cuda, *bin);
    ASSERT_TRUE(usage.has_value()) << usage.error();
    for (auto &u : *usage) {
      EXPECT_GT(u.registers, 0) << u.name;
      EXPECT_LE(u.registers, target.gpu->max_registers_per_thread) << u.name;
      ++kernels;
    }
    Status st = codegen::check_cuda_limits(*usage, target);
    fit += st.is_ok();
    if (!st) over = st.message();
  }
  EXPECT_GE(kernels, int(samples.size()));
  // The space's own estimate keeps samples in limits; the cubin's real figures may still reject a few.
  EXPECT_GE(fit * 10, int(samples.size()) * 9)
      << what << ": only " << fit << " of " << samples.size() << " fit; e.g. " << over;
  std::cout << what << " on " << target.gpu->arch << ": " << samples.size() << " samples, " << kernels << " kernels, "
            << fit << " fit, NVRTC " << bin->compile_seconds << " s\n";
}

// Compiles the samples' CUDA as C++ (the prelude's host emulation) and runs every one on random inputs
// against the interpreter.
void check_host_emulation(const std::vector<Sample> &samples, const std::string &what) {
  tessel::testing::TempDir dir;
  std::string src = dir.file("kernels.cpp"), lib = dir.file("kernels.so"), log = dir.file("log");
  std::ofstream(src) << joined_source(samples);
  std::string cmd =
      std::string(TESSEL_CXX) + " -std=c++20 -O1 -w -shared -fPIC -pthread -o " + lib + " " + src + " 2> " + log;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "the generated CUDA does not compile as C++:\n"
                                         << std::ifstream(log).rdbuf();
  void *h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample &s = samples[i];
    const te::Workload &w = s.schedule.workload;
    auto inputs = interp::random_inputs(w, 100 + i);
    auto expected = interp::interpret(w, inputs);
    ASSERT_TRUE(expected.has_value()) << expected.error();
    auto outputs = interp::empty_outputs(w);
    for (auto &o : outputs)
      for (int64_t e = 0; e < o.size(); ++e) o.set(e, 12345); // poison: a skipped element shows
    std::vector<void *> args;
    for (auto &t : s.cuda.program.arg_tensors) {
      void *p = nullptr;
      for (size_t k = 0; k < w.inputs.size(); ++k)
        if (w.inputs[k] == t) p = inputs[k].data();
      for (size_t k = 0; k < w.outputs.size(); ++k)
        if (w.outputs[k] == t) p = outputs[k].data();
      ASSERT_NE(p, nullptr) << t->name;
      args.push_back(p);
    }
    auto run = reinterpret_cast<int (*)(void **)>(dlsym(h, s.cuda.host_entry.c_str()));
    ASSERT_NE(run, nullptr) << s.cuda.host_entry;
    ASSERT_EQ(run(args.data()), 0);
    for (size_t o = 0; o < outputs.size(); ++o) {
      interp::Comparison c = interp::compare(outputs[o], (*expected)[o]);
      EXPECT_TRUE(c.ok) << what << " sample " << i << " output " << w.outputs[o]->name << ": " << c.message << "\n"
                        << sched::trace_to_json(s.schedule) << "\n"
                        << s.cuda.source.substr(s.cuda.source.find("// Tessel kernels"));
    }
  }
  dlclose(h);
}

struct Family {
  const char *what, *nvrtc_spec, *emulation_spec, *sketch;
};

// The families the issue names: f32 SIMT, tensor cores in every input type, batched, convolutions, reductions.
const Family kFamilies[] = {
    {"matmul_f32", "matmul:M=256,N=256,K=256", "matmul:M=32,N=48,K=24", ""},
    {"matmul_f16_tc", "matmul:M=256,N=256,K=256,dtype=f16", "matmul:M=32,N=32,K=32,dtype=f16", "gpu-tensorcore"},
    {"matmul_bf16_tc", "matmul:M=128,N=256,K=128,dtype=bf16", "matmul:M=32,N=32,K=32,dtype=bf16", "gpu-tensorcore"},
    {"matmul_i8_tc", "matmul:M=128,N=128,K=256,dtype=i8", "matmul:M=32,N=32,K=32,dtype=i8", "gpu-tensorcore"},
    {"batch_matmul_f16", "batch_matmul:B=12,M=128,N=128,K=64,dtype=f16", "batch_matmul:B=2,M=32,N=16,K=16,dtype=f16",
     ""},
    {"conv2d_nhwc", "conv2d:N=1,C=64,H=28,W=28,K=64,R=3,S=3,stride=1,pad=1,layout=NHWC",
     "conv2d:N=1,C=4,H=6,W=6,K=8,R=3,S=3,stride=1,pad=1,layout=NHWC", ""},
    {"depthwise", "depthwise_conv2d:N=1,C=64,H=28,W=28,R=3,S=3,stride=1,pad=1",
     "depthwise_conv2d:N=1,C=8,H=6,W=6,R=3,S=3,stride=1,pad=1", ""},
    {"softmax", "softmax:M=128,N=3072", "softmax:M=6,N=96", ""},
    {"layernorm", "layernorm:M=128,N=768", "layernorm:M=5,N=64", ""},
};

// Test names and failures show the family, not its bytes.
void PrintTo(const Family &f, std::ostream *os) { *os << f.what; }

int nvrtc_samples() {
  const char *env = std::getenv("TESSEL_CUDA_SAMPLES");
  return env ? std::max(1, std::atoi(env)) : 100;
}

class CudaFamily : public ::testing::TestWithParam<Family> {};

} // namespace

TEST_P(CudaFamily, NvrtcCompilesSampledSchedulesForSm90AndSm80) {
  const Family &f = GetParam();
  for (const char *name : {"h100", "a100"}) {
    Target t = gpu_target(name);
    auto samples = sample_cuda(f.nvrtc_spec, t, nvrtc_samples(), f.sketch);
    ASSERT_EQ(int(samples.size()), nvrtc_samples());
    check_nvrtc(samples, t, f.what);
  }
}

TEST_P(CudaFamily, GeneratedSourceMatchesTheInterpreterUnderHostEmulation) {
  const Family &f = GetParam();
  auto samples = sample_cuda(f.emulation_spec, gpu_target("h100"), 6, f.sketch, 7);
  ASSERT_EQ(samples.size(), 6u);
  check_host_emulation(samples, f.what);
}

// Where a GPU is (scripts/gpu_check runs this on one), sampled schedules of each family run on the card
// and match the interpreter: the suite's shapes and the small odd ones whose tiles do not divide them.
TEST_P(CudaFamily, SampledSchedulesMatchTheInterpreterOnTheGpu) {
  const Family &f = GetParam();
  Target t = gpu_target("h100");
  std::string why;
  if (!codegen::nvrtc_available(&why)) GTEST_SKIP() << "NVRTC is not available here: " << why;
  if (Status here = codegen::runnable_here(t); !here) GTEST_SKIP() << "no GPU to run on: " << here.message();
  int ran = 0;
  for (const char *spec : {f.nvrtc_spec, f.emulation_spec}) {
    auto samples = sample_cuda(spec, t, 8, f.sketch, 11);
    ASSERT_EQ(samples.size(), 8u);
    for (size_t i = 0; i < samples.size(); ++i) {
      const Sample &s = samples[i];
      const te::Workload &w = s.schedule.workload;
      auto program = codegen::compile_cuda_program(s.program, t);
      ASSERT_TRUE(program.has_value()) << program.error();
      if (!program->over_limits.empty()) continue; // the cubin's figures refuse it, as the builder would
      auto inputs = interp::random_inputs(w, 200 + i);
      auto outputs = interp::empty_outputs(w);
      for (auto &o : outputs)
        for (int64_t e = 0; e < o.size(); ++e) o.set(e, 12345); // poison: a skipped element shows
      std::vector<void *> args;
      std::vector<int64_t> bytes;
      for (auto [source, k] : program->code.args) {
        interp::NDArray &a = source == codegen::ObjectCode::Source::Input ? inputs[size_t(k)] : outputs[size_t(k)];
        args.push_back(a.data()), bytes.push_back(a.bytes());
      }
      codegen::CudaRunOptions once;
      once.warmup = 0, once.repeats = 1;
      auto seconds = codegen::run_cuda_program(program->code, args, bytes, once);
      ASSERT_TRUE(seconds.has_value()) << f.what << " " << spec << " sample " << i << ": " << seconds.error();
      auto expected = interp::interpret(w, inputs);
      ASSERT_TRUE(expected.has_value()) << expected.error();
      for (size_t o = 0; o < outputs.size(); ++o) {
        interp::Comparison c = interp::compare(outputs[o], (*expected)[o]);
        EXPECT_TRUE(c.ok) << f.what << " " << spec << " sample " << i << " output " << w.outputs[o]->name << ": "
                          << c.message << "\n"
                          << sched::trace_to_json(s.schedule);
      }
      ++ran;
    }
  }
  EXPECT_GE(ran, 12) << "most samples fit the device";
  std::cout << f.what << ": " << ran << " sampled kernels ran on the GPU and matched the interpreter\n";
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaFamily, ::testing::ValuesIn(kFamilies),
                         [](const auto &info) { return std::string(info.param.what); });

// Every operator of the library, every GPU sketch of its space (two samples each, small shapes): the
// generated CUDA matches the interpreter under host emulation. The families above go deeper; this is breadth.
TEST(CudaOperators, EverySketchOfEveryOperatorMatchesUnderHostEmulation) {
  const char *specs[] = {"dense:M=16,N=32,K=24",
                         "conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW",
                         "conv2d:N=1,C=4,H=9,W=9,K=4,R=3,S=3,stride=2,pad=1,layout=NHWC",
                         "conv2d_bias_relu:N=1,C=4,H=6,W=6,K=8,R=3,S=3,stride=1,pad=1,layout=NHWC",
                         "max_pool2d:N=1,C=4,H=8,W=8,R=3,S=3,stride=2,pad=1",
                         "avg_pool2d:N=1,C=8,H=7,W=7,R=7,S=7",
                         "gelu:M=8,N=48",
                         "relu:M=16,N=16",
                         "add:M=8,N=24",
                         "multiply:M=8,N=24",
                         "bias_add:M=8,N=24",
                         "matmul:M=16,N=16,K=16,dtype=f64",
                         "batch_matmul:B=3,M=8,N=8,K=40"};
  Target h100 = gpu_target("h100");
  std::vector<Sample> all;
  for (const char *spec : specs) {
    te::Workload w = tessel::testing::op_workload(spec);
    sched::SpaceGenerator gen(h100);
    auto sketches = gen.sketches(w);
    ASSERT_FALSE(sketches.empty()) << spec;
    for (auto &k : sketches) {
      auto samples = sample_cuda(spec, h100, 2, k.name, 11);
      ASSERT_EQ(samples.size(), 2u) << spec << " sketch " << k.name;
      for (auto &s : samples) { // unique kernel names across the operators: one translation unit
        std::string tag = "o" + std::to_string(all.size()) + "_";
        s.cuda = codegen::generate_cuda(*lower::lower(s.schedule, tag + "k"), h100).take();
        all.push_back(std::move(s));
      }
    }
  }
  check_host_emulation(all, "operators");
}

// The untuned GPU mapping (what `tessel run --target h100` runs without a trace, and what tuning's
// speed-up is over): a thread per output element of every stage, one kernel per stage. Every operator
// family's matches the interpreter under host emulation, and NVRTC compiles it within the limits.
TEST(CudaOperators, TheDefaultGpuMappingOfEveryFamilyMatchesAndCompiles) {
  Target h100 = gpu_target("h100");
  std::vector<Sample> all;
  std::vector<std::string> specs = {"conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=1,pad=1,layout=NCHW",
                                    "max_pool2d:N=1,C=4,H=8,W=8,R=3,S=3,stride=2,pad=1", "gelu:M=8,N=48"};
  for (const Family &f : kFamilies) specs.push_back(f.emulation_spec);
  for (auto &spec : specs) {
    te::Workload w = tessel::testing::op_workload(spec);
    auto s = sched::default_gpu_schedule(w, h100);
    ASSERT_TRUE(s.has_value()) << spec << ": " << s.error();
    auto p = lower::lower(*s, "d" + std::to_string(all.size()));
    ASSERT_TRUE(p.has_value()) << spec << ": " << p.error();
    EXPECT_TRUE(lower::check_gpu_limits(p->kernel, h100).is_ok()) << spec;
    auto cuda = codegen::generate_cuda(*p, h100);
    ASSERT_TRUE(cuda.has_value()) << spec << ": " << cuda.error();
    EXPECT_NE(cuda->source.find("blockIdx.x"), std::string::npos) << spec << ": not spread over blocks";
    all.push_back({s.take(), p.take(), cuda.take()});
  }
  check_host_emulation(all, "default GPU mapping");
  check_nvrtc(all, h100, "default GPU mapping");
}

// Index arithmetic is 32-bit where every index value provably fits (GPUs multiply 32-bit integers
// natively), and stays 64-bit where a tensor has more than 2^31 elements.
TEST(CudaCodegen, IndexArithmeticIs32BitOnlyWhereItFits) {
  Target h100 = gpu_target("h100");
  for (auto &s : sample_cuda("conv2d:N=1,C=64,H=28,W=28,K=64,R=3,S=3,stride=1,pad=1,layout=NHWC", h100, 6))
    for (auto &k : s.cuda.program.kernels) EXPECT_TRUE(k.index32) << k.name;
  for (auto &s : sample_cuda("matmul:M=65536,N=65536,K=16", h100, 3, "gpu-tile")) {
    for (auto &k : s.cuda.program.kernels) EXPECT_FALSE(k.index32) << k.name;
    EXPECT_NE(s.cuda.source.find("for (int64_t"), std::string::npos);
  }
}

// Tensor-core accumulators stay in registers where WMMA provably loads the operands as they lie
// (shared tiles at 32-byte multiples); other samples keep the memory form, whose calls check at run time.
TEST(CudaCodegen, TensorCoreAccumulatorsStayInRegistersWhereOperandsAreAligned) {
  Target h100 = gpu_target("h100");
  int in_registers = 0, in_memory = 0;
  for (auto &s : sample_cuda("matmul:M=128,N=128,K=64,dtype=f16", h100, 24, "gpu-tensorcore")) {
    bool acc = false;
    for (auto &k : s.cuda.program.kernels) acc |= !k.accumulators.empty();
    (acc ? in_registers : in_memory)++;
    if (acc) {
      EXPECT_NE(s.cuda.source.find("tessel_acc_fill("), std::string::npos);
      EXPECT_NE(s.cuda.source.find("tessel_acc_store("), std::string::npos);
    }
  }
  EXPECT_GT(in_registers, 0);
  std::cout << in_registers << " of " << in_registers + in_memory << " samples accumulate in registers\n";
}

// Cooperative fetches vectorized by the schedule copy 16 bytes per thread (float4) where both ends are
// provably aligned; the same samples still match the interpreter (the families above run them).
TEST(CudaCodegen, VectorizedFetchesAreSixteenByteCopies) {
  int copies = 0;
  auto samples = sample_cuda("matmul:M=128,N=128,K=128", gpu_target("h100"), 12, "gpu-tile+shared");
  for (auto &s : samples) {
    copies += s.cuda.source.find("tessel_copy16((&") != std::string::npos;
    // Copies into distinct elements need no barrier between them, only after the fetch loop.
    std::istringstream lines(s.cuda.source);
    std::string line, previous;
    while (std::getline(lines, line)) {
      if (line.find("__syncthreads();") != std::string::npos)
        EXPECT_EQ(previous.find("tessel_copy16((&"), std::string::npos) << "a barrier per copy:\n" << s.cuda.source;
      previous = line;
    }
  }
  EXPECT_GT(copies, 0);
  samples.resize(4);
  check_host_emulation(samples, "float4 fetches");
}

// Shared tiles whose rows the schedule padded (against bank conflicts) keep their values, and a 16-byte
// pad keeps the tensor-core operands aligned enough for register accumulators.
TEST(CudaCodegen, PaddedSharedTilesMatchAndKeepTensorCoresAligned) {
  auto padded = [](const Sample &s) {
    for (auto &st : s.schedule.trace)
      if (st.op == "storage_pad") return true;
    return false;
  };
  std::vector<Sample> simt;
  for (auto &s : sample_cuda("matmul:M=32,N=48,K=24", gpu_target("h100"), 16, "gpu-tile+shared"))
    if (padded(s) && simt.size() < 4) simt.push_back(std::move(s));
  ASSERT_FALSE(simt.empty());
  check_host_emulation(simt, "padded shared tiles");

  int padded_in_registers = 0;
  std::vector<Sample> tc;
  for (auto &s : sample_cuda("matmul:M=128,N=128,K=64,dtype=f16", gpu_target("h100"), 24, "gpu-tensorcore")) {
    if (!padded(s)) continue;
    for (auto &k : s.cuda.program.kernels) padded_in_registers += !k.accumulators.empty();
    if (tc.size() < 2) tc.push_back(std::move(s));
  }
  EXPECT_GT(padded_in_registers, 0);
  check_host_emulation(tc, "padded tensor-core tiles");
}

// The cost model scores candidates with the register estimate before compiling them and trains on the
// cubin's count: the estimate must at least rank kernels the way the cubin does.
TEST(CudaCodegen, RegisterEstimateRanksKernelsLikeTheCubin) {
  std::string why;
  if (!codegen::nvrtc_available(&why)) GTEST_SKIP() << "NVRTC is not available here: " << why;
  Target h100 = gpu_target("h100");
  auto samples = sample_cuda("matmul:M=256,N=256,K=256", h100, 40);
  auto bin = codegen::compile_cuda(joined_source(samples), h100.gpu->arch);
  ASSERT_TRUE(bin.has_value()) << bin.error();
  std::vector<double> estimate, cubin;
  for (auto &s : samples) {
    auto usage = codegen::cuda_kernel_usage(s.cuda, *bin);
    ASSERT_TRUE(usage.has_value()) << usage.error();
    int regs = 0;
    for (auto &u : *usage) regs = std::max(regs, u.registers);
    estimate.push_back(double(lower::estimated_registers(lower::gpu_resources(s.program.kernel))));
    cubin.push_back(regs);
  }
  // Kendall's tau-b: concordant minus discordant pairs, ties on either side left out.
  int concordant = 0, discordant = 0;
  for (size_t i = 0; i < estimate.size(); ++i)
    for (size_t j = i + 1; j < estimate.size(); ++j) {
      double a = estimate[i] - estimate[j], b = cubin[i] - cubin[j];
      if (a * b > 0) ++concordant;
      if (a * b < 0) ++discordant;
    }
  double tau = double(concordant - discordant) / std::max(1, concordant + discordant);
  std::cout << "register estimate vs cubin over " << samples.size() << " kernels: Kendall tau " << tau << "\n";
  EXPECT_GT(tau, 0.5);
}

// A thread's row of 2 or 4 results, when the schedule vectorizes its write-back, is stored as one
// float2 / float4 move where the destination is provably aligned; such samples still match.
TEST(CudaCodegen, VectorizedWriteBacksAreOneMovePerRow) {
  int total = 0;
  for (auto spec :
       {"matmul:M=64,N=64,K=32", "conv2d_bias_relu:N=1,C=8,H=8,W=8,K=16,R=3,S=3,stride=1,pad=1,layout=NHWC"}) {
    std::vector<Sample> moved;
    for (auto &s : sample_cuda(spec, gpu_target("h100"), 24)) {
      bool lanes = s.cuda.source.find("tessel_copy16_lanes((&") != std::string::npos ||
                   s.cuda.source.find("tessel_copy8_lanes((&") != std::string::npos;
      total += lanes;
      if (lanes && moved.size() < 3) moved.push_back(std::move(s));
    }
    check_host_emulation(moved, std::string("vectorized write-backs of ") + spec);
  }
  EXPECT_GT(total, 0);
}
