// Traces: a schedule written down as the ordered steps (primitive + decisions)
// that produce it from the default schedule. The tuning database stores
// traces, so the JSON form is a contract: see schedules/TRACE_FORMAT.md.
#pragma once

#include "schedules/schedule.h"
#include "support/error.h"

#include <string>
#include <string_view>
#include <vector>

namespace tessel::sched {

constexpr int kTraceFormatVersion = 1;

// The JSON text of a schedule's trace (steps, plus the workload key and hash
// it was made for). Deterministic: the same trace always prints the same.
std::string trace_to_json(const Schedule &s);

struct ParsedTrace {
  int version = 0;
  std::string workload_key, workload_hash;
  std::vector<Step> steps;
};
// Parses and validates a trace; errors name the step and the field.
Expected<ParsedTrace> parse_trace(std::string_view json);

// Applies steps to the default schedule of `w`; the first illegal step stops
// the replay with its error ("step 3 (split on C): ...").
Expected<Schedule> replay(const te::Workload &w, const std::vector<Step> &steps);
// parse_trace + a check that the trace was made for `w` + replay.
Expected<Schedule> replay_json(const te::Workload &w, std::string_view json);

} // namespace tessel::sched
