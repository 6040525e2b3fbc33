// The CPU back end: a lowered function becomes LLVM IR for the target CPU,
// optimized with LLVM's -O3 pipeline, then either JIT-compiled into a
// callable kernel (ORC LLJIT) or emitted as object code (for runners here and,
// behind a stable C ABI, for applications: codegen/kernel_library.h).
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

// A lowered program compiled to relocatable object code for its target, plus how to
// call it: what the builder makes, and what a runner links, in a child process or on
// another host. Symbols it needs from the runtime are resolved where it is loaded.
struct ObjectCode {
  std::string object; // ELF relocatable object: the kernel and its packing functions
  struct Pack {
    std::string symbol; // packed entry point of the packing function
    int input;          // which workload input it reads
    int64_t bytes;      // size of the packed tensor it writes
  };
  std::vector<Pack> packs;
  std::string kernel; // packed entry point of the kernel
  enum class Source { Input, Packed, Output };
  std::vector<std::pair<Source, int>> args; // where each kernel argument comes from
};
Expected<ObjectCode> compile_object(const lower::LoweredProgram &p, const Target &target);

// A whole program, linked into this process: pack() runs the packing functions once and
// keeps the packed buffers; run() then calls only the kernel, so a measurement of run()
// excludes packing.
class CompiledProgram {
public:
  // `inputs`/`outputs` are the workload's buffers, in the workload's order.
  void pack(const std::vector<void *> &inputs);
  void run(const std::vector<void *> &inputs, const std::vector<void *> &outputs) const;
  bool has_prepack() const { return !prepack_.empty(); }
  double compile_seconds() const { return compile_seconds_; } // lower excluded: LLVM and linking

private:
  friend Expected<CompiledProgram> load_object(const ObjectCode &, const Target &);
  friend Expected<CompiledProgram> jit_compile(const lower::LoweredProgram &, const Target &);
  using PackedFn = int32_t (*)(void **);
  struct Pack {
    PackedFn fn;
    int input;
    std::shared_ptr<void> buffer; // the packed tensor
    int64_t bytes;
  };
  std::shared_ptr<void> jit_; // keeps the linked code alive
  std::vector<Pack> prepack_;
  PackedFn kernel_ = nullptr;
  std::vector<std::pair<ObjectCode::Source, int>> args_;
  double compile_seconds_ = 0;
};

// Links object code into this process; `target` is what it was compiled for.
Expected<CompiledProgram> load_object(const ObjectCode &code, const Target &target);
// compile_object, then load_object.
Expected<CompiledProgram> jit_compile(const lower::LoweredProgram &p, const Target &target);

// The LLVM version kernels are generated with ("16.0.6").
std::string llvm_version();

// Text of the generated code (for `tessel show`).
Expected<std::string> emit_llvm_ir(const lower::LoweredProgram &p, const Target &target, bool optimized = true);
Expected<std::string> emit_assembly(const lower::LoweredProgram &p, const Target &target);

} // namespace tessel::codegen
