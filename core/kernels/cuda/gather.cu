// CUDA kernels for gather, embedding (gather of table rows) and gather_backward (a scatter-add
// with atomics; the 16-bit floats add in a float buffer and are rounded once at the end).
//
// Note [Out-of-range indices on cuda]: the CPU kernels check every index and throw. Here that
// would need the indices on the host, a synchronization per call; instead an out-of-range
// index gathers a zero slice and scatters nothing (TensorFlow's GPU behaviour). Check indices
// on the CPU when they come from untrusted data.
#include "cuda_util.h"
#include "device_types.cuh"
#include "meshflow/core/autograd.h"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

using cu::convert;

Tensor dense(const Tensor& t) {
  NoGradGuard no_grad;
  return t.detach().contiguous();
}

struct Layout {
  int64_t outer = 1, n = 1, inner = 1;  // x viewed as [outer, n, inner] around the axis
};

Layout layout_of(const Shape& x_shape, int64_t axis) {
  Layout l;
  for (int64_t d = 0; d < axis; ++d) l.outer *= x_shape[d];
  l.n = x_shape[axis];
  for (size_t d = static_cast<size_t>(axis) + 1; d < x_shape.size(); ++d) l.inner *= x_shape[d];
  return l;
}

void check_index_dtype(const Tensor& idx, const char* op) {
  MF_CHECK(idx.dtype() == DType::I32 || idx.dtype() == DType::I64, op, ": indices must be i32 or i64, got ",
           dtype_name(idx.dtype()));
}

// out[o, j, i] = x[o, idx[j], i] for out viewed as [outer, m, inner]; R moves raw elements.
template <typename R, typename I>
__global__ void gather_kernel(const R* __restrict__ x, const I* __restrict__ idx, R* __restrict__ out, int64_t total,
                              int64_t m, int64_t n, int64_t inner) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % inner, t = e / inner;
    const int64_t j = t % m, o = t / m;
    const int64_t id = static_cast<int64_t>(idx[j]);
    out[e] = (id >= 0 && id < n) ? x[(o * n + id) * inner + i] : R(0);  // see Note [Out-of-range indices on cuda]
  }
}

void gather_rows(const ExecContext& ctx, const Tensor& x_in, const Tensor& idx_in, int64_t axis, Tensor& out,
                 const char* op) {
  check_index_dtype(idx_in, op);
  if (out.numel() == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  const Tensor x = dense(x_in), idx = dense(idx_in);
  const Layout l = layout_of(x.shape(), axis);
  const int64_t m = idx.numel(), total = out.numel();
  cu::dispatch_raw(x.dtype(), [&]<typename R>() {
    auto launch = [&]<typename I>() {
      gather_kernel<R, I><<<cu::grid_for(total), 256, 0, cu::stream_of(ctx)>>>(
          static_cast<const R*>(x.raw_data()), static_cast<const I*>(idx.raw_data()), static_cast<R*>(out.raw_data()),
          total, m, l.n, l.inner);
      MF_CUDA_CHECK_LAUNCH();
    };
    if (idx.dtype() == DType::I32) launch.template operator()<int32_t>();
    else launch.template operator()<int64_t>();
  });
}

void gather_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  const int64_t axis = normalize_axis(a.i("axis"), in[0].dim(), "gather");
  gather_rows(ctx, in[0], in[1], axis, out[0], "gather");
}

void embedding_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  gather_rows(ctx, in[1], in[0], 0, out[0], "embedding");
}

// Atomic adds by accumulation type: float and double natively, i32 as int, i64 through the
// unsigned 64-bit add (two's complement wraps the same way).
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(reinterpret_cast<int*>(p), int(v)); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

// acc[o, idx[j], i] += g[o, j, i]; A is the accumulation type (float for the 16-bit floats).
template <typename D, typename A, typename I>
__global__ void scatter_add_kernel(const D* __restrict__ g, const I* __restrict__ idx, A* __restrict__ acc,
                                   int64_t total, int64_t m, int64_t n, int64_t inner) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % inner, t = e / inner;
    const int64_t j = t % m, o = t / m;
    const int64_t id = static_cast<int64_t>(idx[j]);
    if (id >= 0 && id < n) atomic_add(acc + (o * n + id) * inner + i, convert<A>(g[e]));
  }
}

template <typename A, typename D>
__global__ void round_kernel(const A* __restrict__ src, D* __restrict__ dst, int64_t total) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x)
    dst[e] = convert<D>(src[e]);
}

// Inputs (grad, indices); attrs axis and x_shape; the output, x_shape, starts at zero.
void gather_backward_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                          const Attrs& a) {
  Tensor& gx = out[0];
  if (gx.numel() == 0) return;
  check_index_dtype(in[1], "gather_backward");
  MF_CHECK(gx.dtype() != DType::Bool, "gather_backward: cannot scatter-add bool gradients");
  cu::DeviceGuard guard(ctx.device().index);
  cudaStream_t stream = cu::stream_of(ctx);
  const int64_t axis = normalize_axis(a.i("axis"), gx.dim(), "gather_backward");
  const Layout l = layout_of(gx.shape(), axis);
  const Tensor g = dense(in[0]), idx = dense(in[1]);
  const int64_t m = idx.numel(), total = g.numel(), out_total = gx.numel();
  auto run = [&]<typename D>() {
    using A = std::conditional_t<cu::is_half_v<D>, float, D>;
    A* acc = cu::is_half_v<D> ? static_cast<A*>(ctx.workspace(static_cast<size_t>(out_total) * sizeof(A)))
                              : static_cast<A*>(gx.raw_data());
    MF_CUDA_CHECK(cudaMemsetAsync(acc, 0, static_cast<size_t>(out_total) * sizeof(A), stream));
    if (total > 0) {
      auto launch = [&]<typename I>() {
        scatter_add_kernel<D, A, I><<<cu::grid_for(total), 256, 0, stream>>>(
            static_cast<const D*>(g.raw_data()), static_cast<const I*>(idx.raw_data()), acc, total, m, l.n, l.inner);
        MF_CUDA_CHECK_LAUNCH();
      };
      if (idx.dtype() == DType::I32) launch.template operator()<int32_t>();
      else launch.template operator()<int64_t>();
    }
    if constexpr (cu::is_half_v<D>) {
      round_kernel<A, D><<<cu::grid_for(out_total), 256, 0, stream>>>(acc, static_cast<D*>(gx.raw_data()), out_total);
      MF_CUDA_CHECK_LAUNCH();
    }
  };
  if (gx.dtype() == DType::I32) run.template operator()<int32_t>();
  else if (gx.dtype() == DType::I64) run.template operator()<int64_t>();
  else cu::dispatch_floating(gx.dtype(), "gather_backward", run);
}

MF_STATIC_INIT {
  register_kernel("gather", DeviceType::CUDA, gather_cuda);
  register_kernel("embedding", DeviceType::CUDA, embedding_cuda);
  register_kernel("gather_backward", DeviceType::CUDA, gather_backward_cuda);
}

}  // namespace
}  // namespace meshflow
