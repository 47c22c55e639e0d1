// Activation ops (relu, leaky_relu, elu, gelu, softplus, silu) and clip: definitions and backward.
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/ops/elementwise.h"
#include "ops/unary_common.h"

namespace meshflow {
namespace {

using BW = std::vector<Tensor>;

Tensor zero_like_scalar(const Tensor& t) { return scalar_like(0.0, t); }

// relu'(0) = 0 (PyTorch): the gradient passes only where x > 0. One pass of the private op
// relu_grad (a where over a comparison took four ops and three temporaries).
BW relu_backward(const BackwardContext& c, const BW& g) {
  static const OpDef& relu_grad = ops::relu_grad();
  return {call_op1(relu_grad, {g[0], c.inputs[0]})};
}
// relu_grad(g, x): g where x > 0, else 0; g and x have one shape and dtype.
std::vector<TensorMeta> infer_relu_grad(const std::vector<TensorMeta>& in, const Attrs&) {
  MF_CHECK(in.size() == 2 && in[0].shape == in[1].shape && in[0].dtype == in[1].dtype,
           "relu_grad: expected a gradient and an input of one shape and dtype, got ", metas_str(in));
  return {in[1]};
}
BW leaky_relu_backward(const BackwardContext& c, const BW& g) {
  const Tensor& x = c.inputs[0];
  return {where(gt(x, zero_like_scalar(x)), g[0], g[0] * c.attrs.f("negative_slope"))};
}
// For x <= 0, elu(x) = alpha*(e^x - 1), so elu'(x) = alpha*e^x = y + alpha (from the saved output).
BW elu_backward(const BackwardContext& c, const BW& g) {
  const Tensor& x = c.inputs[0];
  const Tensor& y = c.outputs[0];
  return {where(gt(x, zero_like_scalar(x)), g[0], mul(g[0], y + c.attrs.f("alpha")))};
}
// gelu's derivative needs erf, which no public op offers: a private op computes it pointwise.
// It has no backward of its own, so gelu is differentiable once (no double backward).
BW gelu_backward(const BackwardContext& c, const BW& g) {
  static const OpDef& deriv = ops::gelu_derivative();
  return {mul(g[0], call_op1(deriv, {c.inputs[0]}, c.attrs))};
}
BW softplus_backward(const BackwardContext& c, const BW& g) { return {mul(g[0], sigmoid(c.inputs[0]))}; }
// silu'(x) = s + x*s*(1-s) with s = sigmoid(x).
BW silu_backward(const BackwardContext& c, const BW& g) {
  const Tensor& x = c.inputs[0];
  Tensor s = sigmoid(x);
  return {mul(g[0], s * (1.0 + x * (1.0 - s)))};
}
// The gradient passes where lo <= x <= hi (both bounds inclusive, like torch.clamp).
BW clip_backward(const BackwardContext& c, const BW& g) {
  const Tensor& x = c.inputs[0];
  Tensor inside = logical_and(ge(x, scalar_like(c.attrs.f("lo"), x)), le(x, scalar_like(c.attrs.f("hi"), x)));
  return {where(inside, g[0], zero_like_scalar(g[0]))};
}

MF_STATIC_INIT {
  struct Entry {
    const char* name;
    BackwardFn backward;
    bool save_outputs;
    bool float_only;
  };
  const Entry entries[] = {
      {"relu", relu_backward, false, false},         {"leaky_relu", leaky_relu_backward, false, true},
      {"elu", elu_backward, true, true},             {"gelu", gelu_backward, false, true},
      {"softplus", softplus_backward, false, true},  {"silu", silu_backward, false, true},
      {"clip", clip_backward, false, false},         {"gelu_derivative", nullptr, false, true},
  };
  for (const Entry& e : entries) {
    OpDef& d = define_op(e.name);
    d.infer = e.float_only ? internal::infer_unary_float : internal::infer_unary_numeric;
    d.backward = e.backward;
    d.save_outputs = e.save_outputs;
    d.sharding = internal::unary_nonlinear_sharding;
  }
  define_op("relu_grad").infer = infer_relu_grad;
}

}  // namespace

Tensor relu(const Tensor& x) {
  static const OpDef& op = ops::relu();
  return internal::call_unary(op, x, false);
}
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  static const OpDef& op = ops::leaky_relu();
  return internal::call_unary(op, x, true, {{"negative_slope", negative_slope}});
}
Tensor elu(const Tensor& x, double alpha) {
  static const OpDef& op = ops::elu();
  return internal::call_unary(op, x, true, {{"alpha", alpha}});
}
Tensor gelu(const Tensor& x, bool approximate) {
  static const OpDef& op = ops::gelu();
  return internal::call_unary(op, x, true, {{"approximate", approximate}});
}
Tensor softplus(const Tensor& x) {
  static const OpDef& op = ops::softplus();
  return internal::call_unary(op, x, true);
}
Tensor silu(const Tensor& x) {
  static const OpDef& op = ops::silu();
  return internal::call_unary(op, x, true);
}
Tensor clip(const Tensor& x, double lo, double hi) {
  static const OpDef& op = ops::clip();
  MF_CHECK(!(lo > hi), "clip: lower bound ", lo, " is above upper bound ", hi, "; pass lo <= hi");
  return internal::call_unary(op, x, false, {{"lo", lo}, {"hi", hi}});
}

}  // namespace meshflow
