// Seed 001: a model with two inputs and two outputs sharing one Dense layer.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  auto input1 = mf::Input({784}), input2 = mf::Input({784});
  auto dense1 = L::Dense(64, {.activation = "relu"});
  auto output1 = L::Dense(10, {.activation = "softmax"})(dense1(input1));
  auto output2 = L::Dense(10, {.activation = "softmax"})(dense1(input2));
  mf::Model model({input1, input2}, {output1, output2});
  model.compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  model.summary();

  mf::Tensor x1 = example::uniform({512, 784}, 11), x2 = example::uniform({512, 784}, 12);
  mf::Tensor y1 = mf::one_hot(mf::argmax(x1.slice(1, 0, 10), 1), 10);
  mf::Tensor y2 = mf::one_hot(mf::argmax(x2.slice(1, 100, 110), 1), 10);
  auto history = model.fit({x1, x2}, {y1, y2}, {.epochs = 8, .batch_size = 32, .verbose = 2});
  return example::report(history);
}
