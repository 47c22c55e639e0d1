// Seed 000, section 4: model ensembling by averaging two sub-networks' predictions.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  auto inp = mf::Input({10});
  auto b1 = L::Dense(32, {.activation = "relu"})(inp);
  auto out1 = L::Dense(1)(b1);
  auto b2 = L::Dense(16, {.activation = "relu"})(inp);
  auto out2 = L::Dense(1)(b2);
  auto avg = L::average({out1, out2});
  mf::Model model({inp}, {avg});
  model.compile({.optimizer = "adam", .loss = "mse"});
  model.summary();

  mf::Tensor x = example::uniform({1024, 10}, 6);
  mf::Tensor y = mf::sum(mf::tanh(x * 3.0 - 1.5), {1}, true);
  auto history = model.fit(x, y, {.epochs = 15, .batch_size = 32, .verbose = 0});
  return example::report(history);
}
