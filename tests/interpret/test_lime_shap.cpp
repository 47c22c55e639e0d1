// LIME on known linear models (weights equal the coefficients per training standard deviation;
// the ranking follows the true coefficients), and kernel SHAP against exact Shapley values
// computed by enumerating subsets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "meshflow/interpret/lime.h"
#include "meshflow/meshflow.h"
#include "test_util.h"

namespace mf = meshflow;
namespace ip = meshflow::interpret;

namespace {

const std::vector<double> kCoef = {3.0, -2.0, 1.0, 0.5, -0.1};

mf::Tensor normal_rows(int64_t n, int64_t d, uint64_t seed, const std::vector<double>& sd = {}) {
  mf::Generator g(seed);
  mf::Tensor x = mf::randn({n, d}, {.dtype = mf::DType::F64}, &g);
  if (!sd.empty()) x = mf::mul(x, mf::from_vector(sd, {d}, {.dtype = mf::DType::F64}));
  return x;
}

// predict_fn of y = coef . x (+ 0.7), evaluated on the host.
ip::PredictFn linear_fn(const std::vector<double>& coef) {
  return [coef](const mf::Tensor& z) {
    auto v = z.to(mf::DType::F64).contiguous().to_vector<double>();
    const auto d = static_cast<int64_t>(coef.size());
    std::vector<double> out(static_cast<size_t>(z.size(0)));
    for (int64_t i = 0; i < z.size(0); ++i) {
      double s = 0.7;
      for (int64_t j = 0; j < d; ++j) s += coef[static_cast<size_t>(j)] * v[static_cast<size_t>(i * d + j)];
      out[static_cast<size_t>(i)] = s;
    }
    return mf::from_vector(out, {z.size(0)}, {.dtype = mf::DType::F64});
  };
}

double column_sd(const mf::Tensor& x, int64_t j) {
  auto v = x.contiguous().to_vector<double>();
  int64_t n = x.size(0), d = x.size(1);
  double m = 0, s = 0;
  for (int64_t i = 0; i < n; ++i) m += v[static_cast<size_t>(i * d + j)] / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) s += std::pow(v[static_cast<size_t>(i * d + j)] - m, 2);
  return std::sqrt(s / static_cast<double>(n));
}

}  // namespace

TEST(Lime, ContinuousWeightsAreTheCoefficientsPerStandardDeviation) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  const std::vector<double> sd = {1.0, 2.0, 0.4, 1.0, 3.0};
  mf::Tensor x = normal_rows(2000, 5, 1, sd);
  ip::LimeTabularExplainer explainer(x, {.mode = "regression", .discretize_continuous = false, .seed = 2});
  mf::Tensor row = x.slice(0, 7, 8);
  auto e = explainer.explain_instance(row, linear_fn(kCoef), {.num_features = 5, .num_samples = 4000});
  for (int64_t j = 0; j < 5; ++j) {
    double expected = kCoef[static_cast<size_t>(j)] * column_sd(x, j);
    // The ridge penalty (alpha 1 against ~4000 weighted rows) shrinks by well under 1%.
    EXPECT_NEAR(e.weights[static_cast<size_t>(j)], expected, 0.01 * std::fabs(expected) + 1e-3) << "feature " << j;
  }
  EXPECT_GT(e.score, 0.999);  // the model is linear: the local fit is exact
  EXPECT_NEAR(e.local_prediction, e.model_prediction, 1e-2);
  // Ranked by |coef * sd|: 1 (4.0), 0 (3.0), 3 (0.5), 2 (0.4), 4 (0.3), as the truth says.
  std::vector<int64_t> truth(5);
  std::iota(truth.begin(), truth.end(), 0);
  std::sort(truth.begin(), truth.end(), [&](int64_t a, int64_t b) {
    return std::fabs(kCoef[static_cast<size_t>(a)] * column_sd(x, a)) > std::fabs(kCoef[static_cast<size_t>(b)] * column_sd(x, b));
  });
  ASSERT_EQ(e.features.size(), 5u);
  for (size_t k = 0; k < 5; ++k) EXPECT_EQ(e.features[k].feature, truth[k]) << "rank " << k;
}

