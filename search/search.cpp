#include "search/search.h"

#include "cost_model/features.h"
#include "lower/gpu_kernels.h"
#include "lower/lower.h"
#include "schedules/trace.h"

#include <algorithm>
#include <map>

namespace tessel::search {

namespace {

// With several threads: a root stage whose outer loops all run serially gets its first leaf
// with more than one iteration (up to the second) marked parallel. Schedules made for one
// thread (the trace library's, say) then use the others.
std::optional<sched::Schedule> parallelize(const te::Workload &w, const sched::Schedule &parent, sched::Rng &rng) {
  std::vector<std::pair<std::string, int>> choices;
  for (auto &st : parent.stages) {
    if (st.attach != sched::Attach::Root || st.tensor->is_input() || st.leaves.empty()) continue;
    bool any = false;
    for (int l : st.leaves) any |= st.loops[size_t(l)].kind == ir::ForKind::Parallel;
    if (any) continue;
    for (size_t i = 0; i < st.leaves.size() && i < 2; ++i) {
      const auto &loop = st.loops[size_t(st.leaves[i])];
      if (loop.is_reduce) break;
      if (loop.extent > 1 && loop.kind == ir::ForKind::Serial) {
        choices.push_back({st.tensor->name, st.leaves[i]});
        break;
      }
    }
  }
  if (choices.empty()) return std::nullopt;
  auto [stage, loop] = choices[size_t(rng.below(int64_t(choices.size())))];
  std::vector<sched::Step> steps = parent.trace;
  steps.push_back({"parallel", stage, {loop}, ""});
  auto replayed = sched::replay(w, steps);
  if (!replayed) return std::nullopt;
  return replayed.take();
}

// The decisions a mutation may change (TRACE_FORMAT.md): tile factors, unroll depth and
// compute location. The result replays or is dropped.
std::optional<sched::Schedule> mutate(const te::Workload &w, const std::vector<sched::Step> &steps, sched::Rng &rng) {
  std::vector<size_t> mutable_steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto &op = steps[i].op;
    if ((op == "split" || op == "split_exact" || op == "split_nparts" || op == "auto_unroll") &&
        steps[i].ints.size() >= 2)
      mutable_steps.push_back(i);
    if (op == "compute_at" && !steps[i].ints.empty()) mutable_steps.push_back(i);
  }
  if (mutable_steps.empty()) return std::nullopt;
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::vector<sched::Step> s = steps;
    // One or two decisions per child.
    for (int changes = 1 + int(rng.below(2)); changes > 0; --changes) {
      sched::Step &step = s[mutable_steps[size_t(rng.below(int64_t(mutable_steps.size())))]];
      if (step.op == "auto_unroll") {
        static const int64_t steps_[] = {0, 16, 64, 512};
        step.ints[1] = steps_[rng.below(4)];
      } else if (step.op == "compute_at") {
        step.ints[0] = std::max<int64_t>(0, step.ints[0] + (rng.below(2) ? 1 : -1));
      } else {
        int64_t f = step.ints[1];
        switch (rng.below(4)) {
        case 0: f *= 2; break;
        case 1: f = std::max<int64_t>(1, f / 2); break;
        case 2: f = int64_t(1) << rng.below(7); break; // 1..64
        default: f = std::max<int64_t>(1, f + (rng.below(2) ? 1 : -1));
        }
        step.ints[1] = f;
      }
    }
    if (s == steps) continue;
    auto replayed = sched::replay(w, s);
    if (replayed) return replayed.take();
  }
  return std::nullopt;
}

// A sampled schedule with one or two of its choices redrawn and the rest replayed.
std::optional<std::pair<sched::Schedule, Origin>> mutate_choices(const sched::SpaceGenerator &gen,
                                                                 const te::Workload &w,
                                                                 const std::vector<sched::Sketch> &sketches,
                                                                 const Origin &parent, sched::Rng &rng) {
  std::vector<size_t> open; // the choices that had an alternative
  for (size_t i = 0; i < parent.decisions.bounds.size(); ++i)
    if (parent.decisions.bounds[i] > 1) open.push_back(i);
  if (open.empty()) return std::nullopt;
  for (int attempt = 0; attempt < 8; ++attempt) {
    Origin child = parent;
    for (int changes = 1 + int(rng.below(2)); changes > 0; --changes) {
      size_t i = open[size_t(rng.below(int64_t(open.size())))];
      int64_t bound = child.decisions.bounds[i];
      child.decisions.picks[i] = (child.decisions.picks[i] + 1 + rng.below(bound - 1)) % bound; // another pick
    }
    if (auto s = gen.resample(w, sketches[size_t(child.sketch)], child.decisions, rng))
      return std::make_pair(s.take(), std::move(child));
  }
  return std::nullopt;
}

