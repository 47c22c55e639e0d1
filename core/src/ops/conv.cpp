// conv2d and conv1d (NHWC / NWC, weights [k..., in/groups, out]): argument checks, Keras padding,
// shape inference, and backward through the conv2d_grad_input / conv2d_grad_weight ops.
#include <algorithm>
#include <atomic>

#include "internal/window.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/ops/conv.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/sharding.h"

namespace meshflow {

namespace {

Shape out_shape_of(const Shape& x, const Shape& w, const Attrs& a) {
  const auto& s = a.ints("strides");
  const auto& p = a.ints("pads");
  const auto& d = a.ints("dilation");
  const int64_t oh = internal::window_out_size(x[1], (w[0] - 1) * d[0] + 1, s[0], {p[0], p[1]});
  const int64_t ow = internal::window_out_size(x[2], (w[1] - 1) * d[1] + 1, s[1], {p[2], p[3]});
  return {x[0], oh, ow, w[3]};
}

void check_float(DType t, const char* op) {
  MF_CHECK(t == DType::F32 || t == DType::F64, op, ": expected f32 or f64 tensors, got ", dtype_name(t));
}

// Inputs x, w; the public function has already checked ranks, channels and groups.
std::vector<TensorMeta> infer_conv2d(const std::vector<TensorMeta>& in, const Attrs& a) {
  MF_CHECK(in[0].dtype == in[1].dtype, "conv2d: dtypes differ (", dtype_name(in[0].dtype), " and ",
           dtype_name(in[1].dtype), ")");
  check_float(in[0].dtype, "conv2d");
  return {{out_shape_of(in[0].shape, in[1].shape, a), in[0].dtype, in[0].device}};
}

// Inputs dy, w; attr input_shape.
std::vector<TensorMeta> infer_grad_input(const std::vector<TensorMeta>& in, const Attrs& a) {
  return {{a.ints("input_shape"), in[0].dtype, in[0].device}};
}

// Inputs x, dy; attr weight_shape.
std::vector<TensorMeta> infer_grad_weight(const std::vector<TensorMeta>& in, const Attrs& a) {
  return {{a.ints("weight_shape"), in[0].dtype, in[0].device}};
}

std::vector<Tensor> conv2d_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  static const OpDef& grad_input = ops::conv2d_grad_input();
  static const OpDef& grad_weight = ops::conv2d_grad_weight();
  const Tensor &x = c.inputs[0], &w = c.inputs[1];
  Tensor dy = g[0].contiguous();
  Tensor dx, dw;
  if (c.needs_input_grad[0]) {
    Attrs a = c.attrs;
    dx = call_op1(grad_input, {dy, w.contiguous()}, a.set("input_shape", x.shape()));
  }
  if (c.needs_input_grad[1]) {
    Attrs a = c.attrs;
    dw = call_op1(grad_weight, {x.contiguous(), dy}, a.set("weight_shape", w.shape()));
  }
  return {dx, dw};
}

// Sharding (Note [Sharding rules]) of conv2d, x [N, H, W, C_in] and w [KH, KW, C_in/groups, C_out]:
// rows (N) keep their split; the output channels follow the kernel's C_out split (column-parallel);
// input channels split alike on x and w give a pending sum over those axes (row-parallel, as
// matmul's k). H and W are whole (a split image would need its neighbours' edge rows), and so are
// the kernel's window dimensions. Where x and w split C_in differently, the whole operand is cut to
// the other's split (free), else both are made whole. Grouped convolutions keep only the row split.
// Inputs' pending sums are completed first.
std::vector<std::string> minus(const std::vector<std::string>& a, const std::vector<std::string>& taken) {
  std::vector<std::string> out;
  for (const auto& x : a)
    if (std::find(taken.begin(), taken.end(), x) == taken.end()) out.push_back(x);
  return out;
}

ShardingDecision conv2d_sharding(const std::vector<TensorMeta>&, const std::vector<Layout>& l, const Attrs& a) {
  const Layout x = sharding::without_partial(l[0]), w = sharding::without_partial(l[1]);
  const bool grouped = a.i("groups") != 1;
  std::vector<std::string> cin;
  const auto &xc = x.dims[3].axes, &wc = w.dims[2].axes;
  if (!grouped) cin = xc == wc || wc.empty() ? xc : (xc.empty() ? wc : std::vector<std::string>{});
  const std::vector<std::string> cout = grouped ? std::vector<std::string>{} : minus(w.dims[3].axes, cin);
  std::vector<std::string> used = cin;
  used.insert(used.end(), cout.begin(), cout.end());
  const std::vector<std::string> rows = minus(x.dims[0].axes, used);
  Layout xin = sharding::replicated(4), win = sharding::replicated(4), out = sharding::replicated(4);
  xin.dims[0].axes = rows;
  xin.dims[3].axes = cin;
  win.dims[2].axes = cin;
  win.dims[3].axes = cout;
  out.dims[0].axes = rows;
  out.dims[3].axes = cout;
  out.partial_axes = cin;
  return {{xin, win}, {out}};
}

MF_STATIC_INIT {
  OpDef& d = define_op("conv2d");
  d.infer = infer_conv2d;
  d.sharding = conv2d_sharding;
  d.backward = conv2d_backward;
  define_op("conv2d_grad_input").infer = infer_grad_input;
  define_op("conv2d_grad_weight").infer = infer_grad_weight;
}

void check_positive(const std::vector<int64_t>& v, size_t n, const char* what, const char* op) {
  MF_CHECK(v.size() == n, op, ": ", what, " needs ", n, " values, got ", v.size());
  for (int64_t e : v) MF_CHECK(e >= 1, op, ": ", what, " must be positive, got ", e);
}

std::atomic<ConvAlgorithm> g_cpu_conv_algorithm{ConvAlgorithm::Auto};

}  // namespace

