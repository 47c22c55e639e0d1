// unbind: one tensor per index along an axis. Its kernel is device-agnostic (strided copies
// through `assign`), so the same function is registered for every device type.
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/ops/shape.h"
#include "meshflow/core/sharding.h"

namespace meshflow {
namespace {

// Note [unbind, not slices]: a recurrent loop reads one time step per iteration. Taking each step
// with slice() would give every step's gradient as a zero tensor of the whole sequence's shape,
// making the backward pass O(T^2) in memory traffic. unbind copies the steps out once, and its
// backward stacks the T step gradients in one op.
std::vector<TensorMeta> infer_unbind(const std::vector<TensorMeta>& in, const Attrs& attrs) {
  const Shape& s = in[0].shape;
  MF_CHECK(!s.empty(), "unbind: needs a tensor of rank >= 1");
  const int64_t axis = normalize_axis(attrs.i("axis"), static_cast<int64_t>(s.size()), "unbind");
  MF_CHECK(s[axis] >= 0, "unbind: axis ", axis, " of shape ", shape_str(s), " is unknown");
  Shape piece = s;
  piece.erase(piece.begin() + axis);
  return std::vector<TensorMeta>(static_cast<size_t>(s[axis]), TensorMeta{piece, in[0].dtype, in[0].device});
}

void unbind_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const int64_t axis = normalize_axis(attrs.i("axis"), in[0].dim(), "unbind");
  NoGradGuard no_grad;  // the views below are only read from
  for (size_t i = 0; i < out.size(); ++i) {
    const auto k = static_cast<int64_t>(i);
    out[i].copy_(in[0].slice(axis, k, k + 1).squeeze(axis));
  }
}

// The unbound axis whole (each piece is one index of it); the other dimensions keep their split,
// and a pending sum passes through (unbind is linear).
ShardingDecision unbind_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& attrs) {
  const int64_t rank = static_cast<int64_t>(in[0].shape.size());
  const int64_t axis = normalize_axis(attrs.i("axis"), rank, "unbind");
  Layout need = sharding::replicate_dims(l[0], {axis}), piece = need;
  piece.dims.erase(piece.dims.begin() + axis);
  return {{need}, std::vector<Layout>(static_cast<size_t>(std::max<int64_t>(in[0].shape[axis], 0)), piece)};
}

std::vector<Tensor> unbind_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  return {stack(g, ctx.attrs.i("axis"))};
}

MF_STATIC_INIT {
  OpDef& d = define_op("unbind");
  d.infer = infer_unbind;
  d.backward = unbind_backward;
  d.sharding = unbind_sharding;
  for (int t = 0; t < kNumDeviceTypes; ++t) register_kernel("unbind", static_cast<DeviceType>(t), unbind_kernel);
}

}  // namespace

std::vector<Tensor> unbind(const Tensor& x, int64_t axis) {
  static const OpDef& op = ops::unbind();
  MF_CHECK(x.defined() && x.dim() > 0, "unbind: needs a tensor of rank >= 1");
  const int64_t ax = normalize_axis(axis, x.dim(), "unbind");
  return call_op(op, {x}, Attrs{{"axis", ax}});
}

}  // namespace meshflow
