// pow (tensor and scalar exponent), maximum, minimum: definitions and backward.
#include <cmath>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/elementwise.h"
#include "ops/unary_common.h"

namespace meshflow {
namespace {

using autograd::sum_to;
using BW = std::vector<Tensor>;

std::vector<TensorMeta> infer_binary_same(const std::vector<TensorMeta>& in, const Attrs&) {
  const char* op = current_op_name();
  MF_CHECK(in[0].dtype == in[1].dtype, op, ": dtypes differ (", dtype_name(in[0].dtype), " and ",
           dtype_name(in[1].dtype), ")");
  MF_CHECK(in[0].dtype != DType::Bool, op, ": not defined for bool tensors; cast to a number type first");
  return {{broadcast_shapes(in[0].shape, in[1].shape, op), in[0].dtype, in[0].device}};
}

// d(a^b)/da = b*a^(b-1); d(a^b)/db = a^b*log(a), taken as 0 where a == 0 (PyTorch's convention,
// which keeps 0^b with b > 0 free of NaN gradients).
BW pow_backward(const BackwardContext& c, const BW& g) {
  const Tensor &a = c.inputs[0], &b = c.inputs[1], &y = c.outputs[0];
  Tensor ga, gb;
  if (c.needs_input_grad[0]) ga = sum_to(mul(g[0], mul(b, pow(a, b - 1.0))), a.shape());
  if (c.needs_input_grad[1]) {
    Tensor dlog = where(eq(a, scalar_like(0.0, a)), scalar_like(0.0, y), mul(y, log(a)));
    gb = sum_to(mul(g[0], dlog), b.shape());
  }
  return {ga, gb};
}

BW pow_scalar_backward(const BackwardContext& c, const BW& g) {
  const Tensor& a = c.inputs[0];
  double e = c.attrs.f("exponent");
  if (e == 0.0) return {zeros_like(a)};  // a^0 = 1 everywhere; avoids 0 * inf at a == 0
  return {mul(g[0], pow(a, e - 1.0) * e)};
}

// Tie rule: where a == b the whole gradient goes to a (maximum: a >= b, minimum: a <= b), so the
// two gradients always add up to g. PyTorch splits ties in half; a whole mask keeps it one where.
BW maximum_backward(const BackwardContext& c, const BW& g) {
  const Tensor &a = c.inputs[0], &b = c.inputs[1];
  Tensor a_wins = ge(a, b), zero = scalar_like(0.0, g[0]);
  return {c.needs_input_grad[0] ? sum_to(where(a_wins, g[0], zero), a.shape()) : Tensor(),
          c.needs_input_grad[1] ? sum_to(where(a_wins, zero, g[0]), b.shape()) : Tensor()};
}
BW minimum_backward(const BackwardContext& c, const BW& g) {
  const Tensor &a = c.inputs[0], &b = c.inputs[1];
  Tensor a_wins = le(a, b), zero = scalar_like(0.0, g[0]);
  return {c.needs_input_grad[0] ? sum_to(where(a_wins, g[0], zero), a.shape()) : Tensor(),
          c.needs_input_grad[1] ? sum_to(where(a_wins, zero, g[0]), b.shape()) : Tensor()};
}

MF_STATIC_INIT {
  OpDef& p = define_op("pow");
  p.infer = infer_binary_same;
  p.sharding = sharding::elementwise_rule<sharding::PartialRule::None>;
  p.backward = pow_backward;
  p.save_outputs = true;
  OpDef& ps = define_op("pow_scalar");
  ps.infer = internal::infer_unary_float;
  ps.sharding = internal::unary_nonlinear_sharding;
  ps.backward = pow_scalar_backward;
  OpDef& mx = define_op("maximum");
  mx.infer = infer_binary_same;
  mx.sharding = sharding::elementwise_rule<sharding::PartialRule::None>;
  mx.backward = maximum_backward;
  OpDef& mn = define_op("minimum");
  mn.infer = infer_binary_same;
  mn.sharding = sharding::elementwise_rule<sharding::PartialRule::None>;
  mn.backward = minimum_backward;
}

std::pair<Tensor, Tensor> promoted(const Tensor& a, const Tensor& b, const char* op, bool floating) {
  MF_CHECK(a.defined() && b.defined(), op, ": an operand is an undefined tensor");
  DType t = promote_types(a.dtype(), b.dtype());
  if (floating && !is_floating(t)) t = DType::F32;  // integer pow computes in f32
  return {a.dtype() == t ? a : cast(a, t), b.dtype() == t ? b : cast(b, t)};
}

}  // namespace

Tensor pow(const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::pow();
  auto [x, y] = promoted(a, b, "pow", true);
  return call_op1(op, {x, y});
}
Tensor pow(const Tensor& a, double exponent) {
  static const OpDef& op = ops::pow_scalar();
  return internal::call_unary(op, a, true, {{"exponent", exponent}});
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::maximum();
  auto [x, y] = promoted(a, b, "maximum", false);
  return call_op1(op, {x, y});
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::minimum();
  auto [x, y] = promoted(a, b, "minimum", false);
  return call_op1(op, {x, y});
}

}  // namespace meshflow
