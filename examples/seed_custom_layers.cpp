// Seeds 001, 002 and 004: custom layers. MyCustomLayer (a kernel of 128 units made in build())
// inside a Sequential model; CustomDenseLayer (seed 004); CustomDense with relu (seed 002).
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

// Seed 001: build() creates the weight from the input shape, call() multiplies.
class MyCustomLayer : public mf::Layer {
 public:
  void build(const mf::Shape& input_shape) override { kernel_ = add_weight("kernel", {input_shape[1], 128}); }
  mf::Tensor call(const mf::Tensor& inputs) override { return mf::matmul(inputs, kernel_); }

 private:
  mf::Variable kernel_;
};

// Seed 004: units given to the constructor.
class CustomDenseLayer : public mf::Layer {
 public:
  explicit CustomDenseLayer(int64_t units) : units_(units) {}
  void build(const mf::Shape& input_shape) override { kernel_ = add_weight("kernel", {input_shape.back(), units_}); }
  mf::Tensor call(const mf::Tensor& inputs) override { return mf::matmul(inputs, kernel_); }

 private:
  int64_t units_;
  mf::Variable kernel_;
};

// Seed 002 (and DESIGN.md): weights with named initializers, relu(x w + b).
class CustomDense : public mf::Layer {
 public:
  explicit CustomDense(int64_t units) : units_(units) {}
  void build(const mf::Shape& in) override {
    w_ = add_weight("kernel", {in.back(), units_}, "random_normal");
    b_ = add_weight("bias", {units_}, "zeros");
  }
  mf::Tensor call(const mf::Tensor& x) override { return mf::relu(mf::matmul(x, w_) + b_); }

 private:
  int64_t units_;
  mf::Variable w_, b_;
};

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  mf::Sequential model({mf::make_input_layer({20}), L::Dense(64, {.activation = "relu"}),
                        mf::make_layer<MyCustomLayer>(), mf::make_layer<CustomDense>(32),
                        mf::make_layer<CustomDenseLayer>(10), L::Activation("softmax")});
  model.compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  model.summary();

  mf::Tensor x = example::uniform({1024, 20}, 9);
  mf::Tensor y = mf::one_hot(mf::argmax(x.slice(1, 0, 10), 1), 10);
  auto history = model.fit(x, y, {.epochs = 10, .batch_size = 32, .verbose = 2});
  return example::report(history);
}
