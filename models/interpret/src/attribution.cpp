// Input gradients through core autograd (meshflow::grad), batched; SmoothGrad and integrated
// gradients build their noisy or interpolated inputs on the host and reuse the same pass.
#include "meshflow/interpret/attribution.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "meshflow/core/autograd.h"
#include "meshflow/core/core.h"
#include "meshflow/core/error.h"
#include "meshflow/models/model.h"

namespace meshflow::interpret {

Forward forward_of(Model& model) {
  return [&model](const Tensor& x) {
    TrainingScope inference(false);
    return model(x);
  };
}

namespace {

int64_t rows_of(const Tensor& x, const char* where) {
  MF_CHECK(x.defined() && !x.is_symbolic(), where, ": x is undefined or symbolic");
  MF_CHECK(x.dim() >= 1 && x.size(0) >= 1, where, ": x needs a batch dimension with at least one row, got shape ",
           shape_str(x.shape()));
  return x.size(0);
}

// Gradients of output[k] with respect to each row of `rows` ([n, ...]), as doubles row-major.
std::vector<double> gradient_rows(const Forward& f, const Tensor& rows, int64_t k, const char* where) {
  MF_CHECK(f, where, ": the forward function is empty");
  Tensor xi = rows.detach().contiguous().clone();
  xi.set_requires_grad(true);
  Tensor y = f(xi);
  MF_CHECK(y.defined() && y.dim() >= 1 && y.size(0) == rows.size(0), where, ": the model returned shape ",
           y.defined() ? shape_str(y.shape()) : std::string("(none)"), " for ", rows.size(0), " rows");
  Tensor flat = y.reshape({rows.size(0), -1});
  MF_CHECK(k >= 0 && k < flat.size(1), where, ": output_index ", k, " is out of range: each sample has ", flat.size(1),
           " outputs");
  Tensor s = sum(flat.slice(1, k, k + 1));
  auto g = grad({s}, {xi});
  MF_CHECK(!g.empty() && g[0].defined(), where, ": the output does not depend on the input (no gradient)");
  return g[0].to(DType::F64).contiguous().to_vector<double>();
}

// Gradients for all rows of x in chunks of batch_size.
std::vector<double> gradients(const Forward& f, const Tensor& x, int64_t k, int64_t batch, const char* where) {
  MF_CHECK(batch >= 1, where, ": batch_size must be >= 1, not ", batch);
  const int64_t n = x.size(0);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(x.numel()));
  for (int64_t start = 0; start < n; start += batch) {
    auto g = gradient_rows(f, x.slice(0, start, std::min(n, start + batch)), k, where);
    out.insert(out.end(), g.begin(), g.end());
  }
  return out;
}

Tensor like(const std::vector<double>& v, const Tensor& x) { return from_vector(v, x.shape(), {.dtype = x.dtype()}); }

std::vector<double> host(const Tensor& x) { return x.to(DType::F64).contiguous().to_vector<double>(); }

}  // namespace

Tensor saliency(const Forward& f, const Tensor& x, GradientOptions o) {
  rows_of(x, "saliency");
  return like(gradients(f, x, o.output_index, o.batch_size, "saliency"), x);
}

Tensor gradient_x_input(const Forward& f, const Tensor& x, GradientOptions o) {
  rows_of(x, "gradient_x_input");
  auto g = gradients(f, x, o.output_index, o.batch_size, "gradient_x_input");
  auto v = host(x);
  for (size_t i = 0; i < g.size(); ++i) g[i] *= v[i];
  return like(g, x);
}

Tensor smoothgrad(const Forward& f, const Tensor& x, SmoothGradOptions o) {
  const int64_t n = rows_of(x, "smoothgrad");
  MF_CHECK(o.samples >= 1, "smoothgrad: samples must be >= 1, not ", o.samples);
  MF_CHECK(o.noise_level >= 0, "smoothgrad: noise_level must be >= 0, not ", o.noise_level);
  const int64_t d = x.numel() / n;
  auto v = host(x);
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> total(v.size(), 0.0);
  Shape row_shape = x.shape();
  // Each sample's noisy copies go through the model together, batch_size rows at a time.
  for (int64_t i = 0; i < n; ++i) {
    auto first = v.begin() + i * d, last = first + d;
    auto [lo, hi] = std::minmax_element(first, last);
    double sd = o.noise_level * (*hi - *lo);
    std::vector<double> noisy(static_cast<size_t>(o.samples * d));
    for (int s = 0; s < o.samples; ++s)
      for (int64_t j = 0; j < d; ++j) noisy[static_cast<size_t>(s * d + j)] = first[j] + sd * normal(rng);
    row_shape[0] = o.samples;
    auto g = gradients(f, from_vector(noisy, row_shape, {.dtype = x.dtype()}), o.output_index, o.batch_size,
                       "smoothgrad");
    for (int s = 0; s < o.samples; ++s)
      for (int64_t j = 0; j < d; ++j) total[static_cast<size_t>(i * d + j)] += g[static_cast<size_t>(s * d + j)] / o.samples;
  }
  return like(total, x);
}

Tensor integrated_gradients(const Forward& f, const Tensor& x, IntegratedGradientsOptions o) {
  const int64_t n = rows_of(x, "integrated_gradients");
  MF_CHECK(o.steps >= 1, "integrated_gradients: steps must be >= 1, not ", o.steps);
  const int64_t d = x.numel() / n;
  auto v = host(x);
  std::vector<double> base(static_cast<size_t>(x.numel()), 0.0);
  if (o.baseline.defined()) {
    auto b = host(o.baseline);
    Shape one(x.shape().begin() + 1, x.shape().end());
    if (o.baseline.shape() == one || (o.baseline.dim() == x.dim() && o.baseline.size(0) == 1 &&
                                      static_cast<int64_t>(b.size()) == d)) {
      for (int64_t i = 0; i < n; ++i) std::copy(b.begin(), b.end(), base.begin() + i * d);
    } else {
      MF_CHECK(o.baseline.shape() == x.shape(), "integrated_gradients: the baseline's shape ",
               shape_str(o.baseline.shape()), " is neither one sample's ", shape_str(one), " nor x's ",
               shape_str(x.shape()));
      base = b;
    }
  }
  const int m = o.steps;
  // Trapezoidal weights on alpha = 0, 1/m, ..., 1.
  std::vector<double> w(static_cast<size_t>(m + 1), 1.0 / m);
  w.front() = w.back() = 0.5 / m;
  std::vector<double> out(v.size(), 0.0);
  Shape path_shape = x.shape();
  path_shape[0] = m + 1;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> path(static_cast<size_t>((m + 1) * d));
    for (int s = 0; s <= m; ++s) {
      double a = static_cast<double>(s) / m;
      for (int64_t j = 0; j < d; ++j) {
        size_t k = static_cast<size_t>(i * d + j);
        path[static_cast<size_t>(s * d + j)] = base[k] + a * (v[k] - base[k]);
      }
    }
    auto g = gradients(f, from_vector(path, path_shape, {.dtype = x.dtype()}), o.output_index, o.batch_size,
                       "integrated_gradients");
    for (int s = 0; s <= m; ++s)
      for (int64_t j = 0; j < d; ++j) out[static_cast<size_t>(i * d + j)] += w[static_cast<size_t>(s)] * g[static_cast<size_t>(s * d + j)];
    for (int64_t j = 0; j < d; ++j) {
      size_t k = static_cast<size_t>(i * d + j);
      out[k] *= v[k] - base[k];
    }
  }
  return like(out, x);
}

}  // namespace meshflow::interpret
