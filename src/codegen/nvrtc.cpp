#include "codegen/nvrtc.h"

#include "support/hash.h"

#ifdef TESSEL_HAVE_CUDA_HEADERS
#include <nvrtc.h>
#endif

#include <dlfcn.h>
#include <elf.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace tessel::codegen {

namespace {

#ifdef TESSEL_HAVE_CUDA_HEADERS
// Declared from the real header, so that a signature change fails to compile here rather than at run time.
using NvrtcResult = nvrtcResult;
using NvrtcProgram = nvrtcProgram;
using VersionFn = decltype(&nvrtcVersion);
using GetErrorStringFn = decltype(&nvrtcGetErrorString);
using CreateProgramFn = decltype(&nvrtcCreateProgram);
using DestroyProgramFn = decltype(&nvrtcDestroyProgram);
using CompileProgramFn = decltype(&nvrtcCompileProgram);
using GetProgramLogSizeFn = decltype(&nvrtcGetProgramLogSize);
using GetProgramLogFn = decltype(&nvrtcGetProgramLog);
using GetCUBINSizeFn = decltype(&nvrtcGetCUBINSize);
using GetCUBINFn = decltype(&nvrtcGetCUBIN);
static_assert(sizeof(nvrtcResult) == sizeof(int));
#else
// The same declarations as nvrtc.h (nvrtcResult is an int-sized enum, nvrtcProgram an opaque pointer), for builds
// without the CUDA headers.
using NvrtcResult = int;
struct NvrtcProgramImpl;
using NvrtcProgram = NvrtcProgramImpl *;
using VersionFn = NvrtcResult (*)(int *, int *);
using GetErrorStringFn = const char *(*)(NvrtcResult);
using CreateProgramFn = NvrtcResult (*)(NvrtcProgram *, const char *, const char *, int, const char *const *,
                                        const char *const *);
using DestroyProgramFn = NvrtcResult (*)(NvrtcProgram *);
using CompileProgramFn = NvrtcResult (*)(NvrtcProgram, int, const char *const *);
using GetProgramLogSizeFn = NvrtcResult (*)(NvrtcProgram, size_t *);
using GetProgramLogFn = NvrtcResult (*)(NvrtcProgram, char *);
using GetCUBINSizeFn = NvrtcResult (*)(NvrtcProgram, size_t *);
using GetCUBINFn = NvrtcResult (*)(NvrtcProgram, char *);
#endif

constexpr NvrtcResult kSuccess = NvrtcResult(0);

struct Nvrtc {
  void *handle = nullptr;  // never closed: NVRTC stays loaded for the life of the process
  std::string include_dir; // the CUDA headers (mma.h, cuda_fp16.h, ...); empty if not found
  std::string cccl_dir;    // <cuda/std/...>, which CUDA 13 moved to include/cccl (cooperative_groups needs it)
  std::string error;       // why NVRTC could not be loaded
  int major = 0, minor = 0;
  VersionFn version = nullptr;
  GetErrorStringFn error_string = nullptr;
  CreateProgramFn create = nullptr;
  DestroyProgramFn destroy = nullptr;
  CompileProgramFn compile = nullptr;
  GetProgramLogSizeFn log_size = nullptr;
  GetProgramLogFn log = nullptr;
  GetCUBINSizeFn cubin_size = nullptr;
  GetCUBINFn cubin = nullptr;

