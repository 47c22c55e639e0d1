// Reductions over axes: normalizing the axes, the output shape, and laying the input out as
// rows [outer, reduced] so a kernel reduces each row (or columns, when the reduced axes lead).
#pragma once

#include <vector>

#include "meshflow/core/op.h"
#include "meshflow/core/tensor.h"

namespace meshflow::internal {

// Sorted, unique, non-negative axes; all axes when `axes` is empty.
std::vector<int64_t> reduce_axes(const std::vector<int64_t>& axes, int64_t rank, const char* op);
Shape reduced_shape(const Shape& in, const std::vector<int64_t>& axes, bool keepdims);
// The standard infer function: attrs "axes" (int list) and "keepdims" (bool).
std::vector<TensorMeta> infer_reduce(const std::vector<TensorMeta>& in, const Attrs& attrs);

// The sharding rule of sum and mean: kept dimensions stay split; the axes splitting a reduced
// dimension become a pending sum (mean's partitioned form rescales by local over global counts);
// an input's pending sum passes through.
ShardingDecision reduce_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& layouts,
                                 const Attrs& attrs);

struct ReduceLayout {
  // Either rows: data is [outer, inner] contiguous, reduce each row of `inner` elements,
  // or columns: data is [inner, outer] contiguous, reduce down each of `outer` columns.
  Tensor data;
  int64_t outer = 1;
  int64_t inner = 1;
  bool columns = false;
};
ReduceLayout reduce_layout(const Tensor& x, const std::vector<int64_t>& axes);

// The gradient of a reduction, broadcast back to the input's shape (keepdims undone first).
Tensor expand_reduced_grad(const Tensor& g, const Shape& in_shape, const std::vector<int64_t>& axes, bool keepdims);

}  // namespace meshflow::internal
