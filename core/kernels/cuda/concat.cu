// CUDA kernel for concat: each input copied into its window of the output. Inputs of any strides
// are read in place; elements move as raw bits, so one instantiation serves every dtype of a size.
#include "cuda_util.h"
#include "device_types.cuh"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

// Copies x, viewed as [outer, len, inner] around the axis, to out[:, start:start + len, :] with
// out's axis of size out_axis. Dense: x is row-major, so its flat index is its offset.
template <typename R, bool Dense>
__global__ void concat_copy(const R* __restrict__ x, cu::Geometry gx, R* __restrict__ out, int64_t total, int64_t len,
                            int64_t inner, int64_t out_axis, int64_t start) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % inner, t = e / inner;
    const int64_t a = t % len, o = t / len;
    out[(o * out_axis + start + a) * inner + i] = x[Dense ? e : cu::offset_of(gx, e)];
  }
}

void concat_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& y = out[0];
  if (y.numel() == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  const int64_t axis = normalize_axis(a.i("axis"), y.dim(), "concat");
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < y.dim(); ++d) inner *= y.size(d);
  const int64_t out_axis = y.size(axis);
  int64_t start = 0;
  for (const Tensor& x : in) {
    const int64_t len = x.size(axis), total = x.numel();
    if (total > 0) {
      const cu::Geometry gx = cu::geometry_of(x, x.shape());
      const bool dense = cu::all_dense(x.shape(), {&gx});
      cu::dispatch_raw(y.dtype(), [&]<typename R>() {
        const R* px = static_cast<const R*>(x.raw_data());
        R* py = static_cast<R*>(y.raw_data());
        if (dense)
          concat_copy<R, true><<<cu::grid_for(total), 256, 0, cu::stream_of(ctx)>>>(px, gx, py, total, len, inner,
                                                                                    out_axis, start);
        else
          concat_copy<R, false><<<cu::grid_for(total), 256, 0, cu::stream_of(ctx)>>>(px, gx, py, total, len, inner,
                                                                                     out_axis, start);
        MF_CUDA_CHECK_LAUNCH();
      });
    }
    start += len;
  }
}

MF_STATIC_INIT { register_kernel("concat", DeviceType::CUDA, concat_cuda); }

}  // namespace
}  // namespace meshflow
