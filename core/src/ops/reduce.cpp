// mean, max, min, var, argmax, argmin: definitions, shape checks and backward (sum is in reduce_sum.cpp).
#include <algorithm>

#include "internal/reduce.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/reduce.h"

namespace meshflow {
namespace {

// max/min/argmax/argmin have no value over an empty axis (sum is 0 and mean NaN, but there is
// no identity element to return for an extreme), so they refuse it, naming the axis.
void check_not_empty(const Shape& shape, const std::vector<int64_t>& axes, const char* op) {
  for (int64_t a : axes)
    MF_CHECK(shape[a] != 0, op, ": cannot reduce over axis ", a, " of size 0 (input shape ", shape_str(shape),
             "); the result of an empty reduction is undefined for ", op,
             ", slice out the empty part or check the input first");
}

std::vector<TensorMeta> infer_extreme(const std::vector<TensorMeta>& in, const Attrs& a) {
  const char* op = current_op_name();
  auto axes = internal::reduce_axes(a.ints("axes"), static_cast<int64_t>(in[0].shape.size()), op);
  check_not_empty(in[0].shape, axes, op);
  return internal::infer_reduce(in, a);
}

std::vector<TensorMeta> infer_arg_extreme(const std::vector<TensorMeta>& in, const Attrs& a) {
  const char* op = current_op_name();
  const int64_t rank = static_cast<int64_t>(in[0].shape.size());
  MF_CHECK(rank > 0, op, ": needs a tensor of rank >= 1, got a scalar");
  std::vector<int64_t> axes{normalize_axis(a.i("axis"), rank, op)};
  check_not_empty(in[0].shape, axes, op);
  return {{internal::reduced_shape(in[0].shape, axes, a.b("keepdims")), DType::I64, in[0].device}};
}

// One where x equals the (broadcast) extreme y, else zero, in x's dtype.
std::vector<TensorMeta> infer_equal_mask(const std::vector<TensorMeta>& in, const Attrs&) { return {in[0]}; }

Tensor equal_mask(const Tensor& x, const Tensor& y) {
  static const OpDef& op = ops::equal_mask();
  return call_op1(op, {x, y});
}

// Note [Gradient of max and min at ties]: the gradient is split evenly among the elements that
// equal the extreme (PyTorch's amax/amin rule), so it is symmetric in the tied inputs and the
// finite-difference subgradient of a tie is matched on average.
std::vector<Tensor> extreme_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor& x = c.inputs[0];
  auto axes = internal::reduce_axes(c.attrs.ints("axes"), x.dim(), "max/min backward");
  const bool keepdims = c.attrs.b("keepdims");
  Tensor y = c.outputs[0];
  if (!keepdims) y = y.reshape(internal::reduced_shape(x.shape(), axes, true));
  Tensor mask = equal_mask(x, y);
  Tensor share = mask / sum(mask, axes, true);
  return {internal::expand_reduced_grad(g[0], x.shape(), axes, keepdims) * share};
}

// max/min/argmax/argmin: the reduced dimensions whole (a pending sum cannot carry a maximum), the
// others keep their splits.
ShardingDecision extreme_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const int64_t rank = static_cast<int64_t>(in[0].shape.size());
  const auto axes = a.has("axes") ? internal::reduce_axes(a.ints("axes"), rank, "max/min sharding")
                                  : std::vector<int64_t>{normalize_axis(a.i("axis"), rank, "argmax/argmin sharding")};
  Layout need = sharding::replicate_dims(sharding::without_partial(l[0]), axes);
  Layout out;
  for (int64_t d = 0; d < rank; ++d) {
    const bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
    if (!reduced || a.b("keepdims")) out.dims.push_back(need.dims[static_cast<size_t>(d)]);
  }
  return {{need}, {out}};
}

