// LimeTabularExplainer: perturbations from training statistics, an exponential kernel on the
// distance to the instance, and a weighted ridge regression (Eigen) on the top features.
#include "meshflow/interpret/lime.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <sstream>

#include "meshflow/core/core.h"
#include "meshflow/core/error.h"

namespace meshflow::interpret {

namespace {

std::vector<double> host(const Tensor& t) { return t.to(DType::F64).contiguous().to_vector<double>(); }

// numpy's default percentile: linear interpolation between the sorted values.
double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  double pos = q / 100.0 * static_cast<double>(v.size() - 1);
  auto lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.2f", v);
  return b;
}

struct Fit {
  Eigen::VectorXd coef;
  double intercept = 0, score = 0;
};

// Ridge regression with sample weights and an unpenalized intercept (scikit-learn's Ridge).
Fit weighted_ridge(const Eigen::MatrixXd& x, const Eigen::VectorXd& y, const Eigen::VectorXd& w, double alpha) {
  const double wsum = w.sum();
  Eigen::RowVectorXd xm = (w.asDiagonal() * x).colwise().sum() / wsum;
  double ym = w.dot(y) / wsum;
  Eigen::MatrixXd xc = x.rowwise() - xm;
  Eigen::VectorXd yc = y.array() - ym;
  Eigen::MatrixXd a = xc.transpose() * w.asDiagonal() * xc;
  a.diagonal().array() += alpha;
  Fit f;
  f.coef = a.ldlt().solve(xc.transpose() * w.asDiagonal() * yc);
  f.intercept = ym - xm.dot(f.coef);
  Eigen::VectorXd resid = yc - xc * f.coef;
  double ss_res = w.dot(resid.cwiseProduct(resid));
  double ss_tot = w.dot(yc.cwiseProduct(yc));
  f.score = ss_tot > 0 ? 1.0 - ss_res / ss_tot : 1.0;
  return f;
}

}  // namespace

LimeTabularExplainer::LimeTabularExplainer(const Tensor& x_train, LimeOptions options) : o_(std::move(options)) {
  MF_CHECK(x_train.defined() && x_train.dim() == 2, "LimeTabularExplainer: x_train must be [rows, features], got ",
           x_train.defined() ? shape_str(x_train.shape()) : std::string("undefined"));
  const int64_t n = x_train.size(0);
  d_ = x_train.size(1);
  MF_CHECK(n >= 2 && d_ >= 1, "LimeTabularExplainer: x_train needs >= 2 rows and >= 1 feature, got ",
           shape_str(x_train.shape()));
  MF_CHECK(o_.mode == "classification" || o_.mode == "regression", "LimeTabularExplainer: mode must be "
           "\"classification\" or \"regression\", not \"", o_.mode, "\"");
  MF_CHECK(o_.kernel_width >= 0, "LimeTabularExplainer: kernel_width must be >= 0, not ", o_.kernel_width);
  if (o_.feature_names.empty())
    for (int64_t j = 0; j < d_; ++j) o_.feature_names.push_back("x" + std::to_string(j));
  MF_CHECK(static_cast<int64_t>(o_.feature_names.size()) == d_, "LimeTabularExplainer: ", o_.feature_names.size(),
           " feature_names for ", d_, " features");
  if (o_.training_labels.defined()) {
    MF_CHECK(o_.training_labels.numel() == n, "LimeTabularExplainer: training_labels has ", o_.training_labels.numel(),
             " entries for ", n, " training rows");
    if (o_.class_names.empty()) {
      auto labels = host(o_.training_labels);
      auto top = static_cast<int64_t>(*std::max_element(labels.begin(), labels.end()));
      for (int64_t c = 0; c <= top; ++c) o_.class_names.push_back(std::to_string(c));
    }
  }
  if (o_.kernel_width == 0) o_.kernel_width = 0.75 * std::sqrt(static_cast<double>(d_));
  auto v = host(x_train);
  mean_.assign(static_cast<size_t>(d_), 0.0);
  scale_.assign(static_cast<size_t>(d_), 0.0);
  cuts_.resize(static_cast<size_t>(d_));
  bin_mean_.assign(static_cast<size_t>(d_), std::vector<double>(4, 0.0));
  bin_sd_ = bin_min_ = bin_max_ = bin_freq_ = bin_mean_;
  for (int64_t j = 0; j < d_; ++j) {
    std::vector<double> col(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) col[static_cast<size_t>(i)] = v[static_cast<size_t>(i * d_ + j)];
    double m = std::accumulate(col.begin(), col.end(), 0.0) / static_cast<double>(n);
    double var = 0;
    for (double c : col) var += (c - m) * (c - m);
    double sd = std::sqrt(var / static_cast<double>(n));
    mean_[static_cast<size_t>(j)] = m;
    scale_[static_cast<size_t>(j)] = sd > 0 ? sd : 1.0;
    cuts_[static_cast<size_t>(j)] = {percentile(col, 25), percentile(col, 50), percentile(col, 75)};
    std::vector<std::vector<double>> in_bin(4);
    for (double c : col) in_bin[static_cast<size_t>(bin_of(j, c))].push_back(c);
    for (size_t b = 0; b < 4; ++b) {
      const auto& xs = in_bin[b];
      auto& bm = bin_mean_[static_cast<size_t>(j)][b];
      if (xs.empty()) continue;
      bm = std::accumulate(xs.begin(), xs.end(), 0.0) / static_cast<double>(xs.size());
      double bv = 0;
      for (double c : xs) bv += (c - bm) * (c - bm);
      bin_sd_[static_cast<size_t>(j)][b] = std::sqrt(bv / static_cast<double>(xs.size()));
      bin_min_[static_cast<size_t>(j)][b] = *std::min_element(xs.begin(), xs.end());
      bin_max_[static_cast<size_t>(j)][b] = *std::max_element(xs.begin(), xs.end());
      bin_freq_[static_cast<size_t>(j)][b] = static_cast<double>(xs.size()) / static_cast<double>(n);
    }
  }
}

