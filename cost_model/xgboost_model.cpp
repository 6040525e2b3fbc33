// The XGBoost cost model through XGBoost's C API, and the random baseline.
#include "cost_model/cost_model.h"
#include "cost_model/features.h"

#include <xgboost/c_api.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>

namespace tessel::cost {

namespace {

std::string xgb_error(const std::string &what) { return "XGBoost " + what + ": " + XGBGetLastError(); }

// Throughput over the task's best: 1 for the best, 0 for failures.
std::vector<float> normalized(const std::vector<Sample> &samples) {
  std::map<std::string, double> best;
  for (auto &s : samples) best[s.task] = std::max(best[s.task], s.throughput);
  std::vector<float> y;
  for (auto &s : samples) y.push_back(best[s.task] > 0 ? float(s.throughput / best[s.task]) : 0.f);
  return y;
}

// XGBoost's monotone_constraints: -1 (the score falls as it grows) for the program-wide efficiency features, 0
// for the rest (the two heaviest statements' own, which trade against each other, stay free).
std::string efficiency_decreasing() {
  std::string out = "(";
  const std::string suffix = "_per_flop";
  const auto &names = feature_names();
  for (size_t i = 0; i < names.size(); ++i) {
    bool program_wide = i >= 2 * size_t(kStatementFeatures);
    bool efficiency = names[i].size() > suffix.size() &&
                      names[i].compare(names[i].size() - suffix.size(), suffix.size(), suffix) == 0;
    out += std::string(i > 0 ? "," : "") + (efficiency && program_wide ? "-1" : "0");
  }
  return out + ")";
}

// What to do about a saved model that cannot be loaded.
constexpr const char *kRemedy = " Delete the file: the records in the database warm-start the model instead";

// Frees a booster with its owner: members are trained, loaded and replaced without a free on every path.
struct BoosterFree {
  void operator()(void *b) const { XGBoosterFree(b); }
};
using Booster = std::unique_ptr<void, BoosterFree>;

std::optional<Objective> objective_named(const std::string &name) {
  for (auto o : {Objective::PairwiseRank, Objective::WeightedSquared, Objective::LogSquared})
    if (objective_name(o) == name) return o;
  return std::nullopt;
}

// A saved model: {"tessel_cost_model": 1, "feature_version", "features", "members": [{"objective", "scale",
// "booster": XGBoost's own JSON}]}, one file however many boosters.
constexpr int kSavedFormat = 1;

class XgboostModel final : public CostModel {
public:
  explicit XgboostModel(XgboostOptions o) : options_(std::move(o)) {
    if (options_.objectives.empty()) options_.objectives = {Objective::PairwiseRank};
  }

  Status update(const std::vector<Sample> &samples) override {
    for (auto &s : samples) {
      if (s.features.empty()) continue;
      if (width_ == 0) width_ = s.features.size();
      if (s.features.size() != width_) return Status::error("cost model: samples of different feature lengths");
      data_.push_back(s);
    }
    size_t grown = data_.size() - trained_on_;
    if (data_.size() < 8 ||
        (!members_.empty() && (grown < 16 || double(grown) < options_.retrain_growth * double(trained_on_))))
      return Status::ok();
    return train();
  }

  std::vector<double> predict(const std::vector<std::vector<float>> &features) const override {
    std::vector<double> out(features.size(), 0.0);
    if (members_.empty() || features.empty()) return out;
    std::vector<float> flat;
    flat.reserve(features.size() * width_);
    for (auto &f : features) {
      if (f.size() != width_) return out;
      flat.insert(flat.end(), f.begin(), f.end());
    }
    DMatrixHandle m = nullptr;
    if (XGDMatrixCreateFromMat(flat.data(), bst_ulong(features.size()), bst_ulong(width_), NAN, &m) != 0) return out;
    for (auto &member : members_) {
      bst_ulong len = 0;
      const float *scores = nullptr;
      if (XGBoosterPredict(member.booster.get(), m, 0, 0, 0, &len, &scores) == 0)
        for (size_t i = 0; i < len && i < out.size(); ++i) out[i] += member.scale * scores[i];
    }
    XGDMatrixFree(m);
    return out;
  }

  Status save(const std::string &path) const override {
    if (members_.empty()) return Status::error("cost model: nothing trained yet to save");
    nlohmann::json j = {{"tessel_cost_model", kSavedFormat},
                        {"feature_version", kFeatureVersion},
                        {"features", width_},
                        {"members", nlohmann::json::array()}};
    for (auto &member : members_) {
      bst_ulong len = 0;
      const char *raw = nullptr;
      if (XGBoosterSaveModelToBuffer(member.booster.get(), R"({"format": "json"})", &len, &raw) != 0)
        return Status::error(xgb_error("saving " + path));
      j["members"].push_back({{"objective", objective_name(member.objective)},
                              {"scale", member.scale},
                              {"booster", nlohmann::json::parse(std::string(raw, len))}});
    }
    std::ofstream out(path);
    out << j.dump();
    if (!out) return Status::error("cost model: cannot write " + path);
    return Status::ok();
  }

