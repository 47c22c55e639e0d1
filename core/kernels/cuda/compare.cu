// CUDA kernels for the comparisons (eq, ne, lt, le, gt, ge) and logical ops (logical_and,
// logical_or, logical_not), whose definitions are in core/src/ops/compare.cpp (the twins of
// core/kernels/cpu/compare.cpp).
#include "elementwise_cuda.cuh"

namespace meshflow {
namespace {

struct EqOp { template <typename C> __device__ bool operator()(C a, C b) const { return a == b; } };
struct NeOp { template <typename C> __device__ bool operator()(C a, C b) const { return a != b; } };
struct LtOp { template <typename C> __device__ bool operator()(C a, C b) const { return a < b; } };
struct LeOp { template <typename C> __device__ bool operator()(C a, C b) const { return a <= b; } };
struct GtOp { template <typename C> __device__ bool operator()(C a, C b) const { return a > b; } };
struct GeOp { template <typename C> __device__ bool operator()(C a, C b) const { return a >= b; } };
struct AndOp { __device__ bool operator()(bool a, bool b) const { return a && b; } };
struct OrOp { __device__ bool operator()(bool a, bool b) const { return a || b; } };
struct NotOp { __device__ bool operator()(bool a) const { return !a; } };

// Comparisons take every dtype (bool included) and write bool.
template <typename Op>
void compare_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(in[0].dtype(), "comparison",
                 [&]<typename T>() { cu::launch_binary<T, bool>(ctx, in[0], in[1], out[0], Op{}); });
}

void logical_kernel_check(const std::vector<Tensor>& in) {
  for (const Tensor& t : in) MF_CHECK(t.dtype() == DType::Bool, "logical op kernel: expected bool inputs");
}

template <typename Op>
void logical_binary_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                           const Attrs&) {
  logical_kernel_check(in);
  cu::DeviceGuard guard(ctx.device().index);
  cu::launch_binary<bool, bool>(ctx, in[0], in[1], out[0], Op{});
}

void logical_not_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                        const Attrs&) {
  logical_kernel_check(in);
  cu::DeviceGuard guard(ctx.device().index);
  cu::launch_unary<bool, bool>(ctx, in[0], out[0], NotOp{});
}

MF_STATIC_INIT {
  register_kernel("eq", DeviceType::CUDA, compare_kernel<EqOp>);
  register_kernel("ne", DeviceType::CUDA, compare_kernel<NeOp>);
  register_kernel("lt", DeviceType::CUDA, compare_kernel<LtOp>);
  register_kernel("le", DeviceType::CUDA, compare_kernel<LeOp>);
  register_kernel("gt", DeviceType::CUDA, compare_kernel<GtOp>);
  register_kernel("ge", DeviceType::CUDA, compare_kernel<GeOp>);
  register_kernel("logical_and", DeviceType::CUDA, logical_binary_kernel<AndOp>);
  register_kernel("logical_or", DeviceType::CUDA, logical_binary_kernel<OrOp>);
  register_kernel("logical_not", DeviceType::CUDA, logical_not_kernel);
}

}  // namespace
}  // namespace meshflow
