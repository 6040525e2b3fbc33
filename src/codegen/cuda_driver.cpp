// The CUDA driver API by dlopen: the few entry points Tessel needs, declared
// here with the driver's C types so that no CUDA header is needed to build.
#include "codegen/cuda_driver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace tessel::codegen {

namespace {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUevent = struct CUevent_st *;
using CUstream = struct CUstream_st *;
constexpr int kAttrSmCount = 16, kAttrMajor = 75, kAttrMinor = 76; // CU_DEVICE_ATTRIBUTE_*
constexpr int kFuncMaxDynamicShared = 8;                           // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES

struct Driver {
  void *lib = nullptr;
  std::string error;
  CUresult (*cuInit)(unsigned);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDeviceTotalMem)(size_t *, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                             void **, void **);
  CUresult (*cuEventCreate)(CUevent *, unsigned);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
  CUresult (*cuEventDestroy)(CUevent);

  std::string message(CUresult r) const {
    const char *s = nullptr;
    if (cuGetErrorString) cuGetErrorString(r, &s);
    return s ? s : "CUDA error " + std::to_string(r);
  }
};

const Driver &driver() {
  static Driver d;
  static std::once_flag once;
  std::call_once(once, [] {
    d.lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!d.lib) {
      d.error = std::string("no CUDA driver (libcuda.so.1: ") + dlerror() + "); this machine has no NVIDIA GPU driver";
      return;
    }
    auto load = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(d.lib, name));
      if (!fn && d.error.empty()) d.error = std::string("the CUDA driver lacks ") + name;
    };
    load(d.cuInit, "cuInit");
    load(d.cuGetErrorString, "cuGetErrorString");
    load(d.cuDeviceGetCount, "cuDeviceGetCount");
    load(d.cuDeviceGet, "cuDeviceGet");
    load(d.cuDeviceGetName, "cuDeviceGetName");
    load(d.cuDeviceGetAttribute, "cuDeviceGetAttribute");
    load(d.cuDeviceTotalMem, "cuDeviceTotalMem_v2");
    load(d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    load(d.cuCtxSetCurrent, "cuCtxSetCurrent");
    load(d.cuCtxSynchronize, "cuCtxSynchronize");
    load(d.cuModuleLoadData, "cuModuleLoadData");
    load(d.cuModuleUnload, "cuModuleUnload");
    load(d.cuModuleGetFunction, "cuModuleGetFunction");
    load(d.cuFuncSetAttribute, "cuFuncSetAttribute");
    load(d.cuMemAlloc, "cuMemAlloc_v2");
    load(d.cuMemFree, "cuMemFree_v2");
    load(d.cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    load(d.cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    load(d.cuMemsetD8, "cuMemsetD8_v2");
    load(d.cuLaunchKernel, "cuLaunchKernel");
    load(d.cuEventCreate, "cuEventCreate");
    load(d.cuEventRecord, "cuEventRecord");
    load(d.cuEventSynchronize, "cuEventSynchronize");
    load(d.cuEventElapsedTime, "cuEventElapsedTime");
    load(d.cuEventDestroy, "cuEventDestroy_v2");
    if (!d.error.empty()) return;
    int count = 0;
    if (CUresult r = d.cuInit(0); r != 0)
      d.error = "the CUDA driver does not start: " + d.message(r);
    else if (d.cuDeviceGetCount(&count) != 0 || count == 0)
      d.error = "the CUDA driver finds no GPU";
  });
  return d;
}

#define TESSEL_CU(call, what)                                                                                          \
  if (CUresult r_ = (call); r_ != 0) return make_error(std::string(what) + ": " + d.message(r_))

} // namespace

bool cuda_driver_available(std::string *why) {
  const Driver &d = driver();
  if (why) *why = d.error;
  return d.error.empty();
}

Expected<CudaDevice> cuda_device(int ordinal) {
  const Driver &d = driver();
  if (!d.error.empty()) return make_error(d.error);
  CudaDevice dev;
  CUdevice h;
  TESSEL_CU(d.cuDeviceGet(&h, ordinal), "GPU " + std::to_string(ordinal));
  char name[256] = {};
  TESSEL_CU(d.cuDeviceGetName(name, sizeof name, h), "device name");
  size_t mem = 0;
  TESSEL_CU(d.cuDeviceTotalMem(&mem, h), "device memory");
  TESSEL_CU(d.cuDeviceGetAttribute(&dev.major, kAttrMajor, h), "compute capability");
  TESSEL_CU(d.cuDeviceGetAttribute(&dev.minor, kAttrMinor, h), "compute capability");
  TESSEL_CU(d.cuDeviceGetAttribute(&dev.sm_count, kAttrSmCount, h), "SM count");
  dev.ordinal = ordinal, dev.name = name, dev.memory_bytes = int64_t(mem);
  return dev;
}

Status runnable_here(const Target &target) {
  if (!target.is_cuda()) return target.runnable_here();
  auto dev = cuda_device();
  if (!dev) return Status::error("target " + target.name + " is a CUDA GPU, and " + dev.error());
  const std::string &arch = target.gpu ? target.gpu->arch : target.cpu;
  int want = std::atoi(arch.c_str() + (arch.rfind("sm_", 0) == 0 ? 3 : 0));
  if (dev->major * 10 + dev->minor < want)
    return Status::error("target " + target.name + " needs compute capability " + arch + "; this " + dev->name +
                         " is " + dev->arch());
  return Status::ok();
}

