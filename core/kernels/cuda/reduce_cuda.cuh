// Shared templates for CUDA reductions (sum, mean, max, min, argmax, argmin; softmax reuses the
// warp and block helpers): warp/block combining of any accumulator, the plan that splits a
// tensor's dims into kept and reduced groups (any strides, no copy), and the launcher that picks
// a lane group, a block or a thread per output and splits long reductions over several blocks.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "elementwise_cuda.cuh"

namespace meshflow::cu {

inline constexpr unsigned kFullMask = 0xffffffffu;

// ---- Warp and block combining ------------------------------------------------------------------

// Exchanges any trivially copyable value 32 bits at a time.
template <typename A>
__device__ __forceinline__ A shfl_xor_any(const A& v, int mask) {
  constexpr int kWords = (sizeof(A) + 3) / 4;
  unsigned u[kWords] = {};
  memcpy(u, &v, sizeof(A));
#pragma unroll
  for (int w = 0; w < kWords; ++w) u[w] = __shfl_xor_sync(kFullMask, u[w], mask);
  A r;
  memcpy(&r, u, sizeof(A));
  return r;
}

// Every lane gets f.combine over the warp's values. Each butterfly step combines the same two
// values on both partners, so with a commutative combine all lanes hold the same bits.
template <typename A, typename F>
__device__ __forceinline__ A warp_all_reduce(A v, const F& f) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) v = f.combine(v, shfl_xor_any(v, d));
  return v;
}

// Every thread gets f.combine over the block's values (blockDim.x a multiple of 32, all threads
// calling). smem holds 32 values; the leading barrier lets one block call this repeatedly.
template <typename A, typename F>
__device__ A block_all_reduce(A v, const F& f, A* smem) {
  v = warp_all_reduce(v, f);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  A r = smem[0];
  for (int w = 1; w < nwarps; ++w) r = f.combine(r, smem[w]);
  return r;
}

