// A workload: one tensor computation with fixed shapes and dtypes, the unit
// that is scheduled, tuned and stored in the database.
#pragma once

#include "ir/ir.h"
#include "support/error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessel::te {

struct Workload {
  std::string key;                // canonical: "matmul:M=256,N=256,K=256,dtype=f32" or "te:<hash>"
  std::vector<ir::Tensor> inputs; // argument order of the kernel: inputs, then outputs
  std::vector<ir::Tensor> outputs;
  std::vector<ir::Tensor> stages; // every computed tensor, producers before consumers

  // Hash of the computation's structure, independent of tensor/variable names,
  // the run, the machine and the build. The database keys on it.
  uint64_t structural_hash() const;
  std::string hash_hex() const; // 16 lowercase hex digits
  // Floating-point (or integer) operations of one evaluation, reductions included.
  double flops() const;
  // Tensors that consume `t` (stages whose bodies read it).
  std::vector<ir::Tensor> consumers(const ir::Tensor &t) const;
  bool is_output(const ir::Tensor &t) const;
};

// Collects the stages reachable from `outputs`, checks that every input read
// is listed in `inputs`, that names are unique, and that every tensor access
// is provably within bounds. `key` may be empty: "te:<hash>" is then used.
Expected<Workload> make_workload(std::string key, std::vector<ir::Tensor> inputs, std::vector<ir::Tensor> outputs);

} // namespace tessel::te
