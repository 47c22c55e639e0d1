// The models of the data-parallel benchmarks (bench_data_parallel, bench_scaling): an MLP
// 784-512-512-10 and a CNN Conv32-Pool-Conv64-Pool-Dense128-Dense10 on 28x28x1 images.
#pragma once

#include <memory>

#include "meshflow/meshflow.h"
#include "meshflow/models/layers/conv.h"
#include "meshflow/models/layers/core.h"
#include "meshflow/models/layers/pooling.h"

namespace bench {

inline std::shared_ptr<meshflow::Model> mlp() {
  namespace mf = meshflow;
  auto in = mf::Input({784});
  auto h = mf::layers::Dense(512, {.activation = "relu"})(in);
  h = mf::layers::Dense(512, {.activation = "relu"})(h);
  auto out = mf::layers::Dense(10, {.activation = "softmax"})(h);
  return std::make_shared<mf::Model>(mf::Tensors{in}, mf::Tensors{out});
}

inline std::shared_ptr<meshflow::Model> cnn() {
  namespace mf = meshflow;
  auto in = mf::Input({28, 28, 1});
  auto h = mf::layers::Conv2D(32, 3, {.activation = "relu"})(in);
  h = mf::layers::MaxPooling2D(2)(h);
  h = mf::layers::Conv2D(64, 3, {.activation = "relu"})(h);
  h = mf::layers::MaxPooling2D(2)(h);
  h = mf::layers::Flatten()(h);
  h = mf::layers::Dense(128, {.activation = "relu"})(h);
  auto out = mf::layers::Dense(10, {.activation = "softmax"})(h);
  return std::make_shared<mf::Model>(mf::Tensors{in}, mf::Tensors{out});
}

}  // namespace bench
