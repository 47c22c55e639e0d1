// CUDA conv2d, conv2d_grad_input and conv2d_grad_weight through cuDNN's legacy convolution API
// (cudnnConvolutionForward / BackwardData / BackwardFilter, algorithms from the *_v7 heuristics,
// cached per geometry). Meshflow's layouts are NHWC data and HWIO weights with pads {top, bottom,
// left, right}; see Note [cuDNN layouts] for how they are handed to cuDNN.
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cudnn_util.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/ops/linalg.h"

namespace meshflow {
namespace {

using cu::Dims4;

// Note [cuDNN layouts]: cuDNN wants filters as KRSC (NHWC filter format) or KCRS (NCHW), never
// HWIO, so every call first copies the weight into one of those in workspace (and the weight
// gradient comes back through the same copy reversed). Data stays NHWC when cuDNN has an
// algorithm for that; f64, and any case where NHWC has none, runs in NCHW on transposed copies.
// cuDNN's padding is symmetric, while "same" padding may put one more row or column after than
// before: cuDNN gets min(before, after) and the remainder is made real by copying the input into
// a zero-bordered buffer (the input gradient is cropped back out of the matching buffer).
enum class Layout { Nhwc, Nchw };
enum class Pass { Forward, BackwardData, BackwardFilter };

constexpr size_t kMaxAlgoWorkspace = size_t(256) << 20;

struct ConvGeom {
  int64_t n, h, w, c;     // input, NHWC
  int64_t kh, kw, cg, k;  // weight, HWIO (cg = c / groups)
  int64_t oh, ow;         // output spatial size
  int64_t sh, sw, dh, dw, groups;
  int64_t pad_h, pad_w;                                      // symmetric padding cuDNN applies
  int64_t extra_top, extra_bottom, extra_left, extra_right;  // applied by the padded copy
  int64_t hp() const { return h + extra_top + extra_bottom; }
  int64_t wp() const { return w + extra_left + extra_right; }
  bool padded() const { return extra_top || extra_bottom || extra_left || extra_right; }
};

ConvGeom geom_of(const Shape& x, const Shape& w, const Shape& y, const Attrs& a) {
  const auto &s = a.ints("strides"), &p = a.ints("pads"), &d = a.ints("dilation");
  ConvGeom g{};
  g.n = x[0], g.h = x[1], g.w = x[2], g.c = x[3];
  g.kh = w[0], g.kw = w[1], g.cg = w[2], g.k = w[3];
  g.oh = y[1], g.ow = y[2];
  g.sh = s[0], g.sw = s[1], g.dh = d[0], g.dw = d[1];
  g.groups = a.i("groups");
  g.pad_h = std::min(p[0], p[1]);
  g.pad_w = std::min(p[2], p[3]);
  g.extra_top = p[0] - g.pad_h, g.extra_bottom = p[1] - g.pad_h;
  g.extra_left = p[2] - g.pad_w, g.extra_right = p[3] - g.pad_w;
  return g;
}

// Element strides of an image in `layout`, listed in logical (n, h, w, c) order.
Dims4 image_strides(Layout layout, int64_t h, int64_t w, int64_t c) {
  if (layout == Layout::Nhwc) return {h * w * c, w * c, c, 1};
  return {c * h * w, w, 1, h * w};
}

// Element strides of a cuDNN filter (KRSC for NHWC, KCRS for NCHW) in logical HWIO order.
Dims4 filter_strides(Layout layout, const ConvGeom& g) {
  if (layout == Layout::Nhwc) return {g.kw * g.cg, g.cg, 1, g.kh * g.kw * g.cg};
  return {g.kw, 1, g.kh * g.kw, g.cg * g.kh * g.kw};
}

Dims4 strides_of(const Tensor& t) { return {t.strides()[0], t.strides()[1], t.strides()[2], t.strides()[3]}; }
Dims4 dims_of(const Tensor& t) { return {t.size(0), t.size(1), t.size(2), t.size(3)}; }

struct Types {
  cudnnDataType_t data, compute;
  cudnnMathType_t math;  // what the heuristics are asked with
  bool force_fma;        // f32 without TF32: never let cuDNN convert to TF32
};

Types types_of(DType t, const char* op) {
  switch (t) {
    case DType::F32:
      if (allow_tf32()) return {CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_DEFAULT_MATH, false};
      return {CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_FMA_MATH, true};
    case DType::F64: return {CUDNN_DATA_DOUBLE, CUDNN_DATA_DOUBLE, CUDNN_DEFAULT_MATH, false};
    case DType::BF16: return {CUDNN_DATA_BFLOAT16, CUDNN_DATA_FLOAT, CUDNN_DEFAULT_MATH, false};
    case DType::F16: return {CUDNN_DATA_HALF, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH, false};
    default: break;
  }
  MF_THROW(op, ": no cuda kernel for dtype ", dtype_name(t), " (f32, f64, bf16 and f16 are supported)");
}

int to_int(int64_t v, const char* op, const char* what) {
  MF_CHECK(v >= 0 && v <= INT_MAX, op, ": ", what, " ", v, " is beyond cuDNN's 32-bit descriptor fields");
  return static_cast<int>(v);
}

// The four descriptors of one convolution, destroyed with it.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Descriptors() = default;
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  ~Descriptors() {
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
};

// Builds the descriptors; returns cuDNN's refusal (a status other than success) instead of
// throwing, so the caller can try the other layout.
cudnnStatus_t build(Descriptors& d, const ConvGeom& g, Layout layout, const Types& t, const char* op) {
  // The legacy API indexes tensors with 32-bit integers.
  constexpr int64_t kMaxElems = INT_MAX;
  MF_CHECK(g.n * g.hp() * g.wp() * g.c <= kMaxElems && g.n * g.oh * g.ow * g.k <= kMaxElems, op,
           ": tensors of 2^31 or more elements are beyond cuDNN's legacy convolution API (input ", g.n, "x", g.h,
           "x", g.w, "x", g.c, ", output ", g.n, "x", g.oh, "x", g.ow, "x", g.k, "); split the batch");
  const cudnnTensorFormat_t fmt = layout == Layout::Nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  const int n = to_int(g.n, op, "batch"), c = to_int(g.c, op, "channels"), k = to_int(g.k, op, "filters");
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  auto step = [&](cudnnStatus_t s) {
    if (st == CUDNN_STATUS_SUCCESS) st = s;
  };
  step(cudnnCreateTensorDescriptor(&d.x));
  step(cudnnCreateTensorDescriptor(&d.y));
  step(cudnnCreateFilterDescriptor(&d.w));
  step(cudnnCreateConvolutionDescriptor(&d.conv));
  if (st != CUDNN_STATUS_SUCCESS) return st;
  step(cudnnSetTensor4dDescriptor(d.x, fmt, t.data, n, c, to_int(g.hp(), op, "height"), to_int(g.wp(), op, "width")));
  step(cudnnSetTensor4dDescriptor(d.y, fmt, t.data, n, k, to_int(g.oh, op, "height"), to_int(g.ow, op, "width")));
  step(cudnnSetFilter4dDescriptor(d.w, t.data, fmt, k, to_int(g.cg, op, "channels"), to_int(g.kh, op, "kernel"),
                                  to_int(g.kw, op, "kernel")));
  step(cudnnSetConvolution2dDescriptor(d.conv, to_int(g.pad_h, op, "padding"), to_int(g.pad_w, op, "padding"),
                                       to_int(g.sh, op, "stride"), to_int(g.sw, op, "stride"),
                                       to_int(g.dh, op, "dilation"), to_int(g.dw, op, "dilation"),
                                       CUDNN_CROSS_CORRELATION, t.compute));
  step(cudnnSetConvolutionGroupCount(d.conv, to_int(g.groups, op, "groups")));
  step(cudnnSetConvolutionMathType(d.conv, t.math));
  return st;
}

// The algorithm for one pass over one geometry, from cuDNN's heuristics.
struct Choice {
  bool found = false;
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  std::string why;  // when !found: what cuDNN said
};

std::string status_str(cudnnStatus_t st) {
  char detail[256] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  return detail[0] ? std::string(cudnnGetErrorString(st)) + ": " + detail : std::string(cudnnGetErrorString(st));
}

cudnnStatus_t workspace_size(cudnnHandle_t h, const Descriptors& d, Pass pass, int algo, size_t* bytes) {
  switch (pass) {
    case Pass::Forward:
      return cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y,
                                                     static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
    case Pass::BackwardData:
      return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w, d.y, d.conv, d.x,
                                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
    case Pass::BackwardFilter:
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(
          h, d.x, d.y, d.conv, d.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

// Takes the heuristics' candidates in their order of expected speed: the first that cuDNN can
// size and whose workspace fits kMaxAlgoWorkspace, else the one needing the least workspace.
Choice choose_uncached(cudnnHandle_t h, const Descriptors& d, Pass pass, const Types& t) {
  struct Candidate {
    int algo;
    cudnnStatus_t status;
    cudnnMathType_t math;
  };
  std::vector<Candidate> cands;
  int count = 0;
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  if (pass == Pass::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    st = cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count,
                                                perf);
    for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < count; ++i)
      cands.push_back({static_cast<int>(perf[i].algo), perf[i].status, perf[i].mathType});
  } else if (pass == Pass::BackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    st = cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                     &count, perf);
    for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < count; ++i)
      cands.push_back({static_cast<int>(perf[i].algo), perf[i].status, perf[i].mathType});
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    st = cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w,
                                                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf);
    for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < count; ++i)
      cands.push_back({static_cast<int>(perf[i].algo), perf[i].status, perf[i].mathType});
  }
  Choice best;
  if (st != CUDNN_STATUS_SUCCESS) {
    best.why = "the heuristic query failed: " + status_str(st);
    return best;
  }
  best.why = "no algorithm reported success";
  for (const Candidate& cand : cands) {
    if (cand.status != CUDNN_STATUS_SUCCESS) continue;
    const cudnnMathType_t math = t.force_fma ? CUDNN_FMA_MATH : cand.math;
    if (cudnnSetConvolutionMathType(d.conv, math) != CUDNN_STATUS_SUCCESS) continue;
    size_t bytes = 0;
    const cudnnStatus_t ws = workspace_size(h, d, pass, cand.algo, &bytes);
    if (ws != CUDNN_STATUS_SUCCESS) {
      best.why = "workspace query failed: " + status_str(ws);
      continue;
    }
    if (!best.found || (best.workspace > kMaxAlgoWorkspace && bytes < best.workspace)) {
      best.found = true;
      best.algo = cand.algo;
      best.math = math;
      best.workspace = bytes;
    }
    if (bytes <= kMaxAlgoWorkspace) break;
  }
  return best;
}

