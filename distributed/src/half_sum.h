// Private to distributed/src: inout[i] += in[i] for bf16 or f16 words, added in f32 and rounded to nearest even.
#pragma once

#include <cstdint>

#include "meshflow/core/dtype.h"

namespace meshflow::distributed::internal {

// The MPI backend's user-defined sum for halves (Note [Halves on the wire]); vectorized where the
// CPU has AVX2 (bf16) or F16C (f16), chosen at run time, bit-identical to the scalar conversions.
void add_halves(DType dtype, const void* in, void* inout, int64_t n);

}  // namespace meshflow::distributed::internal
