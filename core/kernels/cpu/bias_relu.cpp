// CPU kernels of bias_relu (relu(x + bias) along the last axis) and bias_relu_backward (the
// gradient where the output is positive, and the bias's gradient summed in the same sweep).
#pragma GCC optimize("no-trapping-math")
#include <algorithm>
#include <vector>

#include "meshflow/core/dtype.h"
#include "meshflow/core/op.h"
#include "meshflow/core/parallel.h"

namespace meshflow {
namespace {

// Rows per parallel chunk: at least 32K elements, so small layers stay on one thread.
int64_t row_grain(int64_t c) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(c, 1)); }

template <typename T>
void forward(const Tensor& x_in, const Tensor& b_in, Tensor& y) {
  const Tensor x = x_in.contiguous(), b = b_in.contiguous();
  const int64_t c = b.numel(), rows = c ? x.numel() / c : 0;
  const T* px = x.data<T>();
  const T* pb = b.data<T>();
  T* py = y.data<T>();
  parallel_for(0, rows, row_grain(c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = px + r * c;
      T* yr = py + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) {
        const T z = xr[j] + pb[j];
        yr[j] = (z > T(0) || z != z) ? z : T(0);  // NaN passes, as in PyTorch
      }
    }
  });
}

// dx = g where y > 0, else 0; with db, each chunk of rows sums its dx per column in double and the
// chunks are added in order, so the result does not depend on which thread ran which chunk.
template <typename T>
void backward(const Tensor& g_in, const Tensor& y_in, Tensor& dx, Tensor* db) {
  const Tensor g = g_in.contiguous(), y = y_in.contiguous();
  const int64_t c = y.size(-1), rows = c ? y.numel() / c : 0;
  const T* pg = g.data<T>();
  const T* py = y.data<T>();
  T* pd = dx.data<T>();
  auto mask_rows = [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* gr = pg + r * c;
      const T* yr = py + r * c;
      T* dr = pd + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) dr[j] = yr[j] > T(0) ? gr[j] : T(0);
      if (acc) {
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) acc[j] += static_cast<double>(dr[j]);
      }
    }
  };
  if (!db) {
    parallel_for(0, rows, row_grain(c), [&](int64_t r0, int64_t r1) { mask_rows(r0, r1, nullptr); });
    return;
  }
  const int64_t grain = row_grain(c);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(num_threads(), (rows + grain - 1) / grain));
  const int64_t per = (rows + chunks - 1) / chunks;
  std::vector<double> partial(static_cast<size_t>(chunks * c), 0.0);
  parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      mask_rows(std::min(rows, k * per), std::min(rows, (k + 1) * per), partial.data() + k * c);
  });
  T* pb = db->data<T>();
  for (int64_t j = 0; j < c; ++j) {
    double s = 0;
    for (int64_t k = 0; k < chunks; ++k) s += partial[static_cast<size_t>(k * c + j)];
    pb[j] = static_cast<T>(s);
  }
}

void bias_relu_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  dispatch_float(in[0].dtype(), "bias_relu", [&]<typename T>() { forward<T>(in[0], in[1], out[0]); });
}

void bias_relu_backward_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                               const Attrs&) {
  dispatch_float(in[0].dtype(), "bias_relu_backward", [&]<typename T>() {
    backward<T>(in[0], in[1], out[0], out.size() > 1 ? &out[1] : nullptr);
  });
}

MF_STATIC_INIT {
  register_kernel("bias_relu", DeviceType::CPU, bias_relu_kernel);
  register_kernel("bias_relu_backward", DeviceType::CPU, bias_relu_backward_kernel);
}

}  // namespace
}  // namespace meshflow