Expected<std::vector<double>> run_cuda_program(const CudaCode &code, const std::vector<void *> &args,
                                               const std::vector<int64_t> &bytes, const CudaRunOptions &options,
                                               int device) {
  const Driver &d = driver();
  if (!d.error.empty()) return make_error(d.error);
  if (args.size() != code.args.size() || bytes.size() != code.args.size())
    return make_error("the program takes " + std::to_string(code.args.size()) + " buffers, not " +
                      std::to_string(args.size()));
  CUdevice h;
  CUcontext ctx;
  TESSEL_CU(d.cuDeviceGet(&h, device), "GPU " + std::to_string(device));
  TESSEL_CU(d.cuDevicePrimaryCtxRetain(&ctx, h), "CUDA context");
  TESSEL_CU(d.cuCtxSetCurrent(ctx), "CUDA context");
  // Everything allocated is released on every path out.
  struct Owned {
    const Driver &d;
    std::vector<CUdeviceptr> ptrs;
    CUmodule module = nullptr;
    std::vector<CUevent> events;
    ~Owned() {
      for (auto p : ptrs) d.cuMemFree(p);
      for (auto e : events) d.cuEventDestroy(e);
      if (module) d.cuModuleUnload(module);
    }
  } own{d, {}, nullptr, {}};
  auto alloc = [&](int64_t n, CUdeviceptr *p) -> Status {
    if (CUresult r = d.cuMemAlloc(p, size_t(std::max<int64_t>(n, 1))); r != 0)
      return Status::error("cannot allocate " + std::to_string(n) + " bytes on the GPU: " + d.message(r));
    own.ptrs.push_back(*p);
    return Status::ok();
  };
  std::vector<CUdeviceptr> buffers(args.size() + code.workspace_bytes.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if (Status s = alloc(bytes[i], &buffers[i]); !s) return make_error(s.message());
    TESSEL_CU(d.cuMemcpyHtoD(buffers[i], args[i], size_t(bytes[i])), "copy to the GPU");
  }
  for (size_t i = 0; i < code.workspace_bytes.size(); ++i)
    if (Status s = alloc(code.workspace_bytes[i], &buffers[args.size() + i]); !s) return make_error(s.message());
  CUdeviceptr flush = 0;
  if (options.flush_bytes > 0)
    if (Status s = alloc(options.flush_bytes, &flush); !s) return make_error(s.message());
  TESSEL_CU(d.cuModuleLoadData(&own.module, code.cubin.data()), "loading the cubin");
  struct Launch {
    CUfunction fn;
    const CudaCode::Kernel *k;
    std::vector<CUdeviceptr> params;
  };
  std::vector<Launch> launches;
  for (auto &k : code.kernels) {
    Launch l{nullptr, &k, {}};
    TESSEL_CU(d.cuModuleGetFunction(&l.fn, own.module, k.name.c_str()), "kernel " + k.name);
    if (k.shared_bytes > 48 * 1024) // beyond 48 KiB a kernel must opt in to dynamic shared memory
      TESSEL_CU(d.cuFuncSetAttribute(l.fn, kFuncMaxDynamicShared, int(k.shared_bytes)), "shared memory of " + k.name);
    for (int b : k.params) {
      if (b < 0 || size_t(b) >= buffers.size())
        return make_error("kernel " + k.name + " names a buffer that is not there");
      l.params.push_back(buffers[size_t(b)]);
    }
    launches.push_back(std::move(l));
  }
  auto run_all = [&]() -> Status {
    for (auto &l : launches) {
      std::vector<void *> params;
      for (auto &p : l.params) params.push_back(&p);
      const CudaCode::Kernel &k = *l.k;
      if (CUresult r = d.cuLaunchKernel(l.fn, unsigned(k.grid[0]), unsigned(k.grid[1]), unsigned(k.grid[2]),
                                        unsigned(k.block[0]), unsigned(k.block[1]), unsigned(k.block[2]),
                                        unsigned(k.shared_bytes), nullptr, params.data(), nullptr);
          r != 0)
        return Status::error("launching " + k.name + ": " + d.message(r));
    }
    return Status::ok();
  };
  // The first run gives the outputs (checked by the caller) and shows faults.
  if (Status s = run_all(); !s) return make_error(s.message());
  TESSEL_CU(d.cuCtxSynchronize(), "running the kernels");
  for (size_t i = 0; i < args.size(); ++i)
    TESSEL_CU(d.cuMemcpyDtoH(args[i], buffers[i], size_t(bytes[i])), "copy from the GPU");
  for (int i = 0; i < options.warmup; ++i)
    if (Status s = run_all(); !s) return make_error(s.message());
  own.events.resize(2);
  TESSEL_CU(d.cuEventCreate(&own.events[0], 0), "CUDA event");
  TESSEL_CU(d.cuEventCreate(&own.events[1], 0), "CUDA event");
  std::vector<double> seconds;
  for (int i = 0; i < options.repeats; ++i) {
    if (flush) TESSEL_CU(d.cuMemsetD8(flush, uint8_t(i), size_t(options.flush_bytes)), "flushing L2");
    TESSEL_CU(d.cuEventRecord(own.events[0], nullptr), "CUDA event");
    if (Status s = run_all(); !s) return make_error(s.message());
    TESSEL_CU(d.cuEventRecord(own.events[1], nullptr), "CUDA event");
    TESSEL_CU(d.cuEventSynchronize(own.events[1]), "running the kernels");
    float ms = 0;
    TESSEL_CU(d.cuEventElapsedTime(&ms, own.events[0], own.events[1]), "CUDA event");
    seconds.push_back(ms * 1e-3);
  }
  return seconds;
}

} // namespace tessel::codegen