// Choices by geometry, shared by all threads (the heuristics cost more than a small convolution).
Choice choose(cudnnHandle_t h, const Descriptors& d, Pass pass, const Types& t, const ConvGeom& g, Layout layout,
              DType dtype, int device) {
  const std::vector<int64_t> key{static_cast<int64_t>(pass), device, static_cast<int64_t>(dtype),
                                 static_cast<int64_t>(layout), static_cast<int64_t>(t.math), g.n, g.h, g.w, g.c,
                                 g.kh, g.kw, g.cg, g.k, g.oh, g.ow, g.sh, g.sw, g.dh, g.dw, g.groups, g.pad_h, g.pad_w,
                                 g.extra_top, g.extra_bottom, g.extra_left, g.extra_right};
  static std::mutex mu;
  static std::map<std::vector<int64_t>, Choice> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  Choice choice = choose_uncached(h, d, pass, t);
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= 4096) cache.clear();
  cache.emplace(key, choice);
  return choice;
}

// An NHWC tensor (any strides) in `layout` with `top`/`left` zero rows/columns before it and the
// buffer `hp` x `wp` spatially: the tensor itself when it already is exactly that.
const void* image_in(const ExecContext& ctx, const Tensor& t, Layout layout, int64_t top, int64_t left, int64_t hp,
                     int64_t wp) {
  const Dims4 dims = dims_of(t);
  const bool exact = hp == dims[1] && wp == dims[2];
  // Views may start anywhere; some cuDNN kernels load 16 bytes at a time, so those are copied.
  const bool aligned = reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0;
  if (layout == Layout::Nhwc && exact && aligned && t.is_contiguous()) return t.raw_data();
  const size_t elem = dtype_size(t.dtype());
  const size_t bytes = static_cast<size_t>(dims[0] * hp * wp * dims[3]) * elem;
  char* buf = static_cast<char*>(ctx.workspace(bytes));
  if (!exact) MF_CUDA_CHECK(cudaMemsetAsync(buf, 0, bytes, cu::stream_of(ctx)));
  const Dims4 dst = image_strides(layout, hp, wp, dims[3]);
  cu::copy_4d(t.raw_data(), strides_of(t), buf + static_cast<size_t>(top * dst[1] + left * dst[2]) * elem, dst, dims,
              elem, cu::stream_of(ctx));
  return buf;
}

