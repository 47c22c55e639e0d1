// The main job, data parallel: an MLP trained on Fashion-MNIST with the Keras API under
// MultiWorkerMirroredStrategy, one process per rank. Only rank 0 prints.
//   mpirun -np 2 ./fashion_mnist_distributed [--epochs N] [--batch B] [--data DIR]   (B: global batch)
// Without mpirun it trains in one process (the strategy then has one replica).
#include <cstdio>
#include <string>

#include "example_util.h"
#include "meshflow/meshflow.h"
#include "meshflow/models/layers/core.h"

namespace mf = meshflow;

namespace {

std::shared_ptr<mf::Model> build() {
  auto inputs = mf::Input({784});
  auto h = mf::layers::Dense(256, {.activation = "relu"})(inputs);
  auto outputs = mf::layers::Dense(10, {.activation = "softmax"})(h);
  return std::make_shared<mf::Model>(mf::Tensors{inputs}, mf::Tensors{outputs});
}

}  // namespace

int main(int argc, char** argv) try {
  example::FashionArgs args = example::parse_fashion_args(argc, argv, /*default_epochs=*/4);
  mf::MultiWorkerMirroredStrategy strategy;
  auto load = [&](const char* images, const char* labels) {
    mf::Tensor x = mf::io::read_idx(args.data + "/" + images);
    mf::Tensor y = mf::io::read_idx(args.data + "/" + labels, /*as_float=*/false);
    return std::make_pair(x.reshape({x.size(0), 784}) / 255.0, y);
  };
  // Every rank loads all of the data; fit() gives each its share of every global batch.
  auto [x_train, y_train] = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz");
  auto [x_test, y_test] = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");
  if (strategy.is_chief())
    std::printf("Fashion-MNIST: %lld training and %lld test images; %s with %d replicas, %d threads each\n",
                static_cast<long long>(x_train.size(0)), static_cast<long long>(x_test.size(0)),
                strategy.name().c_str(), strategy.num_replicas_in_sync(), mf::num_threads());

  std::shared_ptr<mf::Model> model;
  {
    auto scope = strategy.scope();  // rank 0's initial weights win at the first step
    model = mf::replicate_model(build);
    model->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  }
  model->fit({x_train}, {y_train}, {.epochs = args.epochs, .batch_size = args.batch, .verbose = 2, .seed = 1});
  auto result = model->evaluate({x_test}, {y_test}, {.batch_size = 1000, .verbose = 0});
  const double accuracy = result.at("accuracy");
  if (strategy.is_chief()) std::printf("final test accuracy: %.4f (loss %.4f)\n", accuracy, result.at("loss"));
  return accuracy >= 0.85 ? 0 : 1;
} catch (const mf::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
