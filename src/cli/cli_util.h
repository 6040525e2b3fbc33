// Helpers every `tessel` subcommand shares: errors, number formatting, the
// progress bar, the tuning database's default location.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace tessel::cli {

// "tessel: error: <msg>" on stderr; returns the failure exit code.
inline int fail(const std::string &msg) {
  std::cerr << "tessel: error: " << msg << "\n";
  return 1;
}

inline std::string fmt(const char *f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// GFLOP/s of `flops` in `seconds` with printf format `f`; "-" when either is unknown (0).
inline std::string gflops(double flops, double seconds, const char *f = "%.1f") {
  return flops > 0 && seconds > 0 ? fmt(f, flops / seconds * 1e-9) : "-";
}

// "0.412 ms", "37.1 us", "2.10 s": three significant digits in the unit that suits.
inline std::string human_seconds(double s) {
  if (s <= 0) return "-";
  if (s >= 1) return fmt("%.3g s", s);
  if (s >= 1e-3) return fmt("%.3g ms", s * 1e3);
  return fmt("%.3g us", s * 1e6);
}

// `s` padded to `width` columns plus one space (cut with '~' when longer): table columns.
inline std::string pad_right(std::string s, size_t width) {
  if (s.size() > width) s = s.substr(0, width - 1) + "~";
  return s + std::string(width - s.size() + 1, ' ');
}

// A progress bar on stderr for steps that may take seconds, when it is a terminal.
struct ProgressBar {
  explicit ProgressBar(std::string what) : what(std::move(what)), tty(isatty(2)) { update(0); }
  ~ProgressBar() {
    if (tty) std::fprintf(stderr, "\033[2K\r");
  }
  ProgressBar(const ProgressBar &) = delete;
  ProgressBar &operator=(const ProgressBar &) = delete;
  void update(double fraction) {
    if (!tty) return;
    int filled = int(fraction * 30);
    std::fprintf(stderr, "\r  %s [%s%s] %3d%%", what.c_str(), std::string(size_t(filled), '#').c_str(),
                 std::string(size_t(30 - filled), '.').c_str(), int(fraction * 100));
    std::fflush(stderr);
  }
  std::string what;
  bool tty;
};

// The tuning database a command uses: --db when given, else $TESSEL_DB, else ./tessel.db.
inline std::string database_path(const std::string &flag) {
  if (!flag.empty()) return flag;
  const char *env = std::getenv("TESSEL_DB");
  return env && *env ? env : "tessel.db";
}

} // namespace tessel::cli