  std::string describe(NvrtcResult r) const {
    const char *s = error_string ? error_string(r) : nullptr;
    return s ? s : "NVRTC error " + std::to_string(int(r));
  }
};

template <typename F> void resolve(void *handle, const char *name, F &fn, std::string &missing) {
  fn = reinterpret_cast<F>(dlsym(handle, name));
  if (!fn) missing += std::string(" ") + name;
}

bool has_cuda_headers(const std::filesystem::path &dir) {
  std::error_code ec;
  return std::filesystem::exists(dir / "mma.h", ec);
}

// $CUDA_HOME/include, else the include directory next to the library (toolkit layout), else /usr/local/cuda.
std::string find_include_dir(void *symbol) {
  if (const char *home = std::getenv("CUDA_HOME"); home && *home) {
    std::filesystem::path dir = std::filesystem::path(home) / "include";
    if (has_cuda_headers(dir)) return dir.string();
  }
  Dl_info info;
  if (dladdr(symbol, &info) && info.dli_fname) {
    std::error_code ec;
    auto lib = std::filesystem::canonical(info.dli_fname, ec); // lib64 is often a link into targets/<arch>/lib
    if (!ec) {
      auto dir = (lib.parent_path() / ".." / "include").lexically_normal();
      if (has_cuda_headers(dir)) return dir.string();
    }
  }
  if (has_cuda_headers("/usr/local/cuda/include")) return "/usr/local/cuda/include";
  return "";
}

Nvrtc load_nvrtc() {
  std::vector<std::string> candidates;
  if (const char *p = std::getenv("TESSEL_NVRTC"); p && *p) candidates.push_back(p);
  for (const char *name : {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"}) candidates.push_back(name);
  if (const char *home = std::getenv("CUDA_HOME"); home && *home)
    candidates.push_back(std::string(home) + "/lib64/libnvrtc.so");
  candidates.push_back("/usr/local/cuda/lib64/libnvrtc.so");

  std::string tried;
  for (const auto &candidate : candidates) {
    void *handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char *e = dlerror();
      tried += "\n  " + (e ? std::string(e) : candidate + ": cannot be loaded"); // dlerror names the file
      continue;
    }
    Nvrtc lib;
    std::string missing;
    resolve(handle, "nvrtcVersion", lib.version, missing);
    resolve(handle, "nvrtcGetErrorString", lib.error_string, missing);
    resolve(handle, "nvrtcCreateProgram", lib.create, missing);
    resolve(handle, "nvrtcDestroyProgram", lib.destroy, missing);
    resolve(handle, "nvrtcCompileProgram", lib.compile, missing);
    resolve(handle, "nvrtcGetProgramLogSize", lib.log_size, missing);
    resolve(handle, "nvrtcGetProgramLog", lib.log, missing);
    resolve(handle, "nvrtcGetCUBINSize", lib.cubin_size, missing);
    resolve(handle, "nvrtcGetCUBIN", lib.cubin, missing);
    if (!missing.empty()) {
      tried += "\n  " + candidate + ": lacks" + missing + " (NVRTC from CUDA 11.1 or newer is needed)";
      dlclose(handle);
      continue;
    }
    lib.handle = handle;
    if (lib.version(&lib.major, &lib.minor) != kSuccess) lib.major = lib.minor = 0;
    lib.include_dir = find_include_dir(dlsym(handle, "nvrtcCompileProgram"));
    std::error_code ec;
    if (!lib.include_dir.empty() && std::filesystem::is_directory(lib.include_dir + "/cccl", ec))
      lib.cccl_dir = lib.include_dir + "/cccl";
    return lib;
  }
  Nvrtc lib;
  lib.error = "cannot load NVRTC, which compiles CUDA C++; tried:" + tried +
              "\nInstall the CUDA toolkit (11.1 or newer), or set TESSEL_NVRTC to the path of libnvrtc.so.";
  return lib;
}

const Nvrtc &nvrtc() {
  static const Nvrtc lib = load_nvrtc(); // thread-safe, once per process
  return lib;
}

// A cubin needs a real architecture: sm_ then digits, maybe a suffix (sm_90a, sm_100f).
bool is_sm_arch(const std::string &arch) {
  if (arch.size() < 5 || arch.compare(0, 3, "sm_") != 0) return false;
  size_t i = 3;
  while (i < arch.size() && arch[i] >= '0' && arch[i] <= '9') ++i;
  if (i == 3) return false;
  while (i < arch.size() && arch[i] >= 'a' && arch[i] <= 'z') ++i;
  return i == arch.size();
}

std::string program_log(const Nvrtc &lib, NvrtcProgram program) {
  size_t size = 0;
  if (lib.log_size(program, &size) != kSuccess || size == 0) return "";
  std::string log(size, '\0');
  if (lib.log(program, log.data()) != kSuccess) return "";
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n' || log.back() == ' ')) log.pop_back();
  return log;
}

// The first errors are the useful ones; a template error can run to megabytes.
std::string trim_log(const std::string &log) {
  constexpr size_t kMax = 16 * 1024;
  if (log.size() <= kMax) return log;
  return log.substr(0, kMax) + "\n... (" + std::to_string(log.size() - kMax) + " more bytes of log)";
}

struct CacheEntry {
  std::string key; // the full key, so that a hash collision is a miss rather than a wrong binary
  CudaBinary binary;
};

struct Cache {
  static constexpr size_t kMaxEntries = 256;
  std::mutex mutex;
  std::unordered_map<uint64_t, CacheEntry> entries;
  std::deque<uint64_t> order; // oldest first
};

Cache &cache() {
  static Cache c;
  return c;
}

// ---- the on-disk cache: binaries outlive the process (tuning runs, `tessel run/compile` again) ----

// $TESSEL_CACHE_DIR/nvrtc, else $XDG_CACHE_HOME/tessel/nvrtc, else ~/.cache/tessel/nvrtc; "" when off
// (TESSEL_CACHE_DIR=off) or there is no home.
std::filesystem::path disk_cache_dir() {
  namespace fs = std::filesystem;
  if (const char *d = std::getenv("TESSEL_CACHE_DIR"); d && *d)
    return std::string(d) == "off" ? fs::path() : fs::path(d) / "nvrtc";
  if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "tessel" / "nvrtc";
  if (const char *h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "tessel" / "nvrtc";
  return {};
}

constexpr char kDiskMagic[] = "tessel-nvrtc-cubin 1\n";
constexpr size_t kDiskMaxFiles = 4096; // past this, the oldest quarter goes

// The file of the binary whose key hashes to `hash` (the key inside tells a collision apart).
std::filesystem::path disk_cache_file(uint64_t hash) {
  std::filesystem::path dir = disk_cache_dir();
  return dir.empty() ? dir : dir / (hex16(hash) + ".cubin");
}

// File: magic, key size and key (a hash collision is then a miss), compile seconds, cubin size and cubin.
std::optional<CudaBinary> disk_cache_read(const std::string &key, uint64_t hash) {
  std::filesystem::path file = disk_cache_file(hash);
  if (file.empty()) return std::nullopt;
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = sizeof kDiskMagic - 1;
  auto u64 = [&](uint64_t &v) {
    if (data.size() - pos < 8) return false;
    std::memcpy(&v, data.data() + pos, 8);
    pos += 8;
    return true;
  };
  uint64_t key_size = 0, cubin_size = 0, seconds_bits = 0;
  if (data.compare(0, pos, kDiskMagic) != 0 || !u64(key_size) || data.size() - pos < key_size ||
      data.compare(pos, key_size, key) != 0)
    return std::nullopt;
  pos += key_size;
  if (!u64(seconds_bits) || !u64(cubin_size) || data.size() - pos != cubin_size) return std::nullopt;
  CudaBinary b;
  b.cubin = data.substr(pos);
  std::memcpy(&b.compile_seconds, &seconds_bits, 8);
  auto kernels = cubin_kernels(b.cubin);
  if (!kernels) return std::nullopt; // damaged: compiled again and rewritten
  b.kernels = kernels.take();
  b.cached = true;
  return b;
}

// Best effort: a cache that cannot be written only costs compile time.
void disk_cache_write(const std::string &key, uint64_t hash, const CudaBinary &b) {
  namespace fs = std::filesystem;
  fs::path file = disk_cache_file(hash);
  if (file.empty()) return;
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) return;
  std::string data = kDiskMagic;
  auto u64 = [&](uint64_t v) { data.append(reinterpret_cast<const char *>(&v), 8); };
  uint64_t seconds_bits = 0;
  std::memcpy(&seconds_bits, &b.compile_seconds, 8);
  u64(key.size());
  data += key;
  u64(seconds_bits);
  u64(b.cubin.size());
  data += b.cubin;
  // Written aside, then renamed: concurrent builders never read half a file.
  fs::path tmp = file;
  tmp += "." + std::to_string(::getpid()) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out.write(data.data(), std::streamsize(data.size()))) return (void)fs::remove(tmp, ec);
  }
  fs::rename(tmp, file, ec);
  if (ec) return (void)fs::remove(tmp, ec);
  // Bounded: past kDiskMaxFiles binaries, the least recently written quarter goes.
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  for (auto &e : fs::directory_iterator(file.parent_path(), ec))
    if (e.path().extension() == ".cubin") files.push_back({e.last_write_time(ec), e.path()});
  if (files.size() <= kDiskMaxFiles) return;
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i < files.size() / 4; ++i) fs::remove(files[i].second, ec);
}

