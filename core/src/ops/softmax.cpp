// softmax and log_softmax along one axis: definitions and backward (save_outputs: both read y).
#include "internal/reduce.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/norm.h"
#include "meshflow/core/ops/reduce.h"

namespace meshflow {
namespace {

std::vector<TensorMeta> infer_softmax(const std::vector<TensorMeta>& in, const Attrs& a) {
  const char* op = current_op_name();
  const int64_t rank = static_cast<int64_t>(in[0].shape.size());
  MF_CHECK(rank > 0, op, ": needs a tensor of rank >= 1, got a scalar");
  normalize_axis(a.i("axis"), rank, op);
  MF_CHECK(is_floating(in[0].dtype), op, ": needs a floating tensor, got ", dtype_name(in[0].dtype),
           "; cast it first");
  return {in[0]};
}

// dL/dx = y * (g - sum(g * y)) along the axis.
std::vector<Tensor> softmax_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor& y = c.outputs[0];
  const int64_t axis = normalize_axis(c.attrs.i("axis"), y.dim(), "softmax");
  return {y * (g[0] - sum(g[0] * y, {axis}, true))};
}

// dL/dx = g - exp(y) * sum(g) along the axis; exp(y) is softmax(x), recomputed from the saved
// input so that this backward needs no exp op and stays differentiable.
std::vector<Tensor> log_softmax_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor& x = c.inputs[0];
  const int64_t axis = normalize_axis(c.attrs.i("axis"), x.dim(), "log_softmax");
  return {g[0] - softmax(x, axis) * sum(g[0], {axis}, true)};
}

// softmax and log_softmax normalize along `axis`: it must be whole, and the input a whole sum.
ShardingDecision softmax_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const int64_t axis = normalize_axis(a.i("axis"), static_cast<int64_t>(in[0].shape.size()), "softmax");
  Layout need = sharding::replicate_dims(sharding::without_partial(l[0]), {axis});
  return {{need}, {need}};
}

MF_STATIC_INIT {
  OpDef& s = define_op("softmax");
  s.infer = infer_softmax;
  s.sharding = softmax_sharding;
  s.backward = softmax_backward;
  s.save_outputs = true;
  OpDef& l = define_op("log_softmax");
  l.infer = infer_softmax;
  l.sharding = softmax_sharding;
  l.backward = log_softmax_backward;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t axis) {
  static const OpDef& op = ops::softmax();
  return call_op1(op, {x}, {{"axis", axis}});
}

Tensor log_softmax(const Tensor& x, int64_t axis) {
  static const OpDef& op = ops::log_softmax();
  return call_op1(op, {x}, {{"axis", axis}});
}

}  // namespace meshflow
