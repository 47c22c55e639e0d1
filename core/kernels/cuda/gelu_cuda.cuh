// GELU's two forms and their derivatives as device functors, shared by the CUDA kernels of gelu,
// gelu_derivative (activations.cu) and the fused bias_gelu (bias_gelu.cu); the formulas are the
// CPU's (core/src/internal/gelu.h) with CUDA's math functions.
#pragma once

#include "elementwise_cuda.cuh"

namespace meshflow::cu {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluCubic = 0.044715;

struct GeluTanhOp {
  template <typename C> __device__ C operator()(C x) const {
    return C(0.5) * x * (C(1) + m_tanh(C(kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x)));
  }
};
struct GeluErfOp {
  template <typename C> __device__ C operator()(C x) const { return C(0.5) * x * (C(1) + m_erf(x * C(kInvSqrt2))); }
};
// d/dx gelu: Phi(x) + x phi(x) (erf form); the tanh form differentiated through its polynomial.
struct GeluTanhDerivativeOp {
  template <typename C> __device__ C operator()(C x) const {
    const C t = m_tanh(C(kSqrt2OverPi) * (x + C(kGeluCubic) * x * x * x));
    const C du = C(kSqrt2OverPi) * (C(1) + C(3 * kGeluCubic) * x * x);
    return C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * du;
  }
};
struct GeluErfDerivativeOp {
  template <typename C> __device__ C operator()(C x) const {
    return C(0.5) * (C(1) + m_erf(x * C(kInvSqrt2))) + x * C(kInvSqrt2Pi) * m_exp(C(-0.5) * x * x);
  }
};

}  // namespace meshflow::cu
