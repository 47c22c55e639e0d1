// View ops: reshape, permute, slice, expand, squeeze, unsqueeze. Outputs alias their input.
#include <algorithm>
#include <numeric>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow {
namespace {

// reshape ---------------------------------------------------------------------------------------
Shape resolve_reshape(const Shape& in, const Shape& target) {
  int64_t infer_at = -1, known = 1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      MF_CHECK(infer_at < 0, "reshape: only one dimension may be -1, got ", shape_str(target));
      infer_at = static_cast<int64_t>(i);
    } else {
      MF_CHECK(target[i] >= 0, "reshape: invalid dimension ", target[i], " in target shape ", shape_str(target));
      known *= target[i];
    }
  }
  Shape out = target;
  int64_t n = shape_numel(in);
  if (n < 0) return out;  // symbolic with unknown dims: -1 stays unknown
  if (infer_at >= 0) {
    MF_CHECK(known > 0 && n % known == 0, "reshape: cannot reshape a tensor of shape ", shape_str(in), " (", n,
             " elements) into ", shape_str(target));
    out[infer_at] = n / known;
  } else {
    MF_CHECK(known == n, "reshape: cannot reshape a tensor of shape ", shape_str(in), " (", n, " elements) into ",
             shape_str(target), " (", known, " elements)");
  }
  return out;
}

std::vector<TensorMeta> infer_reshape(const std::vector<TensorMeta>& in, const Attrs& a) {
  return {{resolve_reshape(in[0].shape, a.ints("shape")), in[0].dtype, in[0].device}};
}

// Strides for viewing x as `shape` without a copy, or empty when impossible. Groups of input
// dims that are contiguous among themselves ("chunks") must map onto whole groups of output dims.
Strides view_strides(const Tensor& x, const Shape& shape) {
  if (x.is_contiguous() || x.numel() == 0) return contiguous_strides(shape);
  const Shape& os = x.shape();
  const Strides& ost = x.strides();
  Strides ns(shape.size(), 1);
  int64_t out_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t base = ost.empty() ? 1 : ost.back();
  int64_t in_chunk = 1, out_chunk = 1;
  for (int64_t d = static_cast<int64_t>(os.size()) - 1; d >= 0; --d) {
    in_chunk *= os[d];
    bool chunk_ends = d == 0 || (os[d - 1] != 1 && ost[d - 1] != in_chunk * base);
    if (!chunk_ends) continue;
    while (out_d >= 0 && (out_chunk < in_chunk || shape[out_d] == 1)) {
      ns[out_d] = out_chunk * base;
      out_chunk *= shape[out_d];
      --out_d;
    }
    if (out_chunk != in_chunk) return {};
    if (d > 0) {
      base = ost[d - 1];
      in_chunk = 1;
      out_chunk = 1;
    }
  }
  if (out_d != -1) return {};
  return ns;
}

Tensor view_reshape(const Tensor& x, const TensorMeta& out, const Attrs&) {
  if (out.shape.empty()) return make_view(x, out.shape, {}, x.offset());
  Strides st = view_strides(x, out.shape);
  if (!st.empty()) return make_view(x, out.shape, st, x.offset());
  NoGradGuard no_grad;
  Tensor c = x.contiguous();
  return make_view(c, out.shape, contiguous_strides(out.shape), c.offset());
}

std::vector<Tensor> reshape_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  return {g[0].reshape(ctx.inputs[0].shape())};
}

// permute ---------------------------------------------------------------------------------------
std::vector<TensorMeta> infer_permute(const std::vector<TensorMeta>& in, const Attrs& a) {
  const auto& axes = a.ints("axes");
  const Shape& s = in[0].shape;
  MF_CHECK(axes.size() == s.size(), "permute: ", axes.size(), " axes given for a tensor of rank ", s.size(),
           " (shape ", shape_str(s), ")");
  std::vector<bool> used(s.size(), false);
  Shape out(s.size());
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t ax = normalize_axis(axes[i], static_cast<int64_t>(s.size()), "permute");
    MF_CHECK(!used[ax], "permute: axis ", axes[i], " appears twice in ", shape_str(axes));
    used[ax] = true;
    out[i] = s[ax];
  }
  return {{out, in[0].dtype, in[0].device}};
}

Tensor view_permute(const Tensor& x, const TensorMeta& out, const Attrs& a) {
  const auto& axes = a.ints("axes");
  Strides st(axes.size());
  for (size_t i = 0; i < axes.size(); ++i) st[i] = x.strides()[normalize_axis(axes[i], x.dim(), "permute")];
  return make_view(x, out.shape, st, x.offset());
}

std::vector<Tensor> permute_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  const auto& axes = ctx.attrs.ints("axes");
  std::vector<int64_t> inv(axes.size());
  for (size_t i = 0; i < axes.size(); ++i)
    inv[normalize_axis(axes[i], static_cast<int64_t>(axes.size()), "permute")] = static_cast<int64_t>(i);
  return {g[0].permute(inv)};
}