void set_cpu_conv_algorithm(ConvAlgorithm algorithm) { g_cpu_conv_algorithm.store(algorithm); }
ConvAlgorithm cpu_conv_algorithm() { return g_cpu_conv_algorithm.load(); }

Tensor conv2d(const Tensor& x, const Tensor& w, const Conv2dOptions& o) {
  static const OpDef& op = ops::conv2d();
  MF_CHECK(x.defined() && w.defined(), "conv2d: an operand is an undefined tensor");
  const Shape &xs = x.shape(), &ws = w.shape();
  MF_CHECK(x.dim() == 4, "conv2d: expected input of rank 4 [N, H, W, C], got ", shape_str(xs));
  MF_CHECK(w.dim() == 4, "conv2d: expected kernel of rank 4 [KH, KW, C_in/groups, C_out], got ", shape_str(ws));
  check_positive(o.strides, 2, "strides", "conv2d");
  check_positive(o.dilation, 2, "dilation", "conv2d");
  MF_CHECK(o.groups >= 1 && xs[3] % o.groups == 0 && ws[3] % o.groups == 0, "conv2d: groups=", o.groups,
           " must divide the input channels (", xs[3], ") and the output channels (", ws[3], ")");
  MF_CHECK(ws[2] * o.groups == xs[3], "conv2d: channel mismatch: input ", shape_str(xs), " has ", xs[3],
           " channels but kernel ", shape_str(ws), " expects ", ws[2], " x groups ", o.groups);
  const int64_t eh = (ws[0] - 1) * o.dilation[0] + 1, ew = (ws[1] - 1) * o.dilation[1] + 1;
  auto ph = internal::window_padding(o.padding, xs[1], eh, o.strides[0], "conv2d");
  auto pw = internal::window_padding(o.padding, xs[2], ew, o.strides[1], "conv2d");
  MF_CHECK(o.padding == "same" || (eh <= xs[1] && ew <= xs[2]), "conv2d: kernel ", shape_str(ws), " with dilation [",
           o.dilation[0], ", ", o.dilation[1], "] is larger than input ", shape_str(xs),
           " with padding=\"valid\"; use padding=\"same\" or a smaller kernel");
  Attrs attrs{{"strides", o.strides},
              {"pads", std::vector<int64_t>{ph.before, ph.after, pw.before, pw.after}},
              {"dilation", o.dilation},
              {"groups", o.groups}};
  if (x.dtype() == DType::BF16 || x.dtype() == DType::F16) {
    // Half precision computes in f32 (BLAS has no half GEMM here) and rounds once at the end.
    return cast(call_op1(op, {cast(x, DType::F32), cast(w, DType::F32)}, attrs), x.dtype());
  }
  return call_op1(op, {x, w}, attrs);
}

Tensor conv1d(const Tensor& x, const Tensor& w, const Conv1dOptions& o) {
  MF_CHECK(x.defined() && w.defined(), "conv1d: an operand is an undefined tensor");
  MF_CHECK(x.dim() == 3, "conv1d: expected input of rank 3 [N, W, C], got ", shape_str(x.shape()));
  MF_CHECK(w.dim() == 3, "conv1d: expected kernel of rank 3 [K, C_in/groups, C_out], got ", shape_str(w.shape()));
  MF_CHECK(w.size(1) * o.groups == x.size(2), "conv1d: channel mismatch: input ", shape_str(x.shape()), " has ",
           x.size(2), " channels but kernel ", shape_str(w.shape()), " expects ", w.size(1), " x groups ", o.groups);
  // A 1-D convolution is a 2-D one over a height-1 image (views, so gradients flow through).
  Conv2dOptions o2{.strides = {1, o.stride}, .padding = o.padding, .dilation = {1, o.dilation}, .groups = o.groups};
  return conv2d(x.unsqueeze(1), w.unsqueeze(0), o2).squeeze(1);
}

}  // namespace meshflow
