// max_pool2d and avg_pool2d (NHWC): argument checks, Keras padding, shape inference, backward
// through the max_pool2d_grad / avg_pool2d_grad ops.
#include "internal/window.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/conv.h"
#include "meshflow/core/ops/elementwise.h"

namespace meshflow {

namespace {

std::vector<TensorMeta> infer_pool(const std::vector<TensorMeta>& in, const Attrs& a) {
  const char* op = current_op_name();
  MF_CHECK(in[0].dtype == DType::F32 || in[0].dtype == DType::F64, op, ": expected f32 or f64, got ",
           dtype_name(in[0].dtype));
  const Shape& x = in[0].shape;
  const auto &k = a.ints("pool_size"), &s = a.ints("strides"), &p = a.ints("pads");
  const int64_t oh = internal::window_out_size(x[1], k[0], s[0], {p[0], p[1]});
  const int64_t ow = internal::window_out_size(x[2], k[1], s[1], {p[2], p[3]});
  return {{Shape{x[0], oh, ow, x[3]}, in[0].dtype, in[0].device}};
}

// Gradient ops: max_pool2d_grad(x, dy) and avg_pool2d_grad(dy) with attr input_shape -> dx.
std::vector<TensorMeta> infer_pool_grad(const std::vector<TensorMeta>& in, const Attrs& a) {
  return {{a.ints("input_shape"), in[0].dtype, in[0].device}};
}

std::vector<Tensor> max_pool_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  static const OpDef& grad = ops::max_pool2d_grad();
  Attrs a = c.attrs;
  return {call_op1(grad, {c.inputs[0].contiguous(), g[0].contiguous()}, a.set("input_shape", c.inputs[0].shape()))};
}

std::vector<Tensor> avg_pool_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  static const OpDef& grad = ops::avg_pool2d_grad();
  Attrs a = c.attrs;
  return {call_op1(grad, {g[0].contiguous()}, a.set("input_shape", c.inputs[0].shape()))};
}

// Sharding: NHWC pooling keeps the rows' and the channels' splits; H and W are whole (a window
// may cross a split). Average pooling is linear, so a pending sum passes; max pooling's does not.
template <bool Linear>
ShardingDecision pool_sharding(const std::vector<TensorMeta>&, const std::vector<Layout>& l, const Attrs&) {
  Layout x = sharding::replicate_dims(Linear ? l[0] : sharding::without_partial(l[0]), {1, 2});
  return {{x}, {x}};
}

MF_STATIC_INIT {
  OpDef& mx = define_op("max_pool2d");
  mx.infer = infer_pool;
  mx.sharding = pool_sharding<false>;
  mx.backward = max_pool_backward;
  OpDef& av = define_op("avg_pool2d");
  av.infer = infer_pool;
  av.sharding = pool_sharding<true>;
  av.backward = avg_pool_backward;
  define_op("max_pool2d_grad").infer = infer_pool_grad;
  define_op("avg_pool2d_grad").infer = infer_pool_grad;
}

Tensor pool2d(const OpDef& op, const Tensor& x, const Pool2dOptions& o) {
  const char* name = op.name.c_str();
  MF_CHECK(x.defined(), name, ": the input is an undefined tensor");
  MF_CHECK(x.dim() == 4, name, ": expected input of rank 4 [N, H, W, C], got ", shape_str(x.shape()));
  const std::vector<int64_t> strides = o.strides.empty() ? o.pool_size : o.strides;
  MF_CHECK(o.pool_size.size() == 2 && strides.size() == 2, name, ": pool_size and strides need 2 values each, got ",
           o.pool_size.size(), " and ", strides.size());
  for (int64_t v : {o.pool_size[0], o.pool_size[1], strides[0], strides[1]})
    MF_CHECK(v >= 1, name, ": pool_size and strides must be positive, got ", v);
  auto ph = internal::window_padding(o.padding, x.size(1), o.pool_size[0], strides[0], name);
  auto pw = internal::window_padding(o.padding, x.size(2), o.pool_size[1], strides[1], name);
  MF_CHECK(o.padding == "same" || (o.pool_size[0] <= x.size(1) && o.pool_size[1] <= x.size(2)), name,
           ": pool_size [", o.pool_size[0], ", ", o.pool_size[1], "] is larger than input ", shape_str(x.shape()),
           " with padding=\"valid\"");
  Attrs attrs{{"pool_size", o.pool_size},
              {"strides", strides},
              {"pads", std::vector<int64_t>{ph.before, ph.after, pw.before, pw.after}}};
  if (x.dtype() == DType::BF16 || x.dtype() == DType::F16)
    return cast(call_op1(op, {cast(x, DType::F32)}, attrs), x.dtype());
  return call_op1(op, {x}, attrs);
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options) { return pool2d(ops::max_pool2d(), x, options); }
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options) { return pool2d(ops::avg_pool2d(), x, options); }

}  // namespace meshflow
