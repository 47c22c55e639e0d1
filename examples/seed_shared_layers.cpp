// Seed 000, section 2: shared layers (a Siamese network). One Dense layer, one set of weights,
// applied to two inputs; the merged features predict whether the inputs are close.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  auto shared = L::Dense(8, {.activation = "relu"});
  auto iA = mf::Input({16}), iB = mf::Input({16});
  auto outA = shared(iA), outB = shared(iB);
  auto merged = L::concatenate({outA, outB});
  auto output = L::Dense(1)(merged);
  mf::Model model({iA, iB}, {output});
  model.summary();  // the shared layer appears once, connected to both inputs

  mf::Tensor a = example::uniform({1024, 16}, 3), b = example::uniform({1024, 16}, 4);
  mf::Tensor y = mf::sum(mf::square(a - b), {1}, true);  // squared distance
  model.compile({.optimizer = "adam", .loss = "mse"});
  auto history = model.fit({a, b}, y, {.epochs = 15, .batch_size = 32, .verbose = 0});
  return example::report(history);
}
