// The masked-logit constant of the sequence layers (unbind moved to core: meshflow::unbind).
#include "layers/sequence_ops.h"

namespace meshflow::layers::detail {

double large_negative(DType dtype) { return dtype == DType::F16 ? -65504.0 : -1e9; }

}  // namespace meshflow::layers::detail
