// sum, and the shared helpers every reduction uses (axes, shapes, layouts).
#include <algorithm>
#include <numeric>

#include "internal/reduce.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/reduce.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow {
namespace internal {

std::vector<int64_t> reduce_axes(const std::vector<int64_t>& axes, int64_t rank, const char* op) {
  std::vector<int64_t> out;
  if (axes.empty()) {
    out.resize(static_cast<size_t>(rank));
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (int64_t a : axes) out.push_back(normalize_axis(a, rank, op));
  std::sort(out.begin(), out.end());
  MF_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op, ": an axis is repeated in ", shape_str(axes));
  return out;
}

Shape reduced_shape(const Shape& in, const std::vector<int64_t>& axes, bool keepdims) {
  Shape out;
  for (int64_t i = 0; i < static_cast<int64_t>(in.size()); ++i) {
    bool r = std::binary_search(axes.begin(), axes.end(), i);
    if (!r) out.push_back(in[i]);
    else if (keepdims) out.push_back(1);
  }
  return out;
}

std::vector<TensorMeta> infer_reduce(const std::vector<TensorMeta>& in, const Attrs& a) {
  auto axes = reduce_axes(a.ints("axes"), static_cast<int64_t>(in[0].shape.size()), current_op_name());
  return {{reduced_shape(in[0].shape, axes, a.b("keepdims")), in[0].dtype, in[0].device}};
}

ShardingDecision reduce_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const int64_t rank = static_cast<int64_t>(in[0].shape.size());
  auto axes = reduce_axes(a.ints("axes"), rank, "sum/mean sharding");
  const bool keepdims = a.b("keepdims");
  Layout out;
  out.partial_axes = l[0].partial_axes;
  for (int64_t d = 0; d < rank; ++d) {
    const bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
    const auto& split = l[0].dims[static_cast<size_t>(d)].axes;
    if (reduced) {
      out.partial_axes.insert(out.partial_axes.end(), split.begin(), split.end());
      if (keepdims) out.dims.push_back({});
    } else {
      out.dims.push_back(l[0].dims[static_cast<size_t>(d)]);
    }
  }
  return {{l[0]}, {out}};
}

ReduceLayout reduce_layout(const Tensor& x, const std::vector<int64_t>& axes) {
  const int64_t rank = x.dim();
  std::vector<bool> red(static_cast<size_t>(rank), false);
  for (int64_t a : axes) red[a] = true;
  int64_t inner = 1, outer = 1;
  for (int64_t i = 0; i < rank; ++i) (red[i] ? inner : outer) *= x.shape()[i];
  ReduceLayout l;
  l.inner = inner;
  l.outer = outer;
  if (x.is_contiguous()) {
    // Reduced axes all trailing: rows. Reduced axes all leading: columns.
    int64_t k = static_cast<int64_t>(axes.size());
    bool trailing = true, leading = true;
    for (int64_t i = 0; i < k; ++i) {
      if (axes[i] != rank - k + i) trailing = false;
      if (axes[i] != i) leading = false;
    }
    if (trailing) {
      l.data = x;
      return l;
    }
    if (leading) {
      l.data = x;
      l.columns = true;
      return l;
    }
  }
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < rank; ++i)
    if (!red[i]) perm.push_back(i);
  for (int64_t a : axes) perm.push_back(a);
  NoGradGuard no_grad;
  l.data = x.permute(perm).contiguous();
  return l;
}

Tensor expand_reduced_grad(const Tensor& g, const Shape& in_shape, const std::vector<int64_t>& axes, bool keepdims) {
  Tensor k = g;
  if (!keepdims) k = g.reshape(reduced_shape(in_shape, axes, true));
  return k.expand(in_shape);
}

}  // namespace internal

namespace {
std::vector<Tensor> sum_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor& x = c.inputs[0];
  auto axes = internal::reduce_axes(c.attrs.ints("axes"), x.dim(), "sum");
  return {internal::expand_reduced_grad(g[0], x.shape(), axes, c.attrs.b("keepdims"))};
}

MF_STATIC_INIT {
  OpDef& d = define_op("sum");
  d.infer = internal::infer_reduce;
  d.sharding = internal::reduce_sharding;
  d.backward = sum_backward;
}
}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims) {
  static const OpDef& op = ops::sum();
  return call_op1(op, {x}, {{"axes", axes}, {"keepdims", keepdims}});
}

}  // namespace meshflow
