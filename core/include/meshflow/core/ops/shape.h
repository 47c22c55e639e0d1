// Shape ops and indexing: views, concatenation, splitting, stacking, gathering, padding.
#pragma once

#include <vector>

#include "meshflow/core/tensor.h"

namespace meshflow {

// Views (also available as Tensor methods).
Tensor reshape(const Tensor& x, const Shape& shape);   // one dim may be -1
Tensor permute(const Tensor& x, const std::vector<int64_t>& axes);
Tensor transpose(const Tensor& x, int64_t a, int64_t b);
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step = 1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int64_t axis);
Tensor unsqueeze(const Tensor& x, int64_t axis);
Tensor contiguous(const Tensor& x);

Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis);
std::vector<Tensor> split(const Tensor& x, int64_t num_splits, int64_t axis);  // equal parts
Tensor stack(const std::vector<Tensor>& xs, int64_t axis);
// The slices of x along axis, each without that axis. One op whose gradient is one stack of the
// slices' gradients, so a loop over time steps costs O(T) in backward (Note [unbind, not slices]).
std::vector<Tensor> unbind(const Tensor& x, int64_t axis);
// gather(x, indices, axis): picks slices of x along axis (indices i32/i64 of any shape);
// result shape x.shape[:axis] + indices.shape + x.shape[axis+1:]. Gradient scatter-adds.
Tensor gather(const Tensor& x, const Tensor& indices, int64_t axis = 0);
// Zero padding: pads[i] = {before, after} for axis i.
Tensor pad(const Tensor& x, const std::vector<std::pair<int64_t, int64_t>>& pads, double value = 0.0);

}  // namespace meshflow