  Status load(const std::string &path) override {
    try {
      return load_checked(path);
    } catch (const nlohmann::json::exception &e) { // a field of the wrong type
      return Status::error(path + " is malformed (" + e.what() + ")." + kRemedy);
    }
  }

  std::string describe() const override {
    std::string objectives;
    for (auto o : options_.objectives) objectives += (objectives.empty() ? "" : " + ") + objective_name(o);
    return "XGBoost (" + objectives + ", " + std::to_string(data_.size()) + " samples)";
  }
  size_t samples() const override { return data_.size(); }

private:
  Status load_checked(const std::string &path) {
    std::ifstream in(path);
    if (!in) return Status::error("cost model: cannot read " + path);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("tessel_cost_model"))
      return Status::error(path + " is not a saved Tessel cost model (older Tessels saved a bare XGBoost model)." +
                           kRemedy);
    size_t features = j.value("features", size_t(0));
    if (features != size_t(kProgramFeatures)) // another Tessel's features: its scores would mean nothing
      return Status::error(path + " scores programs of " + std::to_string(features) +
                           " features; this Tessel computes " + std::to_string(kProgramFeatures) +
                           " (cost_model/FEATURES.md)." + kRemedy);
    if (j.value("feature_version", 0) != kFeatureVersion)
      return Status::error(path + " scores features of version " + std::to_string(j.value("feature_version", 0)) +
                           "; this Tessel computes version " + std::to_string(kFeatureVersion) +
                           " (cost_model/FEATURES.md)." + kRemedy);
    std::vector<Member> loaded;
    for (auto &saved : j.value("members", nlohmann::json::array())) {
      Member m;
      auto objective = objective_named(saved.value("objective", ""));
      if (!objective)
        return Status::error(path + ": unknown objective '" + saved.value("objective", "") + "'." + kRemedy);
      m.objective = *objective;
      m.scale = saved.value("scale", 1.0);
      std::string booster = saved.contains("booster") ? saved["booster"].dump() : "";
      BoosterHandle b = nullptr;
      if (XGBoosterCreate(nullptr, 0, &b) != 0) return Status::error(xgb_error("creating a booster"));
      m.booster.reset(b);
      if (XGBoosterLoadModelFromBuffer(b, booster.data(), bst_ulong(booster.size())) != 0)
        return Status::error(xgb_error("loading " + path));
      loaded.push_back(std::move(m));
    }
    if (loaded.empty()) return Status::error(path + " holds no trained booster." + kRemedy);
    members_ = std::move(loaded);
    width_ = features;
    return Status::ok();
  }

  // One booster and the factor its scores enter the sum with.
  struct Member {
    Objective objective = Objective::PairwiseRank;
    Booster booster;
    double scale = 1; // 1 / the spread of its predictions on its training data: each objective weighs the same
  };

  Status train() {
    // Ranking groups must be contiguous: order the samples by task.
    std::vector<size_t> order(data_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return data_[a].task < data_[b].task; });
    std::vector<Sample> sorted;
    for (size_t i : order) sorted.push_back(data_[i]);
    std::vector<float> flat;
    for (auto &s : sorted) flat.insert(flat.end(), s.features.begin(), s.features.end());
    std::vector<float> y = normalized(sorted);
    std::vector<Member> trained;
    for (Objective objective : options_.objectives) {
      auto member = train_one(objective, sorted, flat, y);
      if (!member) return Status::error(member.error());
      trained.push_back(member.take());
    }
    members_ = std::move(trained);
    trained_on_ = data_.size();
    return Status::ok();
  }

