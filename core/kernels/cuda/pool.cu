// CUDA max and average pooling over NHWC, forward and backward, with the CPU kernels' rules:
// padding never contributes (max ignores it, the mean divides by the in-image count, as TF),
// and a max window's gradient goes to its first maximum in row-major order. The backward
// kernels gather (one thread per input element, windows visited in output order) rather than
// scatter, so they need no atomics and give the same result every run.
#include <limits>

#include "cuda_util.h"
#include "device_types.cuh"
#include "internal/window.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

using cu::acc_t;
using cu::convert;
using cu::load;
using internal::Window2d;

Window2d pool_window(const Shape& x, const Shape& y, const Attrs& a) {
  const auto& k = a.ints("pool_size");
  return internal::window2d(x, k[0], k[1], y[1], y[2], a);
}

Tensor dense(const Tensor& t) {
  NoGradGuard no_grad;
  return t.detach().contiguous();
}

// The in-image rows [y0, y1) and columns [x0, x1) of output position (oy, ox).
struct Span {
  int64_t y0, y1, x0, x1;
};

__device__ __forceinline__ Span window_span(const Window2d& g, int64_t oy, int64_t ox) {
  const int64_t ty = oy * g.sh - g.pad_top, tx = ox * g.sw - g.pad_left;
  return {max(ty, int64_t(0)), min(ty + g.kh, g.h), max(tx, int64_t(0)), min(tx + g.kw, g.w)};
}

// The output rows (or columns) whose windows contain input row iy: [lo, hi], possibly empty.
__device__ __forceinline__ void covering(int64_t iy, int64_t pad, int64_t k, int64_t s, int64_t out, int64_t& lo,
                                         int64_t& hi) {
  const int64_t first = iy + pad - k;  // window oy covers iy when oy * s > first and oy * s <= iy + pad
  lo = first < 0 ? 0 : first / s + 1;
  hi = min(out - 1, (iy + pad) / s);
}

// Output element e of [n, oh, ow, c] -> its coordinates.
__device__ __forceinline__ void split_out(const Window2d& g, int64_t e, int64_t& n, int64_t& oy, int64_t& ox,
                                          int64_t& c) {
  c = e % g.c;
  int64_t t = e / g.c;
  ox = t % g.ow;
  t /= g.ow;
  oy = t % g.oh;
  n = t / g.oh;
}

template <typename D>
__global__ void max_pool_fwd(const D* __restrict__ x, Window2d g, D* __restrict__ y, int64_t total) {
  using C = acc_t<D>;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, oy, ox, c;
    split_out(g, e, n, oy, ox, c);
    const Span sp = window_span(g, oy, ox);
    C best = -std::numeric_limits<C>::infinity();
    for (int64_t iy = sp.y0; iy < sp.y1; ++iy)
      for (int64_t ix = sp.x0; ix < sp.x1; ++ix) {
        const C v = load(x, ((n * g.h + iy) * g.w + ix) * g.c + c);
        best = (v > best || v != v) ? v : best;  // NaN wins (and stays), as on the CPU and in torch
      }
    y[e] = convert<D>(best);
  }
}

template <typename D>
__global__ void avg_pool_fwd(const D* __restrict__ x, Window2d g, D* __restrict__ y, int64_t total) {
  using C = acc_t<D>;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, oy, ox, c;
    split_out(g, e, n, oy, ox, c);
    const Span sp = window_span(g, oy, ox);
    C sum = 0;
    for (int64_t iy = sp.y0; iy < sp.y1; ++iy)
      for (int64_t ix = sp.x0; ix < sp.x1; ++ix) sum += load(x, ((n * g.h + iy) * g.w + ix) * g.c + c);
    const int64_t count = (sp.y1 - sp.y0) * (sp.x1 - sp.x0);
    const C scale = (sp.y1 > sp.y0 && sp.x1 > sp.x0) ? C(1) / C(count) : C(0);
    y[e] = convert<D>(sum * scale);
  }
}

// Pass 1 of the max backward: the in-image position (iy * w + ix) of each window's first
// maximum (its first position when nothing beats -inf), -1 for a window with no pixels.
template <typename D>
__global__ void max_pool_argmax(const D* __restrict__ x, Window2d g, int64_t* __restrict__ where, int64_t total) {
  using C = acc_t<D>;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, oy, ox, c;
    split_out(g, e, n, oy, ox, c);
    const Span sp = window_span(g, oy, ox);
    if (sp.y1 <= sp.y0 || sp.x1 <= sp.x0) {
      where[e] = -1;
      continue;
    }
    C best = -std::numeric_limits<C>::infinity();
    int64_t at = sp.y0 * g.w + sp.x0;
    for (int64_t iy = sp.y0; iy < sp.y1; ++iy)
      for (int64_t ix = sp.x0; ix < sp.x1; ++ix) {
        const C v = load(x, ((n * g.h + iy) * g.w + ix) * g.c + c);
        if (v > best || (v != v && best == best)) {  // the first NaN wins
          best = v;
          at = iy * g.w + ix;
        }
      }
    where[e] = at;
  }
}

