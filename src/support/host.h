// This machine's host name, for tuning runs and fleet servers ("" when unknown).
#pragma once

#include <unistd.h>

#include <string>

namespace tessel {

inline std::string host_name() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

} // namespace tessel
