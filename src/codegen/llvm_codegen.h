// Loop IR -> LLVM IR (internal to the CPU back end).
#pragma once

#include "lower/lower.h"
#include "target/target.h"

#include <memory>

namespace llvm {
class LLVMContext;
class Module;
} // namespace llvm

namespace tessel::codegen {

// Builds a module with NAME and NAME_packed for each function; throws
// tessel::Error on IR the CPU back end cannot compile (e.g. GPU-bound loops).
std::unique_ptr<llvm::Module> build_llvm_module(const std::vector<const lower::LoweredFunc *> &funcs,
                                                const Target &target, llvm::LLVMContext &ctx);

} // namespace tessel::codegen
