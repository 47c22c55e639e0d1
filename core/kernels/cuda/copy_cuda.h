// The strided, casting device copy behind the cuda cast/contiguous/assign kernels, exported for
// in-place copies (Tensor::copy_) that run on the GPU.
#pragma once

#include "meshflow/core/op.h"
#include "meshflow/core/tensor.h"

namespace meshflow::cu {

// Copies src, broadcast to dst's shape, into dst: any strides on either side, any dtypes (the
// CPU's conversion rules: through the destination's compute type; to bool means != 0). Both on
// ctx's cuda device; queued on ctx's stream.
void copy_cast_cuda(const ExecContext& ctx, const Tensor& dst, const Tensor& src);

}  // namespace meshflow::cu
