// Kernel libraries (codegen/kernel_library.h): the C ABI compiled into a C99 program by
// the system compiler, with and without packed weights; the header as C99 and C++17
// under -Wall -Werror; objects cross-compiled for other CPUs.
#include "codegen/kernel_library.h"
#include "schedules/primitives.h"
#include "schedules/space.h"
#include "te/text.h"
#include "temp_dir.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

using namespace tessel;

namespace {

// C[M, N] = A[M, K] * B[K, N], B constant (a weight).
te::Workload matmul_const_b() {
  auto w = te::parse_workload("input A: f32[24, 16]\ninput B: f32[16, 40] const\n"
                              "C[i < 24, j < 40] = sum(k < 16: A[i, k] * B[k, j])\n",
                              "test");
  EXPECT_TRUE(w) << w.error();
  return w.take();
}

// The default schedule of `w`, with B re-laid-out ahead of time ([N/8, K, 8]) when `pack`.
lower::LoweredProgram program_with(const te::Workload &w, bool pack) {
  sched::Schedule s = sched::default_schedule(w, true);
  if (pack) EXPECT_TRUE(sched::transform_layout(s, "B", 1, 8, {1, 0, 2}).has_value());
  auto p = lower::lower(s, "impl");
  EXPECT_TRUE(p) << p.error();
  EXPECT_EQ(p->prepack.size(), pack ? 1u : 0u);
  return p.take();
}

int sh(const std::string &cmd) { return std::system(cmd.c_str()); }

} // namespace

#ifdef TESSEL_RUNTIME_LIB
TEST(KernelLibrary, CProgramCallsEveryEntryPointAndMatchesTheReference) {
  te::Workload w = matmul_const_b();
  tessel::testing::TempDir dir("tessel_kernel_library");
  std::vector<codegen::LibraryKernel> kernels = {{"lib_packed", program_with(w, true), {"packs B"}},
                                                 {"lib_plain", program_with(w, false), {"reads B as it is"}}};
  std::vector<std::pair<std::string, std::string>> members;
  for (auto &k : kernels) {
    auto obj = codegen::library_object(k, Target::host());
    ASSERT_TRUE(obj) << obj.error();
    members.push_back({k.name + ".o", obj.take()});
  }
  ASSERT_TRUE(codegen::write_archive(dir.file("liblib.a"), members));
  std::string header = codegen::library_header(kernels, "lib", {"test library"});
  dir.write("lib.h", header);
  EXPECT_NE(header.find("int32_t lib_packed_prepacked("), std::string::npos) << header;
  EXPECT_NE(header.find("int64_t lib_plain_B_packed_bytes(void);"), std::string::npos) << header;
  dir.write("main.c", R"(#define _POSIX_C_SOURCE 200112L
#include "lib.h"
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
typedef int32_t (*run_fn)(const float *, const float *, float *, int32_t);
typedef int32_t (*prepacked_fn)(const float *, const void *, float *, int32_t);
typedef int64_t (*bytes_fn)(void);
typedef void (*pack_fn)(const float *, void *);
static float A[24 * 16], B[16 * 40], C[24 * 40], R[24 * 40];
static int check(const char *what) {
  for (int i = 0; i < 24 * 40; ++i)
    if (fabsf(C[i] - R[i]) > 1e-4f * (1.0f + fabsf(R[i]))) { printf("%s: mismatch at %d: %g vs %g\n", what, i, C[i], R[i]); return 1; }
  return 0;
}
static int test(const char *name, run_fn run, prepacked_fn prepacked, bytes_fn bytes, pack_fn pack) {
  int threads, bad = 0;
  for (threads = 1; threads <= 2; ++threads) {
    for (int i = 0; i < 24 * 40; ++i) C[i] = -1;
    run(A, B, C, threads);
    bad |= check(name);
    void *packed = 0;
    if (posix_memalign(&packed, 64, (size_t)bytes())) return 1;
    pack(B, packed);
    for (int i = 0; i < 24 * 40; ++i) C[i] = -1;
    prepacked(A, packed, C, threads);
    bad |= check(name);
    free(packed);
  }
  return bad;
}
int main(void) {
  for (int i = 0; i < 24 * 16; ++i) A[i] = (float)(i % 7) - 3;
  for (int i = 0; i < 16 * 40; ++i) B[i] = (float)(i % 5) * 0.5f - 1;
  for (int i = 0; i < 24; ++i)
    for (int j = 0; j < 40; ++j) {
      float s = 0;
      for (int k = 0; k < 16; ++k) s += A[i * 16 + k] * B[k * 40 + j];
      R[i * 40 + j] = s;
    }
  int bad = test("packed", lib_packed, lib_packed_prepacked, lib_packed_B_packed_bytes, lib_packed_pack_B) |
            test("plain", lib_plain, lib_plain_prepacked, lib_plain_B_packed_bytes, lib_plain_pack_B);
  if (lib_plain_B_packed_bytes() != 16 * 40 * 4) { printf("plain packed bytes %lld\n", (long long)lib_plain_B_packed_bytes()); bad = 1; }
  if (!bad) printf("ok\n");
  return bad;
}
)");
  std::string cd = "cd " + dir.path().string() + " && ";
  EXPECT_EQ(sh(cd + "cc -std=c99 -Wall -Werror -O1 -c main.c -o main.o"), 0);
  EXPECT_EQ(sh(cd + "cc main.o liblib.a " TESSEL_RUNTIME_LIB " -lstdc++ -lpthread -lm -o main && ./main"), 0);
  // The header alone, as C99 and as C++17, warnings as errors.
  dir.write("c.c", "#include \"lib.h\"\nint main(void) { return 0; }\n");
  dir.write("cxx.cpp", "#include \"lib.h\"\nint main() { return lib_plain_B_packed_bytes() > 0 ? 0 : 1; }\n");
  EXPECT_EQ(sh(cd + "cc -std=c99 -pedantic -Wall -Wextra -Werror -c c.c -o c.o"), 0);
  EXPECT_EQ(sh(cd + "c++ -std=c++17 -pedantic -Wall -Wextra -Werror -c cxx.cpp -o cxx.o"), 0);
  // Only the ABI is exported: the lowered functions are internal.
  EXPECT_NE(sh(cd + "nm -g --defined-only liblib.a | grep -q impl"), 0);
}
#endif

TEST(KernelLibrary, CrossCompilesForAArch64AndAvx512) {
  te::Workload w = matmul_const_b();
  tessel::testing::TempDir dir("tessel_kernel_cross");
  for (auto [target_name, machine] : {std::pair{"aarch64-neon", "AArch64"}, {"x86-64-v4", "X86-64"}}) {
    auto t = Target::load(target_name);
    ASSERT_TRUE(t) << t.error();
    sched::SpaceGenerator gen(*t);
    sched::Rng rng(3);
    auto sketches = gen.sketches(w);
    int built = 0;
    for (int i = 0; i < 8; ++i) {
      auto s = gen.sample(w, sketches[size_t(i) % sketches.size()], rng);
      ASSERT_TRUE(s) << s.error();
      auto p = lower::lower(*s, "impl");
      ASSERT_TRUE(p) << p.error();
      auto obj = codegen::library_object({"k", p.take(), {}}, *t);
      ASSERT_TRUE(obj) << target_name << ": " << obj.error();
      std::string path = dir.file(std::string(target_name) + std::to_string(i) + ".o");
      std::ofstream(path, std::ios::binary) << *obj;
      EXPECT_EQ(sh("readelf -h " + path + " | grep -q 'Machine:.*" + machine + "'"), 0) << path;
      ++built;
    }
    EXPECT_EQ(built, 8);
  }
}
