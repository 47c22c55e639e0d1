// where(cond, a, b): picks a where cond holds, else b, broadcasting all three; gradients to a and b.
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/elementwise.h"

namespace meshflow {
namespace {

using autograd::sum_to;

std::vector<TensorMeta> infer_where(const std::vector<TensorMeta>& in, const Attrs&) {
  MF_CHECK(in[0].dtype == DType::Bool, "where: cond must be a bool tensor, got ", dtype_name(in[0].dtype),
           shape_str(in[0].shape), "; compare first (e.g. gt(x, 0)) or cast to bool");
  MF_CHECK(in[1].dtype == in[2].dtype, "where: a and b dtypes differ (", dtype_name(in[1].dtype), " and ",
           dtype_name(in[2].dtype), ")");
  Shape s = broadcast_shapes(broadcast_shapes(in[0].shape, in[1].shape, "where"), in[2].shape, "where");
  return {{s, in[1].dtype, in[1].device}};
}

// Each branch gets the gradient where it was picked and zero elsewhere; cond gets none.
std::vector<Tensor> where_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor& cond = c.inputs[0];
  Tensor zero = scalar_like(0.0, g[0]);
  return {Tensor(), c.needs_input_grad[1] ? sum_to(where(cond, g[0], zero), c.inputs[1].shape()) : Tensor(),
          c.needs_input_grad[2] ? sum_to(where(cond, zero, g[0]), c.inputs[2].shape()) : Tensor()};
}

MF_STATIC_INIT {
  OpDef& w = define_op("where");
  w.infer = infer_where;
  w.sharding = sharding::elementwise_rule<sharding::PartialRule::None>;
  w.backward = where_backward;
}

}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::where();
  MF_CHECK(cond.defined() && a.defined() && b.defined(), "where: an operand is an undefined tensor");
  if (a.dtype() == b.dtype()) return call_op1(op, {cond, a, b});
  DType t = promote_types(a.dtype(), b.dtype());
  return call_op1(op, {cond, a.dtype() == t ? a : cast(a, t), b.dtype() == t ? b : cast(b, t)});
}

}  // namespace meshflow
