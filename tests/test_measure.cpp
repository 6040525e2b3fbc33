// Measurement (measure/measure.h): the builder and the local runner, with real
// candidates and with hostile artifacts (object code written here from LLVM IR)
// that crash, hang or compute the wrong thing: each is recorded with its
// status while the runner keeps going.
#include "codegen/cuda_driver.h"
#include "measure/measure.h"
#include "measure/wire.h"
#include "schedules/space.h"
#include "schedules/trace.h"
#include "te/ops.h"
#include "te/text.h"

#include <gtest/gtest.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IRReader/IRReader.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>

using namespace tessel;
using db::RecordStatus;

namespace {

const std::string kSpec = "matmul:M=48,N=40,K=24";

te::Workload workload() { return te::make_op_workload(kSpec).take(); }

// `n` traces of the workload: the default schedule, then samples of the space.
std::vector<measure::Candidate> candidates(int n) {
  te::Workload w = workload();
  std::vector<measure::Candidate> out = {{"default", te::to_text(w), sched::trace_to_json(sched::default_schedule(w))}};
  sched::SpaceGenerator gen(Target::host());
  sched::Rng rng(5);
  auto sketches = gen.sketches(w);
  for (int i = 0; int(out.size()) < n && i < 10 * n; ++i)
    if (auto s = gen.sample(w, sketches[size_t(i) % sketches.size()], rng))
      out.push_back({"sample-" + std::to_string(i), te::to_text(w), sched::trace_to_json(*s)});
  return out;
}

std::vector<measure::Artifact> built(int n) {
  auto builder = measure::make_local_builder(Target::host(), {});
  std::vector<measure::Artifact> out;
  for (auto &r : builder->build(candidates(n))) {
    EXPECT_EQ(r.status, RecordStatus::Ok) << r.candidate_id << ": " << r.message;
    out.push_back(r.artifact);
  }
  return out;
}

// An artifact for the workload whose kernel is `body` (LLVM IR of `i32 @bad_packed(ptr %args)`).
measure::Artifact hostile(const std::string &id, const std::string &body) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::LLVMContext ctx;
  llvm::SMDiagnostic diag;
  std::string ir = "define i32 @bad_packed(ptr %args) {\n" + body + "\n}\n";
  auto m = llvm::parseIR(llvm::MemoryBufferRef(ir, "hostile"), diag, ctx);
  if (!m) {
    ADD_FAILURE() << diag.getMessage().str();
    return {};
  }
  std::string triple = llvm::sys::getProcessTriple(), err;
  const llvm::Target *t = llvm::TargetRegistry::lookupTarget(triple, err);
  std::unique_ptr<llvm::TargetMachine> tm(
      t->createTargetMachine(triple, "generic", "", llvm::TargetOptions(), llvm::Reloc::PIC_));
  m->setDataLayout(tm->createDataLayout());
  llvm::SmallVector<char, 0> obj;
  llvm::raw_svector_ostream os(obj);
  llvm::legacy::PassManager pm;
  tm->addPassesToEmitFile(pm, os, nullptr, llvm::CGFT_ObjectFile);
  pm.run(*m);
  te::Workload w = workload();
  measure::Artifact a;
  a.candidate_id = id;
  a.workload_text = te::to_text(w);
  a.workload_hash = w.hash_hex();
  a.target_json = Target::host().to_json();
  a.code.object.assign(obj.begin(), obj.end());
  a.code.kernel = "bad_packed";
  using Source = codegen::ObjectCode::Source;
  a.code.args = {{Source::Input, 0}, {Source::Input, 1}, {Source::Output, 0}};
  return a;
}

measure::RunOptions quick() {
  measure::RunOptions o;
  o.repeat = 3;
  o.min_repeat_ms = 1;
  o.timeout_seconds = 5;
  return o;
}

TEST(Builder, CompilesCandidatesInParallelAndRecordsFailures) {
  auto good = candidates(4);
  ASSERT_EQ(good.size(), 4u);
  auto batch = good;
  batch.push_back({"not-json", good[0].workload_text, "{nope"});
  batch.push_back({"other-workload", te::to_text(te::make_op_workload("softmax:M=4,N=16").take()), good[1].trace_json});
  auto builder = measure::make_local_builder(Target::host(), {});
  auto results = builder->build(batch);
  ASSERT_EQ(results.size(), batch.size());
  for (size_t i = 0; i < good.size(); ++i) {
    EXPECT_EQ(results[i].candidate_id, good[i].id);
    EXPECT_EQ(results[i].status, RecordStatus::Ok) << results[i].message;
    EXPECT_GT(results[i].artifact.code.object.size(), 0u);
    EXPECT_GT(results[i].compile_seconds, 0);
    EXPECT_EQ(results[i].artifact.workload_hash, workload().hash_hex());
  }
  EXPECT_EQ(results[4].status, RecordStatus::CompileError);
  EXPECT_NE(results[4].message.find("trace"), std::string::npos) << results[4].message;
  EXPECT_EQ(results[5].status, RecordStatus::CompileError);
  EXPECT_FALSE(results[5].message.empty());
}

