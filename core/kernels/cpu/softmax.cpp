// CPU kernels for softmax and log_softmax: rows along the last axis, vectorized and threaded
// over rows; any other axis is moved last (one copy in, one copy out).
// Floating compares may not trap here, so GCC can turn vmath::exp's clamps into vector min/max
// instead of branches (with trapping math on, the exp loop stays scalar: 8x slower).
// It comes before the includes: inline helpers (std::fabs) must share the option to inline.
#pragma GCC optimize("no-trapping-math")
#include <algorithm>
#include <cmath>
#include <limits>

#include "internal/elementwise.h"
#include "internal/vmath.h"
#include "meshflow/core/autograd.h"

namespace meshflow {
namespace {

// Note [Stable softmax]: subtracting the row's max keeps exp() in (0, 1], so inputs like 1000
// or -1000 neither overflow nor underflow to 0 / 0. Sums use double so long rows (10^4 to
// 10^5 classes) keep full float accuracy.
template <typename T, bool kLog>
void softmax_rows(const T* src, T* dst, int64_t rows, int64_t n) {
  using C = internal::compute_t<T>;
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    std::vector<C> buf(static_cast<size_t>(n));
    C* w = buf.data();
    for (int64_t r = b; r < e; ++r) {
      const T* x = src + r * n;
      T* y = dst + r * n;
      C m = -std::numeric_limits<C>::infinity();
      int64_t nans = 0;
#pragma omp simd reduction(max : m) reduction(+ : nans)
      for (int64_t i = 0; i < n; ++i) {
        m = C(x[i]) > m ? C(x[i]) : m;
        nans += C(x[i]) != C(x[i]);
      }
      if (nans > 0) {  // NaN anywhere in the row makes the whole row NaN, as in PyTorch.
        std::fill(y, y + n, T(std::numeric_limits<C>::quiet_NaN()));
        continue;
      }
      // A row of all -inf (fully masked) has no finite max; shifting by 0 gives 0 / 0 = NaN.
      if (!std::isfinite(m)) m = C(0);
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < n; ++i) {
        w[i] = vmath::exp(C(x[i]) - m);
        s += double(w[i]);
      }
      if constexpr (kLog) {
        const C shift = m + C(std::log(s));
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) y[i] = T(C(x[i]) - shift);
      } else {
        const C inv = C(1.0 / s);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) y[i] = T(w[i] * inv);
      }
    }
  });
}

template <bool kLog>
void softmax_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const Tensor& x = in[0];
  if (x.numel() == 0) return;
  const int64_t rank = x.dim();
  const int64_t axis = normalize_axis(attrs.i("axis"), rank, kLog ? "log_softmax" : "softmax");
  const int64_t n = x.shape()[axis];
  const bool rows_ready = axis == rank - 1 && x.is_contiguous();
  Tensor src = x, dst = out[0];
  std::vector<int64_t> perm;
  if (!rows_ready) {
    NoGradGuard no_grad;
    for (int64_t i = 0; i < rank; ++i)
      if (i != axis) perm.push_back(i);
    perm.push_back(axis);
    src = x.permute(perm).contiguous();
    dst = empty(src.shape(), {.dtype = x.dtype(), .device = x.device()});
  }
  dispatch_dtype(x.dtype(), "softmax", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      softmax_rows<T, kLog>(static_cast<const T*>(src.raw_data()), static_cast<T*>(dst.raw_data()), x.numel() / n, n);
    } else {
      MF_THROW("softmax: needs a floating tensor, got ", dtype_name(x.dtype()));
    }
  });
  if (!rows_ready) {
    // dst is x's layout with the axis last; its inverse permutation writes it back in place.
    std::vector<int64_t> inverse(static_cast<size_t>(rank));
    for (int64_t i = 0; i < rank; ++i) inverse[perm[i]] = i;
    NoGradGuard no_grad;
    out[0].copy_(dst.permute(inverse));
  }
}

MF_STATIC_INIT {
  register_kernel("softmax", DeviceType::CPU, softmax_kernel<false>);
  register_kernel("log_softmax", DeviceType::CPU, softmax_kernel<true>);
}

}  // namespace
}  // namespace meshflow
