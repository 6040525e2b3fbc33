#include "codegen/cpu_compiler.h"

#include "codegen/llvm_codegen.h"
#include "runtime/runtime.h"

#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/CommandLine.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>

namespace tessel::codegen {

namespace {

void init_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Every target LLVM was built with: objects are cross-compiled (aarch64, ...) too.
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    llvm::InitializeAllAsmParsers();
    // For diagnosing the code generator: TESSEL_LLVM_ARGS="-opt-bisect-limit=40" etc.
    if (const char *args = std::getenv("TESSEL_LLVM_ARGS")) {
      static std::vector<std::string> words{"tessel"};
      std::istringstream in(args);
      for (std::string w; in >> w;) words.push_back(w);
      std::vector<const char *> argv;
      for (auto &w : words) argv.push_back(w.c_str());
      llvm::cl::ParseCommandLineOptions(int(argv.size()), argv.data());
    }
  });
}

std::string to_string(llvm::Error e) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << e;
  return os.str();
}

Expected<std::unique_ptr<llvm::TargetMachine>> make_target_machine(const Target &t) {
  init_llvm();
  std::string err;
  const llvm::Target *lt = llvm::TargetRegistry::lookupTarget(t.triple, err);
  if (!lt) return make_error("target " + t.triple + " is not supported by this LLVM: " + err);
  llvm::TargetOptions opts;
  std::unique_ptr<llvm::TargetMachine> tm(lt->createTargetMachine(t.triple, t.cpu, t.features, opts, llvm::Reloc::PIC_,
                                                                  std::nullopt, llvm::CodeGenOpt::Aggressive));
  if (!tm) return make_error("could not create an LLVM target machine for " + t.str());
  return tm;
}

void optimize(llvm::Module &m, llvm::TargetMachine &tm) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  // Vectorization is the schedule's decision (vectorize primitive, explicit vector
  // IR): LLVM's loop vectorizer stays off so a kernel's speed follows its
  // schedule, and so it cannot re-vectorize our loops (LLVM 16 miscompiled some
  // local-accumulator nests that way: interleaved groups mixed with scatters).
  // The SLP vectorizer still packs unrolled straight-line code.
  llvm::PipelineTuningOptions pto;
  pto.LoopVectorization = false;
  pto.SLPVectorization = true;
  llvm::PassBuilder pb(&tm, pto);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  mpm.run(m, mam);
}

// Lowered function -> optimized module for `tm`.
Expected<std::unique_ptr<llvm::Module>> compile_module(const std::vector<const lower::LoweredFunc *> &funcs,
                                                       const Target &target, llvm::LLVMContext &ctx,
                                                       llvm::TargetMachine &tm, bool optimized,
                                                       const std::function<void(llvm::Module &)> &extend = {}) {
  try {
    auto m = build_llvm_module(funcs, target, ctx);
    m->setDataLayout(tm.createDataLayout());
    m->setTargetTriple(target.triple);
    if (extend) extend(*m);
    if (optimized) optimize(*m, tm);
    return m;
  } catch (const Error &e) {
    return make_error(std::string("code generation for ") + (funcs.empty() ? "" : funcs.back()->name) +
                      " failed: " + e.what());
  }
}

std::vector<const lower::LoweredFunc *> all_funcs(const lower::LoweredProgram &p) {
  std::vector<const lower::LoweredFunc *> v;
  for (auto &f : p.prepack) v.push_back(&f);
  v.push_back(&p.kernel);
  return v;
}

Expected<std::string> emit_file(const std::vector<const lower::LoweredFunc *> &funcs, const Target &target,
                                llvm::CodeGenFileType type, const std::function<void(llvm::Module &)> &extend = {}) {
  auto tm = make_target_machine(target);
  if (!tm) return make_error(tm.error());
  llvm::LLVMContext ctx;
  auto m = compile_module(funcs, target, ctx, **tm, true, extend);
  if (!m) return make_error(m.error());
  llvm::SmallVector<char, 0> buf;
  llvm::raw_svector_ostream os(buf);
  llvm::legacy::PassManager pm;
  if ((*tm)->addPassesToEmitFile(pm, os, nullptr, type))
    return make_error("LLVM cannot emit this file type for " + target.str());
  pm.run(**m);
  return std::string(buf.begin(), buf.end());
}

} // namespace