TEST(Lime, DiscretizedRankingFollowsTheTrueCoefficients) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  mf::Tensor x = normal_rows(2000, 5, 3);
  ip::LimeTabularExplainer explainer(
      x, {.feature_names = {"a", "b", "c", "d", "e"}, .mode = "regression", .seed = 4});
  // Every feature of the instance in its top quartile: each weight is coef times the same gap
  // between the top bin's mean and the others', so the ranking is |coef|'s.
  mf::Tensor row = mf::full({1, 5}, 1.5, {.dtype = mf::DType::F64});
  auto e = explainer.explain_instance(row, linear_fn(kCoef), {.num_features = 3, .num_samples = 5000});
  ASSERT_EQ(e.features.size(), 3u);
  EXPECT_EQ(e.features[0].feature, 0);
  EXPECT_EQ(e.features[1].feature, 1);
  EXPECT_EQ(e.features[2].feature, 2);
  EXPECT_GT(e.features[0].weight, 0);
  EXPECT_LT(e.features[1].weight, 0);
  // Quartiles of a standard normal: the top bin is "a > 0.67" (0.674 +- sampling error).
  EXPECT_EQ(e.features[0].description.rfind("a > 0.6", 0), 0u) << e.features[0].description;
  std::string table = e.as_table();
  EXPECT_NE(table.find("a > 0.6"), std::string::npos) << table;
  EXPECT_NE(table.find("+"), std::string::npos) << table;
  // The weights' ratios follow the coefficients' (each bin gap is the same up to sampling noise).
  EXPECT_NEAR(e.weights[1] / e.weights[0], kCoef[1] / kCoef[0], 0.08);
}

TEST(Lime, FeatureSelectionMethodsAgreeOnALinearModel) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  mf::Tensor x = normal_rows(1000, 5, 12);
  ip::LimeTabularExplainer explainer(x, {.mode = "regression", .discretize_continuous = false, .seed = 3});
  mf::Tensor row = x.slice(0, 3, 4);
  std::vector<std::set<int64_t>> picked;
  for (const char* method : {"forward_selection", "highest_weights"}) {
    auto e = explainer.explain_instance(row, linear_fn(kCoef), {.num_features = 3, .feature_selection = method});
    ASSERT_EQ(e.features.size(), 3u) << method;
    std::set<int64_t> s;
    for (const auto& f : e.features) s.insert(f.feature);
    picked.push_back(s);
    // Largest |weight| first.
    EXPECT_GE(std::fabs(e.features[0].weight), std::fabs(e.features[1].weight));
    EXPECT_GE(std::fabs(e.features[1].weight), std::fabs(e.features[2].weight));
  }
  // |coef| 3, 2, 1 are features 0, 1, 2 (the training columns all have sd ~1).
  EXPECT_EQ(picked[0], (std::set<int64_t>{0, 1, 2}));
  EXPECT_EQ(picked[1], (std::set<int64_t>{0, 1, 2}));
  auto all = explainer.explain_instance(row, linear_fn(kCoef), {.num_features = 2, .feature_selection = "none"});
  EXPECT_EQ(all.features.size(), 5u);
  EXPECT_MF_ERROR(explainer.explain_instance(row, linear_fn(kCoef), {.feature_selection = "lasso_path"}),
                  "feature_selection 'lasso_path'");
}

