// The zoo's ResNets (models/zoo/resnet.h): Keras's published parameter counts for ResNet50, 101
// and 152 (batch norms' moving statistics included, as Keras counts them), and a small ResNet18
// that runs, trains a step and classifies into probabilities.
#include <gtest/gtest.h>

#include "meshflow/meshflow.h"
#include "meshflow/zoo/resnet.h"
#include "test_util.h"

namespace mf = meshflow;
namespace zoo = meshflow::zoo;

TEST(ZooResNet, ParameterCountsEqualKerasApplications) {
  EXPECT_EQ(zoo::resnet(50)->count_params(), 25636712);
  EXPECT_EQ(zoo::resnet(101)->count_params(), 44707176);
  EXPECT_EQ(zoo::resnet(152)->count_params(), 60419944);
  EXPECT_EQ(zoo::resnet(50, {.include_top = false})->count_params(), 23587712);  // Keras's notop
}

TEST(ZooResNet, SmallResNet18RunsAndTrains) {
  auto m = zoo::resnet(18, {.input_shape = {32, 32, 3}, .classes = 10});
  mf::Generator g(1);
  mf::Tensor x = mf::rand({4, 32, 32, 3}, {}, &g);
  mf::Tensor p = m->predict({x}, {.verbose = 0})[0];
  ASSERT_EQ(p.shape(), (mf::Shape{4, 10}));
  mf::Tensor sums = mf::sum(p, {1});
  for (int64_t i = 0; i < 4; ++i) EXPECT_NEAR(sums.at({i}), 1.0, 1e-5);
  // 18 layers: conv1, 4 stages of 2 blocks x 2 convolutions, and the classifier; 3 projections.
  int convs = 0;
  for (const auto& l : m->layers()) convs += l->class_name() == "Conv2D";
  EXPECT_EQ(convs, 1 + 16 + 3);
  m->compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy"});
  auto h = m->fit({x}, {mf::from_vector(std::vector<int64_t>{1, 2, 3, 4}, {4}, {.dtype = mf::DType::I64})},
                  {.epochs = 1, .batch_size = 4, .verbose = 0});
  EXPECT_TRUE(std::isfinite(h.history.at("loss")[0]));
  EXPECT_MF_ERROR(zoo::resnet(20), "depth must be 18, 34, 50, 101 or 152, got 20");
  EXPECT_MF_ERROR(zoo::resnet(18, {.input_shape = {16, 16, 3}}), "input_shape");
}