namespace {

// An LLJIT for `target` whose main dylib resolves the runtime (thread pool, allocation,
// micro-kernels) and libm from this process.
Expected<std::unique_ptr<llvm::orc::LLJIT>> make_jit(const Target &target) {
  init_llvm();
  llvm::orc::JITTargetMachineBuilder jtmb{llvm::Triple(target.triple)};
  jtmb.setCPU(target.cpu);
  jtmb.addFeatures(llvm::SubtargetFeatures(target.features).getFeatures());
  jtmb.setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
  jtmb.setRelocationModel(llvm::Reloc::PIC_);
  auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(jtmb)).create();
  if (!jit) return make_error("LLVM JIT: " + to_string(jit.takeError()));
  auto &jd = (*jit)->getMainJITDylib();
  llvm::orc::SymbolMap runtime;
  auto &es = (*jit)->getExecutionSession();
  auto define = [&](const char *name, void *addr) {
    runtime[es.intern(name)] = llvm::JITEvaluatedSymbol(
        llvm::pointerToJITTargetAddress(addr), llvm::JITSymbolFlags::Exported | llvm::JITSymbolFlags::Callable);
  };
  // The name is the function's own spelling, so the two cannot drift apart.
#define TESSEL_RUNTIME(fn) define(#fn, reinterpret_cast<void *>(&fn))
  TESSEL_RUNTIME(tessel_parallel_for);
  TESSEL_RUNTIME(tessel_alloc);
  TESSEL_RUNTIME(tessel_free);
  TESSEL_RUNTIME(tessel_ukernel_f32_fma_avx512);
  TESSEL_RUNTIME(tessel_ukernel_f32_fma_avx2);
  TESSEL_RUNTIME(tessel_ukernel_bf16_dot_avx512);
  TESSEL_RUNTIME(tessel_ukernel_bf16_amx);
  TESSEL_RUNTIME(tessel_ukernel_i8_amx);
  TESSEL_RUNTIME(tessel_ukernel_bf16_amx_emulated);
  TESSEL_RUNTIME(tessel_ukernel_i8_amx_emulated);
  TESSEL_RUNTIME(tessel_ukernel_f32_reference);
  TESSEL_RUNTIME(tessel_ukernel_bf16_reference);
  TESSEL_RUNTIME(tessel_ukernel_f16_reference);
  TESSEL_RUNTIME(tessel_ukernel_i8_reference);
#undef TESSEL_RUNTIME
  if (auto err = jd.define(llvm::orc::absoluteSymbols(runtime)))
    return make_error("LLVM JIT: " + to_string(std::move(err)));
  auto gen = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess((*jit)->getDataLayout().getGlobalPrefix());
  if (!gen) return make_error("LLVM JIT: " + to_string(gen.takeError()));
  jd.addGenerator(std::move(*gen));
  return std::move(*jit);
}

} // namespace

Expected<CpuKernel> jit_compile(const lower::LoweredFunc &f, const Target &target) {
  auto start = std::chrono::steady_clock::now();
  auto tm = make_target_machine(target);
  if (!tm) return make_error(tm.error());
  auto ctx = std::make_unique<llvm::LLVMContext>();
  auto m = compile_module({&f}, target, *ctx, **tm, true);
  if (!m) return make_error(m.error());
  auto jit = make_jit(target);
  if (!jit) return make_error(jit.error());
  if (auto err = (*jit)->addIRModule(llvm::orc::ThreadSafeModule(m.take(), std::move(ctx))))
    return make_error("LLVM JIT: " + to_string(std::move(err)));
  auto sym = (*jit)->lookup(f.name + "_packed");
  if (!sym) return make_error("LLVM JIT: " + to_string(sym.takeError()));

  CpuKernel k;
  k.fn_ = sym->toPtr<CpuKernel::PackedFn>();
  k.jit_ = std::shared_ptr<llvm::orc::LLJIT>(jit->release());
  k.name_ = f.name;
  k.compile_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return k;
}

Expected<ObjectCode> compile_object(const lower::LoweredProgram &p, const Target &target) {
  auto obj = emit_file(all_funcs(p), target, llvm::CGFT_ObjectFile);
  if (!obj) return make_error(obj.error());
  ObjectCode code;
  code.object = obj.take();
  auto index_of = [](const std::vector<ir::Tensor> &v, const ir::Tensor &t) {
    auto it = std::find(v.begin(), v.end(), t);
    return it == v.end() ? -1 : int(it - v.begin());
  };
  std::vector<ir::Tensor> packed;
  for (auto &f : p.prepack) {
    const ir::Tensor &dst = f.arg_tensors[1];
    int64_t bytes = dst->dtype.bytes();
    for (auto e : dst->shape) bytes *= e;
    code.packs.push_back({f.name + "_packed", index_of(p.inputs, f.arg_tensors[0]), bytes});
    packed.push_back(dst);
  }
  code.kernel = p.kernel.name + "_packed";
  using Source = ObjectCode::Source;
  for (auto &t : p.kernel.arg_tensors) {
    if (int i = index_of(p.inputs, t); i >= 0)
      code.args.push_back({Source::Input, i});
    else if (int j = index_of(packed, t); j >= 0)
      code.args.push_back({Source::Packed, j});
    else if (int o = index_of(p.outputs, t); o >= 0)
      code.args.push_back({Source::Output, o});
    else
      return make_error("internal: kernel argument " + t->name + " is neither an input, a packed input nor an output");
  }
  return code;
}

