// Shared templates for CUDA elementwise kernels: device element types and conversions (f16/bf16
// compute in float, as on the CPU), dimension coalescing, and launchers for unary, binary and
// n-ary strided/broadcasting loops with a flat (vectorized where aligned) fast path.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cuda_util.h"
#include "meshflow/core/dtype.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/tensor.h"

namespace meshflow::cu {

// ---- Element types ---------------------------------------------------------------------------
// Kernels are templated on the host type dispatch_dtype gives (bf16, f16, float, ...); memory is
// read through dev_elem_t<T> (the CUDA half types for bf16/f16, which have the same 2-byte layout as
// meshflow's host structs) and arithmetic happens in comp_t<T>, the CPU's compute_t.

template <typename T> struct DevTypeOf { using type = T; };
template <> struct DevTypeOf<bf16> { using type = __nv_bfloat16; };
template <> struct DevTypeOf<f16> { using type = __half; };
template <typename T> using dev_elem_t = typename DevTypeOf<T>::type;

template <typename T>
using comp_t = std::conditional_t<std::is_same_v<T, bf16> || std::is_same_v<T, f16>, float, T>;

template <typename T> inline constexpr bool is_float_v = std::is_floating_point_v<comp_t<T>>;

__device__ __forceinline__ float to_comp(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_comp(__half v) { return __half2float(v); }
template <typename S> __device__ __forceinline__ S to_comp(S v) { return v; }

// float -> bf16 bit for bit as the host struct does it (round to nearest even, NaN kept quiet),
// so a value rounded on the GPU equals the CPU kernel's.
__device__ __forceinline__ __nv_bfloat16 float_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  uint16_t bits;
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    bits = static_cast<uint16_t>((u >> 16) | 0x40u);
  } else {
    u += 0x7fffu + ((u >> 16) & 1u);
    bits = static_cast<uint16_t>(u >> 16);
  }
  return __ushort_as_bfloat16(bits);
}

// A compute value stored as T (the caller has converted it to comp_t<T> already).
template <typename T>
__device__ __forceinline__ dev_elem_t<T> from_comp(comp_t<T> v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return float_to_bf16(v);
  } else if constexpr (std::is_same_v<T, f16>) {
    return __float2half_rn(v);  // IEEE round to nearest even, as the host f16 conversion
  } else {
    return v;
  }
}

// Any computed value (possibly of another type) stored as T, through comp_t<T> as the CPU's R(x).
template <typename T, typename V>
__device__ __forceinline__ dev_elem_t<T> store_as(V v) {
  return from_comp<T>(static_cast<comp_t<T>>(v));
}

template <typename C> __device__ __forceinline__ bool is_nan(C v) {
  if constexpr (std::is_floating_point_v<C>) return v != v;
  else return false;
}

