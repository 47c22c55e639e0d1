// CUDA kernels for sum and mean (the twins of core/kernels/cpu/reduce_sum.cpp): any axes, any
// input strides; floats accumulate in double and integers in int64 as on the CPU, and mean scales
// the T-rounded sum by 1/n in the compute type exactly as the CPU's second pass does.
#include "internal/reduce.h"
#include "reduce_cuda.cuh"

namespace meshflow {
namespace {

void sum_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const Tensor& x = in[0];
  const auto axes = internal::reduce_axes(attrs.ints("axes"), x.dim(), "sum");
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(x.dtype(), "sum",
                 [&]<typename T>() { cu::launch_reduce<T>(ctx, x, axes, out[0], cu::SumReducer<T>{}); });
}

// mean over n elements; n = 0 gives 0 * (1/0) = NaN, like the CPU.
void mean_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const Tensor& x = in[0];
  const auto axes = internal::reduce_axes(attrs.ints("axes"), x.dim(), "mean");
  double n = 1;
  for (int64_t a : axes) n *= static_cast<double>(x.shape()[a]);
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(out[0].dtype(), "mean", [&]<typename T>() {
    if constexpr (cu::is_float_v<T>) {
      using C = cu::comp_t<T>;
      cu::launch_reduce<T>(ctx, x, axes, out[0], cu::SumReducer<T>{true, static_cast<C>(1.0 / n)});
    } else {
      MF_THROW("mean: expected a floating tensor, got ", dtype_name(out[0].dtype()));
    }
  });
}

MF_STATIC_INIT {
  register_kernel("sum", DeviceType::CUDA, sum_kernel);
  register_kernel("mean", DeviceType::CUDA, mean_kernel);
}

}  // namespace
}  // namespace meshflow
