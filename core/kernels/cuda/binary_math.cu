// CUDA kernels for maximum, minimum, pow and pow_scalar, whose definitions are in
// core/src/ops/binary_math.cpp (the twins of core/kernels/cpu/binary_math.cpp).
#include "elementwise_cuda.cuh"

namespace meshflow {
namespace {

// NaN propagates (a != a only for NaN); ties pick a, matching the backward's tie rule.
struct MaximumOp {
  template <typename C> __device__ C operator()(C a, C b) const { return (a >= b || a != a) ? a : b; }
};
struct MinimumOp {
  template <typename C> __device__ C operator()(C a, C b) const { return (a <= b || a != a) ? a : b; }
};
struct PowOp { template <typename C> __device__ C operator()(C a, C b) const { return cu::m_pow(a, b); } };
struct PowScalarOp {
  double e;
  template <typename C> __device__ C operator()(C x) const { return e == 2.0 ? x * x : cu::m_pow(x, C(e)); }
};

void pow_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(in[0].dtype(), "pow", [&]<typename T>() {
    if constexpr (cu::is_float_v<T>) {
      cu::launch_binary<T, T>(ctx, in[0], in[1], out[0], PowOp{});
    } else {
      MF_THROW("pow: needs floating tensors, got ", dtype_name(in[0].dtype()));
    }
  });
}

void pow_scalar_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                       const Attrs& a) {
  cu::unary_float_run(ctx, in[0], out[0], PowScalarOp{a.f("exponent")});
}

MF_STATIC_INIT {
  register_kernel("maximum", DeviceType::CUDA, cu::binary_kernel<MaximumOp>);
  register_kernel("minimum", DeviceType::CUDA, cu::binary_kernel<MinimumOp>);
  register_kernel("pow", DeviceType::CUDA, pow_kernel);
  register_kernel("pow_scalar", DeviceType::CUDA, pow_scalar_kernel);
}

}  // namespace
}  // namespace meshflow
