// Targets as data: host detection, the shipped configs/targets/*.json, lookup
// by name from different directories, and the errors a hand-written config
// gets (each must name the file, the field and what to do about it).
#include "target/target.h"

#include "temp_dir.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace tessel;
namespace fs = std::filesystem;

namespace {

const fs::path kSourceDir = TESSEL_SOURCE_DIR;
const fs::path kConfigDir = kSourceDir / "configs" / "targets";
const std::vector<std::string> kShipped = {"a100",           "aarch64-neon", "cpu-avx2",  "cpu-avx512",
                                           "cpu-avx512-amx", "h100",         "h200",      "sapphirerapids",
                                           "x86-64-v2",      "x86-64-v3",    "x86-64-v4", "znver4"};

using TempDir = tessel::testing::TempDir;

// Sets (or unsets, with nullopt) an environment variable for one scope.
class ScopedEnv {
public:
  ScopedEnv(const char *name, std::optional<std::string> value) : name_(name) {
    if (const char *old = std::getenv(name)) old_ = old;
    if (value)
      setenv(name, value->c_str(), 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

private:
  const char *name_;
  std::optional<std::string> old_;
};

class ScopedCwd {
public:
  explicit ScopedCwd(const fs::path &p) : old_(fs::current_path()) { fs::current_path(p); }
  ~ScopedCwd() { fs::current_path(old_); }

private:
  fs::path old_;
};

bool contains(const std::vector<std::string> &v, const std::string &s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// to_json -> file named after the target -> load must give the same target.
void expect_round_trip(const Target &t) {
  TempDir dir;
  fs::path p = dir.write(t.name + ".json", t.to_json());
  auto back = Target::load(p.string());
  ASSERT_TRUE(back.has_value()) << back.error() << "\n" << t.to_json();
  EXPECT_EQ(*back, t) << "round trip changed " << t.name << ":\n" << t.to_json() << "\nvs\n" << back->to_json();
  EXPECT_EQ(back->to_json(), t.to_json());
}

} // namespace

TEST(Target, HostIsSane) {
  Target t = Target::host();
  EXPECT_EQ(t.name, "host");
  EXPECT_EQ(t.kind, "cpu");
  EXPECT_TRUE(t.is_cpu());
  EXPECT_FALSE(t.gpu.has_value());
  EXPECT_FALSE(t.triple.empty());
  EXPECT_FALSE(t.cpu.empty());
  EXPECT_TRUE(t.vector_bits == 128 || t.vector_bits == 256 || t.vector_bits == 512) << t.vector_bits;
  EXPECT_GE(t.cores, 1);
  EXPECT_GE(t.fma_units, 1);
  EXPECT_GT(t.l1d_bytes, 0);
  EXPECT_LE(t.l1d_bytes, 4 << 20);
  EXPECT_GT(t.l2_bytes, 0);
  EXPECT_GT(t.l3_bytes, 0);
  EXPECT_TRUE(std::is_sorted(t.isa.begin(), t.isa.end()));
  if (t.triple.rfind("x86_64", 0) == 0) {
    EXPECT_TRUE(t.has_feature("sse2")) << t.features;
    EXPECT_EQ(t.vector_bits == 512, t.has_feature("avx512f"));
    EXPECT_EQ(t.vector_bits >= 256, t.has_feature("avx"));
  }
  EXPECT_NE(t.str().find("host ("), std::string::npos);

  auto loaded = Target::load("host");
  ASSERT_TRUE(loaded.has_value()) << loaded.error();
  EXPECT_EQ(*loaded, t);
}

TEST(Target, HostRoundTripsThroughJson) { expect_round_trip(Target::host()); }

TEST(Target, HasFeatureMatchesWholeNames) {
  Target t;
  t.triple = "x86_64-pc-linux-gnu";
  t.cpu = "x86-64";
  t.features = "+avx2,-avx512f,+fma";
  EXPECT_TRUE(t.has_feature("avx2"));
  EXPECT_TRUE(t.has_feature("fma"));
  EXPECT_FALSE(t.has_feature("avx512f"));
  EXPECT_FALSE(t.has_feature("avx")); // "+avx2" is not "+avx" (before derive_isa fills in implications)
  EXPECT_FALSE(t.has_feature(""));
  t.derive_isa();
  EXPECT_TRUE(t.has_feature("avx")); // avx2 implies avx
  EXPECT_TRUE(contains(t.isa, "sse4.2"));
  EXPECT_FALSE(contains(t.isa, "avx512f"));
}

TEST(Target, EveryShippedConfigLoadsAndRoundTrips) {
  std::vector<std::string> found;
  for (auto &e : fs::directory_iterator(kConfigDir))
    if (e.path().extension() == ".json") found.push_back(e.path().stem().string());
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, kShipped);
  for (auto &name : found) {
    SCOPED_TRACE(name);
    auto t = Target::load((kConfigDir / (name + ".json")).string());
    ASSERT_TRUE(t.has_value()) << t.error();
    EXPECT_EQ(t->name, name);
    EXPECT_FALSE(t->description.empty());
    EXPECT_EQ(t->is_cuda(), t->gpu.has_value());
    expect_round_trip(*t);
  }
}

TEST(Target, ShippedCpuConfigs) {
  ScopedEnv env("TESSEL_TARGETS_DIR", kConfigDir.string());
  auto avx512 = Target::load("cpu-avx512");
  ASSERT_TRUE(avx512.has_value()) << avx512.error();
  EXPECT_EQ(avx512->cpu, "x86-64-v4");
  EXPECT_EQ(avx512->vector_bits, 512);
  EXPECT_EQ(avx512->l1d_bytes, 48 * 1024);
  EXPECT_EQ(avx512->l2_bytes, 2 * 1024 * 1024);
  EXPECT_EQ(avx512->l3_bytes_per_core(), 1966080); // 1.875 MiB
  for (const char *f : {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "fma", "avx2", "f16c", "bmi2"})
    EXPECT_TRUE(avx512->has_feature(f)) << f;
  EXPECT_FALSE(avx512->has_feature("amx-tile"));
  EXPECT_EQ(avx512->str(), "cpu-avx512 (x86-64-v4, 512-bit vectors, 32 cores)");

  auto avx2 = Target::load("cpu-avx2");
  ASSERT_TRUE(avx2.has_value()) << avx2.error();
  EXPECT_EQ(avx2->cpu, "x86-64-v3");
  EXPECT_EQ(avx2->vector_bits, 256);
  EXPECT_TRUE(avx2->has_feature("fma"));
  EXPECT_FALSE(avx2->has_feature("avx512f"));

  auto amx = Target::load("cpu-avx512-amx");
  ASSERT_TRUE(amx.has_value()) << amx.error();
  EXPECT_EQ(amx->cpu, "sapphirerapids");
  for (const char *f : {"amx-tile", "amx-bf16", "amx-int8", "avx512bf16", "avx512vnni", "avx512f"})
    EXPECT_TRUE(contains(amx->isa, f)) << f;
}

TEST(Target, ShippedGpuConfigs) {
  ScopedEnv env("TESSEL_TARGETS_DIR", kConfigDir.string());
  auto h100 = Target::load("h100");
  ASSERT_TRUE(h100.has_value()) << h100.error();
  ASSERT_TRUE(h100->gpu.has_value());
  const GpuLimits &g = *h100->gpu;
  EXPECT_EQ(h100->kind, "cuda");
  EXPECT_EQ(h100->triple, "nvptx64-nvidia-cuda");
  EXPECT_EQ(h100->cpu, "sm_90");
  EXPECT_EQ(g.arch, "sm_90");
  EXPECT_EQ(g.sm_count, 132);
  EXPECT_EQ(g.max_threads_per_block, 1024);
  EXPECT_EQ(g.max_threads_per_sm, 2048);
  EXPECT_EQ(g.warp_size, 32);
  EXPECT_EQ(g.shared_memory_per_block, 227 * 1024);
  EXPECT_EQ(g.shared_memory_per_sm, 228 * 1024);
  EXPECT_EQ(g.registers_per_sm, 65536);
  EXPECT_EQ(g.max_registers_per_thread, 255);
  auto has_shape = [&](const GpuLimits &gl, TensorCoreShape s) {
    return std::find(gl.tensor_cores.begin(), gl.tensor_cores.end(), s) != gl.tensor_cores.end();
  };
  EXPECT_TRUE(has_shape(g, {16, 16, 16, "f16", "f32"}));
  EXPECT_TRUE(has_shape(g, {16, 16, 16, "bf16", "f32"}));
  EXPECT_TRUE(has_shape(g, {16, 16, 16, "i8", "i32"}));
  EXPECT_TRUE(has_shape(g, {8, 32, 16, "f16", "f32"}));
  EXPECT_TRUE(has_shape(g, {32, 8, 16, "bf16", "f32"}));
  EXPECT_TRUE(has_shape(g, {16, 16, 8, "tf32", "f32"}));
  EXPECT_EQ(h100->str(), "h100 (sm_90, 132 SMs, 227 KiB shared memory per block)");

  auto a100 = Target::load("a100");
  ASSERT_TRUE(a100.has_value()) << a100.error();
  ASSERT_TRUE(a100->gpu.has_value());
  EXPECT_EQ(a100->gpu->arch, "sm_80");
  EXPECT_EQ(a100->gpu->sm_count, 108);
  EXPECT_EQ(a100->gpu->shared_memory_per_block, 163 * 1024);
  EXPECT_EQ(a100->gpu->shared_memory_per_sm, 164 * 1024);
  EXPECT_TRUE(has_shape(*a100->gpu, {16, 16, 16, "f16", "f32"}));
}

TEST(Target, LookupByNameFromBuildDir) {
  // What ctest does: the working directory is the build tree; TESSEL_TARGETS_DIR points at the sources.
  ScopedEnv env("TESSEL_TARGETS_DIR", kConfigDir.string());
  TempDir build;
  ScopedCwd cwd(build.path());
  for (auto &name : kShipped) {
    auto t = Target::load(name);
    ASSERT_TRUE(t.has_value()) << t.error();
    EXPECT_EQ(t->name, name);
  }
  auto names = Target::list_available();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.front(), "host");
  for (auto &name : kShipped) EXPECT_TRUE(contains(names, name)) << name;
}

TEST(Target, LookupByNameFromRepoRoot) {
  ScopedEnv env("TESSEL_TARGETS_DIR", std::nullopt);
  ScopedCwd cwd(kSourceDir);
  auto t = Target::load("cpu-avx2");
  ASSERT_TRUE(t.has_value()) << t.error();
  EXPECT_EQ(t->name, "cpu-avx2");
  EXPECT_TRUE(contains(Target::list_available(), "h100"));
}

TEST(Target, LookupRelativeToExecutable) {
  // <repo>/build/tests/test_target finds <repo>/configs/targets without help; a build tree elsewhere cannot.
  fs::path exe = fs::read_symlink("/proc/self/exe");
  if (!fs::exists(exe.parent_path() / "../../configs/targets/h100.json"))
    GTEST_SKIP() << "build tree " << exe.parent_path().parent_path() << " is not inside the repository";
  ScopedEnv env("TESSEL_TARGETS_DIR", std::nullopt);
  TempDir elsewhere;
  ScopedCwd cwd(elsewhere.path());
  auto t = Target::load("h100");
  ASSERT_TRUE(t.has_value()) << t.error();
}

TEST(Target, BareJsonFileNameFallsBackToLookup) {
  ScopedEnv env("TESSEL_TARGETS_DIR", kConfigDir.string());
  TempDir elsewhere;
  ScopedCwd cwd(elsewhere.path());
  auto t = Target::load("h100.json");
  ASSERT_TRUE(t.has_value()) << t.error();
  EXPECT_EQ(t->name, "h100");
}

TEST(Target, OtherArchitecturesLoad) {
  // Only x86 gets feature checks (LLVM 16 exposes no other feature tables); CPU names are checked everywhere.
  TempDir dir;
  std::string arm = R"({"kind": "cpu", "triple": "aarch64-unknown-linux-gnu", "cpu": "neoverse-v1",
    "features": ["+sve"], "vector_bits": 256, "cores": 64, "fma_units": 4,
    "l1d_bytes": 65536, "l2_bytes": 1048576, "l3_bytes": 33554432})";
  auto t = Target::load(dir.write("graviton3.json", arm).string());
  ASSERT_TRUE(t.has_value()) << t.error();
  EXPECT_EQ(t->name, "graviton3");
  EXPECT_TRUE(t->has_feature("sve"));
  expect_round_trip(*t);
  std::string bad = arm.replace(arm.find("neoverse-v1"), 11, "neoverse-v9");
  auto e = Target::load(dir.write("graviton3.json", bad).string());
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().find("field 'cpu' in "), std::string::npos) << e.error();
  EXPECT_NE(e.error().find("no CPU 'neoverse-v9' for aarch64"), std::string::npos) << e.error();
}

