// What the .cu kernels share on the device side: the device type behind each host dtype struct
// (bf16 -> __nv_bfloat16, f16 -> __half; same 16 bits), the type a kernel accumulates in (float
// for the halves, the type itself otherwise), conversions, dtype dispatch, and the element offset
// of a flat index in a strided Geometry.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "cuda_util.h"
#include "meshflow/core/dtype.h"

namespace meshflow::cu {

template <typename T>
struct device_of {
  using type = T;
};
template <>
struct device_of<bf16> {
  using type = __nv_bfloat16;
};
template <>
struct device_of<f16> {
  using type = __half;
};
// The device type of host element type T (what raw_data() points at on a cuda tensor).
template <typename T>
using device_t = typename device_of<T>::type;

template <typename D>
inline constexpr bool is_half_v = std::is_same_v<D, __half> || std::is_same_v<D, __nv_bfloat16>;

// What arithmetic on D runs in: float for the 16-bit floats (as the CPU kernels do), else D.
template <typename D>
using acc_t = std::conditional_t<is_half_v<D>, float, D>;

// Converts between device element types and float/double/integers; the 16-bit floats go through
// float with round-to-nearest-even, as the host structs do.
template <typename To, typename From>
__host__ __device__ __forceinline__ To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, __half>) {
    return convert<To>(__half2float(v));
  } else if constexpr (std::is_same_v<From, __nv_bfloat16>) {
    return convert<To>(__bfloat162float(v));
  } else if constexpr (std::is_same_v<To, __half>) {
    return __float2half_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

// Reads element i of p in the accumulation type.
template <typename D>
__device__ __forceinline__ acc_t<D> load(const D* p, int64_t i) {
  return convert<acc_t<D>>(p[i]);
}

// The element offset, under g's strides, of the element at row-major flat index `flat` of g's sizes.
__device__ __forceinline__ int64_t offset_of(const Geometry& g, int64_t flat) {
  int64_t off = 0;
  for (int d = g.ndim - 1; d >= 0; --d) {
    const int64_t size = g.size[d];
    off += (flat % size) * g.stride[d];
    flat /= size;
  }
  return off;
}

// Kernels that only move elements (gather, concat, pad) are instantiated once per element size
// rather than once per dtype: this calls f.template operator()<R>() with R the unsigned integer
// of dtype t's size.
template <typename F>
decltype(auto) dispatch_raw(DType t, F&& f) {
  switch (dtype_size(t)) {
    case 1: return f.template operator()<uint8_t>();
    case 2: return f.template operator()<uint16_t>();
    case 4: return f.template operator()<uint32_t>();
    default: return f.template operator()<uint64_t>();
  }
}

// Calls f.template operator()<D>() with D the device type of a floating dtype; throws naming
// `op` for the others.
template <typename F>
decltype(auto) dispatch_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F32: return f.template operator()<float>();
    case DType::F64: return f.template operator()<double>();
    case DType::BF16: return f.template operator()<__nv_bfloat16>();
    case DType::F16: return f.template operator()<__half>();
    default: break;
  }
  MF_THROW(op, ": expected a floating dtype (f32, f64, bf16 or f16) on cuda, got ", dtype_name(t));
}

// Calls f.template operator()<D>() with D the device type of any dtype.
template <typename F>
decltype(auto) dispatch_any(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Bool: return f.template operator()<bool>();
    case DType::I32: return f.template operator()<int32_t>();
    case DType::I64: return f.template operator()<int64_t>();
    default: break;
  }
  return dispatch_floating(t, op, static_cast<F&&>(f));
}

}  // namespace meshflow::cu
