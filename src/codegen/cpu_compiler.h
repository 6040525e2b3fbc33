// The CPU back end: a lowered function becomes LLVM IR for the target CPU,
// optimized with LLVM's -O3 pipeline, then either JIT-compiled into a
// callable kernel (ORC LLJIT) or emitted as an object file plus a C header.
//
// Every kernel `NAME` has two entry points:
//   void NAME(T0 *arg0, T1 *arg1, ...);       // typed: inputs, then outputs
//   int32_t NAME_packed(void **args);         // the same, arguments in an array
#pragma once

#include "lower/lower.h"
#include "support/error.h"
#include "target/target.h"

#include <memory>
#include <string>
#include <vector>

namespace tessel::codegen {

class CpuKernel {
public:
  // Calls the kernel; args point to the buffers of inputs then outputs.
  void operator()(void **args) const { fn_(args); }
  const std::string &name() const { return name_; }
  double compile_seconds() const { return compile_seconds_; }

private:
  friend Expected<CpuKernel> jit_compile(const lower::LoweredFunc &, const Target &);
  using PackedFn = int32_t (*)(void **);
  std::shared_ptr<void> jit_; // keeps the JIT'd code alive
  PackedFn fn_ = nullptr;
  std::string name_;
  double compile_seconds_ = 0;
};

Expected<CpuKernel> jit_compile(const lower::LoweredFunc &f, const Target &target);

// A whole lowered program: the kernel plus the functions that pack constant
// inputs ahead of time. pack() runs those once and keeps the packed buffers;
// run() then calls only the kernel, so a measurement of run() excludes packing.
class CompiledProgram {
public:
  // `inputs`/`outputs` are the workload's buffers, in the workload's order.
  void pack(const std::vector<void *> &inputs);
  void run(const std::vector<void *> &inputs, const std::vector<void *> &outputs) const;
  bool has_prepack() const { return !prepack_.empty(); }
  const CpuKernel &kernel() const { return kernel_; }
  double compile_seconds() const { return compile_seconds_; }

private:
  friend Expected<CompiledProgram> jit_compile(const lower::LoweredProgram &, const Target &);
  struct Pack {
    CpuKernel fn;
    int input;                    // which workload input it reads
    std::shared_ptr<void> buffer; // the packed tensor
    int64_t bytes;
  };
  enum class Source { Input, Packed, Output };
  std::vector<Pack> prepack_;
  CpuKernel kernel_;
  std::vector<std::pair<Source, int>> args_; // where each kernel argument comes from
  double compile_seconds_ = 0;
};

Expected<CompiledProgram> jit_compile(const lower::LoweredProgram &p, const Target &target);

// Text of the generated code (for `tessel show`).
Expected<std::string> emit_llvm_ir(const lower::LoweredProgram &p, const Target &target, bool optimized = true);
Expected<std::string> emit_assembly(const lower::LoweredProgram &p, const Target &target);

// Ahead-of-time: writes a relocatable object and a C header declaring both
// entry points (link the object with libtessel_runtime.a).
Status emit_object(const lower::LoweredProgram &p, const Target &target, const std::string &object_path,
                   const std::string &header_path);
std::string c_header(const lower::LoweredProgram &p, const std::string &comment = "");

} // namespace tessel::codegen
