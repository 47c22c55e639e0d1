// pad: surrounds a tensor with a constant; its gradient is the slice of the interior.
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow {
namespace {

std::vector<TensorMeta> infer_pad(const std::vector<TensorMeta>& in, const Attrs& a) {
  const auto& pads = a.ints("pads");
  const Shape& s = in[0].shape;
  MF_CHECK(pads.size() == 2 * s.size(), "pad: ", pads.size() / 2, " (before, after) pairs given for a tensor of rank ",
           s.size(), " (shape ", shape_str(s), "); give one pair per axis");
  MF_CHECK(in[0].dtype != DType::Bool || a.f("value") == 0.0 || a.f("value") == 1.0,
           "pad: a bool tensor can only be padded with 0 or 1, got ", a.f("value"));
  Shape out = s;
  for (size_t d = 0; d < s.size(); ++d) {
    MF_CHECK(pads[2 * d] >= 0 && pads[2 * d + 1] >= 0, "pad: negative padding (", pads[2 * d], ", ", pads[2 * d + 1],
             ") on axis ", d, "; use slice to crop");
    if (s[d] >= 0) out[d] = s[d] + pads[2 * d] + pads[2 * d + 1];
  }
  return {{out, in[0].dtype, in[0].device}};
}

std::vector<Tensor> pad_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  const auto& pads = ctx.attrs.ints("pads");
  Tensor grad = g[0];
  for (int64_t d = 0; d < grad.dim(); ++d) {
    if (pads[2 * d] == 0 && pads[2 * d + 1] == 0) continue;
    grad = slice(grad, d, pads[2 * d], pads[2 * d] + ctx.inputs[0].size(d));
  }
  return {grad};
}

// pad: padded dimensions whole (the padding sits at the ends of the whole dimension); a pending sum
// cannot pass unless the pad value is 0, so it is summed first.
ShardingDecision pad_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const auto& pads = a.ints("pads");
  std::vector<int64_t> padded;
  for (size_t d = 0; d < in[0].shape.size(); ++d)
    if (pads[2 * d] != 0 || pads[2 * d + 1] != 0) padded.push_back(static_cast<int64_t>(d));
  Layout need = sharding::replicate_dims(sharding::without_partial(l[0]), padded);
  return {{need}, {need}};
}

MF_STATIC_INIT {
  OpDef& p = define_op("pad");
  p.infer = infer_pad;
  p.sharding = pad_sharding;
  p.backward = pad_backward;
}

}  // namespace

Tensor pad(const Tensor& x, const std::vector<std::pair<int64_t, int64_t>>& pads, double value) {
  static const OpDef& op = ops::pad();
  std::vector<int64_t> flat;
  flat.reserve(2 * pads.size());
  for (auto [before, after] : pads) {
    flat.push_back(before);
    flat.push_back(after);
  }
  return call_op1(op, {x}, {{"pads", flat}, {"value", value}});
}

}  // namespace meshflow
