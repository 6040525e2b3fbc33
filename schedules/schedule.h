// What a schedule is: for every stage of a workload, the loops that compute
// it (created by splitting and fusing its original axes), their order and
// kinds, and where the stage is computed. It is plain data: primitives
// (schedules/primitives.h) change it with legality checks, lower() reads it.
#pragma once

#include "ir/ir.h"
#include "te/workload.h"

#include <string>
#include <vector>

namespace tessel::sched {

// A loop of a stage. Original axes come first (spatial, then reduce); split
// and fuse append new loops. Loops are referred to by index, which keeps
// traces replayable.
struct Loop {
  std::string name;
  int64_t extent = 0;
  bool is_reduce = false;
  ir::ForKind kind = ir::ForKind::Serial;
  std::string thread_tag;
  int64_t auto_unroll_max_step = 0; // pragma: unroll loops inside whose trip count is at most this
  std::string tensorize;            // this loop and the two inside it run as this tensor intrinsic
};

// parent = outer * factor + inner. With a factor that does not divide the
// parent's extent, the last outer iteration is partial and guarded.
struct Split {
  int parent, outer, inner;
  int64_t factor;
};
// fused = outer * extent(inner) + inner.
struct Fuse {
  int outer, inner, fused;
};
struct Relation {
  enum Kind { kSplit, kFuse } kind;
  Split split;
  Fuse fuse;
};

// Where a stage is computed: its own loop nest at the root, folded into its
// consumers' expressions, or inside loop `attach_loop` of stage `attach_stage`
// (for the region that loop's body needs).
enum class Attach { Root, Inline, At };

// One applied primitive with its decisions: a schedule is the replay of its
// steps on the default schedule (see schedules/trace.h for the JSON form).
struct Step {
  std::string op;            // "split", "fuse", "compute_at", ...
  std::string stage;         // the stage it applies to
  std::vector<int64_t> ints; // loop ids and decisions, in the op's field order
  std::string str;           // the op's string field (scope, target stage, thread tag), if any
  bool operator==(const Step &o) const { return op == o.op && stage == o.stage && ints == o.ints && str == o.str; }
};

struct Stage {
  ir::Tensor tensor;
  std::vector<Loop> loops;
  std::vector<Relation> relations;
  std::vector<int> leaves; // loop order, outermost first
  Attach attach = Attach::Root;
  std::string attach_stage;  // Attach::At: the consumer stage...
  int attach_loop = -1;      // ...and the leaf loop of it whose body computes this stage
  bool attach_after = false; // reverse_compute_at: attach_stage is the producer; this stage
                             // consumes what that loop's body produced, right after it
  ir::MemoryScope scope = ir::MemoryScope::Global;
  bool prepack = false;    // re-lays-out a constant input: computed once, ahead of time
  std::string relayout_of; // transform_layout: the input this stage re-lays-out
  int64_t row_pad = 0;     // storage_pad: unused elements after each innermost row of its buffer

  int num_spatial() const { return int(tensor->axes.size()); }
  bool is_leaf(int loop) const;
  int leaf_position(int loop) const; // -1 when not a leaf
};

struct Schedule {
  te::Workload source;       // the workload as given (its key and hash identify traces)
  te::Workload workload;     // cache stages extend it: it is the schedule's own copy
  std::vector<Stage> stages; // producers before consumers
  std::vector<Step> trace;   // every primitive applied so far, in order

  Stage *find(const ir::Tensor &t);
  const Stage *find(const ir::Tensor &t) const;
  Stage *find(const std::string &tensor_name);
  const Stage *find(const std::string &tensor_name) const;
};

// A stage computed at the root with its default loops: spatial axes, then reduction axes.
Stage make_stage(const ir::Tensor &t);

// Every stage computed at the root in its own full buffer, loops in axis
// order (spatial, then reduce), all serial; with `parallel_outer`, each
// stage's outermost spatial loop runs in parallel.
Schedule default_schedule(const te::Workload &w, bool parallel_outer = false);

// Human-readable summary: one line per stage with its leaf loops.
std::string describe(const Schedule &s);

} // namespace tessel::sched