// Pass 2: dx at an input position sums dy over the windows that cover it and chose it.
template <typename D>
__global__ void max_pool_bwd(const D* __restrict__ dy, const int64_t* __restrict__ where, Window2d g,
                             D* __restrict__ dx, int64_t total) {
  using C = acc_t<D>;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % g.c, ix = (e / g.c) % g.w, iy = (e / (g.c * g.w)) % g.h, n = e / (g.c * g.w * g.h);
    int64_t oy0, oy1, ox0, ox1;
    covering(iy, g.pad_top, g.kh, g.sh, g.oh, oy0, oy1);
    covering(ix, g.pad_left, g.kw, g.sw, g.ow, ox0, ox1);
    const int64_t here = iy * g.w + ix;
    C sum = 0;
    for (int64_t oy = oy0; oy <= oy1; ++oy)
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        const int64_t o = ((n * g.oh + oy) * g.ow + ox) * g.c + c;
        if (where[o] == here) sum += load(dy, o);
      }
    dx[e] = convert<D>(sum);
  }
}

// dx at an input position: sum of dy / (in-image count) over the windows covering it.
template <typename D>
__global__ void avg_pool_bwd(const D* __restrict__ dy, Window2d g, D* __restrict__ dx, int64_t total) {
  using C = acc_t<D>;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % g.c, ix = (e / g.c) % g.w, iy = (e / (g.c * g.w)) % g.h, n = e / (g.c * g.w * g.h);
    int64_t oy0, oy1, ox0, ox1;
    covering(iy, g.pad_top, g.kh, g.sh, g.oh, oy0, oy1);
    covering(ix, g.pad_left, g.kw, g.sw, g.ow, ox0, ox1);
    C sum = 0;
    for (int64_t oy = oy0; oy <= oy1; ++oy)
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        const Span sp = window_span(g, oy, ox);
        const C scale = C(1) / C((sp.y1 - sp.y0) * (sp.x1 - sp.x0));  // >= 1 pixel: it holds (iy, ix)
        sum += load(dy, ((n * g.oh + oy) * g.ow + ox) * g.c + c) * scale;
      }
    dx[e] = convert<D>(sum);
  }
}

template <typename D>
const D* cptr(const Tensor& t) {
  return static_cast<const D*>(t.raw_data());
}
template <typename D>
D* mptr(const Tensor& t) {
  return static_cast<D*>(t.raw_data());
}

void pool_forward(const char* name, bool is_max, const ExecContext& ctx, const std::vector<Tensor>& in,
                  std::vector<Tensor>& out, const Attrs& a) {
  const int64_t total = out[0].numel();
  if (total == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  const Tensor x = dense(in[0]);
  const Window2d g = pool_window(x.shape(), out[0].shape(), a);
  cu::dispatch_floating(x.dtype(), name, [&]<typename D>() {
    if (is_max)
      max_pool_fwd<D><<<cu::grid_for(total), 256, 0, cu::stream_of(ctx)>>>(cptr<D>(x), g, mptr<D>(out[0]), total);
    else
      avg_pool_fwd<D><<<cu::grid_for(total), 256, 0, cu::stream_of(ctx)>>>(cptr<D>(x), g, mptr<D>(out[0]), total);
    MF_CUDA_CHECK_LAUNCH();
  });
}

// Inputs x, dy; attrs as the forward plus input_shape.
void max_pool_grad_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                        const Attrs& a) {
  const int64_t total = out[0].numel();
  if (total == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  cudaStream_t stream = cu::stream_of(ctx);
  const Tensor x = dense(in[0]), dy = dense(in[1]);
  const Window2d g = pool_window(x.shape(), dy.shape(), a);
  const int64_t windows = dy.numel();
  cu::dispatch_floating(x.dtype(), "max_pool2d_grad", [&]<typename D>() {
    if (windows == 0) {
      MF_CUDA_CHECK(cudaMemsetAsync(out[0].raw_data(), 0, static_cast<size_t>(total) * sizeof(D), stream));
      return;
    }
    auto* where = static_cast<int64_t*>(ctx.workspace(static_cast<size_t>(windows) * sizeof(int64_t)));
    max_pool_argmax<D><<<cu::grid_for(windows), 256, 0, stream>>>(cptr<D>(x), g, where, windows);
    MF_CUDA_CHECK_LAUNCH();
    max_pool_bwd<D><<<cu::grid_for(total), 256, 0, stream>>>(cptr<D>(dy), where, g, mptr<D>(out[0]), total);
    MF_CUDA_CHECK_LAUNCH();
  });
}

// Input dy; attrs as the forward plus input_shape (the output's shape).
void avg_pool_grad_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                        const Attrs& a) {
  const int64_t total = out[0].numel();
  if (total == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  const Tensor dy = dense(in[0]);
  const Window2d g = pool_window(out[0].shape(), dy.shape(), a);
  cu::dispatch_floating(dy.dtype(), "avg_pool2d_grad", [&]<typename D>() {
    // With no windows (an empty dy) every input position is covered by none and gets 0.
    avg_pool_bwd<D><<<cu::grid_for(total), 256, 0, cu::stream_of(ctx)>>>(cptr<D>(dy), g, mptr<D>(out[0]), total);
    MF_CUDA_CHECK_LAUNCH();
  });
}

MF_STATIC_INIT {
  register_kernel("max_pool2d", DeviceType::CUDA,
                  [](const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
                    pool_forward("max_pool2d", true, ctx, in, out, a);
                  });
  register_kernel("avg_pool2d", DeviceType::CUDA,
                  [](const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
                    pool_forward("avg_pool2d", false, ctx, in, out, a);
                  });
  register_kernel("max_pool2d_grad", DeviceType::CUDA, max_pool_grad_cuda);
  register_kernel("avg_pool2d_grad", DeviceType::CUDA, avg_pool_grad_cuda);
}

}  // namespace
}  // namespace meshflow
