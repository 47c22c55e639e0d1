// Registers the CPU conv2d kernels: oneDNN for f32 (unless im2col is selected or oneDNN has no
// primitive for the geometry), im2col + GEMM for f64 and as the fallback.
#include "conv_im2col.h"
#include "conv_onednn.h"
#include "meshflow/core/ops/conv.h"

namespace meshflow {
namespace {

bool prefer_onednn(const Tensor& out) {
  return out.dtype() == DType::F32 && cpu_conv_algorithm() == ConvAlgorithm::OneDnn;
}

void conv2d_cpu(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  if (prefer_onednn(out[0]) && conv2d_forward_onednn(in[0], in[1], out[0], a)) return;
  dispatch_float(out[0].dtype(), "conv2d", [&]<typename T>() { conv2d_forward_im2col<T>(in[0], in[1], out[0], a); });
}

void conv2d_grad_input_cpu(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  if (prefer_onednn(out[0]) && conv2d_grad_input_onednn(in[0], in[1], out[0], a)) return;
  dispatch_float(out[0].dtype(), "conv2d_grad_input",
                 [&]<typename T>() { conv2d_grad_input_im2col<T>(in[0], in[1], out[0], a); });
}

void conv2d_grad_weight_cpu(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  if (prefer_onednn(out[0]) && conv2d_grad_weight_onednn(in[0], in[1], out[0], a)) return;
  dispatch_float(out[0].dtype(), "conv2d_grad_weight",
                 [&]<typename T>() { conv2d_grad_weight_im2col<T>(in[0], in[1], out[0], a); });
}

MF_STATIC_INIT {
  register_kernel("conv2d", DeviceType::CPU, conv2d_cpu);
  register_kernel("conv2d_grad_input", DeviceType::CPU, conv2d_grad_input_cpu);
  register_kernel("conv2d_grad_weight", DeviceType::CPU, conv2d_grad_weight_cpu);
}

}  // namespace
}  // namespace meshflow