  // `y`: throughput normalized per task, in the order of `sorted`.
  Expected<Member> train_one(Objective objective, const std::vector<Sample> &sorted, const std::vector<float> &flat,
                             std::vector<float> y) const {
    DMatrixHandle m = nullptr;
    if (XGDMatrixCreateFromMat(flat.data(), bst_ulong(sorted.size()), bst_ulong(width_), NAN, &m) != 0)
      return Status::error(xgb_error("building the training matrix"));
    if (objective == Objective::PairwiseRank) {
      std::vector<unsigned> groups;
      for (size_t i = 0; i < sorted.size(); ++i)
        if (i == 0 || sorted[i].task != sorted[i - 1].task)
          groups.push_back(1);
        else
          ++groups.back();
      XGDMatrixSetUIntInfo(m, "group", groups.data(), bst_ulong(groups.size()));
    } else if (objective == Objective::WeightedSquared) {
      std::vector<float> w;
      for (float v : y) w.push_back(std::max(v, 0.05f)); // Ansor: fast programs matter most
      XGDMatrixSetFloatInfo(m, "weight", w.data(), bst_ulong(w.size()));
    } else { // LogSquared; a failure (0) counts as 1/1024 of the best
      for (float &v : y) v = std::log2(std::max(v, 1.f / 1024));
    }
    XGDMatrixSetFloatInfo(m, "label", y.data(), bst_ulong(y.size()));
    Member member;
    member.objective = objective;
    BoosterHandle b = nullptr;
    if (XGBoosterCreate(&m, 1, &b) != 0) {
      XGDMatrixFree(m);
      return Status::error(xgb_error("creating a booster"));
    }
    member.booster.reset(b);
    auto set = [&](const char *k, const std::string &v) { XGBoosterSetParam(b, k, v.c_str()); };
    set("objective", objective == Objective::PairwiseRank ? "rank:pairwise" : "reg:squarederror");
    set("max_depth", std::to_string(options_.max_depth));
    set("eta", std::to_string(options_.eta));
    set("min_child_weight", "1");
    set("subsample", "1");
    set("nthread", "1"); // the machine's cores measure kernels
    set("seed", std::to_string(options_.seed));
    set("verbosity", "0");
    if (options_.monotone_efficiency && width_ == feature_names().size())
      set("monotone_constraints", efficiency_decreasing());
    Status result = Status::ok();
    for (int it = 0; it < options_.rounds && result; ++it)
      if (XGBoosterUpdateOneIter(b, it, m) != 0) result = Status::error(xgb_error("training"));
    bst_ulong len = 0;
    const float *scores = nullptr;
    if (result && XGBoosterPredict(b, m, 0, 0, 0, &len, &scores) == 0 && len > 1) {
      double mean = 0, var = 0;
      for (bst_ulong i = 0; i < len; ++i) mean += scores[i] / double(len);
      for (bst_ulong i = 0; i < len; ++i) var += (scores[i] - mean) * (scores[i] - mean) / double(len);
      member.scale = var > 1e-12 ? 1.0 / std::sqrt(var) : 1.0;
    }
    XGDMatrixFree(m);
    if (!result) return result;
    return member;
  }

  XgboostOptions options_;
  std::vector<Sample> data_;
  size_t width_ = 0, trained_on_ = 0;
  std::vector<Member> members_;
};

class RandomModel final : public CostModel {
public:
  explicit RandomModel(uint64_t seed) : rng_(seed) {}
  Status update(const std::vector<Sample> &s) override {
    n_ += s.size();
    return Status::ok();
  }
  std::vector<double> predict(const std::vector<std::vector<float>> &features) const override {
    std::vector<double> out;
    for (size_t i = 0; i < features.size(); ++i) out.push_back(std::uniform_real_distribution<double>(0, 1)(rng_));
    return out;
  }
  Status save(const std::string &) const override { return Status::ok(); }
  Status load(const std::string &) override { return Status::ok(); }
  std::string describe() const override { return "random"; }
  size_t samples() const override { return n_; }

private:
  mutable std::mt19937_64 rng_;
  size_t n_ = 0;
};

} // namespace

std::string objective_name(Objective o) {
  switch (o) {
  case Objective::PairwiseRank: return "rank:pairwise";
  case Objective::WeightedSquared: return "weighted squared error";
  case Objective::LogSquared: return "log squared error";
  }
  return "?";
}

std::unique_ptr<CostModel> make_xgboost_model(XgboostOptions options) {
  return std::make_unique<XgboostModel>(options);
}
std::unique_ptr<CostModel> make_random_model(uint64_t seed) { return std::make_unique<RandomModel>(seed); }

double pairwise_accuracy(const std::vector<double> &scores, const std::vector<Sample> &samples, double min_ratio) {
  int64_t agree = 0, pairs = 0;
  for (size_t i = 0; i < samples.size() && i < scores.size(); ++i)
    for (size_t j = i + 1; j < samples.size() && j < scores.size(); ++j) {
      double hi = std::max(samples[i].throughput, samples[j].throughput);
      double lo = std::min(samples[i].throughput, samples[j].throughput);
      if (samples[i].task != samples[j].task || hi <= lo * min_ratio) continue;
      ++pairs;
      agree += (samples[i].throughput > samples[j].throughput) == (scores[i] > scores[j]);
    }
  return pairs ? double(agree) / double(pairs) : 0.5;
}

} // namespace tessel::cost
