// CUDA kernels for the activations (relu, relu_grad, leaky_relu, elu, gelu, gelu_derivative, silu,
// softplus) and clip, whose definitions are in core/src/ops/activations.cpp (the twins of
// core/kernels/cpu/activations.cpp, same formulas; f16/bf16 compute in float).
#include "elementwise_cuda.cuh"
#include "gelu_cuda.cuh"

namespace meshflow {
namespace {

using cu::m_exp;
using cu::m_expm1;
using cu::m_fabs;
using cu::m_log1p;

struct SiluOp { template <typename C> __device__ C operator()(C x) const { return x * cu::sigmoid_of(x); } };
// max(x, 0) + log1p(e^-|x|): no overflow for large x, no loss for small; NaN stays NaN.
struct SoftplusOp {
  template <typename C> __device__ C operator()(C x) const {
    return (x > C(0) ? x : C(0)) + m_log1p(m_exp(-m_fabs(x)));
  }
};

// Number ops (also on integers, computed in the element type).
// NaN passes through, as on the CPU and in torch.relu.
struct ReluOp { template <typename C> __device__ C operator()(C x) const { return (x > C(0) || x != x) ? x : C(0); } };
// relu's backward in one pass: g where the input x is positive.
struct ReluGradOp { template <typename C> __device__ C operator()(C g, C x) const { return x > C(0) ? g : C(0); } };
// Bounds converted to the element type; NaN passes through.
struct ClipOp {
  double lo, hi;
  template <typename C> __device__ C operator()(C x) const { return x < C(lo) ? C(lo) : (x > C(hi) ? C(hi) : x); }
};

struct LeakyReluOp {
  double slope;
  template <typename C> __device__ C operator()(C x) const { return x > C(0) ? x : C(slope) * x; }
};
struct EluOp {
  double alpha;
  template <typename C> __device__ C operator()(C x) const { return x > C(0) ? x : C(alpha) * m_expm1(x); }
};

void clip_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  cu::unary_numeric_run(ctx, in[0], out[0], ClipOp{a.f("lo"), a.f("hi")});
}

void leaky_relu_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                       const Attrs& a) {
  cu::unary_float_run(ctx, in[0], out[0], LeakyReluOp{a.f("negative_slope")});
}

void elu_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  cu::unary_float_run(ctx, in[0], out[0], EluOp{a.f("alpha")});
}

// gelu's two forms are separate functors, picked once per call, so each kernel is branch-free.
template <typename TanhForm, typename ErfForm>
void gelu_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  if (a.b("approximate")) {
    cu::unary_float_run(ctx, in[0], out[0], TanhForm{});
  } else {
    cu::unary_float_run(ctx, in[0], out[0], ErfForm{});
  }
}

MF_STATIC_INIT {
  using cu::unary_float_kernel;
  using cu::unary_numeric_kernel;
  register_kernel("silu", DeviceType::CUDA, unary_float_kernel<SiluOp>);
  register_kernel("softplus", DeviceType::CUDA, unary_float_kernel<SoftplusOp>);
  register_kernel("relu", DeviceType::CUDA, unary_numeric_kernel<ReluOp>);
  register_kernel("relu_grad", DeviceType::CUDA, cu::binary_kernel<ReluGradOp>);
  register_kernel("clip", DeviceType::CUDA, clip_kernel);
  register_kernel("leaky_relu", DeviceType::CUDA, leaky_relu_kernel);
  register_kernel("elu", DeviceType::CUDA, elu_kernel);
  register_kernel("gelu", DeviceType::CUDA, gelu_kernel<cu::GeluTanhOp, cu::GeluErfOp>);
  register_kernel("gelu_derivative", DeviceType::CUDA, gelu_kernel<cu::GeluTanhDerivativeOp, cu::GeluErfDerivativeOp>);
}

}  // namespace
}  // namespace meshflow