Expected<CompiledProgram> load_object(const ObjectCode &code, const Target &target) {
  auto start = std::chrono::steady_clock::now();
  for (auto &pk : code.packs)
    if (pk.bytes <= 0 || pk.input < 0)
      return make_error("object code: packing function " + pk.symbol + " is malformed");
  for (auto [src, idx] : code.args)
    if (idx < 0 || (src == ObjectCode::Source::Packed && size_t(idx) >= code.packs.size()))
      return make_error("object code: kernel argument source out of range");
  auto jit = make_jit(target);
  if (!jit) return make_error(jit.error());
  auto buffer = llvm::MemoryBuffer::getMemBufferCopy(code.object, "tessel-kernel.o");
  if (auto err = (*jit)->addObjectFile(std::move(buffer)))
    return make_error("linking the kernel's object code: " + to_string(std::move(err)));
  CompiledProgram c;
  auto lookup = [&](const std::string &name) -> Expected<CompiledProgram::PackedFn> {
    auto sym = (*jit)->lookup(name);
    if (!sym) return make_error("linking the kernel's object code: " + to_string(sym.takeError()));
    return sym->toPtr<CompiledProgram::PackedFn>();
  };
  for (auto &pk : code.packs) {
    auto fn = lookup(pk.symbol);
    if (!fn) return make_error(fn.error());
    c.prepack_.push_back({*fn, pk.input, nullptr, pk.bytes});
  }
  auto kernel = lookup(code.kernel);
  if (!kernel) return make_error(kernel.error());
  c.kernel_ = *kernel;
  c.args_ = code.args;
  c.jit_ = std::shared_ptr<llvm::orc::LLJIT>(jit->release());
  c.compile_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return c;
}

Expected<CompiledProgram> jit_compile(const lower::LoweredProgram &p, const Target &target) {
  auto start = std::chrono::steady_clock::now();
  auto code = compile_object(p, target);
  if (!code) return make_error(code.error());
  auto program = load_object(*code, target);
  if (!program) return make_error(program.error());
  program->compile_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return program;
}

void CompiledProgram::pack(const std::vector<void *> &inputs) {
  for (auto &p : prepack_) {
    if (!p.buffer) p.buffer = std::shared_ptr<void>(tessel_alloc(p.bytes), tessel_free);
    void *args[] = {inputs[p.input], p.buffer.get()};
    p.fn(args);
  }
}

void CompiledProgram::run(const std::vector<void *> &inputs, const std::vector<void *> &outputs) const {
  void *args[64];
  std::vector<void *> many(args_.size() > 64 ? args_.size() : 0);
  void **a = many.empty() ? args : many.data();
  for (size_t i = 0; i < args_.size(); ++i) {
    auto [src, idx] = args_[i];
    a[i] = src == ObjectCode::Source::Input    ? inputs[idx]
           : src == ObjectCode::Source::Output ? outputs[idx]
                                               : prepack_[idx].buffer.get();
  }
  kernel_(a);
}

Expected<std::string> emit_llvm_ir(const lower::LoweredProgram &p, const Target &target, bool optimized) {
  auto tm = make_target_machine(target);
  if (!tm) return make_error(tm.error());
  llvm::LLVMContext ctx;
  auto m = compile_module(all_funcs(p), target, ctx, **tm, optimized);
  if (!m) return make_error(m.error());
  std::string s;
  llvm::raw_string_ostream os(s);
  (*m)->print(os, nullptr);
  return os.str();
}

Expected<std::string> emit_assembly(const lower::LoweredProgram &p, const Target &target) {
  return emit_file(all_funcs(p), target, llvm::CGFT_AssemblyFile);
}

std::string llvm_version() { return LLVM_VERSION_STRING; }

Expected<std::string> emit_object_code(const std::vector<const lower::LoweredFunc *> &funcs, const Target &target,
                                       const std::function<void(llvm::Module &)> &extend) {
  return emit_file(funcs, target, llvm::CGFT_ObjectFile, extend);
}

} // namespace tessel::codegen
