// Seed 000, section 3: one input, two outputs, two losses (regression + classification) with
// per-output metrics, as in DESIGN.md.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  auto inp = mf::Input({4});
  auto h = L::Dense(3, {.activation = "relu"})(inp);
  auto out_reg = L::Dense(1, {.name = "regression"})(h);
  auto out_clf = L::Dense(5, {.activation = "softmax", .name = "classification"})(h);
  mf::Model model({inp}, {out_reg, out_clf});
  model.compile({.optimizer = "adam",
                 .loss = {{"regression", "mse"}, {"classification", "categorical_crossentropy"}},
                 .metrics = {{"regression", {"mae"}}, {"classification", {"accuracy"}}}});
  model.summary();

  mf::Tensor x = example::uniform({2000, 4}, 5);
  mf::Tensor y_reg = mf::sum(x, {1}, true);
  mf::Tensor y_clf = mf::one_hot(mf::argmax(x, 1) + mf::argmax(x.slice(1, 0, 2), 1), 5);
  auto history = model.fit(x, {{"regression", y_reg}, {"classification", y_clf}},
                           {.epochs = 10, .batch_size = 128, .verbose = 2, .validation_split = 0.1});
  return example::report(history);
}
