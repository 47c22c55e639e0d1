// CPU kernels for unary math ops, activations and clip (f16/bf16 compute in float).
// exp/log/tanh/sigmoid and what builds on them use internal/vmath.h, whose float versions
// vectorize only when floating compares may not trap (see there); the pragma comes before the
// includes so inline helpers share the option.
#pragma GCC optimize("no-trapping-math")
#include <cmath>

#include "internal/elementwise.h"
#include "internal/gelu.h"
#include "internal/vmath.h"

namespace meshflow {
namespace {

struct ExpOp { template <typename C> C operator()(C x) const { return vmath::exp(x); } };
struct LogOp { template <typename C> C operator()(C x) const { return vmath::log(x); } };
struct SqrtOp { template <typename C> C operator()(C x) const { return std::sqrt(x); } };
struct RsqrtOp { template <typename C> C operator()(C x) const { return C(1) / std::sqrt(x); } };
struct TanhOp { template <typename C> C operator()(C x) const { return vmath::tanh(x); } };
struct SigmoidOp { template <typename C> C operator()(C x) const { return vmath::sigmoid(x); } };
struct SiluOp { template <typename C> C operator()(C x) const { return x * vmath::sigmoid(x); } };
// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, no loss for
// small. The max is a select (fmax's NaN rule keeps the loop scalar); NaN still comes out NaN.
struct SoftplusOp {
  template <typename C> C operator()(C x) const {
    return (x > C(0) ? x : C(0)) + vmath::log1p(vmath::exp(-std::fabs(x)));
  }
};

// Integer-friendly ops (compute in the element type itself).
struct SquareOp { template <typename C> C operator()(C x) const { return x * x; } };
struct AbsOp { template <typename C> C operator()(C x) const { return x < C(0) ? C(-x) : x; } };
// Zero and NaN map to themselves.
struct SignOp { template <typename C> C operator()(C x) const { return x > C(0) ? C(1) : (x < C(0) ? C(-1) : x); } };
struct ReluOp { template <typename C> C operator()(C x) const { return x > C(0) ? x : C(0); } };
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
struct PowScalarOp {
  double e;
  explicit PowScalarOp(const Attrs& a) : e(a.f("exponent")) {}
  template <typename C> C operator()(C x) const { return e == 2.0 ? x * x : std::pow(x, C(e)); }
};

// A floating unary op whose functor is built from the op's attributes.
template <typename Op>
void unary_float_attr_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  Op op(attrs);
  dispatch_dtype(in[0].dtype(), "unary op", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      internal::unary_loop<T, T>(in[0], out[0], op);
    } else {
      MF_THROW("this op needs a floating tensor, got ", dtype_name(in[0].dtype()));
    }
  });
}

// A unary op on any number type (bool excluded), optionally built from attributes.
template <typename Op>
void unary_numeric_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  dispatch_dtype(in[0].dtype(), "unary op", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      MF_THROW("this op is not defined for bool tensors");
    } else if constexpr (std::is_constructible_v<Op, const Attrs&>) {
      internal::unary_loop<T, T>(in[0], out[0], Op(attrs));
    } else {
      internal::unary_loop<T, T>(in[0], out[0], Op{});
    }
  });
}

MF_STATIC_INIT {
  using internal::unary_float_kernel;
  register_kernel("exp", DeviceType::CPU, unary_float_kernel<ExpOp>);
  register_kernel("log", DeviceType::CPU, unary_float_kernel<LogOp>);
  register_kernel("sqrt", DeviceType::CPU, unary_float_kernel<SqrtOp>);
  register_kernel("rsqrt", DeviceType::CPU, unary_float_kernel<RsqrtOp>);
  register_kernel("tanh", DeviceType::CPU, unary_float_kernel<TanhOp>);
  register_kernel("sigmoid", DeviceType::CPU, unary_float_kernel<SigmoidOp>);
  register_kernel("silu", DeviceType::CPU, unary_float_kernel<SiluOp>);
  register_kernel("softplus", DeviceType::CPU, unary_float_kernel<SoftplusOp>);
  register_kernel("square", DeviceType::CPU, unary_numeric_kernel<SquareOp>);
  register_kernel("abs", DeviceType::CPU, unary_numeric_kernel<AbsOp>);
  register_kernel("sign", DeviceType::CPU, unary_numeric_kernel<SignOp>);
  register_kernel("relu", DeviceType::CPU, unary_numeric_kernel<ReluOp>);
  register_kernel("relu_grad", DeviceType::CPU, internal::binary_kernel<ReluGradOp>);
  register_kernel("clip", DeviceType::CPU, unary_numeric_kernel<ClipOp>);
  register_kernel("leaky_relu", DeviceType::CPU, unary_float_attr_kernel<LeakyReluOp>);
  register_kernel("elu", DeviceType::CPU, unary_float_attr_kernel<EluOp>);
  register_kernel("gelu", DeviceType::CPU, gelu_kernel<internal::GeluTanhOp, internal::GeluErfOp>);
  register_kernel("gelu_derivative", DeviceType::CPU, gelu_kernel<internal::GeluTanhDerivativeOp, internal::GeluErfDerivativeOp>);
  register_kernel("pow_scalar", DeviceType::CPU, unary_float_attr_kernel<PowScalarOp>);
}

}  // namespace
}  // namespace meshflow
