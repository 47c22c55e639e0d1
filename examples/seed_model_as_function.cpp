// Seed 003: a layer is a function on tensors, a model is built from the same input it was
// called on (an unrelated input is a "Graph disconnected" error), and a model is itself a
// function that can be called on new tensors.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  auto input_tensor = mf::Input({32});
  auto x = L::Dense(32, {.activation = "relu"})(input_tensor);
  x = L::Dense(32, {.activation = "relu"})(x);
  auto output_tensor = L::Dense(10, {.activation = "softmax"})(x);
  auto model = std::make_shared<mf::Model>(mf::Tensors{input_tensor}, mf::Tensors{output_tensor});
  model->summary();  // 1,056 + 1,056 + 330 = 2,442 parameters

  try {
    auto unrelated_input = mf::Input({32});
    mf::Model bad_model({unrelated_input}, {output_tensor});
    std::printf("FAILED: a model from an unrelated input was accepted\n");
    return 1;
  } catch (const mf::Error& e) {
    std::printf("as expected: %s\n", e.what());
  }

  // The model as a function: called on a new input inside a bigger model.
  auto new_input = mf::Input({32});
  auto reused = (*model)(new_input);
  mf::Model wrapper({new_input}, {L::Dense(10, {.activation = "softmax"})(reused)});

  mf::Tensor x_train = example::uniform({1000, 32}, 16);
  mf::Tensor y_train = mf::one_hot(mf::argmax(x_train.slice(1, 0, 10), 1), 10);
  model->compile({.optimizer = "rmsprop", .loss = "categorical_crossentropy"});
  auto history = model->fit(x_train, y_train, {.epochs = 10, .batch_size = 128, .verbose = 0});
  wrapper.compile({.optimizer = "rmsprop", .loss = "categorical_crossentropy"});
  wrapper.fit(x_train, y_train, {.epochs = 2, .batch_size = 128, .verbose = 0});
  return example::report(history);
}
