// GELU's two forms and their derivatives as functors, shared by the CPU kernels of gelu,
// gelu_derivative (activations.cpp) and the fused bias_gelu (bias_gelu.cpp). Files including it
// compile with no-trapping-math (see internal/vmath.h) so the tanh form vectorizes.
#pragma once

#include <cmath>

#include "internal/vmath.h"

namespace meshflow::internal {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluCubic = 0.044715;

// gelu's two forms are separate functors (picked once per call) so each loop is branch-free
// and the tanh form vectorizes; the erf form calls libm's scalar erf.
struct GeluTanhOp {
  template <typename C> C operator()(C x) const {
    return C(0.5) * x * (C(1) + vmath::tanh(C(kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x)));
  }
};
struct GeluErfOp {
  template <typename C> C operator()(C x) const { return C(0.5) * x * (C(1) + std::erf(x * C(kInvSqrt2))); }
};
// d/dx gelu: Phi(x) + x*phi(x) (erf form); the tanh form differentiated through its polynomial.
struct GeluTanhDerivativeOp {
  template <typename C> C operator()(C x) const {
    C t = vmath::tanh(C(kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x));
    C du = C(kSqrt2OverPi) * (C(1) + C(3 * kGeluCubic) * x * x);
    return C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * du;
  }
};
struct GeluErfDerivativeOp {
  template <typename C> C operator()(C x) const {
    return C(0.5) * (C(1) + std::erf(x * C(kInvSqrt2))) + x * C(kInvSqrt2Pi) * vmath::exp(C(-0.5) * x * x);
  }
};
}  // namespace meshflow::internal
