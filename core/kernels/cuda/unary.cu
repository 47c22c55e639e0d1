// CUDA kernels for unary math ops: exp, log, sqrt, rsqrt, tanh, sigmoid, square, abs, sign (the
// twins of core/kernels/cpu/unary.cpp, same formulas; f16/bf16 compute in float). The CPU's float
// exp, log and tanh are its own polynomials (internal/vmath.h); here CUDA's libdevice versions
// stand in, both within a few ulp of the exact value.
#include "elementwise_cuda.cuh"

namespace meshflow {
namespace {

using cu::m_exp;
using cu::m_log;
using cu::m_sqrt;
using cu::m_tanh;

struct ExpOp { template <typename C> __device__ C operator()(C x) const { return m_exp(x); } };
struct LogOp { template <typename C> __device__ C operator()(C x) const { return m_log(x); } };
struct SqrtOp { template <typename C> __device__ C operator()(C x) const { return m_sqrt(x); } };
// Correctly rounded sqrt and divide rather than rsqrtf (an approximation): the CPU's exact result.
struct RsqrtOp { template <typename C> __device__ C operator()(C x) const { return C(1) / m_sqrt(x); } };
struct TanhOp { template <typename C> __device__ C operator()(C x) const { return m_tanh(x); } };
struct SigmoidOp { template <typename C> __device__ C operator()(C x) const { return cu::sigmoid_of(x); } };

// Number ops (also on integers, computed in the element type).
struct SquareOp { template <typename C> __device__ C operator()(C x) const { return x * x; } };
struct AbsOp { template <typename C> __device__ C operator()(C x) const { return x < C(0) ? C(-x) : x; } };
// Zero and NaN map to themselves.
struct SignOp {
  template <typename C> __device__ C operator()(C x) const { return x > C(0) ? C(1) : (x < C(0) ? C(-1) : x); }
};

MF_STATIC_INIT {
  using cu::unary_float_kernel;
  using cu::unary_numeric_kernel;
  register_kernel("exp", DeviceType::CUDA, unary_float_kernel<ExpOp>);
  register_kernel("log", DeviceType::CUDA, unary_float_kernel<LogOp>);
  register_kernel("sqrt", DeviceType::CUDA, unary_float_kernel<SqrtOp>);
  register_kernel("rsqrt", DeviceType::CUDA, unary_float_kernel<RsqrtOp>);
  register_kernel("tanh", DeviceType::CUDA, unary_float_kernel<TanhOp>);
  register_kernel("sigmoid", DeviceType::CUDA, unary_float_kernel<SigmoidOp>);
  register_kernel("square", DeviceType::CUDA, unary_numeric_kernel<SquareOp>);
  register_kernel("abs", DeviceType::CUDA, unary_numeric_kernel<AbsOp>);
  register_kernel("sign", DeviceType::CUDA, unary_numeric_kernel<SignOp>);
}

}  // namespace
}  // namespace meshflow