// ---- Math on compute types (float or double overloads; full precision, never the fast
// intrinsics, so results stay within a few ulp of the CPU's) ------------------------------------
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_expm1(float x) { return expm1f(x); }
__device__ __forceinline__ double m_expm1(double x) { return expm1(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double m_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_erf(float x) { return erff(x); }
__device__ __forceinline__ double m_erf(double x) { return erf(x); }
__device__ __forceinline__ float m_fabs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_fabs(double x) { return fabs(x); }
__device__ __forceinline__ float m_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double m_pow(double x, double y) { return pow(x, y); }

// The logistic function, shared by sigmoid and silu. e = e^-|x| never exceeds 1, so neither
// branch overflows.
template <typename C>
__device__ __forceinline__ C sigmoid_of(C x) {
  const C e = m_exp(-m_fabs(x));
  const C s = C(1) / (C(1) + e);
  return x >= C(0) ? s : e * s;
}

// ---- Coalesced strided indexing --------------------------------------------------------------

// K operands' element strides over a shape whose size-1 dims are dropped and whose neighbouring
// dims are merged wherever every operand is contiguous across them (fewer divisions per element).
// Dims are stored innermost first.
template <int K>
struct StridedIndex {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[K][kMaxDims] = {};
};

template <int K>
StridedIndex<K> coalesce(const Shape& shape, const std::array<Geometry, K>& g) {
  StridedIndex<K> c;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    bool merge = c.ndim > 0;
    for (int k = 0; k < K && merge; ++k)
      merge = g[k].stride[d] == c.stride[k][c.ndim - 1] * c.size[c.ndim - 1];
    if (merge) {
      c.size[c.ndim - 1] *= shape[d];
    } else {
      c.size[c.ndim] = shape[d];
      for (int k = 0; k < K; ++k) c.stride[k][c.ndim] = g[k].stride[d];
      ++c.ndim;
    }
  }
  return c;
}

// True when the coalesced layout is one flat run that every operand reads with stride 1.
template <int K>
bool is_flat(const StridedIndex<K>& c) {
  if (c.ndim == 0) return true;  // a single element
  if (c.ndim > 1) return false;
  for (int k = 0; k < K; ++k)
    if (c.stride[k][0] != 1) return false;
  return true;
}

// Element offsets of linear index i (row-major over the original shape) for every operand.
// I is uint32_t when the element count allows (32-bit division is several times cheaper).
template <typename I, int K>
__device__ __forceinline__ void offsets_of(const StridedIndex<K>& c, I i, int64_t (&off)[K]) {
#pragma unroll
  for (int k = 0; k < K; ++k) off[k] = 0;
  I rem = i;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    if (d >= c.ndim) break;
    I idx;
    if (d == c.ndim - 1) {
      idx = rem;  // the outermost dim needs no modulo
    } else {
      const I sz = static_cast<I>(c.size[d]);
      idx = rem % sz;
      rem /= sz;
    }
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] += static_cast<int64_t>(idx) * c.stride[k][d];
  }
}

// body(off) with off[k] the element offset of operand k, for every element of the shape.
template <typename I, int K, typename Body>
__global__ void strided_kernel(I n, StridedIndex<K> c, Body body) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[K];
    offsets_of<I, K>(c, i, off);
    body(off);
  }
}

template <int K, typename Body>
__global__ void flat_kernel(int64_t n, Body body) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[K];
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = i;
    body(off);
  }
}

// Runs body over `shape` with one geometry per operand (geometry_of each tensor at `shape`).
// The grid-stride index stays 32-bit below 2^31 elements: the largest grid (grid_for's cap
// times 256 threads) is under 2^28, so i + step never wraps a uint32_t.
template <int K, typename Body>
void launch_offsets(const ExecContext& ctx, const Shape& shape, const std::array<Geometry, K>& geoms, Body body) {
  const int64_t n = shape_numel(shape);
  if (n <= 0) return;
  const StridedIndex<K> c = coalesce<K>(shape, geoms);
  cudaStream_t s = stream_of(ctx);
  if (is_flat(c)) {
    flat_kernel<K><<<grid_for(n), 256, 0, s>>>(n, body);
  } else if (n < (int64_t(1) << 31)) {
    strided_kernel<uint32_t, K><<<grid_for(n), 256, 0, s>>>(static_cast<uint32_t>(n), c, body);
  } else {
    strided_kernel<int64_t, K><<<grid_for(n), 256, 0, s>>>(n, c, body);
  }
  MF_CUDA_CHECK_LAUNCH();
}

// ---- Unary and binary launchers ----------------------------------------------------------------

// Loads and stores of V consecutive elements as one access when the pointer is aligned.
inline constexpr int kVec = 4;
template <typename S, int V>
struct alignas(sizeof(S) * V) Vec {
  S v[V];
};
template <typename S>
bool aligned_for_vec(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % (sizeof(S) * kVec) == 0;
}

template <typename T, typename R, typename Op>
struct UnaryBody {
  const dev_elem_t<T>* x;
  dev_elem_t<R>* o;
  Op op;
  __device__ __forceinline__ void operator()(const int64_t (&off)[2]) const {
    o[off[0]] = store_as<R>(op(to_comp(x[off[1]])));
  }
};

