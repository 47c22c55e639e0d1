// Seed 000, section 1: a custom layer with two inputs that returns a dict {"sum", "diff"}; the
// model exposes both as outputs and learns to scale each.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

class MultiIO : public mf::Layer {
 public:
  mf::Tensors call(const mf::Tensors& in) override { return {{"sum", in[0] + in[1]}, {"diff", in[0] - in[1]}}; }
};

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  auto in1 = mf::Input({4}), in2 = mf::Input({4});
  auto io = mf::make_layer<MultiIO>()({in1, in2});
  auto out_sum = L::Dense(4, {.name = "sum"})(io["sum"]);
  auto out_diff = L::Dense(4, {.name = "diff"})(io["diff"]);
  mf::Model model({in1, in2}, {out_sum, out_diff});
  model.summary();

  mf::Tensor a = example::uniform({512, 4}, 1), b = example::uniform({512, 4}, 2);
  model.compile({.optimizer = "adam", .loss = "mse"});
  auto history = model.fit({a, b}, {{"sum", (a + b) * 2.0}, {"diff", (a - b) * -3.0}},
                           {.epochs = 20, .batch_size = 32, .verbose = 0});
  return example::report(history);
}