MF_STATIC_INIT {
  for (const char* name : {"max", "min"}) {
    OpDef& d = define_op(name);
    d.infer = infer_extreme;
    d.sharding = extreme_sharding;
    d.backward = extreme_backward;
    d.save_outputs = true;
  }
  for (const char* name : {"argmax", "argmin"}) {
    OpDef& d = define_op(name);
    d.infer = infer_arg_extreme;
    d.sharding = extreme_sharding;
  }
  define_op("equal_mask").infer = infer_equal_mask;
}

Tensor extreme(const OpDef& op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdims) {
  MF_CHECK(x.defined(), op.name, ": the input is an undefined tensor");
  return call_op1(op, {x}, {{"axes", axes}, {"keepdims", keepdims}});
}

int64_t reduced_count(const Tensor& x, const std::vector<int64_t>& axes, const char* op) {
  int64_t n = 1;
  for (int64_t a : internal::reduce_axes(axes, x.dim(), op)) n *= x.shape()[a];
  return n;
}

std::vector<Tensor> mean_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor& x = c.inputs[0];
  auto axes = internal::reduce_axes(c.attrs.ints("axes"), x.dim(), "mean");
  double n = 1;
  for (int64_t a : axes) n *= static_cast<double>(x.shape()[a]);
  return {internal::expand_reduced_grad(g[0] * (1.0 / n), x.shape(), axes, c.attrs.b("keepdims"))};
}

MF_STATIC_INIT {
  OpDef& d = define_op("mean");
  d.infer = internal::infer_reduce;
  d.sharding = internal::reduce_sharding;
  d.backward = mean_backward;
}

}  // namespace

// mean is one op (the sum kernel, then a scale), not sum / n: half the dispatches and tape
// nodes, which matters for losses on small batches.
Tensor mean(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims) {
  MF_CHECK(x.defined(), "mean: the input is an undefined tensor");
  // Integers average as floats.
  Tensor xf = is_floating(x.dtype()) ? x : cast(x, DType::F32);
  // Reducing only axes of size 1 is a reshape.
  if (!x.is_symbolic() && x.numel() > 0 && reduced_count(x, axes, "mean") == 1 && x.dim() > 0) {
    auto ax = internal::reduce_axes(axes, x.dim(), "mean");
    return xf.reshape(internal::reduced_shape(x.shape(), ax, keepdims));
  }
  static const OpDef& op = ops::mean();
  return call_op1(op, {xf}, {{"axes", axes}, {"keepdims", keepdims}});
}

Tensor max(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims) {
  return extreme(ops::max(), x, axes, keepdims);
}
Tensor min(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims) {
  return extreme(ops::min(), x, axes, keepdims);
}

// Two passes (the mean, then squared deviations) rather than E[x^2] - E[x]^2, which cancels
// catastrophically when the mean is large relative to the spread. Composed from ops, so its
// gradient 2 (x - mean) / (n - correction) comes from theirs.
Tensor var(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims, int64_t correction) {
  MF_CHECK(x.defined(), "var: the input is an undefined tensor");
  MF_CHECK(correction >= 0, "var: correction must be >= 0, got ", correction);
  Tensor xf = is_floating(x.dtype()) ? x : cast(x, DType::F32);
  const int64_t n = reduced_count(xf, axes, "var");
  Tensor d = xf - mean(xf, axes, true);
  Tensor s = sum(d * d, axes, keepdims);
  // n <= correction divides by zero or less: NaN or inf, as in PyTorch, rather than an error.
  return s / static_cast<double>(n - correction);
}

Tensor argmax(const Tensor& x, int64_t axis, bool keepdims) {
  static const OpDef& op = ops::argmax();
  return call_op1(op, {x}, {{"axis", axis}, {"keepdims", keepdims}});
}
Tensor argmin(const Tensor& x, int64_t axis, bool keepdims) {
  static const OpDef& op = ops::argmin();
  return call_op1(op, {x}, {{"axis", axis}, {"keepdims", keepdims}});
}

}  // namespace meshflow
