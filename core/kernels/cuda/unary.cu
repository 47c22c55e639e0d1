// CUDA kernels for unary math, activations, clip and pow_scalar (the twins of
// core/kernels/cpu/unary.cpp, same formulas; f16/bf16 compute in float). The CPU's float exp, log
// and tanh are its own polynomials (internal/vmath.h); here CUDA's libdevice versions stand in,
// both within a few ulp of the exact value.
#include "elementwise_cuda.cuh"
#include "gelu_cuda.cuh"

namespace meshflow {
namespace {

using cu::m_erf;
using cu::m_exp;
using cu::m_expm1;
using cu::m_fabs;
using cu::m_log;
using cu::m_log1p;
using cu::m_pow;
using cu::m_sqrt;
using cu::m_tanh;

// e = e^-|x| never exceeds 1, so neither branch overflows.
template <typename C>
__device__ __forceinline__ C sigmoid_of(C x) {
  const C e = m_exp(-m_fabs(x));
  const C s = C(1) / (C(1) + e);
  return x >= C(0) ? s : e * s;
}

struct ExpOp { template <typename C> __device__ C operator()(C x) const { return m_exp(x); } };
struct LogOp { template <typename C> __device__ C operator()(C x) const { return m_log(x); } };
struct SqrtOp { template <typename C> __device__ C operator()(C x) const { return m_sqrt(x); } };
// Correctly rounded sqrt and divide rather than rsqrtf (an approximation): the CPU's exact result.
struct RsqrtOp { template <typename C> __device__ C operator()(C x) const { return C(1) / m_sqrt(x); } };
struct TanhOp { template <typename C> __device__ C operator()(C x) const { return m_tanh(x); } };
struct SigmoidOp { template <typename C> __device__ C operator()(C x) const { return sigmoid_of(x); } };
struct SiluOp { template <typename C> __device__ C operator()(C x) const { return x * sigmoid_of(x); } };
// max(x, 0) + log1p(e^-|x|): no overflow for large x, no loss for small; NaN stays NaN.
struct SoftplusOp {
  template <typename C> __device__ C operator()(C x) const {
    return (x > C(0) ? x : C(0)) + m_log1p(m_exp(-m_fabs(x)));
  }
};

// Number ops (also on integers, computed in the element type).
struct SquareOp { template <typename C> __device__ C operator()(C x) const { return x * x; } };
struct AbsOp { template <typename C> __device__ C operator()(C x) const { return x < C(0) ? C(-x) : x; } };
// Zero and NaN map to themselves.
struct SignOp {
  template <typename C> __device__ C operator()(C x) const { return x > C(0) ? C(1) : (x < C(0) ? C(-1) : x); }
};
struct ReluOp { template <typename C> __device__ C operator()(C x) const { return x > C(0) ? x : C(0); } };
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
struct PowScalarOp {
  double e;
  template <typename C> __device__ C operator()(C x) const { return e == 2.0 ? x * x : m_pow(x, C(e)); }
};

// A unary op on any number type (bool refused as on the CPU).
template <typename Op>
void unary_numeric_run(const ExecContext& ctx, const Tensor& in, const Tensor& out, const Op& op) {
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(in.dtype(), "unary op", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      MF_THROW("this op is not defined for bool tensors");
    } else {
      cu::launch_unary<T, T>(ctx, in, out, op);
    }
  });
}

template <typename Op>
void unary_numeric_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                          const Attrs&) {
  unary_numeric_run(ctx, in[0], out[0], Op{});
}

void clip_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  unary_numeric_run(ctx, in[0], out[0], ClipOp{a.f("lo"), a.f("hi")});
}

void leaky_relu_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                       const Attrs& a) {
  cu::unary_float_run(ctx, in[0], out[0], LeakyReluOp{a.f("negative_slope")});
}

void elu_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  cu::unary_float_run(ctx, in[0], out[0], EluOp{a.f("alpha")});
}

void pow_scalar_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                       const Attrs& a) {
  cu::unary_float_run(ctx, in[0], out[0], PowScalarOp{a.f("exponent")});
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
  register_kernel("exp", DeviceType::CUDA, unary_float_kernel<ExpOp>);
  register_kernel("log", DeviceType::CUDA, unary_float_kernel<LogOp>);
  register_kernel("sqrt", DeviceType::CUDA, unary_float_kernel<SqrtOp>);
  register_kernel("rsqrt", DeviceType::CUDA, unary_float_kernel<RsqrtOp>);
  register_kernel("tanh", DeviceType::CUDA, unary_float_kernel<TanhOp>);
  register_kernel("sigmoid", DeviceType::CUDA, unary_float_kernel<SigmoidOp>);
  register_kernel("silu", DeviceType::CUDA, unary_float_kernel<SiluOp>);
  register_kernel("softplus", DeviceType::CUDA, unary_float_kernel<SoftplusOp>);
  register_kernel("square", DeviceType::CUDA, unary_numeric_kernel<SquareOp>);
  register_kernel("abs", DeviceType::CUDA, unary_numeric_kernel<AbsOp>);
  register_kernel("sign", DeviceType::CUDA, unary_numeric_kernel<SignOp>);
  register_kernel("relu", DeviceType::CUDA, unary_numeric_kernel<ReluOp>);
  register_kernel("relu_grad", DeviceType::CUDA, cu::binary_kernel<ReluGradOp>);
  register_kernel("clip", DeviceType::CUDA, clip_kernel);
  register_kernel("leaky_relu", DeviceType::CUDA, leaky_relu_kernel);
  register_kernel("elu", DeviceType::CUDA, elu_kernel);
  register_kernel("gelu", DeviceType::CUDA, gelu_kernel<cu::GeluTanhOp, cu::GeluErfOp>);
  register_kernel("gelu_derivative", DeviceType::CUDA, gelu_kernel<cu::GeluTanhDerivativeOp, cu::GeluErfDerivativeOp>);
  register_kernel("pow_scalar", DeviceType::CUDA, pow_scalar_kernel);
}

}  // namespace
}  // namespace meshflow
