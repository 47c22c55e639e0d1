// Kernel SHAP: the Shapley-kernel weighted least squares (Eigen) with the efficiency constraint
// eliminated, on interventional coalition values over a background set; every coalition for
// small feature counts, or coalitions sampled by the kernel (paired with their complements).
#include <Eigen/Dense>

#include <cmath>
#include <random>

#include "meshflow/core/core.h"
#include "meshflow/core/error.h"
#include "meshflow/interpret/lime.h"

namespace meshflow::interpret {

namespace {

double binomial(int n, int k) {
  double r = 1;
  for (int i = 1; i <= k; ++i) r = r * (n - k + i) / i;
  return r;
}

using Mask = std::vector<uint8_t>;

// Every coalition but the empty and the full one, with its Shapley-kernel weight.
void all_coalitions(int m, std::vector<Mask>& masks, std::vector<double>& weights) {
  const int64_t count = int64_t{1} << m;
  for (int64_t bits = 1; bits < count - 1; ++bits) {
    Mask z(static_cast<size_t>(m));
    int size = 0;
    for (int j = 0; j < m; ++j) size += z[static_cast<size_t>(j)] = static_cast<uint8_t>((bits >> j) & 1);
    masks.push_back(std::move(z));
    weights.push_back((m - 1) / (binomial(m, size) * size * (m - size)));
  }
}

// Note [Sampled coalitions]: sizes s are drawn with probability proportional to the kernel's
// total weight at that size, (M - 1) / (s (M - s)), then a uniform subset of that size; each
// draw comes with its complement (the pair's errors cancel to first order). Drawn in proportion
// to the kernel, every row then weighs the same in the regression.
void sampled_coalitions(int m, int64_t samples, uint64_t seed, std::vector<Mask>& masks, std::vector<double>& weights) {
  std::mt19937_64 rng(seed);
  std::vector<double> size_weight;
  for (int s = 1; s < m; ++s) size_weight.push_back(1.0 / (static_cast<double>(s) * (m - s)));
  std::discrete_distribution<int> pick_size(size_weight.begin(), size_weight.end());
  std::vector<int> order(static_cast<size_t>(m));
  for (int j = 0; j < m; ++j) order[static_cast<size_t>(j)] = j;
  for (int64_t k = 0; k < (samples + 1) / 2; ++k) {
    int s = pick_size(rng) + 1;
    std::shuffle(order.begin(), order.end(), rng);
    Mask z(static_cast<size_t>(m), 0), c(static_cast<size_t>(m), 1);
    for (int i = 0; i < s; ++i) z[static_cast<size_t>(order[static_cast<size_t>(i)])] = 1, c[static_cast<size_t>(order[static_cast<size_t>(i)])] = 0;
    masks.push_back(std::move(z));
    masks.push_back(std::move(c));
    weights.push_back(1.0);
    weights.push_back(1.0);
  }
}

}  // namespace

ShapValues kernel_shap(const PredictFn& predict_fn, const Tensor& background, const Tensor& x, KernelShapOptions o) {
  MF_CHECK(predict_fn, "kernel_shap: predict_fn is empty");
  MF_CHECK(background.defined() && background.dim() == 2 && background.size(0) >= 1,
           "kernel_shap: background must be [rows, features] with at least one row, got ",
           background.defined() ? shape_str(background.shape()) : std::string("undefined"));
  const int64_t b = background.size(0);
  const int m = static_cast<int>(background.size(1));
  MF_CHECK(x.defined() && x.numel() == m, "kernel_shap: x has ", x.defined() ? x.numel() : 0,
           " values; the background has ", m, " features");
  MF_CHECK(o.samples >= 0, "kernel_shap: samples must be >= 0, not ", o.samples);
  MF_CHECK(m >= 1 && (o.samples > 0 || m <= o.max_features), "kernel_shap: ", m,
           " features; every coalition is enumerated, so at most ", o.max_features,
           " (KernelShapOptions::max_features), or set samples to sample coalitions");
  MF_CHECK(o.batch_size >= 1, "kernel_shap: batch_size must be >= 1, not ", o.batch_size);
  const auto bg = background.to(DType::F64).contiguous().to_vector<double>();
  const auto xv = x.to(DType::F64).contiguous().to_vector<double>();
  const DType dtype = x.dtype() == DType::F64 ? DType::F64 : DType::F32;

  // The coalitions: the empty and the full one first (base value and prediction), then the rest.
  std::vector<Mask> masks{Mask(static_cast<size_t>(m), 0), Mask(static_cast<size_t>(m), 1)};
  std::vector<double> weights{0.0, 0.0};
  if (m > 1) {
    if (o.samples > 0) sampled_coalitions(m, o.samples, o.seed, masks, weights);
    else all_coalitions(m, masks, weights);
  }
  // v[c]: the mean prediction over the background with coalition c's features taken from x.
  std::vector<double> v(masks.size(), 0.0);
  const int64_t total_rows = static_cast<int64_t>(masks.size()) * b;
  for (int64_t start = 0; start < total_rows; start += o.batch_size) {
    const int64_t rows = std::min(o.batch_size, total_rows - start);
    std::vector<double> z(static_cast<size_t>(rows * m));
    for (int64_t r = 0; r < rows; ++r) {
      const Mask& mask = masks[static_cast<size_t>((start + r) / b)];
      int64_t k = (start + r) % b;
      for (int j = 0; j < m; ++j)
        z[static_cast<size_t>(r * m + j)] = mask[static_cast<size_t>(j)] ? xv[static_cast<size_t>(j)] : bg[static_cast<size_t>(k * m + j)];
    }
    Tensor p = predict_fn(from_vector(z, {rows, m}, {.dtype = dtype}));
    MF_CHECK(p.defined() && p.dim() >= 1 && p.size(0) == rows, "kernel_shap: predict_fn returned ",
             p.defined() ? shape_str(p.shape()) : std::string("nothing"), " for ", rows, " rows");
    const int64_t outputs = p.numel() / rows;
    MF_CHECK(o.output_index >= 0 && o.output_index < outputs, "kernel_shap: output_index ", o.output_index,
             " is out of range: predict_fn gives ", outputs, " outputs per row");
    auto pv = p.to(DType::F64).contiguous().to_vector<double>();
    for (int64_t r = 0; r < rows; ++r)
      v[static_cast<size_t>((start + r) / b)] += pv[static_cast<size_t>(r * outputs + o.output_index)] / static_cast<double>(b);
  }
  ShapValues out;
  out.base_value = v[0];
  out.prediction = v[1];
  const double delta = out.prediction - out.base_value;
  if (m == 1) {
    out.values = {delta};
    return out;
  }
  // Minimize sum_z w(z) (v(z) - base - z.phi)^2 subject to sum(phi) = delta: with
  // phi_M = delta - sum_{j<M} phi_j the columns become z_j - z_M and the target v - base - z_M delta.
  const auto rows = static_cast<Eigen::Index>(masks.size() - 2);
  Eigen::MatrixXd a(rows, m - 1);
  Eigen::VectorXd y(rows), w(rows);
  for (Eigen::Index r = 0; r < rows; ++r) {
    const Mask& z = masks[static_cast<size_t>(r + 2)];
    const double zm = z[static_cast<size_t>(m - 1)];
    w(r) = weights[static_cast<size_t>(r + 2)];
    y(r) = v[static_cast<size_t>(r + 2)] - out.base_value - zm * delta;
    for (int j = 0; j < m - 1; ++j) a(r, j) = static_cast<double>(z[static_cast<size_t>(j)]) - zm;
  }
  Eigen::MatrixXd normal = a.transpose() * w.asDiagonal() * a;
  Eigen::VectorXd phi = normal.ldlt().solve(a.transpose() * w.asDiagonal() * y);
  out.values.assign(phi.data(), phi.data() + (m - 1));
  out.values.push_back(delta - phi.sum());
  return out;
}

}  // namespace meshflow::interpret