// Dense out = op(x), V elements per access, the tail (n % V) elementwise.
template <typename T, typename R, typename Op, int V>
__global__ void unary_flat_kernel(int64_t n, const dev_elem_t<T>* x, dev_elem_t<R>* o, Op op) {
  using VT = Vec<dev_elem_t<T>, V>;
  using VR = Vec<dev_elem_t<R>, V>;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t nv = n / V;
  for (int64_t i = tid; i < nv; i += step) {
    const VT a = reinterpret_cast<const VT*>(x)[i];
    VR r;
#pragma unroll
    for (int j = 0; j < V; ++j) r.v[j] = store_as<R>(op(to_comp(a.v[j])));
    reinterpret_cast<VR*>(o)[i] = r;
  }
  for (int64_t i = nv * V + tid; i < n; i += step) o[i] = store_as<R>(op(to_comp(x[i])));
}

// out = op(a) with a broadcast to out's shape; any strides on either side. op takes comp_t<T>
// and returns a value that is stored as R through comp_t<R> (the CPU's R(op(C(x)))).
template <typename T, typename R, typename Op>
void launch_unary(const ExecContext& ctx, const Tensor& a, const Tensor& out, Op op) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const Shape& shape = out.shape();
  const Geometry go = geometry_of(out, shape), ga = geometry_of(a, shape);
  const auto* x = static_cast<const dev_elem_t<T>*>(a.raw_data());
  auto* o = static_cast<dev_elem_t<R>*>(out.raw_data());
  if (all_dense(shape, {&go, &ga})) {
    cudaStream_t s = stream_of(ctx);
    if (aligned_for_vec<dev_elem_t<T>>(x) && aligned_for_vec<dev_elem_t<R>>(o)) {
      unary_flat_kernel<T, R, Op, kVec><<<grid_for((n + kVec - 1) / kVec), 256, 0, s>>>(n, x, o, op);
    } else {
      unary_flat_kernel<T, R, Op, 1><<<grid_for(n), 256, 0, s>>>(n, x, o, op);
    }
    MF_CUDA_CHECK_LAUNCH();
    return;
  }
  launch_offsets<2>(ctx, shape, {go, ga}, UnaryBody<T, R, Op>{x, o, op});
}

template <typename T, typename R, typename Op>
struct BinaryBody {
  const dev_elem_t<T>* x;
  const dev_elem_t<T>* y;
  dev_elem_t<R>* o;
  Op op;
  __device__ __forceinline__ void operator()(const int64_t (&off)[3]) const {
    o[off[0]] = store_as<R>(op(to_comp(x[off[1]]), to_comp(y[off[2]])));
  }
};

// Dense out = op(x, y) where each input is either dense or one element broadcast everywhere
// (x * 2, x + bias-of-one): the commonest shapes, with no index arithmetic at all.
template <typename T, typename R, typename Op, int V>
__global__ void binary_flat_kernel(int64_t n, const dev_elem_t<T>* x, const dev_elem_t<T>* y, dev_elem_t<R>* o, bool x_one,
                                   bool y_one, Op op) {
  using C = comp_t<T>;
  using VT = Vec<dev_elem_t<T>, V>;
  using VR = Vec<dev_elem_t<R>, V>;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const C x0 = to_comp(x[0]);
  const C y0 = to_comp(y[0]);
  const int64_t nv = n / V;
  for (int64_t i = tid; i < nv; i += step) {
    C xa[V], ya[V];
    if (x_one) {
#pragma unroll
      for (int j = 0; j < V; ++j) xa[j] = x0;
    } else {
      const VT v = reinterpret_cast<const VT*>(x)[i];
#pragma unroll
      for (int j = 0; j < V; ++j) xa[j] = to_comp(v.v[j]);
    }
    if (y_one) {
#pragma unroll
      for (int j = 0; j < V; ++j) ya[j] = y0;
    } else {
      const VT v = reinterpret_cast<const VT*>(y)[i];
#pragma unroll
      for (int j = 0; j < V; ++j) ya[j] = to_comp(v.v[j]);
    }
    VR r;
#pragma unroll
    for (int j = 0; j < V; ++j) r.v[j] = store_as<R>(op(xa[j], ya[j]));
    reinterpret_cast<VR*>(o)[i] = r;
  }
  for (int64_t i = nv * V + tid; i < n; i += step) {
    const C xv = x_one ? x0 : to_comp(x[i]);
    const C yv = y_one ? y0 : to_comp(y[i]);
    o[i] = store_as<R>(op(xv, yv));
  }
}

