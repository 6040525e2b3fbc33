#include "schedules/schedule.h"

#include "ir/visitor.h"

#include <algorithm>
#include <sstream>

namespace tessel::sched {

bool Stage::is_leaf(int loop) const { return leaf_position(loop) >= 0; }
int Stage::leaf_position(int loop) const {
  auto it = std::find(leaves.begin(), leaves.end(), loop);
  return it == leaves.end() ? -1 : int(it - leaves.begin());
}

Stage *Schedule::find(const ir::Tensor &t) {
  for (auto &s : stages)
    if (s.tensor == t) return &s;
  return nullptr;
}
const Stage *Schedule::find(const ir::Tensor &t) const {
  for (auto &s : stages)
    if (s.tensor == t) return &s;
  return nullptr;
}
const Stage *Schedule::find(const std::string &name) const {
  for (auto &s : stages)
    if (s.tensor->name == name) return &s;
  return nullptr;
}
Stage *Schedule::find(const std::string &name) {
  for (auto &s : stages)
    if (s.tensor->name == name) return &s;
  return nullptr;
}

Stage make_stage(const ir::Tensor &t) {
  Stage st;
  st.tensor = t;
  for (auto &ax : t->axes) st.loops.push_back(Loop{ax.var.as<ir::Var>()->name, ax.extent, false});
  if (auto *r = t->body.as<ir::Reduce>())
    for (auto &ax : r->axes) st.loops.push_back(Loop{ax.var.as<ir::Var>()->name, ax.extent, true});
  for (int i = 0; i < int(st.loops.size()); ++i) st.leaves.push_back(i);
  return st;
}

Schedule default_schedule(const te::Workload &w, bool parallel_outer) {
  Schedule s;
  s.source = w;
  s.workload = w;
  for (auto &t : w.stages) {
    Stage st = make_stage(t);
    if (parallel_outer && !st.loops.empty() && !st.loops[0].is_reduce && st.loops[0].extent > 1)
      st.loops[0].kind = ir::ForKind::Parallel;
    s.stages.push_back(std::move(st));
  }
  return s;
}

std::string describe(const Schedule &s) {
  std::ostringstream os;
  for (auto &st : s.stages) {
    os << st.tensor->name << (st.attach == Attach::Inline ? " (inline)" : "") << ":";
    for (int l : st.leaves) {
      const Loop &L = st.loops[l];
      os << " " << L.name << "[" << L.extent << "]";
      if (L.kind != ir::ForKind::Serial) os << ":" << ir::for_kind_name(L.kind);
    }
    os << "\n";
  }
  return os.str();
}

} // namespace tessel::sched
