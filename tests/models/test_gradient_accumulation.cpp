// Gradient accumulation (OptimizerOptions::gradient_accumulation_steps, Keras 3's option): fit with
// batches of 8 and 4 accumulated calls equals fit with batches of 32 (every update sees the mean
// gradient of the same 32 rows), for Adam with global_clipnorm; the step counter counts updates;
// bad values and unsupported combinations are named.
#include <gtest/gtest.h>

#include "meshflow/meshflow.h"
#include "test_util.h"

namespace mf = meshflow;
using mf::DType;
using mf::Tensor;

namespace {

std::shared_ptr<mf::Sequential> model(uint64_t seed) {
  mf::Generator g(seed);
  auto m = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      mf::make_input_layer({5}, {.dtype = DType::F64}),
      mf::layers::Dense(7, {.activation = "tanh", .dtype = DType::F64}),
      mf::layers::Dense(2, {.dtype = DType::F64})});
  for (auto& w : m->weights()) w.assign(mf::randn(w.shape(), {.dtype = DType::F64}, &g) * 0.5);
  return m;
}

std::shared_ptr<mf::Optimizer> adam(int64_t accumulate) {
  mf::optimizers::AdamOptions o;
  o.learning_rate = 0.05;
  o.global_clipnorm = 0.3;  // clipping must see the mean gradient, not each part
  o.gradient_accumulation_steps = accumulate;
  return mf::optimizers::Adam(o);
}

}  // namespace

TEST(GradientAccumulation, FourBatchesOfEightEqualOneOf32) {
  mf::Generator g(4);
  Tensor x = mf::randn({64, 5}, {.dtype = DType::F64}, &g), y = mf::randn({64, 2}, {.dtype = DType::F64}, &g);
  auto whole = model(1), parts = model(1);
  whole->compile({.optimizer = adam(1), .loss = "mse"});
  parts->compile({.optimizer = adam(4), .loss = "mse"});
  whole->fit({x}, {y}, {.epochs = 3, .batch_size = 32, .verbose = 0, .shuffle = false});
  parts->fit({x}, {y}, {.epochs = 3, .batch_size = 8, .verbose = 0, .shuffle = false});
  EXPECT_EQ(whole->optimizer()->iterations(), 6);
  EXPECT_EQ(parts->optimizer()->iterations(), 6);  // 24 calls, 6 updates
  auto a = whole->weights(), b = parts->weights();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(mf_test::tensors_near(a[i], b[i], 1e-12, 1e-12)) << a[i].name();
  // Without accumulation, batches of 8 train differently (the test would catch a no-op).
  auto eight = model(1);
  eight->compile({.optimizer = adam(1), .loss = "mse"});
  eight->fit({x}, {y}, {.epochs = 3, .batch_size = 8, .verbose = 0, .shuffle = false});
  EXPECT_FALSE(mf_test::tensors_near(eight->weights()[0], a[0], 1e-6, 1e-6));
  // The option survives the optimizer's config.
  EXPECT_EQ(parts->optimizer()->get_config().value("gradient_accumulation_steps", 0), 4);
}

TEST(GradientAccumulation, BadValuesAreNamed) {
  mf::optimizers::SGDOptions o;
  o.gradient_accumulation_steps = 0;
  EXPECT_MF_ERROR(mf::optimizers::SGD(o), "gradient_accumulation_steps must be >= 1", "got 0");
  auto opt = adam(2);
  Tensor w = mf::zeros({3}, {.dtype = DType::F64});
  w.set_requires_grad(true);
  mf::Variable v(w, "v", true);
  const std::vector<double> norms{1.0};
  EXPECT_MF_ERROR(opt->apply_gradients({mf::ones({3}, {.dtype = DType::F64})}, {v}, &norms),
                  "gradient_accumulation_steps", "not supported yet");
}
