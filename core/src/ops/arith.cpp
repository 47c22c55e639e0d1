// add, sub, mul, div: definitions, backward, and the operators and scalar forms built on them.
#include <cmath>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/sharding.h"

namespace meshflow {

namespace {

using autograd::sum_to;

std::vector<TensorMeta> infer_binary(const std::vector<TensorMeta>& in, const Attrs& a) {
  const char* op = current_op_name();
  MF_CHECK(in[0].dtype == in[1].dtype, op, ": dtypes differ (", dtype_name(in[0].dtype), " and ",
           dtype_name(in[1].dtype), ")");
  MF_CHECK(in[0].dtype != DType::Bool, op, ": arithmetic on bool tensors; cast to a number type first");
  return {{broadcast_shapes(in[0].shape, in[1].shape, op), in[0].dtype, in[0].device}};
}

std::vector<Tensor> add_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  return {sum_to(g[0], c.inputs[0].shape()), sum_to(g[0], c.inputs[1].shape())};
}
std::vector<Tensor> sub_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  return {sum_to(g[0], c.inputs[0].shape()), c.needs_input_grad[1] ? sum_to(neg(g[0]), c.inputs[1].shape()) : Tensor()};
}
std::vector<Tensor> mul_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor &a = c.inputs[0], &b = c.inputs[1];
  return {c.needs_input_grad[0] ? sum_to(mul(g[0], b), a.shape()) : Tensor(),
          c.needs_input_grad[1] ? sum_to(mul(g[0], a), b.shape()) : Tensor()};
}
std::vector<Tensor> div_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor &a = c.inputs[0], &b = c.inputs[1];
  return {c.needs_input_grad[0] ? sum_to(div(g[0], b), a.shape()) : Tensor(),
          c.needs_input_grad[1] ? sum_to(neg(div(mul(g[0], a), mul(b, b))), b.shape()) : Tensor()};
}

std::vector<TensorMeta> infer_neg(const std::vector<TensorMeta>& in, const Attrs&) {
  MF_CHECK(in[0].dtype != DType::Bool, "neg: cannot negate a bool tensor; use logical_not");
  return {in[0]};
}
std::vector<Tensor> neg_backward(const BackwardContext&, const std::vector<Tensor>& g) { return {neg(g[0])}; }

MF_STATIC_INIT {
  OpDef& n = define_op("neg");
  n.infer = infer_neg;
  n.backward = neg_backward;
  n.sharding = sharding::elementwise_rule<sharding::PartialRule::Pass>;
  // Sums pass through add and sub when both operands are pending sums over the same axes, through
  // mul when one factor is, and through div in the numerator.
  const struct {
    const char* name;
    BackwardFn backward;
    ShardingRuleFn sharding;
  } ops[] = {
      {"add", add_backward, sharding::elementwise_rule<sharding::PartialRule::SameAll>},
      {"sub", sub_backward, sharding::elementwise_rule<sharding::PartialRule::SameAll>},
      {"mul", mul_backward, sharding::elementwise_rule<sharding::PartialRule::OneFactor>},
      {"div", div_backward, sharding::elementwise_rule<sharding::PartialRule::First>},
  };
  for (const auto& e : ops) {
    OpDef& d = define_op(e.name);
    d.infer = infer_binary;
    d.backward = e.backward;
    d.sharding = e.sharding;
  }
}

// Brings both operands to their common dtype (a recorded cast, so gradients flow back).
std::pair<Tensor, Tensor> promoted(const Tensor& a, const Tensor& b, const char* op) {
  MF_CHECK(a.defined() && b.defined(), op, ": an operand is an undefined tensor");
  DType t = promote_types(a.dtype(), b.dtype());
  return {a.dtype() == t ? a : cast(a, t), b.dtype() == t ? b : cast(b, t)};
}

Tensor binary(const OpDef& op, const Tensor& a, const Tensor& b) {
  auto [x, y] = promoted(a, b, op.name.c_str());
  return call_op1(op, {x, y});
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::add();
  if (a.defined() && b.defined() && a.dtype() == b.dtype()) return call_op1(op, {a, b});
  return binary(op, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::sub();
  if (a.defined() && b.defined() && a.dtype() == b.dtype()) return call_op1(op, {a, b});
  return binary(op, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::mul();
  if (a.defined() && b.defined() && a.dtype() == b.dtype()) return call_op1(op, {a, b});
  return binary(op, a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::div();
  // Integer operands divide as floats (true division), like Python 3 and PyTorch.
  if (a.defined() && b.defined() && !is_floating(promote_types(a.dtype(), b.dtype())))
    return binary(op, cast(a, DType::F32), cast(b, DType::F32));
  if (a.defined() && b.defined() && a.dtype() == b.dtype()) return call_op1(op, {a, b});
  return binary(op, a, b);
}

Tensor neg(const Tensor& x) {
  static const OpDef& op = ops::neg();
  return call_op1(op, {x});
}

Tensor scalar_like(double value, const Tensor& like) {
  MF_CHECK(like.defined(), "scalar_like: the reference tensor is undefined");
  DType t = like.dtype();
  if (!is_floating(t) && value != std::floor(value)) t = DType::F32;
  if (t == DType::Bool) t = DType::I64;
  if (like.is_symbolic()) {
    // Constants in traced graphs live on the host; the op's other input decides placement.
    return full({}, value, {.dtype = t, .device = Device()});
  }
  return full({}, value, {.dtype = t, .device = like.device()});
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

}  // namespace meshflow