inline bool all_zero_strides(const Geometry& g) {
  for (int i = 0; i < g.ndim; ++i)
    if (g.size[i] != 1 && g.stride[i] != 0) return false;
  return true;
}

// out = op(a, b) with a and b (same dtype T) broadcast to out's shape; R is out's type.
template <typename T, typename R, typename Op>
void launch_binary(const ExecContext& ctx, const Tensor& a, const Tensor& b, const Tensor& out, Op op) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const Shape& shape = out.shape();
  const Geometry go = geometry_of(out, shape), ga = geometry_of(a, shape), gb = geometry_of(b, shape);
  const auto* x = static_cast<const dev_elem_t<T>*>(a.raw_data());
  const auto* y = static_cast<const dev_elem_t<T>*>(b.raw_data());
  auto* o = static_cast<dev_elem_t<R>*>(out.raw_data());
  const bool x_one = all_zero_strides(ga), y_one = all_zero_strides(gb);
  if (all_dense(shape, {&go}) && (x_one || all_dense(shape, {&ga})) && (y_one || all_dense(shape, {&gb}))) {
    cudaStream_t s = stream_of(ctx);
    const bool vec = aligned_for_vec<dev_elem_t<R>>(o) && (x_one || aligned_for_vec<dev_elem_t<T>>(x)) &&
                     (y_one || aligned_for_vec<dev_elem_t<T>>(y));
    if (vec) {
      binary_flat_kernel<T, R, Op, kVec><<<grid_for((n + kVec - 1) / kVec), 256, 0, s>>>(n, x, y, o, x_one, y_one, op);
    } else {
      binary_flat_kernel<T, R, Op, 1><<<grid_for(n), 256, 0, s>>>(n, x, y, o, x_one, y_one, op);
    }
    MF_CUDA_CHECK_LAUNCH();
    return;
  }
  launch_offsets<3>(ctx, shape, {go, ga, gb}, BinaryBody<T, R, Op>{x, y, o, op});
}

// ---- Kernel-function helpers ---------------------------------------------------------------------

// The same-dtype binary op with an output of the inputs' dtype (all dtypes but bool), the CUDA
// twin of internal::binary_kernel.
template <typename Op>
void binary_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  DeviceGuard guard(ctx.device().index);
  dispatch_dtype(in[0].dtype(), "binary op", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      MF_THROW("arithmetic on bool tensors is not supported; cast to a number type first");
    } else {
      launch_binary<T, T>(ctx, in[0], in[1], out[0], Op{});
    }
  });
}

// A floating unary op (output dtype = input dtype); integer and bool inputs throw as on the CPU.
template <typename Op>
void unary_float_run(const ExecContext& ctx, const Tensor& in, const Tensor& out, const Op& op) {
  DeviceGuard guard(ctx.device().index);
  dispatch_dtype(in.dtype(), "unary op", [&]<typename T>() {
    if constexpr (is_float_v<T>) {
      launch_unary<T, T>(ctx, in, out, op);
    } else {
      MF_THROW("this op needs a floating tensor, got ", dtype_name(in.dtype()));
    }
  });
}

template <typename Op>
void unary_float_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  unary_float_run(ctx, in[0], out[0], Op{});
}

// A unary op on any number type (bool refused as on the CPU).
template <typename Op>
void unary_numeric_run(const ExecContext& ctx, const Tensor& in, const Tensor& out, const Op& op) {
  DeviceGuard guard(ctx.device().index);
  dispatch_dtype(in.dtype(), "unary op", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      MF_THROW("this op is not defined for bool tensors");
    } else {
      launch_unary<T, T>(ctx, in, out, op);
    }
  });
}

template <typename Op>
void unary_numeric_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                          const Attrs&) {
  unary_numeric_run(ctx, in[0], out[0], Op{});
}

}  // namespace meshflow::cu
