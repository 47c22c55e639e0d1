// Seed 004's saliency maps: a small CNN trained on Fashion-MNIST, then saliency, SmoothGrad and
// integrated gradients of its predicted class for a few test images, written as PNG heatmaps
// (and TensorBoard image summaries) to --out.
// Options: --quick (1 epoch on 5,000 images: what CI runs), --epochs N, --samples N, --images N,
// --out DIR (default interpret_fashion_mnist_out), --data DIR, --device D.
// Exits 0 when the test accuracy beats 60% and every image's integrated gradients sum to
// f(x) - f(black image) within 1% (completeness), checked here.
#include <cmath>
#include <filesystem>

#include "example_util.h"
#include "meshflow/interpret/attribution.h"
#include "meshflow/interpret/heatmap.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
namespace ip = meshflow::interpret;

namespace {

struct Args {
  int epochs = 3, images = 4;
  int64_t samples = 60000;
  std::string out = "interpret_fashion_mnist_out", data = "/usr/share/datasets/fashion-mnist";
  mf::Device device;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw mf::Error("option " + k + " needs a value");
      return argv[++i];
    };
    if (k == "--quick") a.epochs = 1, a.samples = 5000;
    else if (k == "--epochs") a.epochs = std::stoi(value());
    else if (k == "--samples") a.samples = std::stoll(value());
    else if (k == "--images") a.images = std::stoi(value());
    else if (k == "--out") a.out = value();
    else if (k == "--data") a.data = value();
    else if (k == "--device") a.device = mf::Device(value());
    else throw mf::Error("unknown option '" + k + "' (expected --quick, --epochs, --samples, --images, --out, --data, --device)");
  }
  if (a.epochs < 1 || a.samples < 100 || a.images < 1) throw mf::Error("--epochs, --images >= 1 and --samples >= 100");
  return a;
}

const char* kClasses[] = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"};

}  // namespace

int main(int argc, char** argv) try {
  Args args = parse(argc, argv);
  mf::DeviceScope on(args.device);
  if (!std::filesystem::exists(args.data + "/train-images-idx3-ubyte.gz")) {
    std::printf("skipped: no Fashion-MNIST under %s (scripts/setup.sh installs it)\n", args.data.c_str());
    return 0;
  }
  auto load = [&](const char* images, const char* labels, int64_t n) {
    mf::Tensor x = mf::io::read_idx(args.data + "/" + images);
    mf::Tensor y = mf::io::read_idx(args.data + "/" + labels, /*as_float=*/false);
    n = std::min(n, x.size(0));
    return std::make_pair((x.reshape({x.size(0), 28, 28, 1}) / 255.0).slice(0, 0, n).contiguous(), y.slice(0, 0, n).contiguous());
  };
  auto [x_train, y_train] = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", args.samples);
  auto [x_test, y_test] = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000);

  // tanh units and average pooling keep the network smooth (no ReLU or max-pool kinks on the
  // integration path), so 64 steps of the trapezoidal rule are plenty.
  mf::Sequential model({mf::make_input_layer({28, 28, 1}), L::Conv2D(16, 3, {.activation = "tanh"}),
                        L::AveragePooling2D(2), L::Conv2D(32, 3, {.activation = "tanh"}), L::AveragePooling2D(2),
                        L::Flatten(), L::Dense(64, {.activation = "tanh"}), L::Dense(10, {.activation = "softmax"})});
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  model.fit(x_train, y_train, {.epochs = args.epochs, .batch_size = 64, .verbose = 2});
  auto scores = model.evaluate(x_test, y_test, {.batch_size = 256, .verbose = 0});
  std::printf("test accuracy %.4f\n", scores["accuracy"]);

  std::filesystem::create_directories(args.out);
  mf::Tensor images = x_test.slice(0, 0, args.images).contiguous();
  mf::Tensor probs = model.predict(images)[0];
  mf::Tensor zero_probs = model.predict(mf::zeros(images.shape()))[0];
  auto forward = ip::forward_of(model);
  bool complete = true;
  for (int64_t i = 0; i < args.images; ++i) {
    mf::Tensor one = images.slice(0, i, i + 1);
    int64_t k = static_cast<int64_t>(mf::argmax(probs.slice(0, i, i + 1), 1).item());
    mf::Tensor sal = ip::saliency(forward, one, {.output_index = k});
    mf::Tensor smooth = ip::smoothgrad(forward, one, {.output_index = k, .samples = 32, .seed = static_cast<uint64_t>(i)});
    mf::Tensor ig = ip::integrated_gradients(forward, one, {.output_index = k, .steps = 64});
    double sum = mf::sum(ig).item();
    double delta = probs.at({i, k}) - zero_probs.at({i, k});
    bool ok = std::fabs(sum - delta) <= 0.01 * std::fabs(delta);
    complete = complete && ok;
    std::printf("image %lld: label %s, predicted %s (p = %.3f); IG sum %.5f vs f(x) - f(0) = %.5f %s\n",
                static_cast<long long>(i), kClasses[static_cast<int64_t>(y_test.at({i}))], kClasses[k],
                probs.at({i, k}), sum, delta, ok ? "(within 1%)" : "(NOT within 1%)");
    mf::Tensor img = one.reshape({28, 28});
    std::string stem = args.out + "/image" + std::to_string(i);
    ip::write_heatmap_png(stem + "_saliency.png", img, sal.reshape({28, 28}), {.scale = 8});
    ip::write_heatmap_png(stem + "_smoothgrad.png", img, smooth.reshape({28, 28}), {.scale = 8});
    ip::write_heatmap_png(stem + "_integrated_gradients.png", img, ig.reshape({28, 28}), {.absolute = false, .scale = 8});
    ip::write_heatmap_summary(args.out + "/logs", "integrated_gradients/image" + std::to_string(i), img,
                              ig.reshape({28, 28}), 0, {.absolute = false, .scale = 4});
  }
  std::printf("wrote %d x 3 PNG heatmaps to %s (TensorBoard images in %s/logs)\n", args.images, args.out.c_str(),
              args.out.c_str());
  if (!(scores["accuracy"] > 0.6)) {
    std::printf("FAILED: test accuracy is not above 0.6\n");
    return 1;
  }
  if (!complete) {
    std::printf("FAILED: integrated gradients are not complete within 1%%\n");
    return 1;
  }
  return 0;
} catch (const mf::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
