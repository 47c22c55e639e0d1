// CUDA kernel for pad, whose definition is in core/src/ops/pad.cpp: every output element is either
// the constant or its input element. The input is read in place with any strides; elements move
// as raw bits, so one instantiation serves every dtype of a size.
#include <cstring>

#include "cuda_util.h"
#include "device_types.cuh"
#include "internal/copy.h"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

struct PadGeometry {
  int ndim = 0;
  int64_t out_size[cu::kMaxDims] = {};
  int64_t before[cu::kMaxDims] = {};
  int64_t in_size[cu::kMaxDims] = {};
  int64_t in_stride[cu::kMaxDims] = {};
};

template <typename R>
__global__ void pad_kernel(const R* __restrict__ x, PadGeometry g, R* __restrict__ y, int64_t total, R value) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = e, off = 0;
    bool inside = true;
    for (int d = g.ndim - 1; d >= 0; --d) {
      const int64_t c = rem % g.out_size[d] - g.before[d];
      rem /= g.out_size[d];
      if (c < 0 || c >= g.in_size[d]) inside = false;
      else off += c * g.in_stride[d];
    }
    y[e] = inside ? x[off] : value;
  }
}

// attrs pads = before_0, after_0, before_1, after_1, ...; value (a double, converted like fill_).
void pad_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& y = out[0];
  const Tensor& x = in[0];
  if (y.numel() == 0) return;
  MF_CHECK(y.dim() <= cu::kMaxDims, "pad: cuda kernels take tensors of up to ", cu::kMaxDims, " dims, got ",
           shape_str(y.shape()));
  cu::DeviceGuard guard(ctx.device().index);
  const auto& pads = a.ints("pads");
  PadGeometry g;
  g.ndim = static_cast<int>(y.dim());
  for (int d = 0; d < g.ndim; ++d) {
    g.out_size[d] = y.size(d);
    g.before[d] = pads[2 * d];
    g.in_size[d] = x.size(d);
    g.in_stride[d] = x.strides()[d];
  }
  uint64_t bits = 0;  // the value in y's dtype, as raw bytes
  internal::store_from_double(&bits, y.dtype(), a.f("value"));
  cu::dispatch_raw(y.dtype(), [&]<typename R>() {
    R value;
    std::memcpy(&value, &bits, sizeof(R));
    pad_kernel<R><<<cu::grid_for(y.numel()), 256, 0, cu::stream_of(ctx)>>>(
        static_cast<const R*>(x.numel() > 0 ? x.raw_data() : nullptr), g, static_cast<R*>(y.raw_data()), y.numel(),
        value);
    MF_CUDA_CHECK_LAUNCH();
  });
}

MF_STATIC_INIT { register_kernel("pad", DeviceType::CUDA, pad_cuda); }

}  // namespace
}  // namespace meshflow
