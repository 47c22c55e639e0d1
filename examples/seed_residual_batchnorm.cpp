// Seed 003's best practices: residual connections and batch normalization in a small CNN.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

// conv -> BN -> relu -> conv -> BN, added to the block's input, then relu.
mf::Tensor residual_block(const mf::Tensor& x, int64_t filters) {
  auto y = L::Conv2D(filters, 3, {.padding = "same"})(x);
  y = L::BatchNormalization()(y);
  y = L::Activation("relu")(y);
  y = L::Conv2D(filters, 3, {.padding = "same"})(y);
  y = L::BatchNormalization()(y);
  return L::Activation("relu")(L::add({x, y}));
}

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  auto inputs = mf::Input({12, 12, 1});
  auto x = L::Conv2D(8, 3, {.padding = "same", .activation = "relu"})(inputs);
  x = residual_block(x, 8);
  x = L::MaxPooling2D(2)(x);
  x = residual_block(x, 8);
  x = L::GlobalAveragePooling2D()(x);
  auto outputs = L::Dense(2, {.activation = "softmax"})(x);
  mf::Model model({inputs}, {outputs});
  model.compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  model.summary();

  // Class 1 images are brighter in their top half.
  mf::Tensor images = example::uniform({512, 12, 12, 1}, 17);
  mf::Generator g(18);
  mf::Tensor cls = mf::randint(0, 2, {512}, {.dtype = mf::DType::I64}, &g);
  mf::Tensor bright = mf::cast(cls, mf::DType::F32).reshape({512, 1, 1, 1});
  images = mf::concat({images.slice(1, 0, 6) + bright, images.slice(1, 6, 12)}, 1);
  auto history = model.fit(images, mf::one_hot(cls, 2), {.epochs = 5, .batch_size = 32, .verbose = 2});
  return example::report(history);
}
