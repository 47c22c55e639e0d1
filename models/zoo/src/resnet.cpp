// resnet(depth): Keras's ImageNet ResNets from Conv2D, BatchNormalization and Add (see resnet.h).
#include "meshflow/zoo/resnet.h"

#include <vector>

#include "meshflow/core/error.h"
#include "meshflow/models/layers/conv.h"
#include "meshflow/models/layers/core.h"
#include "meshflow/models/layers/merge.h"
#include "meshflow/models/layers/normalization.h"
#include "meshflow/models/layers/pooling.h"

namespace meshflow::zoo {

namespace {

namespace L = layers;

struct Builder {
  DType dtype;

  Tensor conv(const Tensor& x, int64_t filters, int64_t kernel, int64_t stride, const std::string& name) {
    return L::Conv2D(filters, kernel, {.strides = stride, .padding = "same", .name = name, .dtype = dtype})(x);
  }
  Tensor bn(const Tensor& x, const std::string& name) {
    return L::BatchNormalization({.epsilon = 1.001e-5, .name = name, .dtype = dtype})(x);
  }
  Tensor relu(const Tensor& x, const std::string& name) {
    return L::Activation("relu", {.name = name, .dtype = dtype})(x);
  }

  // Keras's block1 for ResNet50/101/152: 1x1 (with the stride), 3x3, 1x1 to 4x filters.
  Tensor bottleneck(Tensor x, int64_t filters, int64_t stride, bool project, const std::string& name) {
    Tensor shortcut = x;
    if (project) shortcut = bn(conv(x, 4 * filters, 1, stride, name + "_0_conv"), name + "_0_bn");
    x = relu(bn(conv(x, filters, 1, stride, name + "_1_conv"), name + "_1_bn"), name + "_1_relu");
    x = relu(bn(conv(x, filters, 3, 1, name + "_2_conv"), name + "_2_bn"), name + "_2_relu");
    x = bn(conv(x, 4 * filters, 1, 1, name + "_3_conv"), name + "_3_bn");
    return relu(L::Add({.name = name + "_add", .dtype = dtype})({shortcut, x}), name + "_out");
  }

  // The basic block of ResNet18/34: two 3x3 convolutions.
  Tensor basic(Tensor x, int64_t filters, int64_t stride, bool project, const std::string& name) {
    Tensor shortcut = x;
    if (project) shortcut = bn(conv(x, filters, 1, stride, name + "_0_conv"), name + "_0_bn");
    x = relu(bn(conv(x, filters, 3, stride, name + "_1_conv"), name + "_1_bn"), name + "_1_relu");
    x = bn(conv(x, filters, 3, 1, name + "_2_conv"), name + "_2_bn");
    return relu(L::Add({.name = name + "_add", .dtype = dtype})({shortcut, x}), name + "_out");
  }
};

}  // namespace

std::shared_ptr<Model> resnet(int depth, const ResNetOptions& o) {
  std::vector<int> blocks;
  bool bottleneck = true;
  switch (depth) {
    case 18: blocks = {2, 2, 2, 2}; bottleneck = false; break;
    case 34: blocks = {3, 4, 6, 3}; bottleneck = false; break;
    case 50: blocks = {3, 4, 6, 3}; break;
    case 101: blocks = {3, 4, 23, 3}; break;
    case 152: blocks = {3, 8, 36, 3}; break;
    default: MF_THROW("resnet: depth must be 18, 34, 50, 101 or 152, got ", depth);
  }
  MF_CHECK(o.input_shape.size() == 3 && o.input_shape[0] >= 32 && o.input_shape[1] >= 32 && o.input_shape[2] >= 1,
           "resnet: input_shape must be [height, width, channels] with height and width >= 32, got ",
           shape_str(o.input_shape));
  MF_CHECK(!o.include_top || o.classes >= 1, "resnet: classes must be positive, got ", o.classes);
  Builder b{o.dtype};
  Tensor in = Input(o.input_shape, {.dtype = o.dtype, .name = "input_1"});
  Tensor x = b.relu(b.bn(b.conv(in, 64, 7, 2, "conv1_conv"), "conv1_bn"), "conv1_relu");
  x = L::MaxPooling2D(3, {.strides = 2, .padding = "same", .name = "pool1_pool", .dtype = o.dtype})(x);
  const int64_t filters[4] = {64, 128, 256, 512};
  for (int s = 0; s < 4; ++s)
    for (int k = 0; k < blocks[static_cast<size_t>(s)]; ++k) {
      const std::string name = "conv" + std::to_string(s + 2) + "_block" + std::to_string(k + 1);
      const int64_t stride = k == 0 && s > 0 ? 2 : 1;
      // The first block of a stage projects the shortcut when the shape changes (always for the
      // bottleneck, whose output has 4x the channels; from stage 2 on for the basic block).
      const bool project = k == 0 && (bottleneck || s > 0);
      x = bottleneck ? b.bottleneck(x, filters[s], stride, project, name) : b.basic(x, filters[s], stride, project, name);
    }
  x = L::GlobalAveragePooling2D({.name = "avg_pool", .dtype = o.dtype})(x);
  if (o.include_top) x = L::Dense(o.classes, {.activation = "softmax", .name = "predictions", .dtype = o.dtype})(x);
  return std::make_shared<Model>(Tensors{in}, Tensors{x}, LayerOptions{.name = "resnet" + std::to_string(depth)});
}

}  // namespace meshflow::zoo
