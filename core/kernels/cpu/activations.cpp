// CPU kernels for the activations (relu, relu_grad, leaky_relu, elu, gelu, gelu_derivative, silu,
// softplus) and clip, whose definitions are in core/src/ops/activations.cpp (f16/bf16 compute in
// float). silu, softplus and gelu's tanh form use internal/vmath.h, whose float versions vectorize
// only when floating compares may not trap (see there); the pragma comes before the includes so
// inline helpers share the option.
#pragma GCC optimize("no-trapping-math")
#include <cmath>

#include "internal/elementwise.h"
#include "internal/gelu.h"
#include "internal/vmath.h"

namespace meshflow {
namespace {

struct SiluOp { template <typename C> C operator()(C x) const { return x * vmath::sigmoid(x); } };
// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, no loss for
// small. The max is a select (fmax's NaN rule keeps the loop scalar); NaN still comes out NaN.
struct SoftplusOp {
  template <typename C> C operator()(C x) const {
    return (x > C(0) ? x : C(0)) + vmath::log1p(vmath::exp(-std::fabs(x)));
  }
};

// Integer-friendly ops (compute in the element type itself).
// NaN passes through (x != x only for NaN), as torch.relu does; a plain x > 0 test would make it 0.
struct ReluOp { template <typename C> C operator()(C x) const { return (x > C(0) || x != x) ? x : C(0); } };
// relu's backward in one pass: the gradient g where the input x is positive.
struct ReluGradOp { template <typename C> C operator()(C g, C x) const { return x > C(0) ? g : C(0); } };

struct LeakyReluOp {
  double slope;
  explicit LeakyReluOp(const Attrs& a) : slope(a.f("negative_slope")) {}
  template <typename C> C operator()(C x) const { return x > C(0) ? x : C(slope) * x; }
};
struct EluOp {
  double alpha;
  explicit EluOp(const Attrs& a) : alpha(a.f("alpha")) {}
  template <typename C> C operator()(C x) const { return x > C(0) ? x : C(alpha) * std::expm1(x); }
};

template <typename TanhForm, typename ErfForm>
void gelu_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  if (attrs.b("approximate")) {
    internal::unary_float_kernel<TanhForm>(ctx, in, out, attrs);
  } else {
    internal::unary_float_kernel<ErfForm>(ctx, in, out, attrs);
  }
}
// Bounds converted to the element type; NaN passes through (fmax/fmin would drop it).
struct ClipOp {
  double lo, hi;
  explicit ClipOp(const Attrs& a) : lo(a.f("lo")), hi(a.f("hi")) {}
  template <typename C> C operator()(C x) const { return x < C(lo) ? C(lo) : (x > C(hi) ? C(hi) : x); }
};

MF_STATIC_INIT {
  using internal::unary_float_attr_kernel;
  using internal::unary_float_kernel;
  using internal::unary_numeric_kernel;
  register_kernel("silu", DeviceType::CPU, unary_float_kernel<SiluOp>);
  register_kernel("softplus", DeviceType::CPU, unary_float_kernel<SoftplusOp>);
  register_kernel("relu", DeviceType::CPU, unary_numeric_kernel<ReluOp>);
  register_kernel("relu_grad", DeviceType::CPU, internal::binary_kernel<ReluGradOp>);
  register_kernel("clip", DeviceType::CPU, unary_numeric_kernel<ClipOp>);
  register_kernel("leaky_relu", DeviceType::CPU, unary_float_attr_kernel<LeakyReluOp>);
  register_kernel("elu", DeviceType::CPU, unary_float_attr_kernel<EluOp>);
  register_kernel("gelu", DeviceType::CPU, gelu_kernel<internal::GeluTanhOp, internal::GeluErfOp>);
  register_kernel("gelu_derivative", DeviceType::CPU, gelu_kernel<internal::GeluTanhDerivativeOp, internal::GeluErfDerivativeOp>);
}

}  // namespace
}  // namespace meshflow
