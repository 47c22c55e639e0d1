// Seed 004, section 6: manual model parallelism. As `with tf.device('/device:GPU:0')` around one
// layer and '/device:GPU:1' around the next, each Dense layer is called inside a DeviceScope: it
// creates its weights and runs there, activations cross devices in forward and their gradients
// in backward. By default the two devices are the virtual cpu:0 and cpu:1; on a machine with two
// GPUs run it with --devices cuda:0,cuda:1 (or /device:GPU:0,/device:GPU:1).
// It also trains the same model on one device and prints how far the two ended apart.
#include <algorithm>
#include <cmath>

#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

namespace {

// --devices A,B; --device D puts both layers on D (what ctest's --device runs pass).
std::pair<mf::Device, mf::Device> parse_devices(int argc, char** argv) {
  try {
    std::pair<mf::Device, mf::Device> d{mf::cpu(0), mf::cpu(1)};
    for (int i = 1; i < argc; ++i) {
      std::string k = argv[i];
      if (k == "--devices" && i + 1 < argc) {
        std::string v = argv[++i];
        const size_t comma = v.find(',');
        if (comma == std::string::npos) throw mf::Error("--devices wants two devices, as in cpu:0,cpu:1");
        d = {mf::Device(v.substr(0, comma)), mf::Device(v.substr(comma + 1))};
      } else if (k == "--device" && i + 1 < argc) {
        d.first = d.second = mf::Device(std::string(argv[++i]));
      } else {
        throw mf::Error("unknown option '" + k + "' (expected --devices A,B or --device D)");
      }
    }
    return d;
  } catch (const mf::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    std::exit(2);
  }
}

std::shared_ptr<mf::Model> build(std::optional<mf::Device> first, std::optional<mf::Device> second) {
  mf::reset_layer_names();
  mf::manual_seed(1);
  auto inputs = mf::Input({32});
  mf::Tensor layer1, output;
  {
    std::optional<mf::DeviceScope> on;
    if (first) on.emplace(*first);
    layer1 = L::Dense(64, {.activation = "relu"})(inputs);
  }
  {
    std::optional<mf::DeviceScope> on;
    if (second) on.emplace(*second);
    output = L::Dense(10, {.activation = "softmax"})(layer1);
  }
  auto model = std::make_shared<mf::Model>(inputs, output);
  model->compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  return model;
}

}  // namespace

int main(int argc, char** argv) {
  auto [first, second] = parse_devices(argc, argv);
  std::shared_ptr<mf::Model> model;
  try {
    model = build(first, second);
  } catch (const mf::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  model->summary();  // ends with the devices of the placed layers

  // Ten classes, each a noisy copy of its own prototype.
  mf::Tensor prototypes = example::uniform({10, 32}, 2);
  mf::Tensor labels = mf::argmax(example::uniform({2048, 10}, 3), 1);
  mf::Tensor x = mf::gather(prototypes, labels) + example::uniform({2048, 32}, 4) * 0.5;
  mf::Tensor y = example::one_hot_labels(labels, 10);
  const mf::FitOptions options{.epochs = 8, .batch_size = 64, .verbose = 0, .shuffle = false};
  auto history = model->fit(x, y, options);
  std::printf("weights: dense on %s, dense_1 on %s\n", model->weights()[0].device().str().c_str(),
              model->weights()[2].device().str().c_str());

  auto reference = build(std::nullopt, std::nullopt);
  reference->fit(x, y, options);
  double apart = 0;
  for (size_t i = 0; i < model->weights().size(); ++i) {
    auto a = model->weights()[i].to(mf::cpu()).to_vector<float>(), b = reference->weights()[i].to_vector<float>();
    for (size_t k = 0; k < a.size(); ++k) apart = std::max(apart, double(std::fabs(a[k] - b[k])));
  }
  std::printf("largest difference from the same model trained on one device: %.3g\n", apart);
  if (apart > 1e-4) {
    std::printf("FAILED: the placed model trained differently\n");
    return 1;
  }
  return example::report(history);
}
