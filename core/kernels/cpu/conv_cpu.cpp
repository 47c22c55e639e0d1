// Registers the CPU conv2d kernels. f32: oneDNN's convolution or im2col + GEMM, chosen per
// geometry by the kernel table (Note [Kernels by measurement] in core/src/kernel_choice.cpp) unless
// set_cpu_conv_algorithm forces one; oneDNN declines geometries it has no primitive for. f64 and
// the fallback: im2col + GEMM.
#include <omp.h>

#include "conv_im2col.h"
#include "conv_onednn.h"
#include "internal/kernel_choice.h"
#include "meshflow/core/kernels.h"
#include "meshflow/core/ops/conv.h"

namespace meshflow {
namespace {

// Packs four dimensions below 2^15 into one key word (16 bits each, the sign bit clear); -1 when one
// does not fit (that call is not measured).
int64_t pack4(const Shape& s) {
  int64_t k = 0;
  for (int64_t d : s) {
    if (d < 0 || d >= (int64_t(1) << 15)) return -1;
    k = (k << 16) | d;
  }
  return k;
}

using OneDnnFn = bool (*)(const Tensor&, const Tensor&, Tensor&, const Attrs&);
using Im2colFn = void (*)(const Tensor&, const Tensor&, Tensor&, const Attrs&);

// Whether oneDNN should run this call: forced by the algorithm, or the table's measured choice for
// the geometry (both candidates timed on a scratch output of the call's shape).
bool pick_onednn(int kind, const Tensor& a, const Tensor& b, const Tensor& out, const Attrs& attrs, OneDnnFn onednn,
                 Im2colFn im2col) {
  if (out.dtype() != DType::F32 || !onednn_available()) return false;
  const ConvAlgorithm algorithm = cpu_conv_algorithm();
  if (algorithm != ConvAlgorithm::Auto) return algorithm == ConvAlgorithm::OneDnn;
  const std::vector<int64_t> st = attrs.ints("strides"), dil = attrs.ints("dilation"), pads = attrs.ints("pads");
  internal::KernelKey key;
  key.op = kind == 0 ? "conv2d" : kind == 1 ? "conv2d_grad_input" : "conv2d_grad_weight";
  key.dims = {pack4(a.shape()), pack4(b.shape()), pack4(out.shape()), pack4({st[0], st[1], dil[0], dil[1]}),
              pack4({pads[0], pads[1], pads[2], pads[3]}), attrs.i("groups")};
  for (int64_t d : key.dims)
    if (d < 0) return true;  // too large to key: oneDNN, the usual winner (bench_conv)
  key.threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (int c = internal::recent_kernel(key); c >= 0) return c == 1;
  // FLOPs of the forward pass (the same for each of the three): 2 * outputs * window * in/groups.
  const Shape& w = kind == 2 ? out.shape() : b.shape();
  const Shape& y = kind == 0 ? out.shape() : kind == 1 ? a.shape() : b.shape();
  const double flops = 2.0 * static_cast<double>(shape_numel(y)) * static_cast<double>(w[0] * w[1] * w[2]);
  const std::string shape = shape_str(a.shape()) + " " + shape_str(b.shape()) + " -> " + shape_str(out.shape());
  static const std::vector<const char*> names = {"im2col", "oneDNN"};
  return internal::choose_kernel(key, flops, shape, names, [&] {
           auto scratch = std::make_shared<Tensor>(empty(out.shape(), {.dtype = out.dtype(), .device = out.device()}));
           Tensor ca = a, cb = b;
           Attrs at = attrs;
           std::vector<internal::KernelCandidate> c;
           c.push_back({"im2col", [=] { im2col(ca, cb, *scratch, at); }});
           c.push_back({"oneDNN", [=] {
                          if (!onednn(ca, cb, *scratch, at)) im2col(ca, cb, *scratch, at);  // declined: same cost
                        }});
           return c;
         }) == 1;
}

void conv2d_cpu(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  if (pick_onednn(0, in[0], in[1], out[0], a, conv2d_forward_onednn, conv2d_forward_im2col<float>) &&
      conv2d_forward_onednn(in[0], in[1], out[0], a))
    return;
  dispatch_float(out[0].dtype(), "conv2d", [&]<typename T>() { conv2d_forward_im2col<T>(in[0], in[1], out[0], a); });
}

void conv2d_grad_input_cpu(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  if (pick_onednn(1, in[0], in[1], out[0], a, conv2d_grad_input_onednn, conv2d_grad_input_im2col<float>) &&
      conv2d_grad_input_onednn(in[0], in[1], out[0], a))
    return;
  dispatch_float(out[0].dtype(), "conv2d_grad_input",
                 [&]<typename T>() { conv2d_grad_input_im2col<T>(in[0], in[1], out[0], a); });
}

void conv2d_grad_weight_cpu(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  if (pick_onednn(2, in[0], in[1], out[0], a, conv2d_grad_weight_onednn, conv2d_grad_weight_im2col<float>) &&
      conv2d_grad_weight_onednn(in[0], in[1], out[0], a))
    return;
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
