// Seed 004's Keras Tuner example: a HyperModel whose Dense width is hp.Int('units', 32, 128,
// step=32), tuned by RandomSearch(objective='val_accuracy', max_trials=5) on Fashion-MNIST, then
// results_summary() and the best model evaluated on the test set.
// Options: --quick (2 trials, 1 epoch, 5,000 training images: what CI runs), --trials N,
// --epochs N, --samples N, --dir D (the project folder; default a fresh one under /tmp),
// --device D. Without Fashion-MNIST it tunes on made-up images. Exits 0 when the best model's
// test accuracy beats 60% (chance is 10%).
// Distributed (Keras Tuner's chief and workers, over TCP): `meshflow-run --tuner -np 3
// build/examples/seed_keras_tuner --quick` starts a chief and 3 workers and the tuner library
// reads their roles from the environment. By hand: --chief ADDR:PORT [--workers N] serves the
// search's oracle and runs no trial itself; it waits until its N workers (default 1) are done, then
// prints the summary. --worker HOST:PORT runs trials from that chief (same --dir on one machine or
// a shared disk).
#include <unistd.h>

#include <filesystem>

#include "example_util.h"
#include "meshflow/tuner/distributed.h"
#include "meshflow/tuner/tuner.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
namespace kt = meshflow::tuner;

namespace {

struct Args {
  int trials = 5, epochs = 5;
  int64_t samples = 60000;
  std::string dir, data = "/usr/share/datasets/fashion-mnist";
  std::string chief, worker;  // ADDR:PORT
  int workers = 1;            // how many workers a --chief waits for
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
    else if (k == "--chief") a.chief = value();
    else if (k == "--worker") a.worker = value();
    else if (k == "--workers") a.workers = std::stoi(value());
    else throw mf::Error("unknown option '" + k +
                         "' (expected --quick, --trials, --epochs, --samples, --dir, --data, --device, --chief, "
                         "--workers, --worker)");
  }
  if (a.trials < 1 || a.epochs < 1 || a.samples < 100) throw mf::Error("--trials, --epochs >= 1 and --samples >= 100");
  if (!a.chief.empty() && !a.worker.empty()) throw mf::Error("--chief and --worker: one process is one of them");
  if (a.workers < 1) throw mf::Error("--workers must be >= 1, not " + std::to_string(a.workers));
  if (a.dir.empty() && !a.worker.empty()) a.dir = "/tmp";  // the chief's folder is used
  if (a.dir.empty()) {
    a.dir = "/tmp/meshflow_seed_keras_tuner_" + std::to_string(::getpid());
    a.own_dir = true;
  }
  return a;
}

std::pair<std::string, uint16_t> host_port(const std::string& s, const char* option) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 >= s.size()) throw mf::Error(std::string(option) + " expects HOST:PORT, got '" + s + "'");
  int port = std::stoi(s.substr(colon + 1));
  if (port < 1 || port > 65535) throw mf::Error(std::string(option) + ": port " + std::to_string(port) + " is out of range");
  return {s.substr(0, colon), static_cast<uint16_t>(port)};
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

  mf::FitOptions fit{.epochs = args.epochs, .batch_size = 128, .verbose = 0,
                     .validation_data = std::make_pair(mf::Tensors(x_val), mf::Tensors(y_val))};
  kt::TunerOptions options{.objective = "val_accuracy", .max_trials = args.trials, .directory = args.dir,
                           .project_name = "seed_keras_tuner", .overwrite = true, .seed = 1};
  // --chief/--worker name the role here; without them the library reads the one meshflow-run
  // --tuner gives (none when run alone).
  if (!args.worker.empty()) {
    auto [host, port] = host_port(args.worker, "--worker");
    options.distributed = kt::DistributedTuning{.role = kt::DistributedTuning::Role::Worker,
                                                .tuner_id = "worker" + std::to_string(::getpid()),
                                                .oracle_ip = host, .oracle_port = port};
  } else if (!args.chief.empty()) {
    auto [addr, port] = host_port(args.chief, "--chief");
    options.distributed = kt::DistributedTuning{.role = kt::DistributedTuning::Role::Chief, .tuner_id = "chief",
                                                .oracle_ip = addr, .oracle_port = port,
                                                .expected_workers = args.workers};
  }
  kt::RandomSearch tuner(build, options);
  tuner.search(x_train, y_train, fit);  // a chief serves the oracle until its workers are done
  if (tuner.distributed().is_worker()) {
    std::printf("%s: done\n", tuner.distributed().tuner_id.c_str());
    return 0;
  }
  if (tuner.distributed().is_chief())
    for (const auto& t : tuner.oracle().trials())
      std::printf("trial %s by %s: %s\n", t.trial_id.c_str(), t.worker.c_str(), kt::status_name(t.status).c_str());
  if (tuner.oracle().get_best_trials(1).empty()) {
    std::printf("FAILED: no trial completed\n");
    return 1;
  }
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