TEST(Lime, ClassificationExplainsThePredictedClass) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  mf::Tensor x = normal_rows(500, 3, 5);
  mf::Tensor labels = mf::from_vector(std::vector<int64_t>(500, 1), {500});
  ip::PredictFn proba = [](const mf::Tensor& z) {
    auto v = z.to(mf::DType::F64).contiguous().to_vector<double>();
    std::vector<double> out;
    for (int64_t i = 0; i < z.size(0); ++i) {
      double p1 = 1.0 / (1.0 + std::exp(-(2.0 * v[static_cast<size_t>(i * 3)] - v[static_cast<size_t>(i * 3 + 2)])));
      out.push_back(1 - p1);
      out.push_back(p1);
    }
    return mf::from_vector(out, {z.size(0), 2}, {.dtype = mf::DType::F64});
  };
  ip::LimeTabularExplainer explainer(x, {.training_labels = labels, .class_names = {"no", "yes"}});
  auto e = explainer.explain_instance(mf::from_vector(std::vector<double>{1.0, 0.0, -1.0}, {3}, {.dtype = mf::DType::F64}), proba,
                                      {.num_features = 2});
  EXPECT_EQ(e.label, 1);  // p1 = sigmoid(3) > 0.5
  EXPECT_EQ(e.label_name, "yes");
  EXPECT_NEAR(e.model_prediction, 1.0 / (1.0 + std::exp(-3.0)), 1e-9);
  // x0 pushes "yes" up and x2 (at -1, bottom quartile region) too; x1 does nothing.
  EXPECT_NE(e.features[0].feature, 1);
  EXPECT_NE(e.features[1].feature, 1);
}

TEST(Lime, ChecksItsInputs) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  mf::Tensor x = normal_rows(50, 3, 6);
  EXPECT_MF_ERROR(ip::LimeTabularExplainer(mf::zeros({5}), {}), "x_train must be [rows, features]");
  EXPECT_MF_ERROR(ip::LimeTabularExplainer(x, {.feature_names = {"a"}}), "1 feature_names for 3 features");
  EXPECT_MF_ERROR(ip::LimeTabularExplainer(x, {.mode = "ranking"}), "mode", "ranking");
  ip::LimeTabularExplainer ex(x);
  EXPECT_MF_ERROR(ex.explain_instance(mf::zeros({4}), linear_fn({1, 2, 3})), "4 values", "3 features");
  EXPECT_MF_ERROR(ex.explain_instance(mf::zeros({3}), linear_fn({1, 2, 3}), {.label = 2}), "label 2", "1 outputs");
  EXPECT_MF_ERROR(ex.explain_instance(mf::zeros({3}), linear_fn({1, 2, 3}), {.num_samples = 1}), "num_samples");
}

namespace {

// A 4-feature model with interactions and curvature.
double g4(const double* z) { return z[0] * z[1] + std::sin(z[2]) + z[3] * z[3] + 0.5 * z[0] * z[3] - 0.3 * z[1]; }

ip::PredictFn g4_fn(int* calls = nullptr) {
  return [calls](const mf::Tensor& z) {
    if (calls) ++*calls;
    auto v = z.to(mf::DType::F64).contiguous().to_vector<double>();
    std::vector<double> out;
    for (int64_t i = 0; i < z.size(0); ++i) {
      out.push_back(g4(&v[static_cast<size_t>(i * 4)]));
      out.push_back(-1.0);  // a second output to show output_index is honoured
    }
    return mf::from_vector(out, {z.size(0), 2}, {.dtype = mf::DType::F64});
  };
}

}  // namespace

TEST(KernelShap, EqualsExactShapleyValuesOnAFourFeatureModel) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  mf::Tensor background = normal_rows(20, 4, 7);
  std::vector<double> xv = {1.2, -0.7, 0.9, 1.5};
  mf::Tensor x = mf::from_vector(xv, {4}, {.dtype = mf::DType::F64});
  auto shap = ip::kernel_shap(g4_fn(), background, x, {.output_index = 0, .batch_size = 37});

  // The reference: v(S) = mean over background rows of g with S's features from x, and
  // phi_i = sum over S not holding i of |S|! (M - |S| - 1)! / M! (v(S + i) - v(S)).
  auto bg = background.contiguous().to_vector<double>();
  auto v = [&](int mask) {
    double s = 0;
    for (int r = 0; r < 20; ++r) {
      double z[4];
      for (int j = 0; j < 4; ++j) z[j] = (mask >> j) & 1 ? xv[static_cast<size_t>(j)] : bg[static_cast<size_t>(r * 4 + j)];
      s += g4(z);
    }
    return s / 20;
  };
  const double fact[] = {1, 1, 2, 6, 24};
  double total = 0;
  for (int i = 0; i < 4; ++i) {
    double phi = 0;
    for (int mask = 0; mask < 16; ++mask) {
      if ((mask >> i) & 1) continue;
      int size = __builtin_popcount(static_cast<unsigned>(mask));
      phi += fact[size] * fact[4 - size - 1] / fact[4] * (v(mask | (1 << i)) - v(mask));
    }
    EXPECT_NEAR(shap.values[static_cast<size_t>(i)], phi, 1e-9) << "feature " << i;
    total += phi;
  }
  EXPECT_NEAR(shap.base_value, v(0), 1e-12);
  EXPECT_NEAR(shap.prediction, g4(xv.data()), 1e-12);
  EXPECT_NEAR(total, shap.prediction - shap.base_value, 1e-9);
  // The second output is constant: every Shapley value is 0 there.
  auto flat = ip::kernel_shap(g4_fn(), background, x, {.output_index = 1});
  for (double p : flat.values) EXPECT_NEAR(p, 0.0, 1e-12);
}

