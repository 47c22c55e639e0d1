// Gradient attributions: saliency of a linear model is its weights; integrated gradients are
// complete (sum to f(x) - f(baseline)) on a tanh MLP and a CNN; saliency matches finite
// differences; SmoothGrad of a quadratic is its gradient's expectation.
#include <gtest/gtest.h>

#include <cmath>

#include "meshflow/interpret/attribution.h"
#include "meshflow/meshflow.h"
#include "test_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
namespace ip = meshflow::interpret;

namespace {

std::shared_ptr<mf::Sequential> linear_model() {
  auto m = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{mf::make_input_layer({5}), L::Dense(3)});
  m->predict(mf::zeros({1, 5}));  // builds the weights
  return m;
}

std::shared_ptr<mf::Sequential> tanh_mlp() {
  auto m = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      mf::make_input_layer({6}), L::Dense(16, {.activation = "tanh"}), L::Dense(16, {.activation = "tanh"}),
      L::Dense(3, {.activation = "softmax"})});
  return m;
}

std::shared_ptr<mf::Sequential> cnn() {
  auto m = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      mf::make_input_layer({8, 8, 1}), L::Conv2D(4, 3, {.activation = "tanh"}), L::Flatten(),
      L::Dense(10, {.activation = "softmax"})});
  return m;
}

std::vector<double> row_outputs(mf::Model& m, const mf::Tensor& x, int64_t k) {
  auto y = m.predict(x)[0];
  auto flat = y.reshape({x.size(0), -1});
  std::vector<double> out;
  for (int64_t i = 0; i < x.size(0); ++i) out.push_back(flat.at({i, k}));
  return out;
}

void expect_complete(mf::Model& m, const mf::Tensor& x, int64_t k) {
  auto attr = ip::integrated_gradients(ip::forward_of(m), x, {.output_index = k, .steps = 64});
  ASSERT_EQ(attr.shape(), x.shape());
  auto fx = row_outputs(m, x, k);
  auto f0 = row_outputs(m, mf::zeros(x.shape()), k);
  auto a = mf_test::values(attr);
  const int64_t d = x.numel() / x.size(0);
  for (int64_t i = 0; i < x.size(0); ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += a[static_cast<size_t>(i * d + j)];
    double delta = fx[static_cast<size_t>(i)] - f0[static_cast<size_t>(i)];
    EXPECT_GT(std::fabs(delta), 1e-3) << "sample " << i << ": pick inputs that move the output";
    EXPECT_NEAR(s, delta, 0.01 * std::fabs(delta)) << "sample " << i << ": sum of attributions vs f(x) - f(0)";
  }
}

}  // namespace

TEST(Saliency, LinearModelSaliencyIsItsWeights) {
  auto m = linear_model();
  mf::Tensor kernel = m->weights()[0];  // [5, 3]
  mf::Tensor x = mf_test::random_tensor({4, 5}, 1, -2, 2, mf::DType::F32);
  for (int64_t k = 0; k < 3; ++k) {
    auto s = ip::saliency(ip::forward_of(*m), x, {.output_index = k, .batch_size = 3});  // two batches
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 5; ++j) EXPECT_NEAR(s.at({i, j}), kernel.at({j, k}), 1e-6) << i << "," << j << "," << k;
    auto gx = ip::gradient_x_input(ip::forward_of(*m), x, {.output_index = k});
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 5; ++j) EXPECT_NEAR(gx.at({i, j}), kernel.at({j, k}) * x.at({i, j}), 1e-5);
    // Integrated gradients of a linear model are exactly (x - baseline) * w.
    mf::Tensor base = mf_test::random_tensor({5}, 2, -1, 1, mf::DType::F32);
    auto ig = ip::integrated_gradients(ip::forward_of(*m), x, {.output_index = k, .steps = 4, .baseline = base});
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 5; ++j)
        EXPECT_NEAR(ig.at({i, j}), (x.at({i, j}) - base.at({j})) * kernel.at({j, k}), 1e-5);
  }
}

