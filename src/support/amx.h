// Whether this process can run AMX tile instructions: the CPU says so (CPUID), Linux
// grants the tile state (arch_prctl, Linux >= 5.16), and a tile instruction really runs.
// The last step matters in virtual machines that report AMX in CPUID but fault on
// the first use of tile data (seen on a Firecracker guest): it is tried in a forked
// child, so a fault costs that child only. Computed once per process.
#pragma once

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#endif

namespace tessel {

#if defined(__x86_64__)
namespace detail {
__attribute__((target("amx-tile"))) inline void touch_amx_tiles() {
  struct alignas(64) {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {64};
    uint8_t rows[16] = {16};
  } cfg;
  alignas(64) static uint8_t data[16 * 64];
  asm volatile("ldtilecfg %0" ::"m"(cfg));
  asm volatile("tileloadd (%0,%1,1), %%tmm0" ::"r"(data), "r"(int64_t(64)) : "memory");
  asm volatile("tilerelease");
}
} // namespace detail
#endif

inline bool amx_tiles_usable() {
#if defined(__x86_64__)
  static const bool usable = [] {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24))) return false; // AMX-TILE
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      detail::touch_amx_tiles();
      _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }();
  return usable;
#else
  return false;
#endif
}

} // namespace tessel
