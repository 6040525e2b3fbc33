// Program features for the cost model, in the spirit of Ansor: read off the
// lowered loop program (what will really run), per store statement, then
// summarized into one fixed-length vector per program. Deterministic. Every
// feature is documented in cost_model/FEATURES.md, in this order.
#pragma once

#include "lower/lower.h"

#include <string>
#include <vector>

namespace tessel::cost {

// Bumped whenever a feature's meaning changes: a saved model of another version is refused.
constexpr int kFeatureVersion = 6;
// Features of one store statement (or tensor-intrinsic call) inside its loops.
constexpr int kStatementFeatures = 56;
// The program: its two heaviest statements, then program-wide sums.
constexpr int kProgramFeatures = 2 * kStatementFeatures + 24;

std::vector<float> program_features(const lower::LoweredProgram &program);
// A built CUDA program's features: the registers and local (spill) bytes per thread of its heaviest kernel,
// read back from the cubin, replace the estimates program_features made before it was compiled.
void set_cuda_resources(std::vector<float> &features, int registers, int64_t local_bytes);
const std::vector<std::string> &feature_names(); // kProgramFeatures names, for FEATURES.md and reports

// A hash of the lowered kernel's text: two candidates with the same hash are the same program.
std::string program_hash(const lower::LoweredProgram &program);

} // namespace tessel::cost