// Shared memory typed as an accumulator (which may not be default-constructible in __shared__).
#define MF_CU_SHARED_ARRAY(type, name, count)                                   \
  __shared__ alignas(16) unsigned char name##_raw[sizeof(type) * (count)];      \
  type* name = reinterpret_cast<type*>(name##_raw)

// ---- Reducers ------------------------------------------------------------------------------------
// A reducer folds elements (comp_t<T> values with their position in the reduced group) into an
// Acc, combines Accs, and turns the final Acc into the output element (Out).

// sum (and mean): floats add in double and integers (and bool) in int64, as on the CPU.
template <typename T>
struct SumReducer {
  using C = comp_t<T>;
  using Acc = std::conditional_t<std::is_floating_point_v<C>, double, int64_t>;
  using Out = dev_elem_t<T>;
  bool mean = false;
  C scale = C(1);  // 1/n for mean, already in the compute type (the CPU's static_cast<C>(1.0 / n))
  __device__ __forceinline__ Acc init() const { return Acc(0); }
  __device__ __forceinline__ Acc add(Acc a, C v, int64_t) const { return a + static_cast<Acc>(v); }
  __device__ __forceinline__ Acc combine(Acc a, Acc b) const { return a + b; }
  __device__ __forceinline__ Out finalize(Acc a) const {
    Out t = from_comp<T>(static_cast<C>(a));
    // mean scales the stored sum (rounded to T first), exactly as the CPU's second pass does.
    if constexpr (std::is_floating_point_v<C>) {
      if (mean) t = from_comp<T>(to_comp(t) * scale);
    }
    return t;
  }
};

// "a beats b": strictly greater (or less), and NaN beats any number (NaN wins, as in PyTorch).
template <bool kMax, typename C>
__device__ __forceinline__ bool extreme_better(C a, C b) {
  return (kMax ? a > b : a < b) || (is_nan(a) && !is_nan(b));
}

template <bool kMax, typename C>
__device__ __forceinline__ C extreme_identity() {
  if constexpr (std::is_floating_point_v<C>) {
    return kMax ? -std::numeric_limits<C>::infinity() : std::numeric_limits<C>::infinity();
  } else {
    return kMax ? std::numeric_limits<C>::lowest() : std::numeric_limits<C>::max();
  }
}

template <typename T, bool kMax>
struct ExtremeReducer {
  using C = comp_t<T>;
  using Acc = C;
  using Out = dev_elem_t<T>;
  __device__ __forceinline__ Acc init() const { return extreme_identity<kMax, C>(); }
  __device__ __forceinline__ Acc add(Acc a, C v, int64_t) const { return combine(a, v); }
  __device__ __forceinline__ Acc combine(Acc a, Acc b) const { return extreme_better<kMax>(b, a) ? b : a; }
  __device__ __forceinline__ Out finalize(Acc a) const { return from_comp<T>(a); }
};

template <typename C>
struct ArgAcc {
  C v;
  int64_t i;
};

// argmax/argmin: the best value, and among equals (or among NaNs) the first position, which is
// what the CPU's sequential strict "better" scan returns; combining is order-independent.
template <typename T, bool kMax>
struct ArgReducer {
  using C = comp_t<T>;
  using Acc = ArgAcc<C>;
  using Out = int64_t;
  __device__ __forceinline__ Acc init() const { return {extreme_identity<kMax, C>(), INT64_MAX}; }
  __device__ __forceinline__ Acc add(Acc a, C v, int64_t i) const { return combine(a, Acc{v, i}); }
  __device__ __forceinline__ Acc combine(Acc a, Acc b) const {
    if (extreme_better<kMax>(b.v, a.v)) return b;
    if (extreme_better<kMax>(a.v, b.v)) return a;
    return b.i < a.i ? b : a;
  }
  __device__ __forceinline__ Out finalize(Acc a) const { return a.i; }
};

// ---- The plan ------------------------------------------------------------------------------------

// The input's dims split into kept (one per output element, row-major: the contiguous output's
// order) and reduced, each group with size-1 dims dropped and mergeable neighbours merged; sizes
// and element strides innermost first. Offsets come from the input's own strides (views welcome).
struct ReducePlan {
  int64_t n_out = 1;
  int64_t n_red = 1;
  int out_ndim = 0;
  int red_ndim = 0;
  bool narrow = true;  // n_out and n_red below 2^31: 32-bit index division
  int64_t out_size[kMaxDims] = {};
  int64_t out_stride[kMaxDims] = {};
  int64_t red_size[kMaxDims] = {};
  int64_t red_stride[kMaxDims] = {};
};

// axes: sorted, unique, non-negative (internal::reduce_axes).
inline ReducePlan make_reduce_plan(const Tensor& x, const std::vector<int64_t>& axes) {
  ReducePlan p;
  const Shape& shape = x.shape();
  const Strides& strides = x.strides();
  std::vector<bool> reduced(shape.size(), false);
  for (int64_t a : axes) reduced[static_cast<size_t>(a)] = true;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    const bool r = reduced[static_cast<size_t>(d)];
    (r ? p.n_red : p.n_out) *= shape[d];
    if (shape[d] == 1) continue;
    int& nd = r ? p.red_ndim : p.out_ndim;
    int64_t* size = r ? p.red_size : p.out_size;
    int64_t* stride = r ? p.red_stride : p.out_stride;
    if (nd > 0 && stride[nd - 1] * size[nd - 1] == strides[d]) {
      size[nd - 1] *= shape[d];
    } else {
      MF_CHECK(nd < kMaxDims, "cuda reductions take tensors of up to ", kMaxDims, " dims, got ", shape_str(shape));
      size[nd] = shape[d];
      stride[nd] = strides[d];
      ++nd;
    }
  }
  p.narrow = p.n_out < (int64_t(1) << 31) && p.n_red < (int64_t(1) << 31);
  return p;
}

