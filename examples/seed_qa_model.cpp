// Seed 003: a multi-input model. Two branches encode two inputs, Add merges them, a softmax
// classifier answers; trained with rmsprop and categorical crossentropy on random data.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  auto input_tensor = mf::Input({64});
  auto x = L::Dense(32, {.activation = "relu"})(input_tensor);
  x = L::Dense(32, {.activation = "relu"})(x);
  auto input_tensorA = mf::Input({64});
  auto xA = L::Dense(32, {.activation = "relu"})(input_tensorA);
  xA = L::Dense(32, {.activation = "relu"})(xA);
  auto added = L::add({x, xA});
  auto output_tensorA = L::Dense(10, {.activation = "softmax"})(added);
  mf::Model model({input_tensor, input_tensorA}, {output_tensorA});
  model.summary();

  mf::Tensor x_1 = example::uniform({1000, 64}, 13), x_2 = example::uniform({1000, 64}, 14);
  mf::Tensor y_train = example::uniform({1000, 10}, 15);
  y_train = y_train / mf::sum(y_train, {1}, true);  // each row a distribution over the 10 answers
  model.compile({.optimizer = "rmsprop", .loss = "categorical_crossentropy"});
  auto history = model.fit({x_1, x_2}, y_train, {.epochs = 10, .batch_size = 128});
  auto score = model.evaluate({x_1, x_2}, y_train, {.verbose = 0});
  std::printf("evaluate: loss %.4f\n", score["loss"]);
  return example::report(history);
}
