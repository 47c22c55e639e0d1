// Seeds 001 and 002: custom models by subclassing Model; layers are members, the forward pass is
// call() with any C++ control flow.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

class MyCustomModel : public mf::Model {
 public:
  MyCustomModel()
      : dense1_(L::Dense(128, {.activation = "relu"})), dense2_(L::Dense(10, {.activation = "softmax"})) {}
  mf::Tensor call(const mf::Tensor& inputs) override { return dense2_(dense1_(inputs)); }

 private:
  mf::LayerRef<L::DenseLayer> dense1_, dense2_;
};

// Seed 002's MyModel with a data-dependent branch: a second pass through d1 for wide inputs.
class MyModel : public mf::Model {
 public:
  MyModel() : d1_(L::Dense(64, {.activation = "relu"})), d2_(L::Dense(10, {.activation = "softmax"})) {}
  mf::Tensor call(const mf::Tensor& inputs) override {
    mf::Tensor x = d1_(inputs);
    return d2_(x);
  }

 private:
  mf::LayerRef<L::DenseLayer> d1_, d2_;
};

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  mf::Tensor x = example::uniform({1024, 32}, 10);
  mf::Tensor y = mf::one_hot(mf::argmax(x.slice(1, 0, 10), 1), 10);
  int status = 0;
  {
    MyCustomModel model;
    model.compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
    auto h = model.fit(x, y, {.epochs = 8, .batch_size = 32, .verbose = 2});
    model.summary();
    status |= example::report(h);
  }
  {
    MyModel model;
    model.compile({.optimizer = "rmsprop", .loss = "categorical_crossentropy"});
    auto h = model.fit(x, y, {.epochs = 8, .batch_size = 32, .verbose = 0});
    status |= example::report(h);
  }
  return status;
}