// ---- cubin (ELF) reading ----

// Little-endian reads, bounds-checked by the callers.
uint16_t le16(const char *p) { return uint16_t(uint8_t(p[0]) | uint8_t(p[1]) << 8); }
uint32_t le32(const char *p) { return uint32_t(le16(p)) | uint32_t(le16(p + 2)) << 16; }

bool in_image(uint64_t offset, uint64_t size, uint64_t image_size) {
  return offset <= image_size && size <= image_size - offset;
}

// The NUL-terminated string at `offset` of string table section `table`.
std::optional<std::string_view> string_at(const std::string &image, const Elf64_Shdr &table, uint64_t offset) {
  if (table.sh_type != SHT_STRTAB || offset >= table.sh_size) return std::nullopt;
  const char *begin = image.data() + table.sh_offset + offset;
  const void *end = std::memchr(begin, '\0', table.sh_size - offset);
  if (!end) return std::nullopt;
  return std::string_view(begin, static_cast<const char *>(end) - begin);
}

// .nv.info attributes (EIATTR_*) we read, and their entry formats (EIFMT_*).
constexpr uint8_t kFmtNval = 0x01, kFmtBval = 0x02, kFmtHval = 0x03, kFmtSval = 0x04;
constexpr uint8_t kAttrParamCbank = 0x0a;     // SVAL: u32 symbol (.nv.constant0.K), u16 offset, u16 size
constexpr uint8_t kAttrCbankParamSize = 0x19; // HVAL: parameter bytes
constexpr uint8_t kAttrFrameSize = 0x11;      // SVAL: u32 symbol, u32 bytes
constexpr uint8_t kAttrMinStackSize = 0x12;   // SVAL: u32 symbol, u32 bytes (the frame plus callees')
constexpr uint8_t kAttrMaxStackSize = 0x23;   // SVAL: u32 symbol, u32 bytes
constexpr uint8_t kAttrRegcount = 0x2f;       // SVAL: u32 symbol, u32 registers