// The HWIO weight (any strides) as cuDNN's filter for `layout`, in workspace.
const void* filter_in(const ExecContext& ctx, const Tensor& w, Layout layout, const ConvGeom& g) {
  const size_t elem = dtype_size(w.dtype());
  void* buf = ctx.workspace(static_cast<size_t>(w.numel()) * elem);
  cu::copy_4d(w.raw_data(), strides_of(w), buf, filter_strides(layout, g), dims_of(w), elem, cu::stream_of(ctx));
  return buf;
}

// The status of a convolution call: a "not supported" refusal (cuDNN checks before launching
// anything) returns false so the caller can try the other layout; any other failure throws.
bool executed(cudnnStatus_t st, const char* call, int line, std::string& why) {
  if (st == CUDNN_STATUS_SUCCESS) return true;
  if (CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_NOT_SUPPORTED) {
    why = std::string(call) + " refused: " + status_str(st);
    return false;
  }
  cu::throw_cudnn_error(static_cast<int>(st), call, __FILE__, line);
}

// One pass in one layout. Operands: Forward (x, w) -> y; BackwardData (dy, w) -> dx;
// BackwardFilter (x, dy) -> dw. Returns false when cuDNN has no algorithm for this layout or
// refuses the call (`why` says what it reported); only layout copies into workspace were queued.
bool run_pass(const ExecContext& ctx, Pass pass, const ConvGeom& g, Layout layout, const Tensor& a, const Tensor& b,
              Tensor& out, const char* op, std::string& why) {
  const DType dtype = out.dtype();
  const Types t = types_of(dtype, op);
  Descriptors d;
  const cudnnStatus_t built = build(d, g, layout, t, op);
  if (built != CUDNN_STATUS_SUCCESS) {
    why = "descriptors refused: " + status_str(built);
    return false;
  }
  cudaStream_t stream = cu::stream_of(ctx);
  cu::CudnnHandle handle(ctx.device().index, stream);
  const Choice ch = choose(handle.get(), d, pass, t, g, layout, dtype, ctx.device().index);
  if (!ch.found) {
    why = ch.why;
    return false;
  }
  MF_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, ch.math));
  void* ws = ch.workspace ? ctx.workspace(ch.workspace) : nullptr;
  const float one_f = 1.0f, zero_f = 0.0f;
  const double one_d = 1.0, zero_d = 0.0;
  const bool dbl = t.compute == CUDNN_DATA_DOUBLE;
  const void* alpha = dbl ? static_cast<const void*>(&one_d) : &one_f;
  const void* beta = dbl ? static_cast<const void*>(&zero_d) : &zero_f;
  const size_t elem = dtype_size(dtype);
  const Dims4 nhwc_out = image_strides(Layout::Nhwc, g.oh, g.ow, g.k);

  if (pass == Pass::Forward) {
    const void* x = image_in(ctx, a, layout, g.extra_top, g.extra_left, g.hp(), g.wp());
    const void* w = filter_in(ctx, b, layout, g);
    const bool direct = layout == Layout::Nhwc;
    void* y = direct ? out.raw_data() : ctx.workspace(static_cast<size_t>(out.numel()) * elem);
    if (!executed(cudnnConvolutionForward(handle.get(), alpha, d.x, x, d.w, w, d.conv,
                                          static_cast<cudnnConvolutionFwdAlgo_t>(ch.algo), ws, ch.workspace, beta,
                                          d.y, y),
                  "cudnnConvolutionForward", __LINE__, why))
      return false;
    if (!direct)
      cu::copy_4d(y, image_strides(layout, g.oh, g.ow, g.k), out.raw_data(), nhwc_out, {g.n, g.oh, g.ow, g.k}, elem,
                  stream);
  } else if (pass == Pass::BackwardData) {
    const void* dy = image_in(ctx, a, layout, 0, 0, g.oh, g.ow);
    const void* w = filter_in(ctx, b, layout, g);
    const bool direct = layout == Layout::Nhwc && !g.padded();
    const int64_t hp = g.hp(), wp = g.wp();
    char* dx = direct ? static_cast<char*>(out.raw_data())
                      : static_cast<char*>(ctx.workspace(static_cast<size_t>(g.n * hp * wp * g.c) * elem));
    if (!executed(cudnnConvolutionBackwardData(handle.get(), alpha, d.w, w, d.y, dy, d.conv,
                                               static_cast<cudnnConvolutionBwdDataAlgo_t>(ch.algo), ws, ch.workspace,
                                               beta, d.x, dx),
                  "cudnnConvolutionBackwardData", __LINE__, why))
      return false;
    if (!direct) {
      // The gradient of the zero border is dropped: crop the image back out of the buffer.
      const Dims4 src = image_strides(layout, hp, wp, g.c);
      cu::copy_4d(dx + static_cast<size_t>(g.extra_top * src[1] + g.extra_left * src[2]) * elem, src, out.raw_data(),
                  image_strides(Layout::Nhwc, g.h, g.w, g.c), {g.n, g.h, g.w, g.c}, elem, stream);
    }
  } else {
    const void* x = image_in(ctx, a, layout, g.extra_top, g.extra_left, g.hp(), g.wp());
    const void* dy = image_in(ctx, b, layout, 0, 0, g.oh, g.ow);
    void* dw = ctx.workspace(static_cast<size_t>(out.numel()) * elem);
    if (!executed(cudnnConvolutionBackwardFilter(handle.get(), alpha, d.x, x, d.y, dy, d.conv,
                                                 static_cast<cudnnConvolutionBwdFilterAlgo_t>(ch.algo), ws,
                                                 ch.workspace, beta, d.w, dw),
                  "cudnnConvolutionBackwardFilter", __LINE__, why))
      return false;
    cu::copy_4d(dw, filter_strides(layout, g), out.raw_data(), {g.kw * g.cg * g.k, g.cg * g.k, g.k, 1},
                {g.kh, g.kw, g.cg, g.k}, elem, stream);
  }
  return true;
}