// Offset of linear index i over one group (sizes/strides innermost first).
__device__ __forceinline__ int64_t group_offset(int nd, const int64_t (&size)[kMaxDims],
                                                const int64_t (&stride)[kMaxDims], int64_t i, bool narrow) {
  if (nd <= 1) return nd == 0 ? 0 : i * stride[0];  // the common case: no division
  int64_t off = 0;
  if (narrow) {
    uint32_t rem = static_cast<uint32_t>(i);
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == nd - 1) {
        off += static_cast<int64_t>(rem) * stride[d];
        break;
      }
      const uint32_t s = static_cast<uint32_t>(size[d]);
      off += static_cast<int64_t>(rem % s) * stride[d];
      rem /= s;
    }
  } else {
    int64_t rem = i;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == nd - 1) {
        off += rem * stride[d];
        break;
      }
      off += (rem % size[d]) * stride[d];
      rem /= size[d];
    }
  }
  return off;
}

__device__ __forceinline__ int64_t out_offset(const ReducePlan& p, int64_t o) {
  return group_offset(p.out_ndim, p.out_size, p.out_stride, o, p.narrow);
}
__device__ __forceinline__ int64_t red_offset(const ReducePlan& p, int64_t r) {
  return group_offset(p.red_ndim, p.red_size, p.red_stride, r, p.narrow);
}

// ---- Kernels -------------------------------------------------------------------------------------

// Folds elements r, r + step, ... (below hi) of the group at `base` into acc, in that order. Four
// loads are issued before their adds: with a few elements per lane, one load in flight per thread
// left the lane-group kernel latency-bound (measured on an H200: 1.0 -> 1.35 TB/s for [1M, 64]
// rows); the block and column kernels measured faster with the plain loop. The order of the adds,
// so the result, is the plain loop's.
template <typename T, typename Red>
__device__ __forceinline__ typename Red::Acc accumulate(const ReducePlan& p, const dev_elem_t<T>* x, int64_t base,
                                                        const Red& red, typename Red::Acc acc, int64_t r, int64_t hi,
                                                        int64_t step) {
  for (; r + 3 * step < hi; r += 4 * step) {
    const dev_elem_t<T> v0 = x[base + red_offset(p, r)];
    const dev_elem_t<T> v1 = x[base + red_offset(p, r + step)];
    const dev_elem_t<T> v2 = x[base + red_offset(p, r + 2 * step)];
    const dev_elem_t<T> v3 = x[base + red_offset(p, r + 3 * step)];
    acc = red.add(acc, to_comp(v0), r);
    acc = red.add(acc, to_comp(v1), r + step);
    acc = red.add(acc, to_comp(v2), r + 2 * step);
    acc = red.add(acc, to_comp(v3), r + 3 * step);
  }
  for (; r < hi; r += step) acc = red.add(acc, to_comp(x[base + red_offset(p, r)]), r);
  return acc;
}

// A group of G = 2^group_log2 lanes (4 to 32) per output: short reductions, G sized so each lane
// reads a few elements. A warp's groups take neighbouring outputs and the loop runs per warp (a
// group past the end reduces nothing), so every lane reaches every shuffle.
template <typename T, typename Red>
__global__ void reduce_warp_kernel(ReducePlan p, const dev_elem_t<T>* x, Red red, typename Red::Out* out,
                                   int group_log2) {
  using Acc = typename Red::Acc;
  const int G = 1 << group_log2;
  const int lane = threadIdx.x & (G - 1);
  const int64_t per_warp = 32 >> group_log2;
  const int64_t warps_per_block = blockDim.x >> 5;
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * warps_per_block + (threadIdx.x >> 5);
  const int64_t step = static_cast<int64_t>(gridDim.x) * warps_per_block * per_warp;
  for (int64_t first = warp * per_warp; first < p.n_out; first += step) {
    const int64_t o = first + ((threadIdx.x & 31) >> group_log2);
    Acc acc = red.init();
    if (o < p.n_out) {
      const int64_t base = out_offset(p, o);
      acc = accumulate<T>(p, x, base, red, acc, lane, p.n_red, G);
    }
    for (int d = G >> 1; d > 0; d >>= 1) acc = red.combine(acc, shfl_xor_any(acc, d));
    if (lane == 0 && o < p.n_out) out[o] = red.finalize(acc);
  }
}