constexpr int64_t kReservedSharedBytes = 1024; // cudaDevAttrReservedSharedMemoryPerBlock, sm_80 to sm_120

// Per-function values found in .nv.info sections; -1 = absent.
struct InfoValues {
  int64_t regcount = -1, frame = -1, min_stack = -1, max_stack = -1, param = -1;
};

} // namespace

bool nvrtc_available(std::string *why) {
  const Nvrtc &lib = nvrtc();
  if (!lib.handle && why) *why = lib.error;
  return lib.handle != nullptr;
}

Expected<CudaBinary> compile_cuda(const std::string &source, const std::string &arch) {
  if (!is_sm_arch(arch))
    return make_error("CUDA architecture '" + arch + "' is not of the form sm_XX (e.g. sm_80, sm_90, sm_90a)");
  const Nvrtc &lib = nvrtc();
  if (!lib.handle) return make_error(lib.error);

  // No --use_fast_math: results must match the reference to IEEE precision.
  std::vector<std::string> options = {"--gpu-architecture=" + arch, "-std=c++17", "-default-device"};
  if (!lib.include_dir.empty()) options.push_back("--include-path=" + lib.include_dir);
  if (!lib.cccl_dir.empty()) options.push_back("--include-path=" + lib.cccl_dir);

  std::string key = source;
  key += '\0';
  key += arch;
  for (const auto &o : options) key += '\0' + o;
  key += "\0nvrtc " + std::to_string(lib.major) + "." + std::to_string(lib.minor); // another NVRTC, another cubin
  const uint64_t hash = fnv1a(key);
  Cache &c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (auto it = c.entries.find(hash); it != c.entries.end() && it->second.key == key) {
      CudaBinary copy = it->second.binary;
      copy.cached = true;
      return copy;
    }
  }
  if (auto from_disk = disk_cache_read(key, hash)) {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto [it, inserted] = c.entries.insert_or_assign(hash, CacheEntry{key, *from_disk});
    if (inserted) c.order.push_back(hash);
    return *from_disk;
  }

  // Compiled outside the lock: NVRTC compiles separate programs concurrently.
  const auto start = std::chrono::steady_clock::now();
  NvrtcProgram program = nullptr;
  if (NvrtcResult r = lib.create(&program, source.c_str(), "tessel.cu", 0, nullptr, nullptr); r != kSuccess)
    return make_error("NVRTC cannot create a program: " + lib.describe(r));
  struct Destroy {
    const Nvrtc &lib;
    NvrtcProgram &program;
    ~Destroy() { lib.destroy(&program); }
  } destroy{lib, program};

  std::vector<const char *> argv;
  for (const auto &o : options) argv.push_back(o.c_str());
  NvrtcResult r = lib.compile(program, int(argv.size()), argv.data());
  CudaBinary binary;
  binary.log = program_log(lib, program);
  const std::string nvrtc_name = "NVRTC " + std::to_string(lib.major) + "." + std::to_string(lib.minor);
  if (r != kSuccess) {
    std::string hint;
    if (lib.include_dir.empty())
      hint =
          "\n(the CUDA headers were not found: set CUDA_HOME to the toolkit, so that $CUDA_HOME/include/mma.h exists)";
    return make_error(nvrtc_name + " cannot compile the CUDA source for " + arch + " (" + lib.describe(r) + "):\n" +
                      trim_log(binary.log) + hint);
  }
  size_t size = 0;
  if (r = lib.cubin_size(program, &size); r != kSuccess || size == 0)
    return make_error(nvrtc_name + " produced no cubin for " + arch + " (" + lib.describe(r) + ")");
  binary.cubin.resize(size);
  if (r = lib.cubin(program, binary.cubin.data()); r != kSuccess)
    return make_error(nvrtc_name + " cannot return the cubin for " + arch + ": " + lib.describe(r));
  binary.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  auto kernels = cubin_kernels(binary.cubin);
  if (!kernels) return make_error("cannot read the cubin " + nvrtc_name + " made for " + arch + ": " + kernels.error());
  binary.kernels = kernels.take();
  disk_cache_write(key, hash, binary);

  std::lock_guard<std::mutex> lock(c.mutex);
  auto [it, inserted] = c.entries.insert_or_assign(hash, CacheEntry{std::move(key), binary});
  if (inserted) c.order.push_back(hash);
  while (c.order.size() > Cache::kMaxEntries) {
    c.entries.erase(c.order.front());
    c.order.pop_front();
  }
  return binary;
}