TEST(KernelShap, SampledCoalitionsOnManyFeatures) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  // A linear model on 30 features (too many to enumerate): its Shapley values are
  // c_j (x_j - mean of the background's column j), whichever coalitions are drawn.
  const int m = 30;
  std::vector<double> coef(m);
  for (int j = 0; j < m; ++j) coef[static_cast<size_t>(j)] = std::sin(1.0 + j) * (j % 3 + 1);
  mf::Tensor background = normal_rows(16, m, 9);
  mf::Tensor x = normal_rows(1, m, 10);
  auto shap = ip::kernel_shap(linear_fn(coef), background, x, {.samples = 400, .seed = 1});
  auto bg = background.contiguous().to_vector<double>();
  auto xv = x.contiguous().to_vector<double>();
  for (int j = 0; j < m; ++j) {
    double mean = 0;
    for (int r = 0; r < 16; ++r) mean += bg[static_cast<size_t>(r * m + j)] / 16;
    EXPECT_NEAR(shap.values[static_cast<size_t>(j)], coef[static_cast<size_t>(j)] * (xv[static_cast<size_t>(j)] - mean), 1e-8)
        << "feature " << j;
  }
  // On the interacting 4-feature model the sampled estimate approaches the exact values.
  mf::Tensor bg4 = normal_rows(20, 4, 7);
  mf::Tensor x4 = mf::from_vector(std::vector<double>{1.2, -0.7, 0.9, 1.5}, {4}, {.dtype = mf::DType::F64});
  auto exact = ip::kernel_shap(g4_fn(), bg4, x4);
  auto sampled = ip::kernel_shap(g4_fn(), bg4, x4, {.samples = 4000, .seed = 2});
  double total = 0;
  for (int j = 0; j < 4; ++j) {
    EXPECT_NEAR(sampled.values[static_cast<size_t>(j)], exact.values[static_cast<size_t>(j)], 0.05) << "feature " << j;
    total += sampled.values[static_cast<size_t>(j)];
  }
  EXPECT_NEAR(total, sampled.prediction - sampled.base_value, 1e-9);  // efficiency holds exactly
}

TEST(KernelShap, ChecksItsInputs) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  mf::Tensor background = normal_rows(5, 4, 8);
  EXPECT_MF_ERROR(ip::kernel_shap(g4_fn(), background, mf::zeros({3})), "x has 3 values", "4 features");
  EXPECT_MF_ERROR(ip::kernel_shap(g4_fn(), background, mf::zeros({4}), {.output_index = 2}), "output_index 2",
                  "2 outputs");
  EXPECT_MF_ERROR(ip::kernel_shap(g4_fn(), background, mf::zeros({4}), {.max_features = 3}), "4 features",
                  "max_features", "samples");
  EXPECT_MF_ERROR(ip::kernel_shap(g4_fn(), background, mf::zeros({4}), {.samples = -1}), "samples must be >= 0");
  EXPECT_MF_ERROR(ip::kernel_shap(g4_fn(), mf::zeros({4}), mf::zeros({4})), "background must be [rows, features]");
}
