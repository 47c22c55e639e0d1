// CUDA kernels for cast, contiguous and assign, and copy_cast_cuda, the typed strided copy they
// share (the twins of core/kernels/cpu/copy.cpp).
#include "copy_cuda.h"
#include "elementwise_cuda.cuh"

namespace meshflow {
namespace cu {
namespace {

// T -> R as the CPU converts: to bool means "not zero", anything else goes through comp_t<R>
// (so f64 -> f16 rounds to float first, exactly as the host f16(float) path does).
template <typename T, typename R>
struct CastOp {
  __device__ __forceinline__ comp_t<R> operator()(comp_t<T> v) const {
    if constexpr (std::is_same_v<R, bool>) {
      return v != comp_t<T>(0);
    } else {
      return static_cast<comp_t<R>>(v);
    }
  }
};

// Same dtype: elements move as raw bits (no float round trip, NaN payloads kept).
template <typename S>
struct MoveOp {
  __device__ __forceinline__ S operator()(S v) const { return v; }
};

template <typename S>
void launch_move(const ExecContext& ctx, const Tensor& dst, const Tensor& src) {
  // The launcher reads S and writes S: S is an unsigned integer of the element's size.
  launch_unary<S, S>(ctx, src, dst, MoveOp<S>{});
}

}  // namespace

void copy_cast_cuda(const ExecContext& ctx, const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  DeviceGuard guard(ctx.device().index);
  if (dst.dtype() == src.dtype()) {
    if (dst.is_contiguous() && src.is_contiguous() && dst.shape() == src.shape()) {
      const size_t bytes = static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype());
      if (dst.raw_data() != src.raw_data())
        MF_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream_of(ctx)));
      return;
    }
    switch (dtype_size(dst.dtype())) {
      case 1: return launch_move<uint8_t>(ctx, dst, src);
      case 2: return launch_move<uint16_t>(ctx, dst, src);
      case 4: return launch_move<uint32_t>(ctx, dst, src);
      case 8: return launch_move<uint64_t>(ctx, dst, src);
      default: MF_THROW("copy: unsupported element size for dtype ", dtype_name(dst.dtype()));
    }
  }
  dispatch_dtype(dst.dtype(), "copy", [&]<typename R>() {
    dispatch_dtype(src.dtype(), "copy", [&]<typename T>() { launch_unary<T, R>(ctx, src, dst, CastOp<T, R>{}); });
  });
}

}  // namespace cu

namespace {

void copy_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  cu::copy_cast_cuda(ctx, out[0], in[0]);
}

// assign(dst, src): the in-place copy behind Tensor::copy_ and fill_; no outputs.
void assign_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs&) {
  cu::copy_cast_cuda(ctx, in[0], in[1]);
}

MF_STATIC_INIT {
  register_kernel("cast", DeviceType::CUDA, copy_kernel);
  register_kernel("contiguous", DeviceType::CUDA, copy_kernel);
  register_kernel("assign", DeviceType::CUDA, assign_kernel);
}

}  // namespace
}  // namespace meshflow