// slice -----------------------------------------------------------------------------------------
struct SliceBounds {
  int64_t axis, start, len, step;
};

SliceBounds slice_bounds(const Shape& s, const Attrs& a) {
  int64_t axis = normalize_axis(a.i("axis"), static_cast<int64_t>(s.size()), "slice");
  int64_t step = a.i("step");
  MF_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t n = s[axis];
  int64_t start = a.i("start"), end = a.i("end");
  if (n < 0) return {axis, start, -1, step};
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, 0, n);
  int64_t len = end > start ? (end - start + step - 1) / step : 0;
  return {axis, start, len, step};
}

std::vector<TensorMeta> infer_slice(const std::vector<TensorMeta>& in, const Attrs& a) {
  MF_CHECK(!in[0].shape.empty(), "slice: cannot slice a 0-d tensor");
  SliceBounds b = slice_bounds(in[0].shape, a);
  Shape out = in[0].shape;
  out[b.axis] = b.len;
  return {{out, in[0].dtype, in[0].device}};
}

Tensor view_slice(const Tensor& x, const TensorMeta& out, const Attrs& a) {
  SliceBounds b = slice_bounds(x.shape(), a);
  Strides st = x.strides();
  int64_t off = x.offset() + b.start * st[b.axis];
  st[b.axis] *= b.step;
  return make_view(x, out.shape, st, b.len == 0 ? x.offset() : off);
}

std::vector<Tensor> slice_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  Tensor z = zeros(ctx.inputs[0].shape(), {.dtype = g[0].dtype(), .device = g[0].device()});
  SliceBounds b = slice_bounds(z.shape(), ctx.attrs);
  if (b.len > 0) z.slice(b.axis, b.start, b.start + (b.len - 1) * b.step + 1, b.step).copy_(g[0]);
  return {z};
}

// expand ----------------------------------------------------------------------------------------
std::vector<TensorMeta> infer_expand(const std::vector<TensorMeta>& in, const Attrs& a) {
  Shape target = a.ints("shape");
  const Shape& s = in[0].shape;
  MF_CHECK(target.size() >= s.size(), "expand: cannot expand shape ", shape_str(s), " to the lower-rank ",
           shape_str(target));
  size_t off = target.size() - s.size();
  for (size_t i = 0; i < target.size(); ++i) {
    int64_t src = i < off ? 1 : s[i - off];
    if (target[i] == -1) target[i] = src;
    MF_CHECK(src == target[i] || src == 1 || src < 0, "expand: cannot expand shape ", shape_str(s), " to ",
             shape_str(a.ints("shape")), " (dimension ", i, ": ", src, " is neither 1 nor ", target[i], ")");
  }
  return {{target, in[0].dtype, in[0].device}};
}

Tensor view_expand(const Tensor& x, const TensorMeta& out, const Attrs&) {
  Strides st(out.shape.size(), 0);
  size_t off = out.shape.size() - x.shape().size();
  for (size_t i = 0; i < x.shape().size(); ++i) st[off + i] = x.shape()[i] == 1 ? 0 : x.strides()[i];
  return make_view(x, out.shape, st, x.offset());
}

std::vector<Tensor> expand_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  return {autograd::sum_to(g[0], ctx.inputs[0].shape())};
}

// Note [reshape sharding]
// Dimensions are matched in groups of equal products (left to right). A one-to-one group keeps
// its split; a dimension split into several ([B, T, H*D] -> [B, T, H, D]) hands its split to the
// first new dimension of size > 1; several merged into one keep the split of the first when only
// it is split. The partitioned reshape then works on local chunks, which correspond only when the
// split sizes divide evenly. The partitioner hands rules each mesh axis's size as the attribute
// "mesh_axis_size:NAME", so a merge or split whose carried dimension does not divide by its axes
// (5 images over 2 ranks flattened with their pixels) is gathered first instead; a rule called
// without sizes assumes they divide. Any other split in a group is gathered first.
bool divides(const Attrs& a, int64_t size, const std::vector<std::string>& axes) {
  int64_t parts = 1;
  for (const auto& axis : axes) {
    const std::string key = "mesh_axis_size:" + axis;
    if (!a.has(key)) return true;
    parts *= a.i(key);
  }
  return size % parts == 0;
}

