// The cost model: scores candidate programs from their features
// (cost_model/features.h) so the search measures the promising ones. Trained
// online on measured throughput, normalized per task (1 = the task's best), so
// tasks of different sizes share one model.
#pragma once

#include "support/error.h"

#include <memory>
#include <string>
#include <vector>

namespace tessel::cost {

struct Sample {
  std::vector<float> features;
  double throughput = 0; // flops per second; 0 for a failed candidate
  std::string task;      // normalization and ranking groups
};

class CostModel {
public:
  virtual ~CostModel() = default;
  // Adds measured samples; retrains when the data has grown enough since the last training.
  virtual Status update(const std::vector<Sample> &samples) = 0;
  // Higher is better; comparable within one task.
  virtual std::vector<double> predict(const std::vector<std::vector<float>> &features) const = 0;
  virtual Status save(const std::string &path) const = 0;
  virtual Status load(const std::string &path) = 0;
  virtual std::string describe() const = 0;
  virtual size_t samples() const = 0;
};

enum class Objective {
  PairwiseRank,    // XGBoost rank:pairwise, one group per task
  WeightedSquared, // Ansor's: squared error on normalized throughput, weighted by it
  LogSquared,      // squared error on log2 of normalized throughput: halving and doubling weigh the same
};
std::string objective_name(Objective o);
struct XgboostOptions {
  // One booster per objective; a program's score is the sum of theirs, each over the spread of its predictions
  // on its training data. rank:pairwise with log squared error ranks records better (bench_tune
  // --each-objective, six pooled databases, AMD EPYC Zen 5: an unseen task 0.765, a task's later half 0.789,
  // against 0.754 and 0.779 for rank:pairwise alone) but tuned worse (depthwise 3x3 alone, 256 trials, seeds
  // 1-3: 48/65/56 against 80/58/68 GFLOP/s; the suite 0.873x oneDNN), so rank:pairwise alone stays the default.
  std::vector<Objective> objectives = {Objective::PairwiseRank};
  int rounds = 120; // boosting rounds per training
  int max_depth = 8;
  double eta = 0.1;
  // The program-wide efficiency features (FEATURES.md slots 128-132, 134, 135: every `*_per_flop` of the whole program)
  // may only lower a program's score as they grow: more instructions, loads, traffic or loop overhead per flop of the
  // workload never make a program faster, all else equal. A model held to that ranks a task it never saw better.
  bool monotone_efficiency = true;
  double retrain_growth = 0.2; // retrain when samples grew by this fraction (and by >= 16)
  uint64_t seed = 1;
};
std::unique_ptr<CostModel> make_xgboost_model(XgboostOptions options = {});
// Uniform random scores, for baselines and the first round.
std::unique_ptr<CostModel> make_random_model(uint64_t seed = 1);

// Fraction of pairs of distinct throughputs within each task that the scores order the same way; with
// `min_ratio` > 1, only pairs whose throughputs differ by more than that factor (closer ones are noise).
double pairwise_accuracy(const std::vector<double> &scores, const std::vector<Sample> &samples, double min_ratio = 1.0);

} // namespace tessel::cost
