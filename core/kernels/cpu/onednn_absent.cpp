// Built instead of conv_onednn.cpp and pool_onednn.cpp where oneDNN is not installed: every entry
// point declines, so convolution runs im2col + GEMM and pooling runs Meshflow's own loops.
#include "conv_onednn.h"
#include "pool_onednn.h"

namespace meshflow {

bool conv2d_forward_onednn(const Tensor&, const Tensor&, Tensor&, const Attrs&) { return false; }
bool conv2d_grad_input_onednn(const Tensor&, const Tensor&, Tensor&, const Attrs&) { return false; }
bool conv2d_grad_weight_onednn(const Tensor&, const Tensor&, Tensor&, const Attrs&) { return false; }
bool pool2d_forward_onednn(bool, const Tensor&, Tensor&, const Attrs&) { return false; }
bool pool2d_grad_onednn(bool, const Tensor&, const Tensor&, Tensor&, const Attrs&) { return false; }

}  // namespace meshflow
