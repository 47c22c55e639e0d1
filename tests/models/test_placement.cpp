// Manual placement (Note [Layer placement]): layers called inside a DeviceScope create their
// weights and run there, in functional, Sequential and subclassed models; training matches one
// device exactly; saving keeps the placement or puts everything on one device.
#include <filesystem>

#include "meshflow/meshflow.h"
#include "meshflow/models/saving.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::tensors_near;

namespace {

// 4 -> 6 (relu) -> 3, float64; the first layer on `first`, the second on `second` (nullopt: no scope).
std::shared_ptr<Model> two_layer(std::optional<Device> first, std::optional<Device> second) {
  reset_layer_names();
  manual_seed(5);
  auto in = Input({4}, {.dtype = DType::F64});
  Tensor h, out;
  {
    std::optional<DeviceScope> on;
    if (first) on.emplace(*first);
    h = layers::Dense(6, {.activation = "relu", .dtype = DType::F64})(in);
  }
  {
    std::optional<DeviceScope> on;
    if (second) on.emplace(*second);
    out = layers::Dense(3, {.dtype = DType::F64})(h);
  }
  auto m = std::make_shared<Model>(in, out);
  m->compile({.optimizer = "adam", .loss = "mse"});
  return m;
}

Tensor xs() { return mf_test::random_tensor({16, 4}, 11, -1, 1); }
Tensor ys() { return mf_test::random_tensor({16, 3}, 12, -1, 1); }

}  // namespace

TEST(Placement, TwoDevicesTrainExactlyAsOne) {
  auto split = two_layer(cpu(0), cpu(1)), one = two_layer(std::nullopt, std::nullopt);
  auto w = split->weights();
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0].device(), cpu(0));  // dense/kernel
  EXPECT_EQ(w[2].device(), cpu(1));  // dense_1/kernel
  EXPECT_EQ(split->layers()[1]->device(), cpu(1));
  // Gradients cross back to the first device in backward.
  split->fit(xs(), ys(), {.epochs = 3, .batch_size = 4, .verbose = 0, .shuffle = false});
  one->fit(xs(), ys(), {.epochs = 3, .batch_size = 4, .verbose = 0, .shuffle = false});
  auto a = split->weights(), b = one->weights();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].device(), i < 2 ? cpu(0) : cpu(1)) << a[i].name();  // the optimizer updated it where it lives
    EXPECT_TRUE(tensors_near(a[i].to(cpu(0)), b[i], 1e-10, 1e-10)) << a[i].name();
  }
  auto ea = split->evaluate(xs(), ys(), {.verbose = 0}), eb = one->evaluate(xs(), ys(), {.verbose = 0});
  EXPECT_NEAR(ea["loss"], eb["loss"], 1e-12);
  Tensor pa = split->predict({xs()})[0], pb = one->predict({xs()})[0];
  EXPECT_EQ(pa.device(), cpu(1));
  EXPECT_TRUE(tensors_near(pa.to(cpu(0)), pb, 1e-12, 1e-12));
  EXPECT_NE(split->summary_string().find("Devices: dense on cpu:0, dense_1 on cpu:1"), std::string::npos)
      << split->summary_string();
  EXPECT_EQ(one->summary_string().find("Devices:"), std::string::npos);
}

TEST(Placement, GradientsFlowBackAcrossDevices) {
  auto m = two_layer(cpu(2), cpu(1));
  Tensor x = xs().to(cpu(2));
  Tensor y = (*m)(x);
  EXPECT_EQ(y.device(), cpu(1));
  mean(square(y)).backward();
  for (auto& v : m->trainable_weights()) {
    ASSERT_TRUE(v.grad().defined()) << v.name();
    EXPECT_EQ(v.grad().device(), v.device()) << v.name();
  }
  // The same gradients on one device.
  auto ref = two_layer(std::nullopt, std::nullopt);
  mean(square((*ref)(xs()))).backward();
  auto a = m->trainable_weights(), b = ref->trainable_weights();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(tensors_near(a[i].grad().to(cpu(0)), b[i].grad(), 1e-12, 1e-12)) << a[i].name();
}

TEST(Placement, SaveKeepsThePlacementOrLoadsOnOneDevice) {
  auto dir = mf_test::temp_folder("placement");
  auto m = two_layer(cpu(0), cpu(1));
  m->fit(xs(), ys(), {.epochs = 1, .batch_size = 8, .verbose = 0});
  m->save(dir + "/m");
  Tensor want = m->predict({xs()})[0].to(cpu(0));
  auto same = load_model(dir + "/m");
  EXPECT_EQ(same->layers()[1]->device(), cpu(1));
  EXPECT_EQ(same->weights()[2].device(), cpu(1));
  EXPECT_TRUE(tensors_near(same->predict({xs()})[0].to(cpu(0)), want, 0, 0));
  auto one = load_model(dir + "/m", true, cpu(0));
  for (const auto& w : one->weights()) EXPECT_EQ(w.device(), cpu(0)) << w.name();
  EXPECT_TRUE(tensors_near(one->predict({xs()})[0], want, 0, 0));
  // Training goes on where it stopped, on either placement.
  same->fit(xs(), ys(), {.epochs = 1, .batch_size = 8, .verbose = 0, .shuffle = false});
  one->fit(xs(), ys(), {.epochs = 1, .batch_size = 8, .verbose = 0, .shuffle = false});
  for (size_t i = 0; i < one->weights().size(); ++i)
    EXPECT_TRUE(tensors_near(same->weights()[i].to(cpu(0)), one->weights()[i], 1e-12, 1e-12));
  std::filesystem::remove_all(dir);
}

// A subclassed model places a layer with a scope inside call(); a Sequential one with set_device.
class SplitMlp : public Model {
 public:
  SplitMlp() {
    a_ = track(layers::Dense(6, {.activation = "relu", .dtype = DType::F64}).ptr());
    b_ = track(layers::Dense(3, {.dtype = DType::F64}).ptr());
  }
  Tensor call(const Tensor& x) override {
    Tensor h = (*a_)(x);
    DeviceScope on("/device:CPU:1");  // TF's spelling of cpu:1
    return (*b_)(h);
  }

 private:
  std::shared_ptr<Layer> a_, b_;
};

TEST(Placement, SubclassedAndSequentialModels) {
  reset_layer_names();
  SplitMlp sub;
  sub.compile({.optimizer = "sgd", .loss = "mse"});
  sub.fit(xs(), ys(), {.epochs = 2, .batch_size = 4, .verbose = 0});
  auto w = sub.weights();
  EXPECT_EQ(w[0].device(), cpu(0));
  EXPECT_EQ(w[2].device(), cpu(1));

  reset_layer_names();
  auto d1 = layers::Dense(6, {.activation = "relu", .dtype = DType::F64});
  auto d2 = layers::Dense(3, {.dtype = DType::F64});
  d2->set_device(cpu(1));
  Sequential seq({d1.ptr(), d2.ptr()});
  seq.compile({.optimizer = "sgd", .loss = "mse"});
  seq.fit(xs(), ys(), {.epochs = 2, .batch_size = 4, .verbose = 0});
  EXPECT_EQ(seq.weights()[0].device(), cpu(0));
  EXPECT_EQ(seq.weights()[2].device(), cpu(1));
  EXPECT_NE(seq.summary_string().find("Devices: dense_1 on cpu:1"), std::string::npos) << seq.summary_string();
  // Model::to moves the weights and the placement together.
  seq.to(cpu(2));
  for (const auto& v : seq.weights()) EXPECT_EQ(v.device(), cpu(2));
  EXPECT_EQ(seq.predict({xs()})[0].device(), cpu(2));
}