// Tries NHWC then NCHW (f64: NCHW only) and throws naming what cuDNN said when neither works.
void run_conv(const ExecContext& ctx, Pass pass, const ConvGeom& g, const Tensor& a, const Tensor& b, Tensor& out,
              const char* op) {
  std::vector<Layout> layouts{Layout::Nhwc, Layout::Nchw};
  if (out.dtype() == DType::F64) layouts = {Layout::Nchw};
  std::string why;
  for (Layout layout : layouts) {
    std::string reason;
    if (run_pass(ctx, pass, g, layout, a, b, out, op, reason)) return;
    why += detail::str_cat("\n  ", layout == Layout::Nhwc ? "NHWC" : "NCHW", ": ", reason);
  }
  MF_THROW(op, ": cuDNN has no algorithm for ", dtype_name(out.dtype()), " input ", g.n, "x", g.h, "x", g.w, "x", g.c,
           " (NHWC), kernel ", g.kh, "x", g.kw, "x", g.cg, "x", g.k, " (HWIO), strides [", g.sh, ", ", g.sw,
           "], dilation [", g.dh, ", ", g.dw, "], groups ", g.groups, " on ", ctx.device().str(), ":", why);
}

void zero(const ExecContext& ctx, Tensor& t) {
  MF_CUDA_CHECK(
      cudaMemsetAsync(t.raw_data(), 0, static_cast<size_t>(t.numel()) * dtype_size(t.dtype()), cu::stream_of(ctx)));
}

