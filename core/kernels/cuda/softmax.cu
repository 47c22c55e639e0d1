// CUDA kernels for softmax and log_softmax along any axis (the twins of
// core/kernels/cpu/softmax.cpp), read and written in place through strides (no permuted copies):
// a warp per row for rows up to 1024 elements, a block per row beyond, and a thread per row when
// the axis is strided but neighbouring rows are adjacent in memory.
// See Note [Stable softmax] there: the row's max is subtracted, a NaN anywhere makes the row NaN,
// a row with no finite max shifts by 0, and the sum of exponentials is kept in double.
#include "reduce_cuda.cuh"

namespace meshflow {
namespace {

using cu::dev_elem_t;

struct MaxCombine {
  template <typename C> __device__ __forceinline__ C combine(C a, C b) const { return b > a ? b : a; }
};
struct SumCombine {
  template <typename A> __device__ __forceinline__ A combine(A a, A b) const { return a + b; }
};
struct OrCombine {
  __device__ __forceinline__ int combine(int a, int b) const { return a | b; }
};

// The rows: element i of row r is x[off_x(r) + i * sx] and y[off_y(r) + i * sy].
struct Rows {
  int64_t count;
  int64_t n;
  int64_t sx, sy;
  cu::StridedIndex<2> outer;  // the dims other than the axis, for x and y
};

template <typename C>
__device__ __forceinline__ bool finite_of(C v) {
  return v - v == C(0);  // false for inf and NaN
}

// What one thread does for its share of a row (elements first, first + step, ...) once the row's
// max m (already shifted to 0 when not finite) and exp-sum s are known.
template <typename T, bool kLog>
__device__ __forceinline__ void write_row(const dev_elem_t<T>* xr, dev_elem_t<T>* yr, const Rows& rows, int64_t first,
                                          int64_t step, cu::comp_t<T> m, double s) {
  using C = cu::comp_t<T>;
  if constexpr (kLog) {
    const C shift = m + static_cast<C>(log(s));
    for (int64_t i = first; i < rows.n; i += step)
      yr[i * rows.sy] = cu::from_comp<T>(cu::to_comp(xr[i * rows.sx]) - shift);
  } else {
    const C inv = static_cast<C>(1.0 / s);
    for (int64_t i = first; i < rows.n; i += step)
      yr[i * rows.sy] = cu::from_comp<T>(cu::m_exp(cu::to_comp(xr[i * rows.sx]) - m) * inv);
  }
}

template <typename T>
__device__ __forceinline__ void fill_nan(dev_elem_t<T>* yr, const Rows& rows, int64_t first, int64_t step) {
  using C = cu::comp_t<T>;
  for (int64_t i = first; i < rows.n; i += step) yr[i * rows.sy] = cu::from_comp<T>(std::numeric_limits<C>::quiet_NaN());
}

template <typename T, bool kLog>
__global__ void softmax_warp_kernel(Rows rows, const dev_elem_t<T>* x, dev_elem_t<T>* y) {
  using C = cu::comp_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t warps = blockDim.x >> 5;
  const int64_t step = static_cast<int64_t>(gridDim.x) * warps;
  for (int64_t r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows.count; r += step) {
    int64_t off[2];
    cu::offsets_of<int64_t, 2>(rows.outer, r, off);
    const dev_elem_t<T>* xr = x + off[0];
    dev_elem_t<T>* yr = y + off[1];
    C m = -std::numeric_limits<C>::infinity();
    int nan = 0;
    for (int64_t i = lane; i < rows.n; i += 32) {
      const C v = cu::to_comp(xr[i * rows.sx]);
      m = v > m ? v : m;
      nan |= v != v;
    }
    m = cu::warp_all_reduce(m, MaxCombine{});
    if (__any_sync(cu::kFullMask, nan)) {
      fill_nan<T>(yr, rows, lane, 32);
      continue;
    }
    if (!finite_of(m)) m = C(0);
    double s = 0;
    for (int64_t i = lane; i < rows.n; i += 32) s += static_cast<double>(cu::m_exp(cu::to_comp(xr[i * rows.sx]) - m));
    s = cu::warp_all_reduce(s, SumCombine{});
    write_row<T, kLog>(xr, yr, rows, lane, 32, m, s);
  }
}

template <typename T, bool kLog>
__global__ void softmax_block_kernel(Rows rows, const dev_elem_t<T>* x, dev_elem_t<T>* y) {
  using C = cu::comp_t<T>;
  MF_CU_SHARED_ARRAY(C, smem_max, 32);
  MF_CU_SHARED_ARRAY(int, smem_nan, 32);
  MF_CU_SHARED_ARRAY(double, smem_sum, 32);
  for (int64_t r = blockIdx.x; r < rows.count; r += gridDim.x) {
    int64_t off[2];
    cu::offsets_of<int64_t, 2>(rows.outer, r, off);
    const dev_elem_t<T>* xr = x + off[0];
    dev_elem_t<T>* yr = y + off[1];
    C m = -std::numeric_limits<C>::infinity();
    int nan = 0;
    for (int64_t i = threadIdx.x; i < rows.n; i += blockDim.x) {
      const C v = cu::to_comp(xr[i * rows.sx]);
      m = v > m ? v : m;
      nan |= v != v;
    }
    m = cu::block_all_reduce(m, MaxCombine{}, smem_max);
    if (cu::block_all_reduce(nan, OrCombine{}, smem_nan)) {
      fill_nan<T>(yr, rows, threadIdx.x, blockDim.x);
      continue;
    }
    if (!finite_of(m)) m = C(0);
    double s = 0;
    for (int64_t i = threadIdx.x; i < rows.n; i += blockDim.x)
      s += static_cast<double>(cu::m_exp(cu::to_comp(xr[i * rows.sx]) - m));
    s = cu::block_all_reduce(s, SumCombine{}, smem_sum);
    write_row<T, kLog>(xr, yr, rows, threadIdx.x, blockDim.x, m, s);
  }
}

// A thread per row and kColSplit threads along each row, for an axis that is not the innermost
// while neighbouring rows are neighbours in memory (softmax over axis 0 of [N, C], over channels
// of [N, C, HW]): a warp then reads 32 adjacent elements per step instead of 32 scattered ones.
// Each row's partial max and sum meet in shared memory, combined in the same order by every
// thread of the row.
constexpr int kColSplit = 16;
template <typename T, bool kLog>
__global__ void softmax_cols_kernel(Rows rows, const dev_elem_t<T>* x, dev_elem_t<T>* y) {
  using C = cu::comp_t<T>;
  MF_CU_SHARED_ARRAY(C, smem_max, 32 * kColSplit);
  MF_CU_SHARED_ARRAY(double, smem_sum, 32 * kColSplit);
  __shared__ int smem_nan[32 * kColSplit];
  const int tx = threadIdx.x, ty = threadIdx.y;
  // The loop is uniform over the block (it depends on blockIdx only), so the barriers are safe.
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * 32; first < rows.count;
       first += static_cast<int64_t>(gridDim.x) * 32) {
    const int64_t r = first + tx;
    const bool valid = r < rows.count;
    const dev_elem_t<T>* xr = x;
    dev_elem_t<T>* yr = y;
    if (valid) {
      int64_t off[2];
      cu::offsets_of<int64_t, 2>(rows.outer, r, off);
      xr += off[0];
      yr += off[1];
    }
    C m = -std::numeric_limits<C>::infinity();
    int nan = 0;
    if (valid) {
#pragma unroll 4
      for (int64_t i = ty; i < rows.n; i += kColSplit) {
        const C v = cu::to_comp(xr[i * rows.sx]);
        m = v > m ? v : m;
        nan |= v != v;
      }
    }
    smem_max[ty * 32 + tx] = m;
    smem_nan[ty * 32 + tx] = nan;
    __syncthreads();
    m = smem_max[tx];
    nan = smem_nan[tx];
    for (int k = 1; k < kColSplit; ++k) {
      m = MaxCombine{}.combine(m, smem_max[k * 32 + tx]);
      nan |= smem_nan[k * 32 + tx];
    }
    if (!finite_of(m)) m = C(0);
    double s = 0;
    if (valid && !nan) {
#pragma unroll 4
      for (int64_t i = ty; i < rows.n; i += kColSplit)
        s += static_cast<double>(cu::m_exp(cu::to_comp(xr[i * rows.sx]) - m));
    }
    smem_sum[ty * 32 + tx] = s;
    __syncthreads();
    s = smem_sum[tx];
    for (int k = 1; k < kColSplit; ++k) s += smem_sum[k * 32 + tx];
    if (valid) {
      if (nan) fill_nan<T>(yr, rows, ty, kColSplit);
      else write_row<T, kLog>(xr, yr, rows, ty, kColSplit, m, s);
    }
    __syncthreads();  // the shared arrays are rewritten for the next rows
  }
}

template <bool kLog>
void softmax_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const Tensor& x = in[0];
  const Tensor& y = out[0];
  if (x.numel() == 0) return;
  const char* name = kLog ? "log_softmax" : "softmax";
  const int64_t rank = x.dim();
  const int64_t axis = normalize_axis(attrs.i("axis"), rank, name);
  Rows rows;
  rows.n = x.shape()[axis];
  rows.count = x.numel() / rows.n;
  rows.sx = x.strides()[axis];
  rows.sy = y.strides()[axis];
  // The other dims, with the axis taken out (size 1 is skipped by coalesce).
  Shape outer_shape = x.shape();
  outer_shape[axis] = 1;
  rows.outer = cu::coalesce<2>(outer_shape, {cu::geometry_of(x, x.shape()), cu::geometry_of(y, x.shape())});
  cu::DeviceGuard guard(ctx.device().index);
  cudaStream_t s = cu::stream_of(ctx);
  dispatch_dtype(x.dtype(), "softmax", [&]<typename T>() {
    if constexpr (cu::is_float_v<T>) {
      const auto* src = static_cast<const dev_elem_t<T>*>(x.raw_data());
      auto* dst = static_cast<dev_elem_t<T>*>(y.raw_data());
      // Neighbouring rows adjacent in x (its innermost non-axis dim has stride 1) but each row
      // strided: the column kernel. Otherwise a warp or a block walks each row.
      const bool columns = rows.sx != 1 && rows.outer.ndim >= 1 && rows.outer.stride[0][0] == 1;
      if (columns) {
        const int64_t blocks = std::min(cu::ceil_div(rows.count, 32), cu::kMaxGridX);
        softmax_cols_kernel<T, kLog><<<static_cast<unsigned>(blocks), dim3(32, kColSplit), 0, s>>>(rows, src, dst);
      } else if (rows.n <= 1024) {
        constexpr int kWarps = 8;
        const int64_t blocks = std::min(cu::ceil_div(rows.count, kWarps), cu::kMaxGridX);
        softmax_warp_kernel<T, kLog><<<static_cast<unsigned>(blocks), 32 * kWarps, 0, s>>>(rows, src, dst);
      } else {
        const int64_t blocks = std::min(rows.count, cu::kMaxGridX);
        softmax_block_kernel<T, kLog><<<static_cast<unsigned>(blocks), 512, 0, s>>>(rows, src, dst);
      }
      MF_CUDA_CHECK_LAUNCH();
    } else {
      MF_THROW("softmax: needs a floating tensor, got ", dtype_name(x.dtype()));
    }
  });
}

MF_STATIC_INIT {
  register_kernel("softmax", DeviceType::CUDA, softmax_kernel<false>);
  register_kernel("log_softmax", DeviceType::CUDA, softmax_kernel<true>);
}

}  // namespace
}  // namespace meshflow