TEST(Builder, TimeoutAndSizeCapAreCompileErrors) {
  auto batch = candidates(2);
  measure::BuilderOptions slow;
  slow.timeout_seconds = 1e-4; // nothing compiles that fast
  auto results = measure::make_local_builder(Target::host(), slow)->build(batch);
  for (auto &r : results) {
    EXPECT_EQ(r.status, RecordStatus::CompileError);
    EXPECT_NE(r.message.find("timeout"), std::string::npos) << r.message;
  }
  measure::BuilderOptions small;
  small.max_artifact_bytes = 64;
  results = measure::make_local_builder(Target::host(), small)->build(batch);
  for (auto &r : results) {
    EXPECT_EQ(r.status, RecordStatus::CompileError);
    EXPECT_NE(r.message.find("exceeds the cap"), std::string::npos) << r.message;
  }
}

TEST(LocalRunner, MeasuresAndChecksRealKernels) {
  auto artifacts = built(3);
  auto runner = measure::make_local_runner();
  auto o = quick();
  auto results = runner->run(artifacts, o);
  ASSERT_EQ(results.size(), artifacts.size());
  for (auto &r : results) {
    EXPECT_EQ(r.status, RecordStatus::Ok) << r.candidate_id << ": " << r.message;
    EXPECT_EQ(r.run_seconds.size(), 3u);
    for (double s : r.run_seconds) EXPECT_GT(s, 0);
    EXPECT_GE(r.calls_per_repeat, 1);
    EXPECT_FALSE(r.stopped_early);
  }
  // Fixed call counts are honoured; the same kernel twice agrees within noise.
  o.number = 7;
  auto again = runner->run({artifacts[0]}, o);
  EXPECT_EQ(again[0].calls_per_repeat, 7);
}

TEST(LocalRunner, CrashesHangsAndWrongResultsAreRecordedAndTheBatchGoesOn) {
  auto good = built(2);
  std::vector<measure::Artifact> batch = {
      hostile("segfault", "  store volatile i32 1, ptr null\n  ret i32 0"),
      good[0],
      hostile("hang", "  br label %spin\nspin:\n  store volatile i32 1, ptr %args\n  br label %spin"),
      good[1],
      hostile("does-nothing", "  ret i32 0"),
      hostile("scribbles", "  %p = getelementptr i8, ptr %args, i64 -1099511627776\n  store volatile i64 7, ptr %p\n"
                           "  ret i32 0"),
  };
  auto o = quick();
  o.timeout_seconds = 1;
  auto runner = measure::make_local_runner();
  auto results = runner->run(batch, o);
  ASSERT_EQ(results.size(), batch.size());
  EXPECT_EQ(results[0].status, RecordStatus::RuntimeError) << results[0].message;
  EXPECT_NE(results[0].message.find("Segmentation fault"), std::string::npos) << results[0].message;
  EXPECT_EQ(results[1].status, RecordStatus::Ok) << results[1].message;
  EXPECT_EQ(results[2].status, RecordStatus::Timeout) << results[2].message;
  EXPECT_EQ(results[3].status, RecordStatus::Ok) << results[3].message;
  EXPECT_EQ(results[4].status, RecordStatus::WrongResult) << results[4].message;
  EXPECT_EQ(results[5].status, RecordStatus::RuntimeError) << results[5].message;
  for (auto &r : results) EXPECT_EQ(r.candidate_id.empty(), false);
}

TEST(LocalRunner, HopelessCandidatesStopAfterTheirFirstRepeat) {
  auto artifacts = built(1);
  auto runner = measure::make_local_runner();
  auto results = runner->run(artifacts, quick(), /*best_seconds=*/1e-12);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status, RecordStatus::Ok);
  EXPECT_TRUE(results[0].stopped_early);
  EXPECT_EQ(results[0].run_seconds.size(), 1u);
  auto normal = runner->run(artifacts, quick(), /*best_seconds=*/1.0);
  EXPECT_FALSE(normal[0].stopped_early);
  EXPECT_EQ(normal[0].run_seconds.size(), 3u);
}

TEST(LocalRunner, RemeasureInterleavesRounds) {
  auto artifacts = built(3);
  auto runner = measure::make_local_runner();
  artifacts.push_back(hostile("does-nothing", "  ret i32 0"));
  auto results = measure::remeasure(*runner, artifacts, quick(), 10);
  ASSERT_EQ(results.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(results[size_t(i)].status, RecordStatus::Ok) << results[size_t(i)].message;
    EXPECT_EQ(results[size_t(i)].run_seconds.size(), 10u);
  }
  EXPECT_EQ(results[3].status, RecordStatus::WrongResult) << "checked in the first round";
}

