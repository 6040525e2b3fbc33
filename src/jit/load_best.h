// The runtime API for JIT use: the best kernel of a workload in a tuning
// database, compiled on first use, cached on disk, called like a function.
//
//   auto k = tessel::load_best("tessel.db", "matmul:M=512,N=512,K=512", "host");
//   if (!k) { std::cerr << k.error() << "\n"; return 1; }
//   tessel::Status s = (*k)({A, B, C}); // inputs, then outputs, in the workload's order
//
// The cache (one object file and its call description per entry) is keyed by the
// record's identity and trace, the target, and the Tessel and LLVM versions, so a
// re-tuned database, another target or an upgrade never reuses a stale kernel.
#pragma once

#include "support/error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tessel {

struct LoadOptions {
  int threads = 1;            // the thread count the record was tuned with; also the threads calls use
  bool compatible = false;    // accept a record of a compatible target (the note says so)
  bool allow_default = false; // no record that applies: the default schedule instead of an error
  std::string cache_dir;      // "": $TESSEL_CACHE_DIR, else $XDG_CACHE_HOME/tessel, else ~/.cache/tessel
};

class Kernel {
public:
  // Runs the kernel on the workload's inputs then outputs. Constant inputs (weights) are
  // packed on the first call and again only when their pointer changes: their contents
  // must not change behind the same pointer. Thread-safe; calls are serialized.
  Status operator()(const std::vector<void *> &buffers) const;

  const std::string &workload_key() const;
  int64_t record_id() const;       // 0: the default schedule
  double record_seconds() const;   // the record's measured median; 0 for the default schedule
  bool from_cache() const;         // the compiled object came from the disk cache
  const std::string &note() const; // why a record other than the exact best was used, or why none was
  std::string describe() const;    // one line for logs

  struct Impl;

private:
  friend Expected<Kernel> load_best(const std::string &, const std::string &, const std::string &, LoadOptions);
  std::shared_ptr<Impl> impl_;
};

// The best record of `workload` (a spec OP:KEY=VAL,... or a workload file) on `target`
// (a name from configs/targets, a JSON path, or "host") in the database at `db_path`;
// an error value says why nothing applies (no database, no record for this target, a
// stale record) unless options.allow_default.
Expected<Kernel> load_best(const std::string &db_path, const std::string &workload, const std::string &target = "host",
                           LoadOptions options = {});

// The reference interpreter's outputs of `workload` on `inputs` (dense, row-major, in the
// workload's order): the correctness oracle to check kernels against.
Status reference(const std::string &workload, const std::vector<const void *> &inputs,
                 const std::vector<void *> &outputs);

} // namespace tessel
