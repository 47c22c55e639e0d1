// The models the ONNX export tests run: the Fashion-MNIST MLP and CNN of examples/fashion_mnist_keras,
// the seed examples' architectures (examples/seed_*.cpp) and models that cover every exported layer.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "meshflow/meshflow.h"

namespace export_zoo {

struct InputSpec {
  meshflow::Shape shape;  // without the batch dimension; -1: a dynamic length, fed as `length`
  meshflow::DType dtype = meshflow::DType::F32;
  int64_t vocab = 0;      // > 0: token ids in [0, vocab) (of dtype, int64 or float32)
  int64_t length = 0;
  bool image = false;     // pixels in [0, 1) instead of N(0, 1)
};

struct Fixture {
  std::string name;
  std::shared_ptr<meshflow::Model> model;
  std::vector<InputSpec> inputs;
};

// Every fixture, built with fresh layer names; weights are random (biases and BatchNormalization
// statistics included, so a mapping that drops one is seen).
std::vector<std::function<Fixture()>> all_fixtures();

// Draws seeded random biases, betas, gammas and moving statistics (variances positive).
void randomize_weights(meshflow::Model& model, uint64_t seed);

}  // namespace export_zoo
