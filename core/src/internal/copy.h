// Copies with dtype conversion between host tensors of any strides (broadcasting src), and the
// axis windows of an output that concat and pad copy into.
#pragma once

#include "meshflow/core/tensor.h"

namespace meshflow::internal {

// dst and src on the host (cpu:N); src is broadcast to dst's shape; dtypes may differ.
void copy_cast_cpu(const Tensor& dst, const Tensor& src);

// Reads the element of dtype t at byte pointer p as a double, and writes one from a double.
double load_as_double(const void* p, DType t);
void store_from_double(void* p, DType t, double v);

// A view of `out` restricted to [start, start + len) along `axis` (no op recorded: kernels write
// through it directly). concat and pad copy their inputs into such windows of the output.
inline Tensor axis_window(const Tensor& out, int64_t axis, int64_t start, int64_t len) {
  Shape shape = out.shape();
  shape[axis] = len;
  return make_view(out, shape, out.strides(), out.offset() + (len > 0 ? start * out.strides()[axis] : 0));
}

}  // namespace meshflow::internal