TEST(LocalRunner, ArtifactsForHardwareThisMachineLacksAreRefused) {
  auto artifacts = built(1);
  measure::Artifact a = artifacts[0];
  auto gpu = Target::load(std::string(TESSEL_SOURCE_DIR) + "/configs/targets/h100.json");
  ASSERT_TRUE(gpu) << gpu.error();
  a.target_json = gpu->to_json();
  auto stale = artifacts[0];
  stale.workload_hash = "0123456789abcdef";
  auto runner = measure::make_local_runner();
  auto results = runner->run({a, stale}, quick());
  EXPECT_EQ(results[0].status, RecordStatus::RuntimeError);
  EXPECT_NE(results[0].message.find("cannot run"), std::string::npos) << results[0].message;
  EXPECT_NE(results[1].status, RecordStatus::Ok) << "a hash that does not match its text is never measured";
}

TEST(LocalRunner, PinnedToACore) {
  measure::LocalRunnerOptions pinned;
  pinned.cpus = {0};
  auto runner = measure::make_local_runner(pinned);
  auto results = runner->run(built(1), quick());
  EXPECT_EQ(results[0].status, RecordStatus::Ok) << results[0].message;
}

} // namespace

// CUDA targets: the builder makes cubin artifacts through NVRTC (kernels over the device's limits are
// `invalid`, with the limit named), artifacts survive the wire format, and a runner without a GPU says so
// for each candidate instead of crashing; with a GPU they run and match the interpreter.
TEST(Measure, CudaCandidatesBuildIntoCubinsAndRunWhereAGpuIs) {
  std::string why;
  if (!codegen::nvrtc_available(&why)) GTEST_SKIP() << "NVRTC is not available here: " << why;
  auto h100 = Target::load("h100");
  ASSERT_TRUE(h100.has_value());
  te::Workload w = te::make_op_workload("matmul:M=64,N=32,K=32,dtype=f16").take();
  sched::SpaceGenerator gen(*h100);
  sched::Rng rng(3);
  std::vector<measure::Candidate> cands;
  for (auto &k : gen.sketches(w))
    if (auto s = gen.sample(w, k, rng)) cands.push_back({k.name, te::to_text(w), sched::trace_to_json(*s)});
  ASSERT_GE(cands.size(), 3u); // tensor cores, tiles, tiles with shared memory
  Target tiny = *h100;         // the same kernels on a device with little shared memory
  tiny.gpu->shared_memory_per_block = 64;
  auto built = measure::make_local_builder(*h100, {})->build(cands);
  auto refused = measure::make_local_builder(tiny, {})->build(cands);
  std::vector<measure::Artifact> artifacts;
  for (size_t i = 0; i < built.size(); ++i) {
    ASSERT_EQ(built[i].status, RecordStatus::Ok) << built[i].candidate_id << ": " << built[i].message;
    const measure::Artifact &a = built[i].artifact;
    EXPECT_FALSE(a.cuda.cubin.empty());
    EXPECT_TRUE(a.code.object.empty());
    ASSERT_FALSE(a.cuda.kernels.empty());
    EXPECT_EQ(a.cuda.args.size(), 3u); // A, B, C
    auto round_trip = measure::detail::from_wire(measure::detail::to_wire(a));
    EXPECT_EQ(round_trip.cuda.cubin, a.cuda.cubin);
    EXPECT_EQ(round_trip.cuda.kernels[0].block, a.cuda.kernels[0].block);
    EXPECT_EQ(round_trip.cuda.kernels[0].params, a.cuda.kernels[0].params);
    EXPECT_GT(a.cuda.kernels[0].registers, 0) << "read back from the cubin";
    EXPECT_EQ(round_trip.cuda.kernels[0].registers, a.cuda.kernels[0].registers);
    EXPECT_EQ(round_trip.cuda.kernels[0].local_bytes, a.cuda.kernels[0].local_bytes);
    artifacts.push_back(a);
  }
  bool any_shared = false;
  for (auto &r : refused)
    if (r.status == RecordStatus::Invalid) {
      any_shared = true;
      EXPECT_NE(r.message.find("shared memory"), std::string::npos) << r.message;
    }
  EXPECT_TRUE(any_shared) << "no candidate was refused for its shared memory";
  auto results = measure::make_local_runner()->run(artifacts, {});
  ASSERT_EQ(results.size(), artifacts.size());
  bool gpu = codegen::runnable_here(*h100).is_ok();
  for (auto &r : results) {
    if (gpu) {
      EXPECT_EQ(r.status, RecordStatus::Ok) << r.candidate_id << ": " << r.message;
      EXPECT_FALSE(r.run_seconds.empty());
    } else {
      EXPECT_EQ(r.status, RecordStatus::RuntimeError);
      EXPECT_NE(r.message.find("cannot run"), std::string::npos) << r.message;
    }
  }
}