ShardingDecision reshape_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const Shape& s = in[0].shape;
  const Shape t = resolve_reshape(s, a.ints("shape"));
  Layout need = l[0], out = sharding::replicated(t.size());
  out.partial_axes = l[0].partial_axes;
  size_t i = 0, j = 0;
  while (i < s.size() || j < t.size()) {
    const size_t i0 = i, j0 = j;
    int64_t pi = i < s.size() ? s[i++] : 1, pj = j < t.size() ? t[j++] : 1;
    while (pi != pj) {
      if (pi < pj && i < s.size()) pi *= s[i++];
      else if (j < t.size()) pj *= t[j++];
      else break;
    }
    // Trailing dimensions of size 1 join the group.
    while (i < s.size() && s[i] == 1 && (j >= t.size() || t[j] != 1)) ++i;
    while (j < t.size() && t[j] == 1 && (i >= s.size() || s[i] != 1)) ++j;
    std::vector<size_t> split;
    for (size_t k = i0; k < i; ++k)
      if (!l[0].dims[k].axes.empty()) split.push_back(k);
    if (split.empty()) continue;
    size_t first_in = i0, first_out = j0;
    while (first_in < i && s[first_in] == 1) ++first_in;
    while (first_out < j && t[first_out] == 1) ++first_out;
    // Several dimensions on both sides (a merge and a split at once) are gathered first.
    size_t big_in = 0, big_out = 0;
    for (size_t k = i0; k < i; ++k) big_in += s[k] != 1;
    for (size_t k = j0; k < j; ++k) big_out += t[k] != 1;
    const bool even = big_in == 1 && big_out == 1 ? true
                      : big_in > 1 ? divides(a, s[first_in], l[0].dims[first_in].axes)
                                   : first_out < j && divides(a, t[first_out], l[0].dims[first_in].axes);
    if (split.size() == 1 && split[0] == first_in && first_out < j && (big_in == 1 || big_out == 1) && even) {
      out.dims[first_out] = l[0].dims[first_in];
    } else {
      for (size_t k = i0; k < i; ++k) need.dims[k].axes.clear();
    }
  }
  return {{need}, {out}};
}

ShardingDecision permute_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const auto& axes = a.ints("axes");
  Layout out;
  out.partial_axes = l[0].partial_axes;
  for (int64_t ax : axes) out.dims.push_back(l[0].dims[static_cast<size_t>(normalize_axis(ax, in[0].shape.size(), "permute"))]);
  return {{l[0]}, {out}};
}

// slice: the sliced dimension whole; expand: new and broadcast dimensions whole.
ShardingDecision slice_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  Layout need = sharding::replicate_dims(l[0], {normalize_axis(a.i("axis"), static_cast<int64_t>(in[0].shape.size()), "slice")});
  return {{need}, {need}};
}

ShardingDecision expand_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const Shape& s = in[0].shape;
  const Shape& t = a.ints("shape");
  Layout need = l[0], out = sharding::replicated(t.size());
  out.partial_axes = l[0].partial_axes;
  for (size_t k = 0; k < s.size(); ++k) {
    const size_t d = k + t.size() - s.size();
    if (s[k] == 1 && t[d] != 1) need.dims[k].axes.clear();
    else out.dims[d] = l[0].dims[k];
  }
  return {{need}, {out}};
}

MF_STATIC_INIT {
  OpDef& r = define_op("reshape");
  r.sharding = reshape_sharding;
  r.infer = infer_reshape;
  r.view = view_reshape;
  r.backward = reshape_backward;
  OpDef& p = define_op("permute");
  p.infer = infer_permute;
  p.sharding = permute_sharding;
  p.view = view_permute;
  p.backward = permute_backward;
  OpDef& s = define_op("slice");
  s.infer = infer_slice;
  s.sharding = slice_sharding;
  s.view = view_slice;
  s.backward = slice_backward;
  OpDef& e = define_op("expand");
  e.infer = infer_expand;
  e.sharding = expand_sharding;
  e.view = view_expand;
  e.backward = expand_backward;
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  static const OpDef& op = ops::reshape();
  return call_op1(op, {x}, {{"shape", shape}});
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& axes) {
  static const OpDef& op = ops::permute();
  return call_op1(op, {x}, {{"axes", axes}});
}

Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  int64_t r = x.dim();
  int64_t ia = normalize_axis(a, r, "transpose"), ib = normalize_axis(b, r, "transpose");
  std::vector<int64_t> axes(static_cast<size_t>(r));
  std::iota(axes.begin(), axes.end(), 0);
  std::swap(axes[ia], axes[ib]);
  return permute(x, axes);
}

Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  static const OpDef& op = ops::slice();
  return call_op1(op, {x}, {{"axis", axis}, {"start", start}, {"end", end}, {"step", step}});
}

Tensor expand(const Tensor& x, const Shape& shape) {
  static const OpDef& op = ops::expand();
  return call_op1(op, {x}, {{"shape", shape}});
}

Tensor squeeze(const Tensor& x, int64_t axis) {
  int64_t ax = normalize_axis(axis, x.dim(), "squeeze");
  MF_CHECK(x.shape()[ax] == 1 || x.shape()[ax] < 0, "squeeze: axis ", axis, " has size ", x.shape()[ax],
           ", not 1 (shape ", shape_str(x.shape()), ")");
  Shape s = x.shape();
  s.erase(s.begin() + ax);
  return reshape(x, s);
}

Tensor unsqueeze(const Tensor& x, int64_t axis) {
  int64_t ax = normalize_axis(axis, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(s.begin() + ax, 1);
  return reshape(x, s);
}

}  // namespace meshflow