Expected<std::vector<CubinKernel>> cubin_kernels(const std::string &image) {
  // CUDA hosts are little-endian (x86-64, aarch64, ppc64le); the ELF structs are read in place.
  if constexpr (std::endian::native != std::endian::little)
    return make_error("reading a cubin needs a little-endian host");
  auto bad = [](const std::string &why) { return make_error("malformed cubin: " + why); };

  Elf64_Ehdr header;
  if (image.size() < sizeof(header))
    return bad("shorter than an ELF header (" + std::to_string(image.size()) + " bytes)");
  std::memcpy(&header, image.data(), sizeof(header));
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) return bad("not an ELF image");
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB)
    return bad("not a 64-bit little-endian ELF image");
  if (header.e_machine != EM_CUDA)
    return bad("ELF machine " + std::to_string(header.e_machine) + ", not CUDA (" + std::to_string(EM_CUDA) + ")");
  if (header.e_shoff == 0 || header.e_shentsize != sizeof(Elf64_Shdr)) return bad("no section headers");
  if (!in_image(header.e_shoff, sizeof(Elf64_Shdr), image.size())) return bad("section headers past the end");

  // Section 0 holds the counts that overflow the ELF header's 16-bit fields.
  Elf64_Shdr first;
  std::memcpy(&first, image.data() + header.e_shoff, sizeof(first));
  uint64_t count = header.e_shnum ? header.e_shnum : first.sh_size;
  uint64_t names_index = header.e_shstrndx == SHN_XINDEX ? first.sh_link : header.e_shstrndx;
  if (count == 0) return bad("no sections");
  if (count > (image.size() - header.e_shoff) / sizeof(Elf64_Shdr)) return bad("section headers past the end");
  std::vector<Elf64_Shdr> sections(count);
  std::memcpy(sections.data(), image.data() + header.e_shoff, count * sizeof(Elf64_Shdr));
  // Only sections with contents in the image are read, and those must lie inside it.
  auto has_contents = [](const Elf64_Shdr &s) { return s.sh_type != SHT_NOBITS && s.sh_type != SHT_NULL; };
  for (uint64_t i = 0; i < count; ++i) {
    if (has_contents(sections[i]) && !in_image(sections[i].sh_offset, sections[i].sh_size, image.size()))
      return bad("section " + std::to_string(i) + " extends past the end");
  }
  if (names_index >= count) return bad("no section name table");
  std::vector<std::string_view> names(count);
  for (uint64_t i = 0; i < count; ++i) {
    auto name = string_at(image, sections[names_index], sections[i].sh_name);
    if (!name) return bad("section " + std::to_string(i) + " has no name");
    names[i] = *name;
  }

  // Symbols name the functions that .nv.info attributes refer to.
  const Elf64_Shdr *symtab = nullptr;
  for (const auto &s : sections)
    if (s.sh_type == SHT_SYMTAB) symtab = &s;
  uint64_t symbols = 0;
  if (symtab) {
    if (symtab->sh_entsize != sizeof(Elf64_Sym) || symtab->sh_link >= count) return bad("bad symbol table");
    symbols = symtab->sh_size / sizeof(Elf64_Sym);
  }
  auto symbol = [&](uint64_t index) -> std::optional<Elf64_Sym> {
    if (index >= symbols) return std::nullopt;
    Elf64_Sym sym;
    std::memcpy(&sym, image.data() + symtab->sh_offset + index * sizeof(Elf64_Sym), sizeof(sym));
    return sym;
  };
  auto symbol_name = [&](uint64_t index) -> std::optional<std::string_view> {
    auto sym = symbol(index);
    if (!sym) return std::nullopt;
    return string_at(image, sections[symtab->sh_link], sym->st_name);
  };

  // Kernels are the functions with both .text.<name> and .nv.info.<name> (their parameters): device functions that
  // were not inlined live in their caller's .text as local symbols, or, with -rdc, in a .text of their own.
  std::map<std::string, size_t, std::less<>> index;
  std::vector<CubinKernel> kernels;
  std::vector<InfoValues> info;
  std::map<std::string_view, uint64_t, std::less<>> text;
  for (uint64_t i = 0; i < count; ++i)
    if (names[i].starts_with(".text.")) text.emplace(names[i].substr(6), i);
  for (uint64_t i = 0; i < count; ++i) {
    if (!names[i].starts_with(".nv.info.")) continue;
    auto name = names[i].substr(9);
    auto t = text.find(name);
    if (t == text.end() || index.count(name)) continue;
    CubinKernel k;
    k.name = std::string(name);
    k.registers = int((sections[t->second].sh_info >> 24) & 0xff);
    index.emplace(k.name, kernels.size());
    kernels.push_back(std::move(k));
  }
  info.resize(kernels.size());
  auto kernel_at = [&](std::string_view name) -> InfoValues * {
    auto it = index.find(name);
    return it == index.end() ? nullptr : &info[it->second];
  };

  for (uint64_t i = 0; i < count; ++i) {
    if (names[i].starts_with(".nv.shared.")) {
      if (auto it = index.find(names[i].substr(11)); it != index.end())
        kernels[it->second].static_shared_bytes = int64_t(sections[i].sh_size);
      continue;
    }
    if ((names[i] != ".nv.info" && !names[i].starts_with(".nv.info.")) || !has_contents(sections[i])) continue;
    // Attributes in .nv.info.<kernel> belong to that kernel; those in .nv.info name their function by symbol.
    InfoValues *owner = names[i] == ".nv.info" ? nullptr : kernel_at(names[i].substr(9));
    const char *data = image.data() + sections[i].sh_offset;
    const uint64_t size = sections[i].sh_size;
    for (uint64_t pos = 0; pos < size;) {
      // Every entry starts with {u8 format, u8 attribute, u16 slot}: the slot is unused (NVAL), holds the value
      // (BVAL in its low byte, HVAL), or the size of the payload that follows (SVAL).
      if (size - pos < 4) return bad("truncated attribute in " + std::string(names[i]));
      const uint8_t format = uint8_t(data[pos]), attribute = uint8_t(data[pos + 1]);
      const uint16_t value = le16(data + pos + 2);
      const char *payload = data + pos + 4;
      uint64_t payload_size = 0;
      switch (format) {
      case kFmtNval:
      case kFmtBval:
      case kFmtHval: break;
      case kFmtSval: payload_size = value; break;
      default:
        return bad("unknown attribute format " + std::to_string(format) + " in " + std::string(names[i]) +
                   " at offset " + std::to_string(pos));
      }
      if (payload_size > size - pos - 4) return bad("truncated attribute in " + std::string(names[i]));
      pos += 4 + payload_size;

      // The function a {u32 symbol, u32 value} attribute is about.
      auto by_symbol = [&]() -> InfoValues * {
        if (payload_size < 8) return nullptr;
        auto name = symbol_name(le32(payload));
        return name ? kernel_at(*name) : nullptr;
      };
      if (format == kFmtSval && payload_size >= 8) {
        InfoValues *k = nullptr;
        switch (attribute) {
        case kAttrRegcount:
          if ((k = by_symbol())) k->regcount = le32(payload + 4);
          break;
        case kAttrFrameSize:
          if ((k = by_symbol())) k->frame = le32(payload + 4);
          break;
        case kAttrMinStackSize:
          if ((k = by_symbol())) k->min_stack = le32(payload + 4);
          break;
        case kAttrMaxStackSize:
          if ((k = by_symbol())) k->max_stack = le32(payload + 4);
          break;
        case kAttrParamCbank:
          if (owner) owner->param = le16(payload + 6);
          break;
        }
      } else if (format == kFmtHval && attribute == kAttrCbankParamSize && owner && owner->param < 0) {
        owner->param = value;
      }
    }
  }

  // In the sm_90+ layout of ptxas 13 (marked by .nv.shared.reserved.0), each kernel's .nv.shared section starts with
  // the 1 KB the driver reserves per block (sm_80 cubins leave it out). ptxas -v counts only the declared arrays,
  // and the reservation is a per-device constant for occupancy, so it is left out here too.
  int64_t reserved_shared = 0;
  for (uint64_t i = 0; i < count; ++i)
    if (names[i] == ".nv.shared.reserved.0") reserved_shared = kReservedSharedBytes;

  for (size_t i = 0; i < kernels.size(); ++i) {
    CubinKernel &k = kernels[i];
    const InfoValues &v = info[i];
    // sm_80 cubins carry the count in the .text section header as well; sm_90 ones only in .nv.info.
    if (v.regcount > 0 && k.registers > 0 && v.regcount != k.registers)
      return bad("kernel " + k.name + " has " + std::to_string(k.registers) + " registers by its section header but " +
                 std::to_string(v.regcount) + " by .nv.info");
    if (v.regcount > 0) k.registers = int(v.regcount);
    if (k.registers <= 0) return bad("no register count for kernel " + k.name);
    if (k.static_shared_bytes > 0)
      k.static_shared_bytes = std::max<int64_t>(0, k.static_shared_bytes - reserved_shared);
    // The stack of the kernel and the functions it calls (the same as ptxas's "stack frame" when it calls none).
    k.local_bytes = std::max<int64_t>({0, v.frame, v.min_stack, v.max_stack});
    k.param_bytes = std::max<int64_t>(0, v.param);
  }
  return kernels;
}

} // namespace tessel::codegen
