// Matrix products through BLAS.
#pragma once

#include "meshflow/core/tensor.h"

namespace meshflow {

// matmul(a, b): 2-D [m,k]x[k,n]; N-D batched with broadcast batch dims ([...,m,k]x[...,k,n]);
// transpose_a/transpose_b use the transposed last two axes without copying.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);

// Whether f32 products on cuda may use TF32 tensor cores (10-bit mantissa inputs, f32
// accumulation): faster, but no longer bit-comparable with f32 BLAS. Off by default; read by the
// cuda matmul and convolution kernels each call. The CPU kernels ignore it.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace meshflow
