// Every op of the registry, listed once. `ops::matmul()` is the op's definition (looked up on
// first use, then cached), so library code names ops with identifiers: a misspelt op does not
// compile. Definitions still register by name (define_op("matmul") in core/src/ops/), and
// tests/core/test_op_sweep.cpp checks that this list and the registry hold the same names.
#pragma once

#include "meshflow/core/op.h"

// MF_OPS(X) calls X(name) for every op.
#define MF_OPS(X) \
    X(abs) X(accumulate) X(adagrad_update) X(adam_update) X(add) X(argmax) X(argmin) X(assign) X(avg_pool2d) \
    X(avg_pool2d_grad) X(batch_norm_backward) X(batch_norm_infer) X(batch_norm_train) X(bias_gelu) \
    X(bias_relu) X(bias_relu_backward) \
    X(cast) X(clamp_inplace) X(clip) X(concat) X(contiguous) X(conv2d) X(conv2d_grad_input) \
    X(conv2d_grad_weight) X(div) X(dropout) X(elu) X(embedding) X(eq) X(equal_mask) X(exp) X(expand) \
    X(gather) X(gather_backward) X(ge) X(gelu) X(gelu_derivative) X(gt) X(layer_norm) \
    X(layer_norm_backward) X(le) X(leaky_relu) X(log) X(log_softmax) X(logical_and) X(logical_not) \
    X(logical_or) X(lt) X(matmul) X(max) X(max_pool2d) X(max_pool2d_grad) X(maximum) X(mean) X(min) \
    X(minimum) X(mul) X(ne) X(neg) X(one_hot) X(pad) X(permute) X(pow) X(pow_scalar) X(relu) \
    X(relu_grad) X(reshape) X(rmsprop_update) X(rsqrt) X(scale_inplace) X(scaled_copy) X(sgd_update) X(sigmoid) \
    X(sign) X(silu) X(slice) X(softmax) X(softplus) X(sqrt) X(square) X(squared_norm) X(sub) X(sum) \
    X(tanh) X(to_device) X(unbind) X(where)

namespace meshflow::ops {

#define MF_DECLARE_OP_HANDLE(name) const OpDef& name();
MF_OPS(MF_DECLARE_OP_HANDLE)
#undef MF_DECLARE_OP_HANDLE

// The names in MF_OPS, in order (for the check against the registry).
const std::vector<std::string>& listed_names();

}  // namespace meshflow::ops
