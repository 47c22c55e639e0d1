// Fashion-MNIST with the Keras API: an MLP or a CNN trained with EarlyStopping, ModelCheckpoint
// and TensorBoard on, saved, reloaded from disk and evaluated again.
//   ./fashion_mnist_keras --model mlp|cnn [--epochs N] [--min-accuracy A] [--out DIR] [--data DIR] [--device D]
// Exits 0 when the test accuracy reaches A and the reloaded model scores the same.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "meshflow/meshflow.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
namespace cb = meshflow::callbacks;

namespace {

struct Args {
  std::string model = "mlp";
  int epochs = 8;
  double min_accuracy = 0.0;
  std::string out = "fashion_mnist_out";
  std::string data = "/usr/share/datasets/fashion-mnist";
  mf::Device device;  // --device cuda:0: data, model and training on the GPU
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw mf::Error("option " + k + " needs a value");
      return argv[++i];
    };
    if (k == "--model") a.model = value();
    else if (k == "--epochs") a.epochs = std::stoi(value());
    else if (k == "--min-accuracy") a.min_accuracy = std::stod(value());
    else if (k == "--out") a.out = value();
    else if (k == "--data") a.data = value();
    else if (k == "--device") a.device = mf::Device(value());
    else throw mf::Error("unknown option '" + k + "' (expected --model, --epochs, --min-accuracy, --out, --data, --device)");
  }
  if (a.model != "mlp" && a.model != "cnn") throw mf::Error("--model must be mlp or cnn, got '" + a.model + "'");
  return a;
}

std::shared_ptr<mf::Model> build(const std::string& kind) {
  if (kind == "mlp") {
    auto in = mf::Input({28, 28, 1});
    auto x = L::Flatten()(in);
    x = L::Dense(256, {.activation = "relu"})(x);
    x = L::Dense(128, {.activation = "relu"})(x);
    auto out = L::Dense(10, {.activation = "softmax"})(x);
    return std::make_shared<mf::Model>(mf::Tensors{in}, mf::Tensors{out});
  }
  auto in = mf::Input({28, 28, 1});
  auto x = L::Conv2D(32, 3, {.activation = "relu"})(in);
  x = L::MaxPooling2D(2)(x);
  x = L::Conv2D(64, 3, {.activation = "relu"})(x);
  x = L::MaxPooling2D(2)(x);
  x = L::Flatten()(x);
  x = L::Dense(128, {.activation = "relu"})(x);
  auto out = L::Dense(10, {.activation = "softmax"})(x);
  return std::make_shared<mf::Model>(mf::Tensors{in}, mf::Tensors{out});
}

}  // namespace

int main(int argc, char** argv) try {
  Args args = parse(argc, argv);
  mf::DeviceScope on(args.device);
  auto load = [&](const char* images, const char* labels) {
    mf::Tensor x = mf::io::read_idx(args.data + "/" + images);
    mf::Tensor y = mf::io::read_idx(args.data + "/" + labels, /*as_float=*/false);
    return std::make_pair(x.reshape({x.size(0), 28, 28, 1}) / 255.0, mf::one_hot(y, 10));
  };
  auto [x_train, y_train] = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz");
  auto [x_test, y_test] = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");
  std::filesystem::create_directories(args.out);

  auto model = build(args.model);
  model->compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  model->summary();
  auto early = std::make_shared<cb::EarlyStopping>(
      cb::EarlyStoppingOptions{.monitor = "val_accuracy", .patience = 2, .restore_best_weights = true});
  auto checkpoint = std::make_shared<cb::ModelCheckpoint>(
      args.out + "/best-{epoch:02d}-{val_accuracy:.4f}.safetensors",
      cb::ModelCheckpointOptions{.monitor = "val_accuracy", .save_best_only = true, .save_weights_only = true});
  auto tensorboard = std::make_shared<cb::TensorBoard>(args.out + "/logs", cb::TensorBoardOptions{.histogram_freq = 1});
  model->fit(x_train, y_train,
             {.epochs = args.epochs, .batch_size = 64, .verbose = 2, .validation_split = 0.1,
              .callbacks = {early, checkpoint, tensorboard}});

  auto scores = model->evaluate(x_test, y_test, {.batch_size = 256, .verbose = 0});
  std::printf("test accuracy: %.4f (loss %.4f); best checkpoint: %s\n", scores["accuracy"], scores["loss"],
              checkpoint->saved_paths().empty() ? "none" : checkpoint->saved_paths().back().c_str());

  model->save(args.out + "/model");
  auto reloaded = mf::load_model(args.out + "/model");
  reloaded->compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  auto again = reloaded->evaluate(x_test, y_test, {.batch_size = 256, .verbose = 0});
  std::printf("reloaded from %s/model: test accuracy %.4f (loss %.4f)\n", args.out.c_str(), again["accuracy"],
              again["loss"]);
  bool same = again["accuracy"] == scores["accuracy"] && std::fabs(again["loss"] - scores["loss"]) < 1e-6;
  if (!same) std::printf("FAILED: the reloaded model scores differently\n");
  if (scores["accuracy"] < args.min_accuracy)
    std::printf("FAILED: accuracy %.4f is below %.4f\n", scores["accuracy"], args.min_accuracy);
  return same && scores["accuracy"] >= args.min_accuracy ? 0 : 1;
} catch (const mf::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