// Each choice from one of two parents sampled from the same sketch.
std::optional<std::pair<sched::Schedule, Origin>> cross_over(const sched::SpaceGenerator &gen, const te::Workload &w,
                                                             const std::vector<sched::Sketch> &sketches,
                                                             const Origin &a, const Origin &b, sched::Rng &rng) {
  Origin child = a;
  size_t common = std::min(a.decisions.picks.size(), b.decisions.picks.size());
  for (size_t i = 0; i < common; ++i)
    if (rng.below(2)) child.decisions.picks[i] = b.decisions.picks[i];
  if (child.decisions.picks == a.decisions.picks || child.decisions.picks == b.decisions.picks) return std::nullopt;
  auto s = gen.resample(w, sketches[size_t(child.sketch)], child.decisions, rng);
  if (!s) return std::nullopt;
  return std::make_pair(s.take(), std::move(child));
}

} // namespace

namespace {
// Whether a GPU schedule's kernels would be built: within the target's limits, and extractable (threads
// bound consistently, no barrier under a thread-dependent condition).
Status gpu_kernels_fit(const lower::LoweredProgram &p, const Target &target) {
  if (Status st = lower::check_gpu_limits(p.kernel, target); !st) return st;
  auto kernels = lower::lower_gpu_kernels(p, target);
  return kernels ? Status::ok() : Status::error(kernels.error());
}
} // namespace

EvolutionarySearch::EvolutionarySearch(Target target, SearchOptions options)
    : gen_(target, options.threads), target_(std::move(target)), options_(options) {
  if (target_.is_cuda()) // sampling draws again rather than offer kernels the builder would refuse
    gen_.set_validator([t = target_](const sched::Schedule &s) {
      auto p = lower::lower(s, "candidate");
      return p ? gpu_kernels_fit(*p, t) : Status::error(p.error());
    });
}

std::optional<Proposal> make_proposal(const sched::Schedule &s, Origin origin, const Target *target) {
  auto lowered = lower::lower(s, "candidate");
  if (!lowered) return std::nullopt;
  // Trace-level mutations move thread-bound splits too (a warp's 32 lanes to 33, a shared tile doubled).
  if (target && target->is_cuda())
    if (!gpu_kernels_fit(*lowered, *target)) return std::nullopt;
  Proposal p;
  p.origin = std::move(origin);
  p.trace_json = sched::trace_to_json(s);
  p.program_hash = cost::program_hash(*lowered);
  p.features = cost::program_features(*lowered);
  return p;
}

