// LIME for tabular data (Ribeiro et al., 2016) with the lime package's shape:
//   LimeTabularExplainer explainer(x_train, {.training_labels = y_train});
//   auto e = explainer.explain_instance(x_test_row, predict_fn);
//   std::cout << e.as_table();
// and kernel SHAP values (Lundberg & Lee, 2017) for small feature counts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "meshflow/core/tensor.h"

namespace meshflow::interpret {

// A batch of rows [n, features] -> predictions: [n, classes] probabilities (classification) or
// [n] / [n, 1] values (regression). Model::predict wrapped in a lambda is one.
using PredictFn = std::function<Tensor(const Tensor&)>;

struct LimeOptions {
  Tensor training_labels;                  // optional [n] class ids: the class names' count
  std::vector<std::string> feature_names;  // default x0, x1, ...
  std::vector<std::string> class_names;    // default the class index
  std::string mode = "classification";     // or "regression"
  double kernel_width = 0;                 // 0: 0.75 * sqrt(features), as lime
  // As lime's default: each feature becomes "in the instance's quartile bin or not", and the
  // explanation names the bin ("mean radius > 15.78"). false: standardized values, and a weight
  // is the local slope per training standard deviation.
  bool discretize_continuous = true;
  uint64_t seed = 0;
};

struct ExplainOptions {
  int64_t label = -1;        // the class to explain; -1: the one predicted for the instance
  int num_features = 10;     // features in the explanation (largest |weight| first)
  int num_samples = 5000;    // perturbations, the instance itself first
  double ridge_alpha = 1.0;  // the weighted ridge regression's penalty (lime's Ridge(alpha=1))
  // How the num_features are chosen, as lime: "forward_selection" (greedily by the weighted R^2),
  // "highest_weights" (largest |weight| of a fit on every feature), "none" (every feature), or
  // "auto" (forward selection up to 6 features, else highest weights).
  std::string feature_selection = "auto";
};

struct FeatureWeight {
  int64_t feature = 0;
  std::string description;  // "mean radius > 15.78" or the feature's name
  double weight = 0;
};

struct Explanation {
  int64_t label = 0;
  std::string label_name;
  double intercept = 0;
  double score = 0;             // weighted R^2 of the local linear model on the perturbations
  double local_prediction = 0;  // the linear model at the instance
  double model_prediction = 0;  // predict_fn at the instance, for `label`
  std::vector<FeatureWeight> features;  // the chosen features, largest |weight| first
  std::vector<double> weights;          // every feature's weight, in feature order
  std::vector<std::pair<std::string, double>> as_list() const;
  // A text table: rank, feature, weight, and a bar of '+' or '-' scaled to the largest weight.
  std::string as_table() const;
};

class LimeTabularExplainer {
 public:
  // x_train: [n, features] (n >= 2), any float dtype.
  LimeTabularExplainer(const Tensor& x_train, LimeOptions options = {});
  Explanation explain_instance(const Tensor& row, const PredictFn& predict_fn, ExplainOptions options = {});
  int64_t num_features() const { return d_; }

 private:
  int bin_of(int64_t feature, double v) const;
  std::string bin_description(int64_t feature, int bin) const;

  LimeOptions o_;
  int64_t d_ = 0;
  std::vector<double> mean_, scale_;
  // Quartile discretization: per feature the 3 cut points, and per bin the training rows' mean,
  // standard deviation, minimum, maximum and frequency.
  std::vector<std::vector<double>> cuts_;
  std::vector<std::vector<double>> bin_mean_, bin_sd_, bin_min_, bin_max_, bin_freq_;
  uint64_t calls_ = 0;
};

struct KernelShapOptions {
  int64_t output_index = 0;   // which column of predict_fn's output
  int max_features = 16;      // samples = 0: every coalition is enumerated (2^M - 2 of them)
  int64_t batch_size = 4096;  // rows per predict_fn call
  // > 0: this many coalitions drawn by the Shapley kernel (with their complements) instead of
  // all of them, for many features; the values are then estimates.
  int64_t samples = 0;
  uint64_t seed = 0;
};

struct ShapValues {
  std::vector<double> values;  // one per feature; they sum to prediction - base_value
  double base_value = 0;       // the mean prediction over the background rows
  double prediction = 0;       // the prediction at x
};

// Kernel SHAP: the Shapley-kernel weighted least squares with the efficiency constraint, where a
// coalition's value is the mean prediction over `background` rows with the coalition's features
// set from x (the interventional expectation). With every coalition (samples = 0) this is the
// exact Shapley values of that value function; with sampled coalitions an estimate (exact for
// models additive in the features).
ShapValues kernel_shap(const PredictFn& predict_fn, const Tensor& background, const Tensor& x,
                       KernelShapOptions options = {});

}  // namespace meshflow::interpret
