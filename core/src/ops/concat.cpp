// concat (a multi-input op) and the ops built on it or on slices: split, stack.
#include <numeric>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow {
namespace {

std::vector<TensorMeta> infer_concat(const std::vector<TensorMeta>& in, const Attrs& a) {
  MF_CHECK(!in.empty(), "concat: needs at least one input");
  const TensorMeta& first = in[0];
  const int64_t rank = static_cast<int64_t>(first.shape.size());
  MF_CHECK(rank > 0, "concat: cannot concatenate 0-d tensors; unsqueeze them or use stack");
  const int64_t axis = normalize_axis(a.i("axis"), rank, "concat");
  Shape out = first.shape;
  for (size_t k = 1; k < in.size(); ++k) {
    const Shape& s = in[k].shape;
    MF_CHECK(in[k].dtype == first.dtype, "concat: input ", k, " has dtype ", dtype_name(in[k].dtype),
             " but input 0 has ", dtype_name(first.dtype));
    bool fits = static_cast<int64_t>(s.size()) == rank;
    for (int64_t d = 0; fits && d < rank; ++d)
      if (d != axis && s[d] != first.shape[d] && s[d] >= 0 && first.shape[d] >= 0) fits = false;
    MF_CHECK(fits, "concat: input ", k, " has shape ", shape_str(s), " but input 0 has shape ",
             shape_str(first.shape), "; all dimensions except axis ", axis, " must match");
    out[axis] = (out[axis] < 0 || s[axis] < 0) ? kUnknownDim : out[axis] + s[axis];
  }
  return {{out, first.dtype, first.device}};
}

// The gradient of each input is the slice of the output gradient it was copied to.
std::vector<Tensor> concat_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  const int64_t axis = normalize_axis(ctx.attrs.i("axis"), g[0].dim(), "concat");
  std::vector<Tensor> grads(ctx.inputs.size());
  int64_t start = 0;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    int64_t len = ctx.inputs[k].size(axis);
    if (ctx.needs_input_grad[k]) grads[k] = slice(g[0], axis, start, start + len);
    start += len;
  }
  return grads;
}

// concat: the joined axis whole; every input laid out as the first (whole sums).
ShardingDecision concat_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const int64_t axis = normalize_axis(a.i("axis"), static_cast<int64_t>(in[0].shape.size()), "concat");
  Layout need = sharding::replicate_dims(sharding::without_partial(l[0]), {axis});
  return {std::vector<Layout>(in.size(), need), {need}};
}

MF_STATIC_INIT {
  OpDef& c = define_op("concat");
  c.infer = infer_concat;
  c.sharding = concat_sharding;
  c.backward = concat_backward;
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  static const OpDef& op = ops::concat();
  MF_CHECK(!xs.empty(), "concat: needs at least one input, got an empty list");
  // Mixed dtypes are promoted like binary arithmetic (a recorded cast, so gradients flow back).
  DType common = xs[0].defined() ? xs[0].dtype() : DType::F32;
  for (size_t k = 0; k < xs.size(); ++k) {
    MF_CHECK(xs[k].defined(), "concat: input ", k, " is an undefined tensor");
    common = promote_types(common, xs[k].dtype());
  }
  std::vector<Tensor> inputs;
  inputs.reserve(xs.size());
  for (const Tensor& x : xs) inputs.push_back(x.dtype() == common ? x : cast(x, common));
  return call_op1(op, inputs, {{"axis", axis}});
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis) {
  MF_CHECK(x.defined(), "split: the input is an undefined tensor");
  MF_CHECK(x.dim() > 0, "split: cannot split a 0-d tensor");
  const int64_t ax = normalize_axis(axis, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    MF_CHECK(s >= 0, "split: sizes must be non-negative, got ", shape_str(sizes));
    total += s;
  }
  MF_CHECK(x.size(ax) < 0 || total == x.size(ax), "split: sizes ", shape_str(sizes), " add up to ", total,
           " but axis ", ax, " of shape ", shape_str(x.shape()), " has ", x.size(ax));
  // The pieces are slices: views, so splitting copies nothing and each gradient is a slice's.
  std::vector<Tensor> pieces;
  pieces.reserve(sizes.size());
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(slice(x, ax, start, start + s));
    start += s;
  }
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, int64_t num_splits, int64_t axis) {
  MF_CHECK(x.defined(), "split: the input is an undefined tensor");
  MF_CHECK(num_splits > 0, "split: num_splits must be positive, got ", num_splits);
  MF_CHECK(x.dim() > 0, "split: cannot split a 0-d tensor");
  const int64_t ax = normalize_axis(axis, x.dim(), "split");
  const int64_t n = x.size(ax);
  MF_CHECK(n >= 0, "split: axis ", ax, " of shape ", shape_str(x.shape()), " is unknown; pass explicit sizes");
  MF_CHECK(n % num_splits == 0, "split: axis ", ax, " of shape ", shape_str(x.shape()), " (size ", n,
           ") does not divide into ", num_splits, " equal parts; pass explicit sizes");
  return split(x, std::vector<int64_t>(static_cast<size_t>(num_splits), n / num_splits), ax);
}

Tensor stack(const std::vector<Tensor>& xs, int64_t axis) {
  MF_CHECK(!xs.empty(), "stack: needs at least one input, got an empty list");
  for (size_t k = 0; k < xs.size(); ++k) {
    MF_CHECK(xs[k].defined(), "stack: input ", k, " is an undefined tensor");
    MF_CHECK(xs[k].shape() == xs[0].shape(), "stack: input ", k, " has shape ", shape_str(xs[k].shape()),
             " but input 0 has shape ", shape_str(xs[0].shape()), "; stacked tensors must have equal shapes");
  }
  const int64_t ax = normalize_axis(axis, xs[0].dim() + 1, "stack");
  std::vector<Tensor> expanded;
  expanded.reserve(xs.size());
  for (const Tensor& x : xs) expanded.push_back(unsqueeze(x, ax));
  return concat(expanded, ax);
}

}  // namespace meshflow