int LimeTabularExplainer::bin_of(int64_t feature, double v) const {
  const auto& c = cuts_[static_cast<size_t>(feature)];
  int b = 0;
  while (b < 3 && v > c[static_cast<size_t>(b)]) ++b;
  return b;
}

std::string LimeTabularExplainer::bin_description(int64_t feature, int bin) const {
  const auto& c = cuts_[static_cast<size_t>(feature)];
  const std::string& name = o_.feature_names[static_cast<size_t>(feature)];
  switch (bin) {
    case 0: return name + " <= " + num(c[0]);
    case 1: return num(c[0]) + " < " + name + " <= " + num(c[1]);
    case 2: return num(c[1]) + " < " + name + " <= " + num(c[2]);
    default: return name + " > " + num(c[2]);
  }
}

Explanation LimeTabularExplainer::explain_instance(const Tensor& row, const PredictFn& predict_fn, ExplainOptions o) {
  MF_CHECK(predict_fn, "explain_instance: predict_fn is empty");
  MF_CHECK(row.defined() && row.numel() == d_, "explain_instance: the instance has ",
           row.defined() ? row.numel() : 0, " values; the explainer was built for ", d_, " features");
  MF_CHECK(o.num_samples >= 2, "explain_instance: num_samples must be >= 2, not ", o.num_samples);
  MF_CHECK(o.num_features >= 1, "explain_instance: num_features must be >= 1, not ", o.num_features);
  MF_CHECK(o.ridge_alpha >= 0, "explain_instance: ridge_alpha must be >= 0, not ", o.ridge_alpha);
  const auto inst = host(row);
  const int64_t n = o.num_samples;
  std::mt19937_64 rng(o_.seed + 0x9e3779b97f4a7c15ull * calls_++);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> z(static_cast<size_t>(n * d_));   // the perturbed rows the model sees
  Eigen::MatrixXd feats(n, d_);                          // what the linear model sees
  std::copy(inst.begin(), inst.end(), z.begin());
  std::vector<int> inst_bin(static_cast<size_t>(d_));
  for (int64_t j = 0; j < d_; ++j) inst_bin[static_cast<size_t>(j)] = bin_of(j, inst[static_cast<size_t>(j)]);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d_; ++j) {
      const auto sj = static_cast<size_t>(j);
      double& zv = z[static_cast<size_t>(i * d_ + j)];
      if (o_.discretize_continuous) {
        if (i > 0) {
          std::discrete_distribution<int> pick(bin_freq_[sj].begin(), bin_freq_[sj].end());
          auto b = static_cast<size_t>(pick(rng));
          zv = std::clamp(bin_mean_[sj][b] + bin_sd_[sj][b] * normal(rng), bin_min_[sj][b], bin_max_[sj][b]);
        }
        feats(i, j) = bin_of(j, zv) == inst_bin[sj] ? 1.0 : 0.0;
      } else {
        if (i > 0) zv = mean_[sj] + scale_[sj] * normal(rng);  // lime's sampling around the training mean
        feats(i, j) = (zv - mean_[sj]) / scale_[sj];
      }
    }
  }
  Tensor preds = predict_fn(from_vector(z, {n, d_}, {.dtype = row.dtype() == DType::F64 ? DType::F64 : DType::F32}));
  MF_CHECK(preds.defined() && preds.dim() >= 1 && preds.size(0) == n, "explain_instance: predict_fn returned ",
           preds.defined() ? shape_str(preds.shape()) : std::string("nothing"), " for ", n, " rows");
  const int64_t classes = preds.numel() / n;
  auto p = host(preds);
  Explanation e;
  if (o.label < 0) {
    e.label = 0;
    if (o_.mode == "classification")
      for (int64_t c = 1; c < classes; ++c)
        if (p[static_cast<size_t>(c)] > p[static_cast<size_t>(e.label)]) e.label = c;
  } else {
    MF_CHECK(o.label < classes, "explain_instance: label ", o.label, " is out of range: predict_fn gives ", classes,
             " outputs per row");
    e.label = o.label;
  }
  e.label_name = static_cast<size_t>(e.label) < o_.class_names.size() ? o_.class_names[static_cast<size_t>(e.label)]
                                                                        : std::to_string(e.label);
  Eigen::VectorXd y(n), w(n);
  for (int64_t i = 0; i < n; ++i) {
    y(i) = p[static_cast<size_t>(i * classes + e.label)];
    double dist = (feats.row(i) - feats.row(0)).norm();
    w(i) = std::sqrt(std::exp(-dist * dist / (o_.kernel_width * o_.kernel_width)));
  }
  e.model_prediction = y(0);
  // Every feature's weight from one fit, then the chosen features alone, as lime's final fit.
  Fit all = weighted_ridge(feats, y, w, o.ridge_alpha);
  e.weights.assign(all.coef.data(), all.coef.data() + d_);
  const auto k_max = static_cast<size_t>(std::min<int64_t>(o.num_features, d_));
  auto columns = [&](const std::vector<int64_t>& cols) {
    Eigen::MatrixXd m(n, static_cast<Eigen::Index>(cols.size()));
    for (size_t k = 0; k < cols.size(); ++k) m.col(static_cast<Eigen::Index>(k)) = feats.col(cols[k]);
    return m;
  };
  std::string method = o.feature_selection;
  if (method == "auto") method = o.num_features <= 6 ? "forward_selection" : "highest_weights";
  std::vector<int64_t> chosen;
  if (method == "highest_weights" || method == "none") {
    chosen.resize(static_cast<size_t>(d_));
    std::iota(chosen.begin(), chosen.end(), 0);
    std::stable_sort(chosen.begin(), chosen.end(),
                     [&](int64_t a, int64_t b) { return std::fabs(all.coef(a)) > std::fabs(all.coef(b)); });
    if (method == "highest_weights") chosen.resize(k_max);
  } else if (method == "forward_selection") {
    // Greedily add the feature whose fit with the chosen ones explains the most (weighted R^2).
    while (chosen.size() < k_max) {
      int64_t best = -1;
      double best_score = -1e300;
      for (int64_t j = 0; j < d_; ++j) {
        if (std::find(chosen.begin(), chosen.end(), j) != chosen.end()) continue;
        auto trial = chosen;
        trial.push_back(j);
        double score = weighted_ridge(columns(trial), y, w, o.ridge_alpha).score;
        if (score > best_score) best_score = score, best = j;
      }
      chosen.push_back(best);
    }
  } else {
    MF_THROW("explain_instance: feature_selection '", o.feature_selection,
             "' is not one of auto, forward_selection, highest_weights, none");
  }
  Eigen::MatrixXd sel = columns(chosen);
  Fit top = weighted_ridge(sel, y, w, o.ridge_alpha);
  e.intercept = top.intercept;
  e.score = top.score;
  e.local_prediction = top.intercept + sel.row(0).dot(top.coef);
  for (size_t k = 0; k < chosen.size(); ++k) {
    int64_t j = chosen[k];
    std::string desc = o_.discretize_continuous ? bin_description(j, inst_bin[static_cast<size_t>(j)])
                                                : o_.feature_names[static_cast<size_t>(j)];
    e.features.push_back({j, desc, top.coef(static_cast<Eigen::Index>(k))});
  }
  std::stable_sort(e.features.begin(), e.features.end(),
                   [](const FeatureWeight& a, const FeatureWeight& b) { return std::fabs(a.weight) > std::fabs(b.weight); });
  return e;
}

