// The value masked attention logits get (shared by the sequence layers).
#pragma once

#include <vector>

#include "meshflow/core/tensor.h"

namespace meshflow::layers::detail {

// The value added to masked attention logits: Keras's -1e9, or the dtype's lowest for f16.
double large_negative(DType dtype);

}  // namespace meshflow::layers::detail
