// Search: which schedules to measure next. EvolutionarySearch proposes a batch
// for one task (a population from sampled sketches and known good traces,
// evolved by mutation under the cost model's scores, deduplicated by the
// lowered program); TaskScheduler picks the task whose next batch is expected
// to gain most. The tuning loop that measures and records them: search/tuner.h.
#pragma once

#include "cost_model/cost_model.h"
#include "schedules/space.h"

#include <set>
#include <string>
#include <vector>

namespace tessel::search {

// How a schedule was sampled, when it was: its sketch (an index into the generator's sketches of the
// workload) and the choices that made it. Such a schedule is mutated and crossed over through its
// choices (SpaceGenerator::resample), others through their trace's steps.
struct Origin {
  int sketch = -1;
  sched::Decisions decisions;
};

// A schedule ready to build: its trace, lowered program hash and features.
struct Proposal {
  std::string trace_json;
  std::string program_hash;
  std::vector<float> features;
  double score = 0;
  bool random = false; // epsilon-greedy pick, not the model's
  Origin origin;
};

// A known good schedule to start from (the database's best, this run's best measured).
struct Seed {
  std::string trace_json;
  Origin origin;
};

struct SearchOptions {
  // Schedules sampled per round. With 64, depthwise 3x3 missed its good kernels in most runs; 512 did no better.
  int population = 192;
  int generations = 2;
  double mutation_share = 0.85;  // of each generation's children; the rest are fresh samples
  double crossover_share = 0.15; // of the mutated children: two sampled parents' choices mixed instead
  double epsilon = 0.1;          // share of a batch picked at random rather than by score
  int threads = 1;               // > 1: also mutate serial schedules into parallel ones
};

// The parents of a task's next round, from its measured schedules (seconds, seed): the `n` fastest, and the
// fastest of every other sketch, so a sketch whose first samples measured slow (depthwise 3x3's register-tiled
// one: 23-29 GFLOP/s at first, 92 once evolved) keeps a parent to evolve. Sorted fastest first.
void keep_parents(std::vector<std::pair<double, Seed>> &measured, size_t n);

class EvolutionarySearch {
public:
  EvolutionarySearch(Target target, SearchOptions options);
  // Up to `n` proposals whose programs are not in `measured` (program hashes). `seeds`: traces
  // known to be good (the database's best for this and similar workloads), kept when their
  // steps replay on `w`.
  std::vector<Proposal> propose(const te::Workload &w, int n, const std::vector<Seed> &seeds,
                                const std::set<std::string> &measured, const cost::CostModel &model,
                                sched::Rng &rng) const;

private:
  sched::SpaceGenerator gen_;
  Target target_;
  SearchOptions options_;
};

// Lowered, hashed and featurized; nullopt when the schedule does not lower or, given a GPU `target`,
// when its kernels would be refused (resource limits, thread bindings, barriers): measuring it would
// spend an NVRTC compile to record it `invalid`.
std::optional<Proposal> make_proposal(const sched::Schedule &s, Origin origin = {}, const Target *target = nullptr);

// The tasks' state as the scheduler sees it.
struct TaskProgress {
  double weight = 1;
  double best_seconds = 0;              // 0: nothing measured yet
  std::vector<double> best_after_round; // best seconds after each round (for the gradient)
  int trials = 0, trial_limit = 0;
  bool done = false; // plateaued, failed or out of trials
};
// Round-robin until every task had a round, then the largest expected gain of total time:
// weight x best time x recent relative improvement (Ansor's gradient, simplified). -1: none left.
int next_task(const std::vector<TaskProgress> &tasks);

} // namespace tessel::search
