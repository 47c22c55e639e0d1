// Seed 004's Keras Tuner example: a HyperModel whose Dense width is hp.Int('units', 32, 128,
// step=32), tuned by RandomSearch(objective='val_accuracy', max_trials=5) on Fashion-MNIST, then
// results_summary() and the best model evaluated on the test set.
// Options: --quick (2 trials, 1 epoch, 5,000 training images: what CI runs), --trials N,
// --epochs N, --samples N, --dir D (the project folder; default a fresh one under /tmp),
// --device D. Without Fashion-MNIST it tunes on made-up images. Exits 0 when the best model's
// test accuracy beats 60% (chance is 10%).
#include <unistd.h>

#include <filesystem>

#include "example_util.h"
#include "meshflow/tuner/tuner.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
namespace kt = meshflow::tuner;

namespace {

struct Args {
  int trials = 5, epochs = 5;
  int64_t samples = 60000;
  std::string dir, data = "/usr/share/datasets/fashion-mnist";
  mf::Device device;
  bool own_dir = false;  // made here, removed at the end
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw mf::Error("option " + k + " needs a value");
      return argv[++i];
    };
    if (k == "--quick") a.trials = 2, a.epochs = 1, a.samples = 5000;
    else if (k == "--trials") a.trials = std::stoi(value());
    else if (k == "--epochs") a.epochs = std::stoi(value());
    else if (k == "--samples") a.samples = std::stoll(value());
    else if (k == "--dir") a.dir = value();
    else if (k == "--data") a.data = value();
    else if (k == "--device") a.device = mf::Device(value());
    else throw mf::Error("unknown option '" + k + "' (expected --quick, --trials, --epochs, --samples, --dir, --data, --device)");
  }
  if (a.trials < 1 || a.epochs < 1 || a.samples < 100) throw mf::Error("--trials, --epochs >= 1 and --samples >= 100");
  if (a.dir.empty()) {
    a.dir = "/tmp/meshflow_seed_keras_tuner_" + std::to_string(::getpid());
    a.own_dir = true;
  }
  return a;
}

// The seed's HyperModel.build(hp), as a callable.
std::shared_ptr<mf::Model> build(kt::HyperParameters& hp) {
  auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      mf::make_input_layer({784}),
      L::Dense(hp.Int("units", 32, 128, {.step = 32}), {.activation = "relu"}),
      L::Dense(10, {.activation = "softmax"})});
  model->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  return model;
}

}  // namespace

int main(int argc, char** argv) try {
  Args args = parse(argc, argv);
  mf::DeviceScope on(args.device);
  mf::Tensor x_train, y_train, x_test, y_test;
  if (std::filesystem::exists(args.data + "/train-images-idx3-ubyte.gz")) {
    auto load = [&](const char* images, const char* labels, int64_t n) {
      mf::Tensor x = mf::io::read_idx(args.data + "/" + images);
      mf::Tensor y = mf::io::read_idx(args.data + "/" + labels, /*as_float=*/false);
      n = std::min(n, x.size(0));
      return std::make_pair((x.reshape({x.size(0), 784}) / 255.0).slice(0, 0, n).contiguous(), y.slice(0, 0, n).contiguous());
    };
    std::tie(x_train, y_train) = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", args.samples);
    std::tie(x_test, y_test) = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000);
  } else {
    std::printf("(no Fashion-MNIST under %s: made-up images whose label is the brightest of ten pixels)\n",
                args.data.c_str());
    x_train = example::uniform({args.samples, 784}, 1);
    y_train = mf::argmax(x_train.slice(1, 0, 10), 1);
    x_test = example::uniform({2000, 784}, 2);
    y_test = mf::argmax(x_test.slice(1, 0, 10), 1);
  }
  // The seed's validation_data = (x_val, y_val): the last 10% of the training images.
  int64_t n_val = x_train.size(0) / 10, n_fit = x_train.size(0) - n_val;
  mf::Tensor x_val = x_train.slice(0, n_fit, x_train.size(0)), y_val = y_train.slice(0, n_fit, y_train.size(0));
  x_train = x_train.slice(0, 0, n_fit);
  y_train = y_train.slice(0, 0, n_fit);

  kt::RandomSearch tuner(build, {.objective = "val_accuracy", .max_trials = args.trials, .directory = args.dir,
                                 .project_name = "seed_keras_tuner", .overwrite = true, .seed = 1});
  tuner.search(x_train, y_train,
               {.epochs = args.epochs, .batch_size = 128, .verbose = 0,
                .validation_data = std::make_pair(mf::Tensors(x_val), mf::Tensors(y_val))});
  tuner.results_summary();

  auto best = tuner.get_best_models(1).at(0);
  auto hp = tuner.get_best_hyperparameters(1).at(0);
  auto scores = best->evaluate(x_test, y_test, {.batch_size = 256, .verbose = 0});
  std::printf("best units = %lld; test accuracy %.4f (project folder %s)\n",
              static_cast<long long>(hp.get("units").get<int64_t>()), scores["accuracy"],
              tuner.project_dir().c_str());
  if (args.own_dir) std::filesystem::remove_all(args.dir);
  if (!(scores["accuracy"] > 0.6)) {
    std::printf("FAILED: the best model's test accuracy is not above 0.6\n");
    return 1;
  }
  return 0;
} catch (const mf::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
