// ResNets in Keras's ImageNet layout (keras.applications.ResNet50 and its siblings): a 7x7
// stride-2 stem with batch norm and 3x3 max pooling, four stages of residual blocks (bottleneck
// blocks with 4x expansion for depths 50, 101, 152; basic two-convolution blocks for 18 and 34),
// global average pooling and a softmax classifier.
#pragma once

#include <memory>
#include <string>

#include "meshflow/models/model.h"

namespace meshflow::zoo {

struct ResNetOptions {
  Shape input_shape = {224, 224, 3};  // [height, width, channels]
  int64_t classes = 1000;
  bool include_top = true;            // false: the pooled features [batch, channels]
  DType dtype = DType::F32;
};

// depth: 18, 34, 50, 101 or 152. resnet(50) has Keras ResNet50's 25,636,712 parameters (the
// batch norms' moving statistics included, as Keras counts them).
std::shared_ptr<Model> resnet(int depth, const ResNetOptions& options = {});

}  // namespace meshflow::zoo
