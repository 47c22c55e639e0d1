// bias_relu(x, bias): relu(x + bias) in one pass, bias along the last axis (Dense and Conv with
// activation="relu"), and its backward in one pass: dx = g where the output is positive, with
// dbias (dx summed over every axis but the last) accumulated in the same sweep. Definitions,
// backward and public function; the CPU kernels are in core/kernels/cpu/bias_relu.cpp. Other
// devices and dtypes take relu(x + bias) as two ops (Note [Fused bias epilogues]).
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/elementwise.h"
#include "ops/unary_common.h"

namespace meshflow {
namespace {

// bias_relu_backward(g, y) -> dx [, dbias]: the second output only when attrs "bias_grad".
std::vector<TensorMeta> infer_bias_relu_backward(const std::vector<TensorMeta>& in, const Attrs& a) {
  MF_CHECK(in.size() == 2 && in[0].shape == in[1].shape && in[0].dtype == in[1].dtype && !in[0].shape.empty(),
           "bias_relu_backward: expected a gradient and an output of one shape and dtype, got ", metas_str(in));
  std::vector<TensorMeta> out{in[0]};
  if (a.b("bias_grad")) out.push_back(TensorMeta{{in[0].shape.back()}, in[0].dtype, in[0].device});
  return out;
}

// y = relu(x + b) is positive exactly where x + b is (NaN: y is NaN and passes no gradient, as
// relu_grad on x + b would), so the saved output decides the mask.
std::vector<Tensor> bias_relu_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  static const OpDef& op = ops::bias_relu_backward();
  const bool bias_grad = c.needs_input_grad[1];
  std::vector<Tensor> r = call_op(op, {g[0], c.outputs[0]}, {{"bias_grad", bias_grad}});
  return {r[0], bias_grad ? r[1] : Tensor()};
}

MF_STATIC_INIT {
  OpDef& d = define_op("bias_relu");
  d.infer = internal::infer_bias_epilogue;
  d.sharding = sharding::elementwise_rule<sharding::PartialRule::None>;
  d.backward = bias_relu_backward;
  d.save_outputs = true;
  define_op("bias_relu_backward").infer = infer_bias_relu_backward;
}

}  // namespace

Tensor bias_relu(const Tensor& x, const Tensor& bias) {
  MF_CHECK(x.defined() && bias.defined(), "bias_relu: an operand is an undefined tensor");
  // Note [Fused bias epilogues]: the fused kernels exist for f32 and f64 on the CPU; elsewhere
  // (CUDA, f16/bf16) the two ops run, with the same values and gradients.
  const bool fused = x.device().type == DeviceType::CPU && bias.device() == x.device() && bias.dtype() == x.dtype() &&
                     (x.dtype() == DType::F32 || x.dtype() == DType::F64);
  if (!fused) return relu(add(x, bias));
  return call_op1(ops::bias_relu(), {x, bias});
}

}  // namespace meshflow