std::vector<std::pair<std::string, double>> Explanation::as_list() const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& f : features) out.emplace_back(f.description, f.weight);
  return out;
}

std::string Explanation::as_table() const {
  std::ostringstream os;
  size_t width = 7;
  double biggest = 0;
  for (const auto& f : features) {
    width = std::max(width, f.description.size());
    biggest = std::max(biggest, std::fabs(f.weight));
  }
  char head[160];
  std::snprintf(head, sizeof(head), " (prediction %.4f, local model %.4f, R^2 %.3f)\n", model_prediction,
                local_prediction, score);
  os << "Explanation for class " << label_name << head;
  os << "rank  feature" << std::string(width - 7, ' ') << "  weight\n";
  int rank = 1;
  for (const auto& f : features) {
    char w[32], r[16];
    std::snprintf(w, sizeof(w), "%+.4f", f.weight);
    std::snprintf(r, sizeof(r), "%4d", rank++);
    int bar = biggest > 0 ? static_cast<int>(std::lround(20 * std::fabs(f.weight) / biggest)) : 0;
    os << r << "  " << f.description << std::string(width - f.description.size(), ' ') << "  " << w << "  "
       << std::string(static_cast<size_t>(bar), f.weight >= 0 ? '+' : '-') << "\n";
  }
  return os.str();
}

}  // namespace meshflow::interpret
