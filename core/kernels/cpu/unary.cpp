// CPU kernels for unary math ops: exp, log, sqrt, rsqrt, tanh, sigmoid, square, abs, sign
// (f16/bf16 compute in float; activations are in activations.cpp, pow_scalar in binary_math.cpp).
// exp/log/tanh/sigmoid use internal/vmath.h, whose float versions vectorize only when floating
// compares may not trap (see there); the pragma comes before the includes so inline helpers share
// the option.
#pragma GCC optimize("no-trapping-math")
#include <cmath>

#include "internal/elementwise.h"
#include "internal/vmath.h"

namespace meshflow {
namespace {

struct ExpOp { template <typename C> C operator()(C x) const { return vmath::exp(x); } };
struct LogOp { template <typename C> C operator()(C x) const { return vmath::log(x); } };
struct SqrtOp { template <typename C> C operator()(C x) const { return std::sqrt(x); } };
struct RsqrtOp { template <typename C> C operator()(C x) const { return C(1) / std::sqrt(x); } };
struct TanhOp { template <typename C> C operator()(C x) const { return vmath::tanh(x); } };
struct SigmoidOp { template <typename C> C operator()(C x) const { return vmath::sigmoid(x); } };

// Integer-friendly ops (compute in the element type itself).
struct SquareOp { template <typename C> C operator()(C x) const { return x * x; } };
struct AbsOp { template <typename C> C operator()(C x) const { return x < C(0) ? C(-x) : x; } };
// Zero and NaN map to themselves.
struct SignOp { template <typename C> C operator()(C x) const { return x > C(0) ? C(1) : (x < C(0) ? C(-1) : x); } };

MF_STATIC_INIT {
  using internal::unary_float_kernel;
  using internal::unary_numeric_kernel;
  register_kernel("exp", DeviceType::CPU, unary_float_kernel<ExpOp>);
  register_kernel("log", DeviceType::CPU, unary_float_kernel<LogOp>);
  register_kernel("sqrt", DeviceType::CPU, unary_float_kernel<SqrtOp>);
  register_kernel("rsqrt", DeviceType::CPU, unary_float_kernel<RsqrtOp>);
  register_kernel("tanh", DeviceType::CPU, unary_float_kernel<TanhOp>);
  register_kernel("sigmoid", DeviceType::CPU, unary_float_kernel<SigmoidOp>);
  register_kernel("square", DeviceType::CPU, unary_numeric_kernel<SquareOp>);
  register_kernel("abs", DeviceType::CPU, unary_numeric_kernel<AbsOp>);
  register_kernel("sign", DeviceType::CPU, unary_numeric_kernel<SignOp>);
}

}  // namespace
}  // namespace meshflow