std::vector<Proposal> EvolutionarySearch::propose(const te::Workload &w, int n, const std::vector<Seed> &seeds,
                                                  const std::set<std::string> &measured, const cost::CostModel &model,
                                                  sched::Rng &rng) const {
  auto sketches = gen_.sketches(w);
  std::map<std::string, Proposal> pool; // by program hash: every distinct program seen this round
  struct Member {
    sched::Schedule schedule;
    std::string program_hash;
  };
  std::vector<Member> population;
  // Adds a schedule whose program is new to the pool; returns that program's hash, "" when not added.
  auto add = [&](sched::Schedule s, Origin origin = {}) -> std::string {
    if (origin.sketch >= int(sketches.size())) origin = {}; // made for another workload's sketches
    // Sampled ones passed the generator's validator already; traces replayed or mutated step by step did not.
    const Target *unchecked = origin.sketch < 0 ? &target_ : nullptr;
    auto p = make_proposal(s, std::move(origin), unchecked);
    if (!p || pool.count(p->program_hash)) return "";
    pool.emplace(p->program_hash, *p);
    population.push_back({std::move(s), p->program_hash});
    return p->program_hash;
  };
  // Seeds may come from similar workloads: their steps are replayed on this one (legality is
  // checked step by step), not their workload identity. Unmeasured ones are measured first.
  std::vector<std::string> seed_programs;
  for (auto &seed : seeds)
    if (auto parsed = sched::parse_trace(seed.trace_json))
      if (auto s = sched::replay(w, parsed->steps)) {
        // With several threads, a serial seed also comes parallelized.
        if (options_.threads > 1)
          if (auto par = parallelize(w, *s, rng))
            if (std::string hash = add(std::move(*par)); !hash.empty()) seed_programs.push_back(hash);
        if (std::string hash = add(s.take(), seed.origin); !hash.empty()) seed_programs.push_back(hash);
      }
  auto sample = [&] {
    if (sketches.empty()) return;
    Origin origin;
    origin.sketch = int(rng.below(int64_t(sketches.size())));
    if (auto s = gen_.sample(w, sketches[size_t(origin.sketch)], rng, &origin.decisions))
      add(s.take(), std::move(origin));
  };
  for (int i = 0; int(population.size()) < options_.population && i < 4 * options_.population; ++i) sample();

  auto score_all = [&] {
    std::vector<std::vector<float>> feats;
    std::vector<std::string> keys;
    for (auto &[hash, p] : pool) feats.push_back(p.features), keys.push_back(hash);
    auto scores = model.predict(feats);
    for (size_t i = 0; i < keys.size(); ++i) pool[keys[i]].score = scores[i];
  };
  score_all();
  for (int g = 0; g < options_.generations && !population.empty(); ++g) {
    // Parents: the better-scored half (each schedule's score is its program's).
    std::vector<std::pair<double, size_t>> ranked;
    for (size_t i = 0; i < population.size(); ++i) ranked.push_back({pool[population[i].program_hash].score, i});
    std::sort(ranked.rbegin(), ranked.rend());
    size_t parents = std::max<size_t>(1, ranked.size() / 2);
    std::vector<Member> next;
    for (size_t i = 0; i < parents; ++i) next.push_back(population[ranked[i].second]);
    population = next;
    auto chance = [&](double p) { return double(rng.below(1000)) / 1000.0 < p; };
    int children = options_.population - int(population.size());
    for (int c = 0; c < children; ++c) {
      if (!chance(options_.mutation_share)) {
        sample();
        continue;
      }
      const Member &parent = population[size_t(rng.below(int64_t(parents)))];
      const Origin &origin = pool[parent.program_hash].origin;
      if (options_.threads > 1 && rng.below(4) == 0)
        if (auto child = parallelize(w, parent.schedule, rng)) {
          add(std::move(*child));
          continue;
        }
      // A sampled parent changes through its choices (tiles stay consistent across stages), mostly;
      // sometimes through its steps, which reach factors the sampler does not draw.
      std::optional<std::pair<sched::Schedule, Origin>> child;
      if (origin.sketch >= 0 && chance(options_.crossover_share)) {
        const Member &other = population[size_t(rng.below(int64_t(parents)))];
        const Origin &o = pool[other.program_hash].origin;
        if (o.sketch == origin.sketch) child = cross_over(gen_, w, sketches, origin, o, rng);
      } else if (origin.sketch >= 0 && rng.below(3) != 0) {
        child = mutate_choices(gen_, w, sketches, origin, rng);
      }
      if (child)
        add(std::move(child->first), std::move(child->second));
      else if (auto mutated = mutate(w, parent.schedule.trace, rng))
        add(std::move(*mutated));
    }
    score_all();
  }

  std::vector<Proposal> out, fresh;
  for (auto &hash : seed_programs)
    if (!measured.count(hash) && int(out.size()) < std::max(1, n / 2)) out.push_back(pool[hash]);
  for (auto &[hash, p] : pool)
    if (!measured.count(hash) &&
        std::none_of(out.begin(), out.end(), [&](const Proposal &o) { return o.program_hash == hash; }))
      fresh.push_back(p);
  std::stable_sort(fresh.begin(), fresh.end(), [](const Proposal &a, const Proposal &b) { return a.score > b.score; });
  int random_picks = std::min(int(fresh.size()), int(double(n - int(out.size())) * options_.epsilon + 0.5));
  size_t by_score = size_t(std::max<long>(0, std::min<long>(long(fresh.size()), n - long(out.size()) - random_picks)));
  out.insert(out.end(), fresh.begin(), fresh.begin() + long(by_score));
  std::vector<Proposal> rest(fresh.begin() + long(by_score), fresh.end());
  // Exploration goes first to sketches the batch lacks, each with its best-scored program (rest is in score
  // order): a sketch whose first samples measured slow is still explored where the model likes it best.
  std::set<int> covered;
  for (auto &p : out) covered.insert(p.origin.sketch);
  for (int i = 0; i < random_picks && !rest.empty(); ++i) {
    size_t k = size_t(rng.below(int64_t(rest.size())));
    for (size_t j = 0; j < rest.size(); ++j)
      if (rest[j].origin.sketch >= 0 && !covered.count(rest[j].origin.sketch)) {
        k = j;
        break;
      }
    covered.insert(rest[k].origin.sketch);
    rest[k].random = true;
    out.push_back(rest[k]);
    rest.erase(rest.begin() + long(k));
  }
  return out;
}

void keep_parents(std::vector<std::pair<double, Seed>> &measured, size_t n) {
  std::stable_sort(measured.begin(), measured.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
  std::vector<std::pair<double, Seed>> kept;
  std::set<int> sketches;
  for (size_t i = 0; i < measured.size(); ++i) {
    int sketch = measured[i].second.origin.sketch;
    if (i < n || (sketch >= 0 && !sketches.count(sketch))) kept.push_back(std::move(measured[i]));
    if (sketch >= 0) sketches.insert(sketch);
  }
  measured = std::move(kept);
}

int next_task(const std::vector<TaskProgress> &tasks) {
  for (size_t i = 0; i < tasks.size(); ++i)
    if (!tasks[i].done && tasks[i].best_after_round.empty()) return int(i);
  int best = -1;
  double best_gain = -1;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto &t = tasks[i];
    if (t.done) continue;
    // Relative improvement over the last rounds (at least a little: a flat task still gets turns).
    const auto &h = t.best_after_round;
    size_t back = std::min<size_t>(3, h.size() - 1);
    double old = h[h.size() - 1 - back], now = h.back();
    double rate = old > 0 && now > 0 && back > 0 ? (old - now) / old / double(back) : 0.5;
    double gain = t.weight * (t.best_seconds > 0 ? t.best_seconds : 1.0) * std::max(rate, 0.02);
    if (gain > best_gain) best_gain = gain, best = int(i);
  }
  return best;
}

} // namespace tessel::search
