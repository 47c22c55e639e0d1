// bias_gelu(x, bias): gelu(x + bias) in one pass over memory, bias along the last axis (the
// activation of a transformer's MLP). Definition, backward and public function; kernels in
// core/kernels/{cpu,cuda}/bias_gelu.*.
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/elementwise.h"
#include "ops/unary_common.h"

namespace meshflow {
namespace {

// With z = x + bias: dx = g * gelu'(z), dbias = dx summed over every axis but the last.
std::vector<Tensor> bias_gelu_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  Tensor z = add(c.inputs[0], c.inputs[1]);
  Tensor dz = mul(g[0], call_op1(ops::gelu_derivative(), {z}, c.attrs));
  return {dz, c.needs_input_grad[1] ? autograd::sum_to(dz, c.inputs[1].shape()) : Tensor()};
}

MF_STATIC_INIT {
  OpDef& d = define_op("bias_gelu");
  d.infer = internal::infer_bias_epilogue;
  d.sharding = sharding::elementwise_rule<sharding::PartialRule::None>;
  d.backward = bias_gelu_backward;
}

}  // namespace

Tensor bias_gelu(const Tensor& x, const Tensor& bias, bool approximate) {
  MF_CHECK(x.defined() && bias.defined(), "bias_gelu: an operand is an undefined tensor");
  return call_op1(ops::bias_gelu(), {x, bias}, {{"approximate", approximate}});
}

}  // namespace meshflow
