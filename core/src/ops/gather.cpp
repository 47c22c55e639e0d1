// gather (numpy.take / tf.gather), gather_backward (the scatter-add that is its gradient) and
// embedding (a gather of table rows, whose gradient is the same scatter-add): definitions,
// backward and the public functions.
#include <algorithm>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/ops/nn.h"
#include "meshflow/core/ops/shape.h"
#include "meshflow/core/sharding.h"

namespace meshflow {
namespace {

void check_index_dtype(const TensorMeta& indices, const char* op) {
  MF_CHECK(is_integral(indices.dtype), op, ": indices must be i32 or i64, got ", dtype_name(indices.dtype),
           " (shape ", shape_str(indices.shape), "); cast them first");
}

// x.shape[:axis] + indices.shape + x.shape[axis+1:]
std::vector<TensorMeta> infer_gather(const std::vector<TensorMeta>& in, const Attrs& a) {
  const TensorMeta &x = in[0], &idx = in[1];
  check_index_dtype(idx, "gather");
  MF_CHECK(!x.shape.empty(), "gather: cannot gather from a 0-d tensor");
  const int64_t axis = normalize_axis(a.i("axis"), static_cast<int64_t>(x.shape.size()), "gather");
  Shape out(x.shape.begin(), x.shape.begin() + axis);
  out.insert(out.end(), idx.shape.begin(), idx.shape.end());
  out.insert(out.end(), x.shape.begin() + axis + 1, x.shape.end());
  return {{out, x.dtype, x.device}};
}

std::vector<Tensor> gather_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  static const OpDef& scatter = ops::gather_backward();
  const Tensor &x = ctx.inputs[0], &indices = ctx.inputs[1];
  Tensor gx = call_op1(scatter, {g[0], indices}, {{"axis", ctx.attrs.i("axis")}, {"x_shape", x.shape()}});
  return {gx, Tensor()};
}

// Inputs (grad, indices) -> a zero tensor of x_shape with grad's slices added at the indexed
// positions of `axis`; repeated indices accumulate.
std::vector<TensorMeta> infer_gather_backward(const std::vector<TensorMeta>& in, const Attrs& a) {
  check_index_dtype(in[1], "gather_backward");
  const Shape& x_shape = a.ints("x_shape");
  const int64_t axis = normalize_axis(a.i("axis"), static_cast<int64_t>(x_shape.size()), "gather_backward");
  Shape expect(x_shape.begin(), x_shape.begin() + axis);
  expect.insert(expect.end(), in[1].shape.begin(), in[1].shape.end());
  expect.insert(expect.end(), x_shape.begin() + axis + 1, x_shape.end());
  MF_CHECK(in[0].shape == expect, "gather_backward: gradient of shape ", shape_str(in[0].shape),
           " does not fit indices ", shape_str(in[1].shape), " and x shape ", shape_str(x_shape), " (expected ",
           shape_str(expect), ")");
  return {{x_shape, in[0].dtype, in[0].device}};
}

// The scatter-add is linear in grad; its own gradient gathers the same slices back.
std::vector<Tensor> gather_backward_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  return {gather(g[0], ctx.inputs[1], ctx.attrs.i("axis")), Tensor()};
}

// embedding: inputs (ids, table) -> ids.shape + [dim] ----------------------------------------------
std::vector<TensorMeta> infer_embedding(const std::vector<TensorMeta>& in, const Attrs&) {
  const TensorMeta &ids = in[0], &table = in[1];
  MF_CHECK(is_integral(ids.dtype), "embedding: ids must be i32 or i64, got ", dtype_name(ids.dtype), " (shape ",
           shape_str(ids.shape), "); cast them first");
  MF_CHECK(table.shape.size() == 2, "embedding: the table must be 2-D [vocab, dim], got shape ",
           shape_str(table.shape));
  Shape out = ids.shape;
  out.push_back(table.shape[1]);
  return {{out, table.dtype, table.device}};
}

// The table's gradient is gather's: a scatter-add of the output rows into a zero table, where
// ids used several times accumulate (see Note [Race-free scatter-add] in the kernel).
std::vector<Tensor> embedding_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  static const OpDef& scatter = ops::gather_backward();
  const Tensor &ids = ctx.inputs[0], &table = ctx.inputs[1];
  return {Tensor(), call_op1(scatter, {g[0], ids}, {{"axis", int64_t{0}}, {"x_shape", table.shape()}})};
}

// Sharding (Note [Sharding rules]) of gather and embedding: the gathered axis of the source (the
// table's vocabulary) is whole on every device, since a device holding some rows would have to mask
// the ids outside them; its other dimensions and the indices' dimensions keep their splits in the
// output. An axis that splits both the source and the indices is kept by the source (the weight)
// and the indices are gathered over it. The source's pending sum passes through (the op is linear
// in it); indices are never partial.
Layout drop_axes(Layout l, const std::vector<std::string>& taken) {
  for (auto& d : l.dims)
    std::erase_if(d.axes, [&](const std::string& a) { return std::find(taken.begin(), taken.end(), a) != taken.end(); });
  l.partial_axes.clear();
  return l;
}

ShardingDecision gather_like_sharding(const Layout& src_in, const Layout& idx_in, int64_t axis) {
  Layout src = src_in;
  src.dims[static_cast<size_t>(axis)].axes.clear();
  const Layout idx = drop_axes(idx_in, sharding::axes_named(src));
  Layout out;
  out.dims.assign(src.dims.begin(), src.dims.begin() + axis);
  out.dims.insert(out.dims.end(), idx.dims.begin(), idx.dims.end());
  out.dims.insert(out.dims.end(), src.dims.begin() + axis + 1, src.dims.end());
  out.partial_axes = src.partial_axes;
  return {{src, idx}, {out}};
}

ShardingDecision gather_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const int64_t axis = normalize_axis(a.i("axis"), static_cast<int64_t>(in[0].shape.size()), "gather");
  return gather_like_sharding(l[0], l[1], axis);
}

ShardingDecision embedding_sharding(const std::vector<TensorMeta>&, const std::vector<Layout>& l, const Attrs&) {
  ShardingDecision d = gather_like_sharding(l[1], l[0], 0);
  std::swap(d.inputs[0], d.inputs[1]);  // (ids, table)
  return d;
}

MF_STATIC_INIT {
  OpDef& gather_op = define_op("gather");
  gather_op.sharding = gather_sharding;
  gather_op.infer = infer_gather;
  gather_op.backward = gather_backward;
  OpDef& scatter = define_op("gather_backward");
  scatter.infer = infer_gather_backward;
  scatter.backward = gather_backward_backward;
  OpDef& e = define_op("embedding");
  e.infer = infer_embedding;
  e.backward = embedding_backward;
  e.sharding = embedding_sharding;
}

}  // namespace

Tensor gather(const Tensor& x, const Tensor& indices, int64_t axis) {
  static const OpDef& op = ops::gather();
  return call_op1(op, {x, indices}, {{"axis", axis}});
}

Tensor embedding(const Tensor& ids, const Tensor& table) {
  static const OpDef& op = ops::embedding();
  return call_op1(op, {ids, table});
}

}  // namespace meshflow