TEST(Target, EnvDirComesFirstAndMayListSeveral) {
  TempDir dir;
  std::string text = Target::load((kConfigDir / "cpu-avx2.json").string())->to_json();
  std::string mine = text;
  mine.replace(mine.find("\"cpu-avx2\""), 10, "\"my-box\"");
  dir.write("my-box.json", mine);
  ScopedEnv env("TESSEL_TARGETS_DIR", dir.path().string() + ":" + kConfigDir.string());
  auto t = Target::load("my-box");
  ASSERT_TRUE(t.has_value()) << t.error();
  EXPECT_EQ(t->name, "my-box");
  EXPECT_TRUE(Target::load("h100").has_value());
  auto names = Target::list_available();
  EXPECT_TRUE(contains(names, "my-box"));
  EXPECT_TRUE(contains(names, "a100"));
}

TEST(Target, UnknownNameListsAvailable) {
  ScopedEnv env("TESSEL_TARGETS_DIR", kConfigDir.string());
  auto t = Target::load("h10");
  ASSERT_FALSE(t.has_value());
  const std::string &e = t.error();
  EXPECT_NE(e.find("unknown target 'h10'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'h100'?"), std::string::npos) << e;
  for (const char *name : {"host", "a100", "cpu-avx2", "cpu-avx512", "cpu-avx512-amx", "h100"})
    EXPECT_NE(e.find(name), std::string::npos) << name << " missing from: " << e;
  EXPECT_NE(e.find(kConfigDir.string()), std::string::npos) << "should say where it looked: " << e;

  auto bad = Target::load("../etc/passwd");
  EXPECT_FALSE(bad.has_value());
  auto empty = Target::load("");
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().find("available"), std::string::npos) << empty.error();
  auto missing = Target::load("/nonexistent/dir/x.json");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().find("/nonexistent/dir/x.json' does not exist"), std::string::npos) << missing.error();
}

