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

// Text of the generated code (for `tessel show`).
Expected<std::string> emit_llvm_ir(const lower::LoweredFunc &f, const Target &target, bool optimized = true);
Expected<std::string> emit_assembly(const lower::LoweredFunc &f, const Target &target);

// Ahead-of-time: writes a relocatable object and a C header declaring both
// entry points (link the object with libtessel_runtime.a).
Status emit_object(const lower::LoweredFunc &f, const Target &target, const std::string &object_path,
                   const std::string &header_path);
std::string c_header(const lower::LoweredFunc &f, const std::string &comment = "");

} // namespace tessel::codegen
