// Convolution and pooling, channels-last like Keras (NWC / NHWC), weights [k..., in/groups, out].
#pragma once

#include <string>
#include <vector>

#include "meshflow/core/tensor.h"

namespace meshflow {

struct Conv2dOptions {
  std::vector<int64_t> strides = {1, 1};
  std::string padding = "valid";          // "valid" or "same" (Keras's rules)
  std::vector<int64_t> dilation = {1, 1};
  int64_t groups = 1;
};

struct Conv1dOptions {
  int64_t stride = 1;
  std::string padding = "valid";
  int64_t dilation = 1;
  int64_t groups = 1;
};

struct Pool2dOptions {
  std::vector<int64_t> pool_size = {2, 2};
  std::vector<int64_t> strides = {};      // default: pool_size
  std::string padding = "valid";
};

// x: [N, H, W, C_in], w: [KH, KW, C_in/groups, C_out] -> [N, OH, OW, C_out]
Tensor conv2d(const Tensor& x, const Tensor& w, const Conv2dOptions& options = {});
// x: [N, W, C_in], w: [K, C_in/groups, C_out] -> [N, OW, C_out]
Tensor conv1d(const Tensor& x, const Tensor& w, const Conv1dOptions& options = {});
// x: [N, H, W, C]
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options = {});
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options = {});  // padding excluded from the mean

// Which CPU kernel runs f32 convolutions: Auto (the default) times oneDNN's convolution and
// im2col + GEMM on the first call of each geometry and keeps the faster (the kernel table of
// meshflow/core/kernels.h, docs/kernels.md); OneDnn or Im2col force one. f64 always runs im2col.
enum class ConvAlgorithm { Auto, OneDnn, Im2col };
void set_cpu_conv_algorithm(ConvAlgorithm algorithm);
ConvAlgorithm cpu_conv_algorithm();

}  // namespace meshflow
