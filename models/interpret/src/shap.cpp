// Kernel SHAP over every coalition: the Shapley-kernel weighted least squares (Eigen) with the
// efficiency constraint eliminated, on interventional coalition values over a background set.
#include <Eigen/Dense>

#include <cmath>

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
  MF_CHECK(m >= 1 && m <= o.max_features, "kernel_shap: ", m, " features; every coalition is enumerated, so at most ",
           o.max_features, " (KernelShapOptions::max_features)");
  MF_CHECK(o.batch_size >= 1, "kernel_shap: batch_size must be >= 1, not ", o.batch_size);
  const auto bg = background.to(DType::F64).contiguous().to_vector<double>();
  const auto xv = x.to(DType::F64).contiguous().to_vector<double>();
  const DType dtype = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  const int64_t coalitions = int64_t{1} << m;  // every mask, empty and full included

  // v[mask]: the mean prediction over the background with mask's features taken from x.
  std::vector<double> v(static_cast<size_t>(coalitions), 0.0);
  const int64_t total_rows = coalitions * b;
  int64_t outputs = -1;
  for (int64_t start = 0; start < total_rows; start += o.batch_size) {
    const int64_t rows = std::min(o.batch_size, total_rows - start);
    std::vector<double> z(static_cast<size_t>(rows * m));
    for (int64_t r = 0; r < rows; ++r) {
      int64_t mask = (start + r) / b, k = (start + r) % b;
      for (int j = 0; j < m; ++j)
        z[static_cast<size_t>(r * m + j)] = (mask >> j) & 1 ? xv[static_cast<size_t>(j)] : bg[static_cast<size_t>(k * m + j)];
    }
    Tensor p = predict_fn(from_vector(z, {rows, m}, {.dtype = dtype}));
    MF_CHECK(p.defined() && p.dim() >= 1 && p.size(0) == rows, "kernel_shap: predict_fn returned ",
             p.defined() ? shape_str(p.shape()) : std::string("nothing"), " for ", rows, " rows");
    outputs = p.numel() / rows;
    MF_CHECK(o.output_index >= 0 && o.output_index < outputs, "kernel_shap: output_index ", o.output_index,
             " is out of range: predict_fn gives ", outputs, " outputs per row");
    auto pv = p.to(DType::F64).contiguous().to_vector<double>();
    for (int64_t r = 0; r < rows; ++r)
      v[static_cast<size_t>((start + r) / b)] += pv[static_cast<size_t>(r * outputs + o.output_index)] / static_cast<double>(b);
  }
  ShapValues out;
  out.base_value = v.front();
  out.prediction = v.back();
  const double delta = out.prediction - out.base_value;
  if (m == 1) {
    out.values = {delta};
    return out;
  }
  // Minimize sum_z pi(z) (v(z) - base - z.phi)^2 subject to sum(phi) = delta: with
  // phi_M = delta - sum_{j<M} phi_j the columns become z_j - z_M and the target v - base - z_M delta.
  const int64_t inner = coalitions - 2;
  Eigen::MatrixXd a(inner, m - 1);
  Eigen::VectorXd y(inner), w(inner);
  for (int64_t mask = 1; mask < coalitions - 1; ++mask) {
    const int64_t r = mask - 1;
    int size = 0;
    for (int j = 0; j < m; ++j) size += (mask >> j) & 1;
    const double zm = static_cast<double>((mask >> (m - 1)) & 1);
    w(r) = (m - 1) / (binomial(m, size) * size * (m - size));
    y(r) = v[static_cast<size_t>(mask)] - out.base_value - zm * delta;
    for (int j = 0; j < m - 1; ++j) a(r, j) = static_cast<double>((mask >> j) & 1) - zm;
  }
  Eigen::MatrixXd normal = a.transpose() * w.asDiagonal() * a;
  Eigen::VectorXd phi = normal.ldlt().solve(a.transpose() * w.asDiagonal() * y);
  out.values.assign(phi.data(), phi.data() + (m - 1));
  out.values.push_back(delta - phi.sum());
  return out;
}

}  // namespace meshflow::interpret
