// The operator library: standard workloads built in the tensor-expression
// language, addressed by a spec string `OP:KEY=VAL,...`, e.g.
//   matmul:M=256,N=256,K=256,dtype=f32
//   conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,layout=NCHW
// Omitted keys take their defaults; the workload's key is the spec with every
// key spelled out in the operator's declared order (its canonical form).
#pragma once

#include "support/error.h"
#include "te/workload.h"

#include <string>
#include <string_view>
#include <vector>

namespace tessel::te {

struct OpParam {
  std::string name;
  std::string default_value; // empty: required
  std::string help;
};

struct OpInfo {
  std::string name;
  std::string summary;
  std::vector<OpParam> params;
  std::string example; // a full spec
};

const std::vector<OpInfo> &list_ops();

// Builds the workload named by a spec; errors name the column and the key.
Expected<Workload> make_op_workload(std::string_view spec);

// A spec (contains ':' and names a known operator) or a path to a text
// workload file (see te/text.h).
Expected<Workload> load_workload(std::string_view spec_or_path);

// Workloads named by specs, workload files and suite files (*.spec: one spec per line,
// '#' comments, optionally "xN" after a spec for its weight: how often it occurs).
// "LABEL@SPEC" (LABEL a C identifier) names an entry, e.g. fc1@dense:M=1,N=512,K=784.
struct SuiteEntry {
  std::string name;  // the spec or the file, for people
  std::string label; // from LABEL@; empty when none was given
  Workload workload;
  double weight = 1;
};
Expected<std::vector<SuiteEntry>> load_workloads(const std::vector<std::string> &args);

} // namespace tessel::te
