#include "codegen/kernel_library.h"

#include "codegen/llvm_codegen.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Object/ArchiveWriter.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/raw_ostream.h>

#include <algorithm>
#include <set>
#include <sstream>

namespace tessel::codegen {

namespace {

int64_t bytes_of(const ir::Tensor &t) {
  int64_t b = t->dtype.bytes();
  for (auto e : t->shape) b *= e;
  return b;
}
int64_t align64(int64_t b) { return (b + 63) / 64 * 64; }

int index_of(const std::vector<ir::Tensor> &v, const ir::Tensor &t) {
  auto it = std::find(v.begin(), v.end(), t);
  return it == v.end() ? -1 : int(it - v.begin());
}

// Where the pieces of a constant input's packed form lie: one segment per packing
// function the schedule runs on it, plus a plain copy when the kernel still reads the
// input itself (or nothing packs it).
struct PackedLayout {
  struct Segment {
    int pack = -1; // index into program.prepack; -1: a plain copy of the input
    int64_t offset = 0, bytes = 0;
  };
  std::vector<Segment> segments;
  int64_t total = 0;
};

PackedLayout packed_layout(const lower::LoweredProgram &p, int input) {
  PackedLayout l;
  auto add = [&](int pack, int64_t bytes) {
    l.segments.push_back({pack, l.total, bytes});
    l.total += align64(bytes);
  };
  for (size_t j = 0; j < p.prepack.size(); ++j)
    if (p.prepack[j].arg_tensors[0] == p.inputs[size_t(input)]) add(int(j), bytes_of(p.prepack[j].arg_tensors[1]));
  bool raw_read = index_of(p.kernel.arg_tensors, p.inputs[size_t(input)]) >= 0;
  if (raw_read || l.segments.empty()) add(-1, bytes_of(p.inputs[size_t(input)]));
  return l;
}

const char *c_type(ir::DataType t) {
  switch (t.code) {
  case ir::DataType::Float: return t.bits == 64 ? "double" : t.bits == 32 ? "float" : "uint16_t";
  case ir::DataType::BFloat: return "uint16_t";
  case ir::DataType::Int:
    return t.bits == 8 ? "int8_t" : t.bits == 16 ? "int16_t" : t.bits == 32 ? "int32_t" : "int64_t";
  case ir::DataType::UInt: return t.bits <= 8 ? "uint8_t" : t.bits == 16 ? "uint16_t" : "uint32_t";
  default: return "void";
  }
}

std::string shape_comment(const ir::Tensor &t, const std::string &extra) {
  std::string s = "/* " + t->dtype.str() + "[";
  for (size_t d = 0; d < t->shape.size(); ++d) s += (d ? ", " : "") + std::to_string(t->shape[d]);
  return s + "]" + extra + " */";
}

// Adds the C ABI of kernel `k` to module `m` (which holds its lowered functions) and
// makes everything else internal, so only the ABI is exported and LLVM may inline.
void add_abi(llvm::Module &m, const LibraryKernel &k) {
  const lower::LoweredProgram &p = k.program;
  llvm::LLVMContext &ctx = m.getContext();
  llvm::IRBuilder<> b(ctx);
  llvm::Type *ptr = b.getPtrTy(), *i32 = b.getInt32Ty(), *i64 = b.getInt64Ty();
  auto fn = [&](const std::string &name) {
    llvm::Function *f = m.getFunction(name);
    if (!f) throw Error("internal: lowered function " + name + " is missing from its module");
    return f;
  };
  auto set_threads =
      m.getOrInsertFunction("tessel_set_num_threads", llvm::FunctionType::get(b.getVoidTy(), {i32}, false));
  auto alloc = m.getOrInsertFunction("tessel_alloc", llvm::FunctionType::get(ptr, {i64}, false));
  auto release = m.getOrInsertFunction("tessel_free", llvm::FunctionType::get(b.getVoidTy(), {ptr}, false));
  std::set<std::string> exported;
  auto define = [&](const std::string &name, llvm::Type *ret, std::vector<llvm::Type *> params) {
    auto *f =
        llvm::Function::Create(llvm::FunctionType::get(ret, params, false), llvm::Function::ExternalLinkage, name, m);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", f));
    exported.insert(name);
    return f;
  };
  const size_t n_in = p.inputs.size(), n_out = p.outputs.size();
  auto kernel_args = [&](const std::function<llvm::Value *(int input)> &input, // raw input i
                         const std::function<llvm::Value *(int pack)> &packed, llvm::Function *f) {
    std::vector<ir::Tensor> packs;
    for (auto &pf : p.prepack) packs.push_back(pf.arg_tensors[1]);
    std::vector<llvm::Value *> args;
    for (auto &t : p.kernel.arg_tensors) {
      if (int i = index_of(p.inputs, t); i >= 0)
        args.push_back(input(i));
      else if (int j = index_of(packs, t); j >= 0)
        args.push_back(packed(j));
      else if (int o = index_of(p.outputs, t); o >= 0)
        args.push_back(f->getArg(unsigned(n_in + size_t(o))));
      else
        throw Error("internal: kernel argument " + t->name + " is neither an input, a packed input nor an output");
    }
    return args;
  };

  // NAME(inputs..., outputs..., num_threads): packs into scratch, runs, frees.
  {
    std::vector<llvm::Type *> params(n_in + n_out, ptr);
    params.push_back(i32);
    llvm::Function *f = define(k.name, i32, params);
    b.CreateCall(set_threads, {f->getArg(unsigned(n_in + n_out))});
    std::vector<llvm::Value *> scratch;
    for (auto &pf : p.prepack) {
      llvm::Value *buf = b.CreateCall(alloc, {b.getInt64(bytes_of(pf.arg_tensors[1]))});
      b.CreateCall(fn(pf.name), {f->getArg(unsigned(index_of(p.inputs, pf.arg_tensors[0]))), buf});
      scratch.push_back(buf);
    }
    auto args = kernel_args([&](int i) -> llvm::Value * { return f->getArg(unsigned(i)); },
                            [&](int j) { return scratch[size_t(j)]; }, f);
    b.CreateCall(fn(p.kernel.name), args);
    for (auto *buf : scratch) b.CreateCall(release, {buf});
    b.CreateRet(b.getInt32(0));
  }

  bool any_constant = false;
  std::vector<PackedLayout> layouts(n_in);
  for (size_t i = 0; i < n_in; ++i) {
    if (!p.inputs[i]->is_constant) continue;
    any_constant = true;
    layouts[i] = packed_layout(p, int(i));
    const std::string x = p.inputs[i]->name;
    define(k.name + "_" + x + "_packed_bytes", i64, {});
    b.CreateRet(b.getInt64(layouts[i].total));
    llvm::Function *pack = define(k.name + "_pack_" + x, b.getVoidTy(), {ptr, ptr});
    for (auto &seg : layouts[i].segments) {
      llvm::Value *dst = b.CreateGEP(b.getInt8Ty(), pack->getArg(1), b.getInt64(seg.offset));
      if (seg.pack >= 0)
        b.CreateCall(fn(p.prepack[size_t(seg.pack)].name), {pack->getArg(0), dst});
      else
        b.CreateMemCpy(dst, llvm::MaybeAlign(64), pack->getArg(0), llvm::MaybeAlign(1), seg.bytes);
    }
    b.CreateRetVoid();
  }
  // NAME_prepacked(inputs (constant ones packed)..., outputs..., num_threads).
  if (any_constant) {
    std::vector<llvm::Type *> params(n_in + n_out, ptr);
    params.push_back(i32);
    llvm::Function *f = define(k.name + "_prepacked", i32, params);
    b.CreateCall(set_threads, {f->getArg(unsigned(n_in + n_out))});
    auto segment = [&](int input, int pack) -> llvm::Value * {
      for (auto &seg : layouts[size_t(input)].segments)
        if (seg.pack == pack) return b.CreateGEP(b.getInt8Ty(), f->getArg(unsigned(input)), b.getInt64(seg.offset));
      throw Error("internal: no packed segment for input " + std::to_string(input));
    };
    auto args = kernel_args(
        [&](int i) -> llvm::Value * {
          return p.inputs[size_t(i)]->is_constant ? segment(i, -1) : f->getArg(unsigned(i));
        },
        [&](int j) { return segment(index_of(p.inputs, p.prepack[size_t(j)].arg_tensors[0]), j); }, f);
    b.CreateCall(fn(p.kernel.name), args);
    b.CreateRet(b.getInt32(0));
  }

  for (llvm::Function &f : m)
    if (!f.isDeclaration() && !exported.count(f.getName().str())) f.setLinkage(llvm::GlobalValue::InternalLinkage);
  std::string err;
  llvm::raw_string_ostream os(err);
  if (llvm::verifyModule(m, &os)) throw Error("internal: the kernel library's C ABI is invalid IR: " + os.str());
}

void declare(std::ostringstream &os, const LibraryKernel &k) {
  const lower::LoweredProgram &p = k.program;
  os << "/* " << k.name << "\n";
  for (auto &line : k.doc) os << " *   " << line << "\n";
  os << " */\n";
  auto params = [&](bool prepacked) {
    std::vector<std::string> ps;
    for (auto &t : p.inputs) {
      if (prepacked && t->is_constant)
        ps.push_back("const void *" + t->name + "_packed /* from " + k.name + "_pack_" + t->name + " */");
      else
        ps.push_back("const " + std::string(c_type(t->dtype)) + " *" + t->name + " " +
                     shape_comment(t, t->is_constant ? ", constant" : ""));
    }
    for (auto &t : p.outputs) ps.push_back(std::string(c_type(t->dtype)) + " *" + t->name + " " + shape_comment(t, ""));
    ps.push_back("int32_t num_threads");
    std::string s;
    for (size_t i = 0; i < ps.size(); ++i) s += "\n    " + ps[i] + (i + 1 < ps.size() ? "," : "");
    return s;
  };
  os << "int32_t " << k.name << "(" << params(false) << ");\n";
  bool any_constant = false;
  for (auto &t : p.inputs) {
    if (!t->is_constant) continue;
    any_constant = true;
    os << "int64_t " << k.name << "_" << t->name << "_packed_bytes(void);\n"
       << "void " << k.name << "_pack_" << t->name << "(const " << c_type(t->dtype) << " *" << t->name << ", void *"
       << t->name << "_packed);\n";
  }
  if (any_constant) os << "int32_t " << k.name << "_prepacked(" << params(true) << ");\n";
  os << "\n";
}

} // namespace

bool is_c_identifier(const std::string &s) {
  if (s.empty() || std::isdigit((unsigned char)s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum((unsigned char)c) || c == '_'; });
}

Expected<std::string> library_object(const LibraryKernel &kernel, const Target &target) {
  if (!is_c_identifier(kernel.name)) return make_error("kernel name '" + kernel.name + "' is not a C identifier");
  std::vector<const lower::LoweredFunc *> funcs;
  for (auto &f : kernel.program.prepack) funcs.push_back(&f);
  funcs.push_back(&kernel.program.kernel);
  return emit_object_code(funcs, target, [&](llvm::Module &m) { add_abi(m, kernel); });
}

std::string library_header(const std::vector<LibraryKernel> &kernels, const std::string &library_name,
                           const std::vector<std::string> &doc) {
  std::string guard = "TESSEL_LIBRARY_" + library_name + "_H";
  for (auto &c : guard) c = std::isalnum((unsigned char)c) ? char(std::toupper((unsigned char)c)) : '_';
  std::ostringstream os;
  os << "/* Generated by Tessel: kernel library " << library_name << ". Do not edit.\n";
  for (auto &line : doc) os << " * " << line << "\n";
  os << " *\n"
     << " * Link lib" << library_name << ".a and libtessel_runtime.a (from C, add -lstdc++ -lpthread).\n"
     << " * Buffers are dense, row-major, must not overlap, and are best 64-byte aligned. NAME packs constant inputs\n"
     << " * on every call; to pack once, allocate NAME_X_packed_bytes() bytes (64-byte aligned),\n"
     << " * call NAME_pack_X, then call NAME_prepacked. num_threads <= 0: one per hardware thread.\n"
     << " * Every function returns 0. The ABI depends only on the workload, not on its schedule.\n"
     << " */\n"
     << "#ifndef " << guard << "\n#define " << guard << "\n\n#include <stdint.h>\n\n"
     << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
  for (auto &k : kernels) declare(os, k);
  os << "#ifdef __cplusplus\n}\n#endif\n\n#endif\n";
  return os.str();
}

Status write_archive(const std::string &path, const std::vector<std::pair<std::string, std::string>> &members) {
  std::vector<llvm::NewArchiveMember> ms;
  for (auto &[name, bytes] : members) {
    llvm::NewArchiveMember m(llvm::MemoryBufferRef(bytes, name));
    m.MemberName = name;
    ms.push_back(std::move(m));
  }
  if (llvm::Error e = llvm::writeArchive(path, ms, /*WriteSymtab=*/true, llvm::object::Archive::K_GNU,
                                         /*Deterministic=*/true, /*Thin=*/false)) {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << e;
    return Status::error("cannot write archive " + path + ": " + os.str());
  }
  return Status::ok();
}

} // namespace tessel::codegen