namespace {

const char *kCpuOk = R"({
  "name": "bad",
  "kind": "cpu",
  "triple": "x86_64-pc-linux-gnu",
  "cpu": "x86-64-v3",
  "features": ["+avx2", "+fma"],
  "vector_bits": 256,
  "cores": 4,
  "fma_units": 2,
  "l1d_bytes": 32768,
  "l2_bytes": 1048576,
  "l3_bytes": 8388608
})";

const char *kGpuOk = R"({
  "name": "bad",
  "kind": "cuda",
  "l2_bytes": 52428800,
  "gpu": {
    "arch": "sm_90",
    "sm_count": 132,
    "max_threads_per_block": 1024,
    "max_threads_per_sm": 2048,
    "max_blocks_per_sm": 32,
    "warp_size": 32,
    "shared_memory_per_block": 232448,
    "shared_memory_per_sm": 233472,
    "registers_per_sm": 65536,
    "max_registers_per_thread": 255,
    "tensor_cores": [{"m": 16, "n": 16, "k": 16, "a_dtype": "f16", "c_dtype": "f32"}]
  }
})";

std::string replace(std::string s, const std::string &from, const std::string &to) {
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << "test bug: '" << from << "' not in the template";
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

struct BadConfig {
  std::string what;
  std::string text;
  std::vector<std::string> expect; // substrings of the error, besides the file name
};

} // namespace

