// The XGBoost cost model through XGBoost's C API, and the random baseline.
#include "cost_model/cost_model.h"
#include "cost_model/features.h"

#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <map>
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

class XgboostModel final : public CostModel {
public:
  explicit XgboostModel(XgboostOptions o) : options_(o) {}
  ~XgboostModel() override {
    if (booster_) XGBoosterFree(booster_);
  }

  Status update(const std::vector<Sample> &samples) override {
    for (auto &s : samples) {
      if (s.features.empty()) continue;
      if (width_ == 0) width_ = s.features.size();
      if (s.features.size() != width_) return Status::error("cost model: samples of different feature lengths");
      data_.push_back(s);
    }
    size_t grown = data_.size() - trained_on_;
    if (data_.size() < 8 || (booster_ && (grown < 16 || double(grown) < options_.retrain_growth * double(trained_on_))))
      return Status::ok();
    return train();
  }

  std::vector<double> predict(const std::vector<std::vector<float>> &features) const override {
    std::vector<double> out(features.size(), 0.0);
    if (!booster_ || features.empty()) return out;
    std::vector<float> flat;
    flat.reserve(features.size() * width_);
    for (auto &f : features) {
      if (f.size() != width_) return out;
      flat.insert(flat.end(), f.begin(), f.end());
    }
    DMatrixHandle m = nullptr;
    if (XGDMatrixCreateFromMat(flat.data(), bst_ulong(features.size()), bst_ulong(width_), NAN, &m) != 0) return out;
    bst_ulong len = 0;
    const float *scores = nullptr;
    if (XGBoosterPredict(booster_, m, 0, 0, 0, &len, &scores) == 0)
      for (size_t i = 0; i < len && i < out.size(); ++i) out[i] = scores[i];
    XGDMatrixFree(m);
    return out;
  }

  Status save(const std::string &path) const override {
    if (!booster_) return Status::error("cost model: nothing trained yet to save");
    if (XGBoosterSaveModel(booster_, path.c_str()) != 0) return Status::error(xgb_error("saving " + path));
    return Status::ok();
  }

  Status load(const std::string &path) override {
    BoosterHandle b = nullptr;
    if (XGBoosterCreate(nullptr, 0, &b) != 0) return Status::error(xgb_error("creating a booster"));
    if (XGBoosterLoadModel(b, path.c_str()) != 0) {
      XGBoosterFree(b);
      return Status::error(xgb_error("loading " + path));
    }
    bst_ulong features = 0;
    XGBoosterGetNumFeature(b, &features);
    if (features != bst_ulong(kProgramFeatures)) { // another Tessel's features: its scores would mean nothing
      XGBoosterFree(b);
      return Status::error(path + " scores programs of " + std::to_string(features) +
                           " features; this Tessel computes " + std::to_string(kProgramFeatures) +
                           " (cost_model/FEATURES.md). Delete the file: the records "
                           "in the database warm-start the model instead");
    }
    if (booster_) XGBoosterFree(booster_);
    booster_ = b;
    width_ = size_t(features);
    return Status::ok();
  }

  std::string describe() const override {
    return std::string("XGBoost (") +
           (options_.objective == Objective::PairwiseRank ? "rank:pairwise" : "weighted squared error") + ", " +
           std::to_string(data_.size()) + " samples)";
  }
  size_t samples() const override { return data_.size(); }

private:
  Status train() {
    // Ranking groups must be contiguous: order the samples by task.
    std::vector<size_t> order(data_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return data_[a].task < data_[b].task; });
    std::vector<Sample> sorted;
    for (size_t i : order) sorted.push_back(data_[i]);
    std::vector<float> y = normalized(sorted);
    std::vector<float> flat;
    for (auto &s : sorted) flat.insert(flat.end(), s.features.begin(), s.features.end());
    DMatrixHandle m = nullptr;
    if (XGDMatrixCreateFromMat(flat.data(), bst_ulong(sorted.size()), bst_ulong(width_), NAN, &m) != 0)
      return Status::error(xgb_error("building the training matrix"));
    Status result = Status::ok();
    XGDMatrixSetFloatInfo(m, "label", y.data(), bst_ulong(y.size()));
    if (options_.objective == Objective::PairwiseRank) {
      std::vector<unsigned> groups;
      for (size_t i = 0; i < sorted.size(); ++i)
        if (i == 0 || sorted[i].task != sorted[i - 1].task)
          groups.push_back(1);
        else
          ++groups.back();
      XGDMatrixSetUIntInfo(m, "group", groups.data(), bst_ulong(groups.size()));
    } else {
      std::vector<float> w;
      for (float v : y) w.push_back(std::max(v, 0.05f)); // Ansor: fast programs matter most
      XGDMatrixSetFloatInfo(m, "weight", w.data(), bst_ulong(w.size()));
    }
    BoosterHandle b = nullptr;
    if (XGBoosterCreate(&m, 1, &b) != 0) {
      XGDMatrixFree(m);
      return Status::error(xgb_error("creating a booster"));
    }
    auto set = [&](const char *k, const std::string &v) { XGBoosterSetParam(b, k, v.c_str()); };
    set("objective", options_.objective == Objective::PairwiseRank ? "rank:pairwise" : "reg:squarederror");
    set("max_depth", std::to_string(options_.max_depth));
    set("eta", std::to_string(options_.eta));
    set("min_child_weight", "1");
    set("subsample", "1");
    set("nthread", "1"); // the machine's cores measure kernels
    set("seed", std::to_string(options_.seed));
    set("verbosity", "0");
    for (int it = 0; it < options_.rounds; ++it)
      if (XGBoosterUpdateOneIter(b, it, m) != 0) {
        result = Status::error(xgb_error("training"));
        break;
      }
    XGDMatrixFree(m);
    if (!result) {
      XGBoosterFree(b);
      return result;
    }
    if (booster_) XGBoosterFree(booster_);
    booster_ = b;
    trained_on_ = data_.size();
    return Status::ok();
  }

  XgboostOptions options_;
  std::vector<Sample> data_;
  size_t width_ = 0, trained_on_ = 0;
  BoosterHandle booster_ = nullptr;
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

std::unique_ptr<CostModel> make_xgboost_model(XgboostOptions options) {
  return std::make_unique<XgboostModel>(options);
}
std::unique_ptr<CostModel> make_random_model(uint64_t seed) { return std::make_unique<RandomModel>(seed); }

double pairwise_accuracy(const std::vector<double> &scores, const std::vector<Sample> &samples) {
  int64_t agree = 0, pairs = 0;
  for (size_t i = 0; i < samples.size() && i < scores.size(); ++i)
    for (size_t j = i + 1; j < samples.size() && j < scores.size(); ++j) {
      if (samples[i].task != samples[j].task || samples[i].throughput == samples[j].throughput) continue;
      ++pairs;
      agree += (samples[i].throughput > samples[j].throughput) == (scores[i] > scores[j]);
    }
  return pairs ? double(agree) / double(pairs) : 0.5;
}

} // namespace tessel::cost