// A block per output and per chunk of the reduced range (blockIdx.y): long reductions. With
// more than one chunk each block leaves its Acc in partial[chunk * n_out + o] for the finalize
// kernel; with one it writes the output.
template <typename T, typename Red>
__global__ void reduce_block_kernel(ReducePlan p, const dev_elem_t<T>* x, Red red, typename Red::Out* out,
                                    typename Red::Acc* partial, int64_t chunk) {
  using Acc = typename Red::Acc;
  MF_CU_SHARED_ARRAY(Acc, smem, 32);
  const int64_t lo = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t hi = min(p.n_red, lo + chunk);
  for (int64_t o = blockIdx.x; o < p.n_out; o += gridDim.x) {
    const int64_t base = out_offset(p, o);
    Acc acc = red.init();
    for (int64_t r = lo + threadIdx.x; r < hi; r += blockDim.x) acc = red.add(acc, to_comp(x[base + red_offset(p, r)]), r);
    acc = block_all_reduce(acc, red, smem);
    if (threadIdx.x == 0) {
      if (partial) partial[static_cast<int64_t>(blockIdx.y) * p.n_out + o] = acc;
      else out[o] = red.finalize(acc);
    }
  }
}

// A thread per output, blockDim.y threads (and blockIdx.y chunks) sharing its reduced range:
// for outputs that are neighbours in memory (reducing leading axes, bias gradients), so a warp
// reads 32 neighbouring elements per step, and for short scattered reductions.
inline constexpr int kColRows = 8;
template <typename T, typename Red>
__global__ void reduce_cols_kernel(ReducePlan p, const dev_elem_t<T>* x, Red red, typename Red::Out* out,
                                   typename Red::Acc* partial, int64_t chunk) {
  using Acc = typename Red::Acc;
  MF_CU_SHARED_ARRAY(Acc, smem, 32 * kColRows);
  const int64_t lo = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t hi = min(p.n_red, lo + chunk);
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * 32; first < p.n_out; first += static_cast<int64_t>(gridDim.x) * 32) {
    const int64_t o = first + threadIdx.x;
    Acc acc = red.init();
    if (o < p.n_out) {
      const int64_t base = out_offset(p, o);
      for (int64_t r = lo + threadIdx.y; r < hi; r += kColRows) acc = red.add(acc, to_comp(x[base + red_offset(p, r)]), r);
    }
    smem[threadIdx.y * 32 + threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && o < p.n_out) {
      for (int y = 1; y < kColRows; ++y) acc = red.combine(acc, smem[y * 32 + threadIdx.x]);
      if (partial) partial[static_cast<int64_t>(blockIdx.y) * p.n_out + o] = acc;
      else out[o] = red.finalize(acc);
    }
    __syncthreads();  // smem is rewritten by the next group of outputs
  }
}

// Combines the chunks' partial Accs in chunk order (deterministic) and writes the outputs.
template <typename Red>
__global__ void reduce_finalize_kernel(int64_t n_out, int64_t chunks, const typename Red::Acc* partial, Red red,
                                       typename Red::Out* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < n_out; o += step) {
    typename Red::Acc acc = partial[o];
    for (int64_t c = 1; c < chunks; ++c) acc = red.combine(acc, partial[c * n_out + o]);
    out[o] = red.finalize(acc);
  }
}

// ---- The launcher --------------------------------------------------------------------------------