TEST(Target, TemplatesAreValid) {
  TempDir dir;
  for (const char *text : {kCpuOk, kGpuOk}) {
    auto t = Target::load(dir.write("bad.json", text).string());
    ASSERT_TRUE(t.has_value()) << t.error();
    expect_round_trip(*t);
  }
  // A cuda target's triple and cpu follow from gpu.arch.
  auto g = Target::load(dir.write("bad.json", kGpuOk).string());
  EXPECT_EQ(g->triple, "nvptx64-nvidia-cuda");
  EXPECT_EQ(g->cpu, "sm_90");
}

TEST(Target, MalformedConfigsGetPreciseErrors) {
  std::vector<BadConfig> cases = {
      {"misspelled field",
       replace(kCpuOk, "\"vector_bits\"", "\"vector_bit\""),
       {"unknown field 'vector_bit' in ", "(did you mean 'vector_bits'?)"}},
      {"missing required field",
       replace(kCpuOk, "\"cores\": 4,", ""),
       {"missing required field 'cores' in ", "a cpu target needs"}},
      {"string for an integer",
       replace(kCpuOk, "\"cores\": 4", "\"cores\": \"4\""),
       {"field 'cores' in ", "must be a positive integer", "got a string \"4\""}},
      {"zero size",
       replace(kCpuOk, "\"l2_bytes\": 1048576", "\"l2_bytes\": 0"),
       {"field 'l2_bytes' in ", "must be a positive integer (bytes), got 0"}},
      {"negative gpu limit",
       replace(kGpuOk, "\"sm_count\": 132", "\"sm_count\": -4"),
       {"field 'gpu.sm_count' in ", "positive integer, got -4"}},
      {"float where an integer belongs",
       replace(kCpuOk, "\"vector_bits\": 256", "\"vector_bits\": 256.0"),
       {"field 'vector_bits' in ", "must be a positive integer (bits)", "non-integer number"}},
      {"vector width not a power of two",
       replace(kCpuOk, "\"vector_bits\": 256", "\"vector_bits\": 32"),
       {"field 'vector_bits' in ", "power of two from 64 to 2048 (bits, not bytes)"}},
      {"unknown kind",
       replace(kCpuOk, "\"kind\": \"cpu\"", "\"kind\": \"gpu\""),
       {"unknown kind 'gpu' in ", "must be \"cpu\" or \"cuda\""}},
      {"missing kind",
       replace(kCpuOk, "\"kind\": \"cpu\",", ""),
       {"missing required field 'kind' in ", "\"cpu\" or \"cuda\""}},
      {"cuda without gpu block",
       R"({"kind": "cuda", "l2_bytes": 1024})",
       {"missing required field 'gpu' in ", "needs a \"gpu\": {...} block", "README"}},
      // nlohmann reports the last byte it read: the end of the unexpected token, "triple".
      {"missing comma",
       replace(kCpuOk, "\"cpu\",\n", "\"cpu\"\n"),
       {"malformed JSON in ", "at line 4, column 10", "expected '}'"}},
      {"empty file", "", {"malformed JSON in ", "at line 1, column 1"}},
      {"trailing garbage", std::string(kCpuOk) + "\n}", {"malformed JSON in ", "at line 14, column 1"}},
      {"not an object", "[1, 2]", {"must hold one JSON object", "got an array"}},
      {"duplicate field",
       replace(kCpuOk, "\"cores\": 4,", "\"cores\": 4, \"cores\": 8,"),
       {"duplicate field 'cores' in "}},
      {"misspelled gpu field",
       replace(kGpuOk, "\"sm_count\"", "\"sm_cout\""),
       {"unknown field 'gpu.sm_cout' in ", "(did you mean 'gpu.sm_count'?)"}},
      {"missing gpu field",
       replace(kGpuOk, "\"warp_size\": 32,", ""),
       {"missing required field 'gpu.warp_size' in ", "needs every limit"}},
      {"cpu field on a cuda target",
       replace(kGpuOk, "\"l2_bytes\"", "\"vector_bits\": 512, \"l2_bytes\""),
       {"field 'vector_bits' in ", "applies only to cpu targets, but kind is 'cuda'"}},
      {"gpu block on a cpu target",
       replace(kCpuOk, "\"cores\"", "\"gpu\": {}, \"cores\""),
       {"field 'gpu' in ", "applies only to cuda targets"}},
      {"misspelled dtype",
       replace(kGpuOk, "\"a_dtype\": \"f16\"", "\"a_dtype\": \"fp16\""),
       {"field 'gpu.tensor_cores[0].a_dtype' in ", "unknown input dtype 'fp16'", "did you mean 'f16'?"}},
      {"impossible accumulator",
       replace(kGpuOk, "\"a_dtype\": \"f16\"", "\"a_dtype\": \"i8\""),
       {"field 'gpu.tensor_cores[0].c_dtype' in ", "i8 inputs accumulate in i32, not 'f32'"}},
      {"misspelled tensor core field",
       replace(kGpuOk, "\"k\": 16", "\"kk\": 16"),
       {"unknown field 'gpu.tensor_cores[0].kk' in "}},
      {"shared memory per block above per SM",
       replace(kGpuOk, "\"shared_memory_per_block\": 232448", "\"shared_memory_per_block\": 300000"),
       {"field 'gpu.shared_memory_per_block' in ", "exceeds 'gpu.shared_memory_per_sm'"}},
      {"threads per block not a warp multiple",
       replace(kGpuOk, "\"max_threads_per_block\": 1024", "\"max_threads_per_block\": 1000"),
       {"field 'gpu.max_threads_per_block' in ", "multiple of 'gpu.warp_size'"}},
      {"arch not sm_XX",
       replace(kGpuOk, "\"arch\": \"sm_90\"", "\"arch\": \"hopper\""),
       {"field 'gpu.arch' in ", "like \"sm_90\""}},
      {"cpu disagrees with arch",
       replace(kGpuOk, "\"l2_bytes\"", "\"cpu\": \"sm_80\", \"l2_bytes\""),
       {"field 'cpu' in ", "disagrees with 'gpu.arch' ('sm_90')"}},
      {"misspelled x86 cpu",
       replace(kCpuOk, "\"x86-64-v3\"", "\"sapphirerapid\""),
       {"field 'cpu' in ", "no x86 CPU 'sapphirerapid'", "did you mean 'sapphirerapids'?"}},
      {"misspelled feature",
       replace(kCpuOk, "\"+fma\"", "\"+avx512fx\""),
       {"field 'features' in ", "no x86 feature 'avx512fx'", "did you mean 'avx512f'?"}},
      {"features as one string",
       replace(kCpuOk, "[\"+avx2\", \"+fma\"]", "\"+avx2,+fma\""),
       {"field 'features' in ", "must be an array of strings"}},
      {"feature with a space",
       replace(kCpuOk, "\"+fma\"", "\"+f ma\""),
       {"field 'features[1]' in ", "write \"+name\" or \"-name\""}},
      {"vectors wider than the ISA",
       replace(kCpuOk, "\"vector_bits\": 256", "\"vector_bits\": 512"),
       {"field 'vector_bits' in ", "lacks avx512f", "add \"+avx512f\""}},
      {"unknown triple",
       replace(kCpuOk, "x86_64-pc-linux-gnu", "x86_65-pc-linux-gnu"),
       {"field 'triple' in ", "no architecture LLVM knows"}},
      {"gpu triple on a cpu target",
       replace(kCpuOk, "x86_64-pc-linux-gnu", "nvptx64-nvidia-cuda"),
       {"field 'triple' in ", "GPU triple"}},
      {"name with a slash",
       replace(kCpuOk, "\"name\": \"bad\"", "\"name\": \"a/b\""),
       {"field 'name' in ", "letters, digits"}},
      {"huge number", replace(kCpuOk, "\"cores\": 4", "\"cores\": 99999999999999999999"), {"field 'cores' in "}},
  };
  ASSERT_GE(cases.size(), 10u);
  TempDir dir;
  for (auto &c : cases) {
    SCOPED_TRACE(c.what);
    fs::path p = dir.write("bad.json", c.text);
    Expected<Target> t = Target::load(p.string());
    ASSERT_FALSE(t.has_value()) << c.what << " was accepted";
    const std::string &e = t.error();
    EXPECT_NE(e.find(p.string()), std::string::npos) << "no file name in: " << e;
    for (auto &s : c.expect) EXPECT_NE(e.find(s), std::string::npos) << "'" << s << "' not in: " << e;
  }
}

