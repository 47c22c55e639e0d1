// CPU max and average pooling over NHWC, forward and backward: oneDNN for f32, these loops for f64
// (inner loops over the contiguous channels). Padding never contributes: max ignores it, the mean excludes it (TF).
#include <algorithm>
#include <limits>
#include <vector>

#include "internal/window.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/op.h"
#include "meshflow/core/parallel.h"
#include "pool_onednn.h"

namespace meshflow {
namespace {

using internal::Window2d;

Window2d pool_window(const Shape& x, const Shape& y, const Attrs& a) {
  const auto& k = a.ints("pool_size");
  return internal::window2d(x, k[0], k[1], y[1], y[2], a);
}

// The in-bounds window rows [y0, y1) and columns [x0, x1) of output position (oy, ox).
struct Span {
  int64_t y0, y1, x0, x1;
  int64_t count() const { return (y1 - y0) * (x1 - x0); }
};
Span window_span(const Window2d& g, int64_t oy, int64_t ox) {
  const int64_t ty = oy * g.sh - g.pad_top, tx = ox * g.sw - g.pad_left;
  return {std::max<int64_t>(ty, 0), std::min(ty + g.kh, g.h), std::max<int64_t>(tx, 0), std::min(tx + g.kw, g.w)};
}

// NaN wins a comparison, as in torch.maximum.
template <typename T>
inline T max_nan(T a, T b) {
  return (a > b || a != a) ? a : b;
}

// Channels go in blocks held in registers across the window (the output is written once); a
// block's width is fixed so the compiler keeps it unrolled and vectorized.
template <typename T>
void max_pool_forward(const T* x, const Window2d& g, T* y) {
  constexpr int64_t kBlock = 128 / sizeof(T);  // 32 floats: four 256-bit vectors
  parallel_for(0, g.n * g.oh, 1, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const int64_t n = r / g.oh, oy = r % g.oh;
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        T* out = y + (r * g.ow + ox) * g.c;
        const Span sp = window_span(g, oy, ox);
        const T* base = x + (n * g.h * g.w) * g.c;
        int64_t c0 = 0;
        for (; c0 + kBlock <= g.c; c0 += kBlock) {
          T acc[kBlock];
#pragma omp simd
          for (int64_t c = 0; c < kBlock; ++c) acc[c] = -std::numeric_limits<T>::infinity();
          for (int64_t iy = sp.y0; iy < sp.y1; ++iy)
            for (int64_t ix = sp.x0; ix < sp.x1; ++ix) {
              const T* in = base + (iy * g.w + ix) * g.c + c0;
#pragma omp simd
              for (int64_t c = 0; c < kBlock; ++c) acc[c] = max_nan(in[c], acc[c]);
            }
#pragma omp simd
          for (int64_t c = 0; c < kBlock; ++c) out[c0 + c] = acc[c];
        }
        if (c0 == g.c) continue;
        std::fill(out + c0, out + g.c, -std::numeric_limits<T>::infinity());
        for (int64_t iy = sp.y0; iy < sp.y1; ++iy)
          for (int64_t ix = sp.x0; ix < sp.x1; ++ix) {
            const T* in = base + (iy * g.w + ix) * g.c;
#pragma omp simd
            for (int64_t c = c0; c < g.c; ++c) out[c] = max_nan(in[c], out[c]);
          }
      }
    }
  });
}

// Routes each output gradient to the first maximum of its window (row-major scan order), like
// PyTorch and TF; threads split samples because windows of one sample may overlap.
template <typename T>
void max_pool_backward(const T* x, const T* dy, const Window2d& g, T* dx) {
  parallel_for(0, g.n, 1, [&](int64_t nb, int64_t ne) {
    std::vector<T> best(static_cast<size_t>(g.c));
    std::vector<int64_t> where(static_cast<size_t>(g.c));
    for (int64_t n = nb; n < ne; ++n)
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const Span sp = window_span(g, oy, ox);
          if (sp.count() <= 0) continue;
          std::fill(best.begin(), best.end(), -std::numeric_limits<T>::infinity());
          std::fill(where.begin(), where.end(), ((n * g.h + sp.y0) * g.w + sp.x0) * g.c);
          for (int64_t iy = sp.y0; iy < sp.y1; ++iy)
            for (int64_t ix = sp.x0; ix < sp.x1; ++ix) {
              const int64_t base = ((n * g.h + iy) * g.w + ix) * g.c;
#pragma omp simd
              for (int64_t c = 0; c < g.c; ++c) {
                // The first NaN wins, as in torch.
                const bool greater = x[base + c] > best[c] || (x[base + c] != x[base + c] && best[c] == best[c]);
                best[c] = greater ? x[base + c] : best[c];
                where[c] = greater ? base : where[c];
              }
            }
          const T* grad = dy + ((n * g.oh + oy) * g.ow + ox) * g.c;
          for (int64_t c = 0; c < g.c; ++c) dx[where[c] + c] += grad[c];
        }
  });
}

