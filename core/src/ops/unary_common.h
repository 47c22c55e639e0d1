// Shared pieces of the unary op definitions (infer functions and the call path).
#pragma once

#include "meshflow/core/op.h"

namespace meshflow::internal {

// Output like the input; bool rejected (abs, square, relu, clip work on integers too).
std::vector<TensorMeta> infer_unary_numeric(const std::vector<TensorMeta>& in, const Attrs& attrs);
// Output like the input; the input must be floating (exp, log, activations).
std::vector<TensorMeta> infer_unary_float(const std::vector<TensorMeta>& in, const Attrs& attrs);
// Output like x for the fused bias ops (bias_gelu, bias_relu): x floating, bias 1-D of x's dtype
// and last dimension; errors name the op being defined.
std::vector<TensorMeta> infer_bias_epilogue(const std::vector<TensorMeta>& in, const Attrs& attrs);
// The sharding rule of a non-linear elementwise op of one input: the output as the input, whose
// pending sums (if any) must be summed first.
ShardingDecision unary_nonlinear_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& layouts,
                                          const Attrs& attrs);
// Calls a unary op; integer inputs of a float-only op are cast to f32 first.
Tensor call_unary(const OpDef& op, const Tensor& x, bool float_only, const Attrs& attrs = {});

}  // namespace meshflow::internal
