// What a hardware target is: a CPU (ISA, features, vector width, cores,
// caches) or a CUDA GPU (architecture and per-block/per-SM limits). Targets are
// data: `Target::host()` detects the machine we run on, every other target is a
// JSON file in configs/targets/ (field reference: configs/targets/README.md).
// The schedule space reads the limits here instead of hard-coding hardware.
#pragma once

#include "support/error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessel {

// One warp-level matrix-multiply-accumulate shape (CUDA WMMA fragment):
// D[m,n] = A[m,k] * B[k,n] + C[m,n], A and B in a_dtype, C and D in c_dtype.
struct TensorCoreShape {
  int m = 0, n = 0, k = 0;
  std::string a_dtype; // "f16", "bf16", "tf32", "i8", "u8", "f64", ...
  std::string c_dtype; // accumulator: "f16", "f32", "i32", "f64"

  std::string str() const; // "m16n16k16 f16->f32"
  bool operator==(const TensorCoreShape &) const = default;
};

// What one CUDA device allows; the schedule space must stay inside these.
struct GpuLimits {
  std::string arch; // "sm_90"
  int sm_count = 0; // streaming multiprocessors on the device
  int max_threads_per_block = 0;
  int max_threads_per_sm = 0;
  int max_blocks_per_sm = 0; // resident thread blocks per SM
  int warp_size = 32;
  int64_t shared_memory_per_block = 0; // bytes; the opt-in maximum (cudaFuncAttributeMaxDynamicSharedMemorySize)
  int64_t shared_memory_per_sm = 0;    // bytes
  int registers_per_sm = 0;            // 32-bit registers
  int max_registers_per_thread = 0;
  std::vector<TensorCoreShape> tensor_cores; // empty: no tensor cores

  bool operator==(const GpuLimits &) const = default;
};

struct Target {
  std::string name;         // "host", "cpu-avx512", "h100", ...
  std::string kind = "cpu"; // "cpu" or "cuda"
  std::string description;  // free text for humans
  std::string triple;       // "x86_64-pc-linux-gnu", "nvptx64-nvidia-cuda"
  std::string cpu;          // LLVM CPU name, e.g. "znver4"; for CUDA the SM architecture "sm_90"
  std::string features;     // LLVM feature string, e.g. "+avx512f,+fma,..."

  // CPU only (kind "cpu"). Defaults are what host() falls back to when it cannot detect a value.
  int vector_bits = 128;              // widest vector unit the code generator should use
  int cores = 1;                      // cores the kernels may use
  int fma_units = 1;                  // vector FMA pipes per core, each vector_bits wide
  int64_t l1d_bytes = 32 * 1024;      // L1 data cache, per core
  int64_t l2_bytes = 1024 * 1024;     // L2 per core (CPU); whole-device L2 (CUDA)
  int64_t l3_bytes = 8 * 1024 * 1024; // last-level cache shared by all `cores` together (not per core)
  // Every ISA extension the target has, enabled features plus (on x86) what they and the CPU name
  // imply, sorted: "avx2", "avx512bw", "amx-bf16", ... Derived from triple/cpu/features; not stored.
  std::vector<std::string> isa;

  std::optional<GpuLimits> gpu; // present exactly when kind == "cuda"

  bool is_cpu() const { return kind == "cpu"; }
  bool is_cuda() const { return kind == "cuda"; }
  // True when `features` enables "+f" or `isa` lists f: has_feature("avx512f").
  bool has_feature(std::string_view f) const;
  int64_t l3_bytes_per_core() const { return cores > 0 ? l3_bytes / cores : l3_bytes; }

  // The machine we run on, detected (CPUID via LLVM, cache sizes via sysconf or sysfs).
  // $TESSEL_MAX_CPU_ISA (sse4.2, avx2, avx512, native) caps it at an older level, so one
  // machine also tests what older ones get; it never adds a feature.
  static Target host();
  static std::optional<std::string> host_isa_cap(); // the cap asked for, if any
  // Ok when kernels for this target can run on this machine (a CPU target
  // whose ISA the host has); otherwise says what is missing.
  Status runnable_here() const;
  // "host"; a path to a JSON file (ends in .json or contains '/'); or a name looked up as
  // <dir>/<name>.json in $TESSEL_TARGETS_DIR (':'-separated), ./configs/targets, then
  // configs/targets relative to the executable (build/src/tessel, build/tests/test_x).
  // "h100.json" with no such file in the working directory is looked up as "h100".
  // Never throws; errors name the file, the field and what to write instead.
  static Expected<Target> load(std::string_view name_or_path);
  // Target names load() accepts by name: "host" first, then every <name>.json found, sorted.
  static std::vector<std::string> list_available();
  // The directories load() searches by name, in order, existing ones only.
  static std::vector<std::string> search_dirs();

  // The JSON form load() reads back (isa is derived, so not written).
  std::string to_json() const;
  // Parses that form (as sent to a builder or device server); `where` names it in errors.
  static Expected<Target> from_json(const std::string &text, const std::string &where = "target JSON");
  std::string str() const; // one line for logs and reports

  // Recomputes `isa` from triple, cpu and features.
  void derive_isa();

  bool operator==(const Target &) const = default;
};

} // namespace tessel
