// CUDA kernels for max, min, argmax, argmin and equal_mask (the twins of
// core/kernels/cpu/reduce.cpp): NaN wins an extreme, and argmax/argmin return the first position
// of the extreme along the axis.
#include "internal/reduce.h"
#include "reduce_cuda.cuh"

namespace meshflow {
namespace {

template <bool kMax>
void extreme_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                    const Attrs& attrs) {
  const Tensor& x = in[0];
  if (out[0].numel() == 0) return;
  const auto axes = internal::reduce_axes(attrs.ints("axes"), x.dim(), "max/min");
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(x.dtype(), "max/min", [&]<typename T>() {
    cu::launch_reduce<T>(ctx, x, axes, out[0], cu::ExtremeReducer<T, kMax>{});
  });
}

template <bool kMax>
void arg_extreme_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                        const Attrs& attrs) {
  const Tensor& x = in[0];
  if (out[0].numel() == 0) return;
  const std::vector<int64_t> axes{normalize_axis(attrs.i("axis"), x.dim(), "argmax/argmin")};
  MF_CHECK(out[0].dtype() == DType::I64, "argmax/argmin: the output must be i64, got ", dtype_name(out[0].dtype()));
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(x.dtype(), "argmax/argmin", [&]<typename T>() {
    cu::launch_reduce<T>(ctx, x, axes, out[0], cu::ArgReducer<T, kMax>{});
  });
}

// One where x equals the (broadcast) extreme y, else zero (max/min's backward).
struct EqualOne {
  template <typename C> __device__ C operator()(C a, C b) const { return a == b ? C(1) : C(0); }
};

MF_STATIC_INIT {
  register_kernel("max", DeviceType::CUDA, extreme_kernel<true>);
  register_kernel("min", DeviceType::CUDA, extreme_kernel<false>);
  register_kernel("argmax", DeviceType::CUDA, arg_extreme_kernel<true>);
  register_kernel("argmin", DeviceType::CUDA, arg_extreme_kernel<false>);
  register_kernel("equal_mask", DeviceType::CUDA, cu::binary_kernel<EqualOne>);
}

}  // namespace
}  // namespace meshflow