template <typename T>
void avg_pool_forward(const T* x, const Window2d& g, T* y) {
  parallel_for(0, g.n * g.oh, 1, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const int64_t n = r / g.oh, oy = r % g.oh;
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        T* out = y + (r * g.ow + ox) * g.c;
        std::fill(out, out + g.c, T(0));
        const Span sp = window_span(g, oy, ox);
        for (int64_t iy = sp.y0; iy < sp.y1; ++iy)
          for (int64_t ix = sp.x0; ix < sp.x1; ++ix) {
            const T* in = x + ((n * g.h + iy) * g.w + ix) * g.c;
#pragma omp simd
            for (int64_t c = 0; c < g.c; ++c) out[c] += in[c];
          }
        const T scale = sp.count() > 0 ? T(1) / static_cast<T>(sp.count()) : T(0);
#pragma omp simd
        for (int64_t c = 0; c < g.c; ++c) out[c] *= scale;
      }
    }
  });
}

template <typename T>
void avg_pool_backward(const T* dy, const Window2d& g, T* dx) {
  parallel_for(0, g.n, 1, [&](int64_t nb, int64_t ne) {
    for (int64_t n = nb; n < ne; ++n)
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const Span sp = window_span(g, oy, ox);
          if (sp.count() <= 0) continue;
          const T scale = T(1) / static_cast<T>(sp.count());
          const T* grad = dy + ((n * g.oh + oy) * g.ow + ox) * g.c;
          for (int64_t iy = sp.y0; iy < sp.y1; ++iy)
            for (int64_t ix = sp.x0; ix < sp.x1; ++ix) {
              T* d = dx + ((n * g.h + iy) * g.w + ix) * g.c;
#pragma omp simd
              for (int64_t c = 0; c < g.c; ++c) d[c] += grad[c] * scale;
            }
        }
  });
}

// f32 goes to oneDNN (measured faster, docs/decisions.md); f64 and the fallback run the loops here.
bool pool_onednn(const std::string& op, const std::vector<Tensor>& in, Tensor& out, const Attrs& a) {
  if (op == "avg_pool2d") return pool2d_forward_onednn(false, in[0], out, a);  // max's forward: our loops
  if (op == "max_pool2d_grad") return pool2d_grad_onednn(true, in[0], in[1], out, a);
  return pool2d_grad_onednn(false, Tensor(), in[0], out, a);
}

void pool_cpu(const char* name, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  NoGradGuard no_grad;  // private contiguous copies, not part of the graph
  const std::string op = name;
  // oneDNN's max pooling drops NaN (it keeps the larger of a comparison), and a window holding a
  // NaN must give NaN (torch), so max pooling's forward always runs the loops here. Scanning the
  // input for NaN first and using oneDNN otherwise measured slower than these loops alone
  // (bench_pool cnn_pool1: scan + oneDNN 0.50 ms, the loops 0.11 ms, oneDNN alone 0.06 ms).
  if (out[0].dtype() == DType::F32 && op != "max_pool2d" && pool_onednn(op, in, out[0], a)) return;
  dispatch_float(out[0].dtype(), name, [&]<typename T>() {
    T* o = out[0].data<T>();
    if (op == "max_pool2d" || op == "avg_pool2d") {
      const Tensor x = in[0].contiguous();
      const Window2d g = pool_window(x.shape(), out[0].shape(), a);
      if (op == "max_pool2d") max_pool_forward(x.data<T>(), g, o);
      else avg_pool_forward(x.data<T>(), g, o);
      return;
    }
    std::fill(o, o + out[0].numel(), T(0));
    if (op == "max_pool2d_grad") {
      const Tensor x = in[0].contiguous(), dy = in[1].contiguous();
      max_pool_backward(x.data<T>(), dy.data<T>(), pool_window(x.shape(), dy.shape(), a), o);
    } else {
      const Tensor dy = in[0].contiguous();
      avg_pool_backward(dy.data<T>(), pool_window(out[0].shape(), dy.shape(), a), o);
    }
  });
}

MF_STATIC_INIT {
  register_kernel("max_pool2d", DeviceType::CPU, [](const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                                                   const Attrs& a) { pool_cpu("max_pool2d", in, out, a); });
  register_kernel("avg_pool2d", DeviceType::CPU, [](const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                                                   const Attrs& a) { pool_cpu("avg_pool2d", in, out, a); });
  register_kernel("max_pool2d_grad", DeviceType::CPU, [](const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                                                        const Attrs& a) { pool_cpu("max_pool2d_grad", in, out, a); });
  register_kernel("avg_pool2d_grad", DeviceType::CPU, [](const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                                                        const Attrs& a) { pool_cpu("avg_pool2d_grad", in, out, a); });
}

}  // namespace
}  // namespace meshflow
