// measure.h's values to and from their wire form (measure.proto). Internal to measure/.
#pragma once

#include "measure.pb.h"
#include "measure/measure.h"

namespace tessel::measure::detail {

wire::Artifact to_wire(const Artifact &a);
Artifact from_wire(const wire::Artifact &a);
wire::RunOptions to_wire(const RunOptions &o, double best_seconds);
RunOptions from_wire(const wire::RunOptions &o);
wire::RunReply to_wire(const RunResult &r);
RunResult from_wire(const wire::RunReply &r);
// A status name from the wire; unknown names become Invalid (a newer peer), said in the message.
db::RecordStatus status_from_wire(const std::string &name, std::string &message);

} // namespace tessel::measure::detail