TEST(Saliency, MatchesFiniteDifferencesOnATanhMlp) {
  auto m = tanh_mlp();
  mf::Tensor x = mf_test::random_tensor({3, 6}, 3, -1, 1, mf::DType::F32);
  auto s = ip::saliency(ip::forward_of(*m), x, {.output_index = 2});
  const double h = 1e-2;
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 6; ++j) {
      mf::Tensor xp = x.clone(), xm = x.clone();
      xp.set({i, j}, x.at({i, j}) + h);
      xm.set({i, j}, x.at({i, j}) - h);
      double fd = (row_outputs(*m, xp, 2)[static_cast<size_t>(i)] - row_outputs(*m, xm, 2)[static_cast<size_t>(i)]) / (2 * h);
      EXPECT_NEAR(s.at({i, j}), fd, 2e-3 + 0.02 * std::fabs(fd)) << i << "," << j;
    }
}

TEST(IntegratedGradients, CompletenessOnATanhMlp) {
  auto m = tanh_mlp();
  mf::Tensor x = mf_test::random_tensor({5, 6}, 4, -3, 3, mf::DType::F32);
  for (int64_t k = 0; k < 3; ++k) expect_complete(*m, x, k);
}

TEST(IntegratedGradients, CompletenessOnACnn) {
  auto m = cnn();
  mf::Tensor x = mf_test::random_tensor({3, 8, 8, 1}, 5, 0, 3, mf::DType::F32);
  expect_complete(*m, x, 4);
  expect_complete(*m, x, 7);
}

TEST(SmoothGrad, OfAQuadraticIsTwoX) {
  // f(x) = sum(x^2): the gradient 2(x + noise) averages to 2x, with standard error 2 sd / sqrt(n).
  ip::Forward f = [](const mf::Tensor& x) { return mf::sum(mf::square(x), {1}, true); };
  mf::Tensor x = mf_test::random_tensor({2, 4}, 6, -1, 1, mf::DType::F64);
  const int n = 400;
  auto g = ip::smoothgrad(f, x, {.samples = n, .noise_level = 0.2, .seed = 3});
  for (int64_t i = 0; i < 2; ++i) {
    double lo = 1e9, hi = -1e9;
    for (int64_t j = 0; j < 4; ++j) lo = std::min(lo, x.at({i, j})), hi = std::max(hi, x.at({i, j}));
    double se = 2 * 0.2 * (hi - lo) / std::sqrt(n);
    for (int64_t j = 0; j < 4; ++j) EXPECT_NEAR(g.at({i, j}), 2 * x.at({i, j}), 4 * se) << i << "," << j;
  }
  // With no noise it is the saliency.
  auto g0 = ip::smoothgrad(f, x, {.samples = 3, .noise_level = 0.0});
  EXPECT_TRUE(mf_test::tensors_near(g0, ip::saliency(f, x), 1e-12));
}

TEST(Attribution, ChecksItsInputs) {
  auto m = linear_model();
  mf::Tensor x = mf::zeros({2, 5});
  EXPECT_MF_ERROR(ip::saliency(ip::forward_of(*m), x, {.output_index = 3}), "output_index 3", "3 outputs");
  EXPECT_MF_ERROR(ip::saliency(ip::forward_of(*m), x, {.batch_size = 0}), "batch_size");
  EXPECT_MF_ERROR(ip::integrated_gradients(ip::forward_of(*m), x, {.steps = 0}), "steps");
  EXPECT_MF_ERROR(ip::integrated_gradients(ip::forward_of(*m), x, {.baseline = mf::zeros({4})}), "baseline", "[4]");
  EXPECT_MF_ERROR(ip::smoothgrad(ip::forward_of(*m), x, {.samples = 0}), "samples");
  EXPECT_MF_ERROR(ip::saliency(ip::Forward(), x), "forward function is empty");
  EXPECT_MF_ERROR(ip::saliency(ip::forward_of(*m), mf::Tensor()), "saliency", "undefined");
}