// Enough blocks to fill an H100/H200-class GPU a couple of times over; a fixed number (not the
// device's SM count) so a given shape always splits the same way and sums reproduce exactly.
inline constexpr int64_t kTargetBlocks = 512;
inline constexpr int64_t kMaxGridX = int64_t(1) << 20;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Chunks for a reduction whose outputs take `blocks` blocks: enough to reach kTargetBlocks,
// never chunks shorter than min_chunk elements.
inline int64_t chunks_for(int64_t blocks, int64_t n_red, int64_t min_chunk) {
  if (blocks >= kTargetBlocks) return 1;
  int64_t c = std::min(ceil_div(kTargetBlocks, blocks), ceil_div(n_red, min_chunk));
  return std::clamp<int64_t>(c, 1, 65535);
}

// Reduces x over `axes` (sorted, unique) into out (contiguous, the kept dims in order).
template <typename T, typename Red>
void launch_reduce(const ExecContext& ctx, const Tensor& x, const std::vector<int64_t>& axes, const Tensor& out,
                   Red red) {
  using Acc = typename Red::Acc;
  using Out = typename Red::Out;
  const ReducePlan p = make_reduce_plan(x, axes);
  if (p.n_out == 0) return;
  MF_CHECK(out.is_contiguous() && out.numel() == p.n_out, "cuda reduction: the output must be a contiguous tensor of ",
           p.n_out, " elements, got ", shape_str(out.shape()));
  const auto* src = static_cast<const dev_elem_t<T>*>(x.raw_data());
  auto* dst = static_cast<Out*>(out.raw_data());
  cudaStream_t s = stream_of(ctx);

  const bool rows = p.red_ndim == 1 && p.red_stride[0] == 1;   // each output's elements are contiguous
  const bool cols = p.out_ndim >= 1 && p.out_stride[0] == 1;   // neighbouring outputs are neighbours
  // Contiguous rows of 4 or more go to lane groups; short scattered ones to a thread each.
  const bool per_group = (rows && p.n_red >= 4) || (!cols && p.n_red >= 256);
  Acc* partial = nullptr;
  int64_t chunks = 1;
  if (per_group && p.n_red <= 2048) {
    // G lanes per output: about 4 elements per lane, at least 4 lanes, at most a warp.
    int group_log2 = 2;
    while (group_log2 < 5 && (int64_t(4) << group_log2) < p.n_red) ++group_log2;
    constexpr int kWarps = 8;
    const int64_t per_block = int64_t(kWarps) * (32 >> group_log2);
    const int64_t blocks = std::min(ceil_div(p.n_out, per_block), kMaxGridX);
    reduce_warp_kernel<T, Red><<<static_cast<unsigned>(blocks), 32 * kWarps, 0, s>>>(p, src, red, dst, group_log2);
    MF_CUDA_CHECK_LAUNCH();
    return;
  }
  if (per_group) {
    const int64_t blocks = std::min(p.n_out, kMaxGridX);
    chunks = chunks_for(blocks, p.n_red, 8192);
    if (chunks > 1) partial = static_cast<Acc*>(ctx.workspace(sizeof(Acc) * static_cast<size_t>(chunks * p.n_out)));
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(chunks));
    reduce_block_kernel<T, Red><<<grid, 256, 0, s>>>(p, src, red, dst, partial, ceil_div(p.n_red, chunks));
  } else {
    const int64_t blocks = std::min(ceil_div(p.n_out, 32), kMaxGridX);
    chunks = chunks_for(blocks, p.n_red, 64 * kColRows);
    if (chunks > 1) partial = static_cast<Acc*>(ctx.workspace(sizeof(Acc) * static_cast<size_t>(chunks * p.n_out)));
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(chunks));
    reduce_cols_kernel<T, Red><<<grid, dim3(32, kColRows), 0, s>>>(p, src, red, dst, partial, ceil_div(p.n_red, chunks));
  }
  MF_CUDA_CHECK_LAUNCH();
  if (chunks > 1) {
    reduce_finalize_kernel<Red><<<grid_for(p.n_out), 256, 0, s>>>(p.n_out, chunks, partial, red, dst);
    MF_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace meshflow::cu