TEST(Target, NameMustMatchFileWhenLoadedByName) {
  TempDir dir;
  dir.write("other.json", kCpuOk); // says "name": "bad"
  ScopedEnv env("TESSEL_TARGETS_DIR", dir.path().string());
  auto t = Target::load("other");
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.error().find("field 'name' in " + (dir.path() / "other.json").string() + " is 'bad'"), std::string::npos)
      << t.error();
  // By path the file's own name wins.
  auto by_path = Target::load((dir.path() / "other.json").string());
  ASSERT_TRUE(by_path.has_value()) << by_path.error();
  EXPECT_EQ(by_path->name, "bad");
}

TEST(Target, NeverThrowsOnDamagedFiles) {
  // Every truncation and hundreds of random byte edits of real configs: an error or a target, never a crash.
  TempDir dir;
  std::mt19937 rng(42);
  for (const char *text : {kCpuOk, kGpuOk}) {
    std::string s = text;
    for (size_t n = 0; n < s.size(); n += 3) {
      auto t = Target::load(dir.write("bad.json", s.substr(0, n)).string());
      EXPECT_FALSE(t.has_value());
    }
    std::string alphabet = "{}[]\",:-0123456789eE.+ \ntfnul";
    alphabet += '\xff';
    alphabet += '\0';
    for (int i = 0; i < 400; ++i) {
      std::string m = s;
      for (int edits = 1 + int(rng() % 3); edits > 0; --edits) m[rng() % m.size()] = alphabet[rng() % alphabet.size()];
      auto t = Target::load(dir.write("bad.json", m).string());
      if (t) {
        EXPECT_FALSE(t->name.empty());
      }
    }
  }
}
