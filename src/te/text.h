// The text form of workloads, used by the CLI and workload files:
//
//   # matmul, 64x64x64
//   input A: f32[64, 64]
//   input B: f32[64, 64] const          # known ahead of time (a weight)
//   C[i, j] = sum(k: A[i, k] * B[k, j])
//
// Axis extents are inferred when an axis indexes a tensor dimension directly
// (i, j, k above); otherwise write them: `P[n < 1, h < 58] = ...`,
// `sum(r < 3, s < 3: ...)`. Expressions: + - * / % (floor semantics on
// integers), comparisons, && || !, select(c, a, b), min/max(a, b), exp log
// sqrt rsqrt tanh erf abs floor ceil pow, casts written as dtype(x) (f32 f16
// bf16 f64 i8 i32 i64), literals 1, 2.5, inf, true/false. Reductions: sum, max
// and min over one or more axes, only as a whole right-hand side. Tensors that
// no statement reads are the outputs.
#pragma once

#include "support/error.h"
#include "te/workload.h"

#include <string>
#include <string_view>

namespace tessel::te {

// Parses a workload. Errors read "<source>:LINE:COL: error: what (how to fix)".
Expected<Workload> parse_workload(std::string_view text, std::string_view source_name = "<input>");

// Prints a workload in the text form; parse_workload(to_text(w)) reproduces it.
// With canonical_names, tensors are renamed t0, t1, ... and variables v0, v1,
// ... in order of appearance, so names do not affect the structural hash.
std::string to_text(const Workload &w, bool canonical_names = false);

} // namespace tessel::te