// Inputs x [N, H, W, C], w [KH, KW, C/groups, K]; attrs strides, pads, dilation, groups.
void conv2d_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& y = out[0];
  if (y.numel() == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  if (in[1].numel() == 0) return zero(ctx, y);  // no input channels: every sum is empty
  run_conv(ctx, Pass::Forward, geom_of(in[0].shape(), in[1].shape(), y.shape(), a), in[0], in[1], y, "conv2d");
}

// Inputs dy [N, OH, OW, K], w; attr input_shape.
void conv2d_grad_input_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                            const Attrs& a) {
  Tensor& dx = out[0];
  if (dx.numel() == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  if (in[0].numel() == 0 || in[1].numel() == 0) return zero(ctx, dx);
  run_conv(ctx, Pass::BackwardData, geom_of(dx.shape(), in[1].shape(), in[0].shape(), a), in[0], in[1], dx,
           "conv2d_grad_input");
}

// Inputs x, dy; attr weight_shape.
void conv2d_grad_weight_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                             const Attrs& a) {
  Tensor& dw = out[0];
  if (dw.numel() == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  if (in[0].numel() == 0 || in[1].numel() == 0) return zero(ctx, dw);
  run_conv(ctx, Pass::BackwardFilter, geom_of(in[0].shape(), dw.shape(), in[1].shape(), a), in[0], in[1], dw,
           "conv2d_grad_weight");
}

MF_STATIC_INIT {
  register_kernel("conv2d", DeviceType::CUDA, conv2d_cuda);
  register_kernel("conv2d_grad_input", DeviceType::CUDA, conv2d_grad_input_cuda);
  register_kernel("conv2d_grad_weight", DeviceType::CUDA, conv2d_grad_weight_cuda);
}

}  // namespace
}  // namespace meshflow
