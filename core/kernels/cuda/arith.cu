// CUDA kernels for add, sub, mul, div and neg (the twins of core/kernels/cpu/arith.cpp).
#include "elementwise_cuda.cuh"

namespace meshflow {
namespace {

struct AddOp { template <typename C> __device__ C operator()(C a, C b) const { return a + b; } };
struct SubOp { template <typename C> __device__ C operator()(C a, C b) const { return a - b; } };
struct MulOp { template <typename C> __device__ C operator()(C a, C b) const { return a * b; } };
struct DivOp { template <typename C> __device__ C operator()(C a, C b) const { return a / b; } };
struct NegOp { template <typename C> __device__ C operator()(C a) const { return -a; } };

void neg_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(in[0].dtype(), "neg", [&]<typename T>() {
    // The op's infer function refuses bool before a kernel runs; say so if one gets here anyway.
    if constexpr (std::is_same_v<T, bool>) {
      MF_THROW("neg: cannot negate a bool tensor; use logical_not");
    } else {
      cu::launch_unary<T, T>(ctx, in[0], out[0], NegOp{});
    }
  });
}

MF_STATIC_INIT {
  register_kernel("add", DeviceType::CUDA, cu::binary_kernel<AddOp>);
  register_kernel("sub", DeviceType::CUDA, cu::binary_kernel<SubOp>);
  register_kernel("mul", DeviceType::CUDA, cu::binary_kernel<MulOp>);
  register_kernel("div", DeviceType::CUDA, cu::binary_kernel<DivOp>);
  register_kernel("neg", DeviceType::CUDA, neg_kernel);
}

}  // namespace
}  // namespace meshflow
