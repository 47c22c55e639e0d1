// cast, contiguous (a strided copy), the cross-device copy's backward, and assign: the in-place
// copy behind Tensor::copy_ and fill_, so they run on every device that has its kernel.
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow {
namespace {

std::vector<TensorMeta> infer_cast(const std::vector<TensorMeta>& in, const Attrs& a) {
  return {{in[0].shape, static_cast<DType>(a.i("dtype")), in[0].device}};
}

std::vector<Tensor> cast_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  if (!is_floating(ctx.inputs[0].dtype())) return {Tensor()};
  return {cast(g[0], ctx.inputs[0].dtype())};
}

std::vector<TensorMeta> infer_same(const std::vector<TensorMeta>& in, const Attrs&) { return {in[0]}; }

std::vector<Tensor> identity_backward(const BackwardContext&, const std::vector<Tensor>& g) { return {g[0]}; }

std::vector<Tensor> to_device_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  return {g[0].to(Device(ctx.attrs.s("src_device")))};
}

MF_STATIC_INIT {
  OpDef& c = define_op("cast");
  c.infer = infer_cast;
  c.sharding = sharding::elementwise_rule<sharding::PartialRule::Pass>;
  c.backward = cast_backward;
  OpDef& k = define_op("contiguous");
  k.infer = infer_same;
  k.sharding = sharding::elementwise_rule<sharding::PartialRule::Pass>;
  k.backward = identity_backward;
  OpDef& d = define_op("to_device");
  d.infer = infer_same;
  d.backward = to_device_backward;
  // assign(dst, src): dst = src broadcast and cast to dst's dtype, in place (run_inplace).
  define_op("assign").infer = [](const std::vector<TensorMeta>& in, const Attrs&) -> std::vector<TensorMeta> {
    MF_CHECK(in.size() == 2, "assign: takes a destination and a source");
    return {};
  };
}

}  // namespace

Tensor cast(const Tensor& x, DType dtype) {
  static const OpDef& op = ops::cast();
  return call_op1(op, {x}, {{"dtype", static_cast<int64_t>(dtype)}});
}

Tensor contiguous(const Tensor& x) {
  static const OpDef& op = ops::contiguous();
  return call_op1(op, {x});
}

}  // namespace meshflow
