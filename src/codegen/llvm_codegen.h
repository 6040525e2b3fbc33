// Loop IR -> LLVM IR (internal to the CPU back end).
#pragma once

#include "lower/lower.h"
#include "target/target.h"

#include "support/error.h"

#include <functional>
#include <memory>
#include <string>

namespace llvm {
class LLVMContext;
class Module;
} // namespace llvm

namespace tessel::codegen {

// Builds a module with NAME and NAME_packed for each function; throws
// tessel::Error on IR the CPU back end cannot compile (e.g. GPU-bound loops).
std::unique_ptr<llvm::Module> build_llvm_module(const std::vector<const lower::LoweredFunc *> &funcs,
                                                const Target &target, llvm::LLVMContext &ctx);

// Object code (ELF) of `funcs` for `target`, optimized at -O3; `extend` adds to the
// module before it is optimized (the kernel library's C ABI wrappers).
Expected<std::string> emit_object_code(const std::vector<const lower::LoweredFunc *> &funcs, const Target &target,
                                       const std::function<void(llvm::Module &)> &extend = {});

} // namespace tessel::codegen
