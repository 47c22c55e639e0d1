// CPU kernels for max, min, argmax, argmin (rows or columns of the reduce layout) and equal_mask.
#include <cmath>
#include <limits>

#include "internal/elementwise.h"
#include "internal/reduce.h"

namespace meshflow {
namespace {

// NaN wins, as in PyTorch and NumPy: an extreme over data holding NaN is NaN.
template <typename C>
bool is_nan(C v) {
  if constexpr (std::is_floating_point_v<C>) return std::isnan(v);
  else return false;
}
struct Greater { template <typename C> bool operator()(C a, C b) const { return a > b || (is_nan(a) && !is_nan(b)); } };
struct Less { template <typename C> bool operator()(C a, C b) const { return a < b || (is_nan(a) && !is_nan(b)); } };

// Calls visit(out_index, best_value, best_position) for each reduced group; "better" is strict, so
// the first position wins a tie (argmax/argmin's documented rule).
template <typename T, typename Better, typename Visit>
void extreme_groups(const internal::ReduceLayout& l, Visit visit) {
  using C = internal::compute_t<T>;
  const T* src = static_cast<const T*>(l.data.raw_data());
  const Better better;
  if (!l.columns) {
    parallel_for(0, l.outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(l.inner, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* row = src + r * l.inner;
        C best = C(row[0]);
        int64_t pos = 0;
        for (int64_t i = 1; i < l.inner; ++i) {
          C v = C(row[i]);
          if (better(v, best)) {
            best = v;
            pos = i;
          }
        }
        visit(r, best, pos);
      }
    });
  } else {
    // [inner, outer]: each thread owns a block of columns and walks down the rows.
    parallel_for(0, l.outer, 4096, [&](int64_t b, int64_t e) {
      std::vector<C> best(static_cast<size_t>(e - b));
      std::vector<int64_t> pos(static_cast<size_t>(e - b), 0);
      for (int64_t j = b; j < e; ++j) best[j - b] = C(src[j]);
      for (int64_t r = 1; r < l.inner; ++r) {
        const T* row = src + r * l.outer;
        for (int64_t j = b; j < e; ++j) {
          C v = C(row[j]);
          if (better(v, C(best[j - b]))) {
            best[j - b] = v;
            pos[j - b] = r;
          }
        }
      }
      for (int64_t j = b; j < e; ++j) visit(j, best[j - b], pos[j - b]);
    });
  }
}

// Rows of floats, values only: a vector max/min reduction plus a NaN count (NaN wins).
template <typename T, bool kMax>
void extreme_float_rows(const internal::ReduceLayout& l, T* dst) {
  using C = internal::compute_t<T>;
  const T* src = static_cast<const T*>(l.data.raw_data());
  parallel_for(0, l.outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(l.inner, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* row = src + r * l.inner;
      C best = C(row[0]);
      int64_t nans = 0;
      if constexpr (kMax) {
#pragma omp simd reduction(max : best) reduction(+ : nans)
        for (int64_t i = 0; i < l.inner; ++i) {
          const C v = C(row[i]);
          best = v > best ? v : best;
          nans += v != v;
        }
      } else {
#pragma omp simd reduction(min : best) reduction(+ : nans)
        for (int64_t i = 0; i < l.inner; ++i) {
          const C v = C(row[i]);
          best = v < best ? v : best;
          nans += v != v;
        }
      }
      dst[r] = nans > 0 ? T(std::numeric_limits<C>::quiet_NaN()) : T(best);
    }
  });
}

template <typename Better>
void extreme_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const Tensor& x = in[0];
  if (out[0].numel() == 0) return;
  auto axes = internal::reduce_axes(attrs.ints("axes"), x.dim(), "max/min");
  internal::ReduceLayout l = internal::reduce_layout(x, axes);
  dispatch_dtype(x.dtype(), "max/min", [&]<typename T>() {
    T* dst = static_cast<T*>(out[0].raw_data());
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      if (!l.columns) return extreme_float_rows<T, std::is_same_v<Better, Greater>>(l, dst);
    }
    extreme_groups<T, Better>(l, [&](int64_t i, auto best, int64_t) { dst[i] = T(best); });
  });
}

template <typename Better>
void arg_extreme_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const Tensor& x = in[0];
  if (out[0].numel() == 0) return;
  std::vector<int64_t> axes{normalize_axis(attrs.i("axis"), x.dim(), "argmax/argmin")};
  internal::ReduceLayout l = internal::reduce_layout(x, axes);
  int64_t* dst = out[0].data<int64_t>();
  dispatch_dtype(x.dtype(), "argmax/argmin", [&]<typename T>() {
    extreme_groups<T, Better>(l, [&](int64_t i, auto, int64_t pos) { dst[i] = pos; });
  });
}

struct EqualOne {
  template <typename C> C operator()(C a, C b) const { return a == b ? C(1) : C(0); }
};

MF_STATIC_INIT {
  register_kernel("max", DeviceType::CPU, extreme_kernel<Greater>);
  register_kernel("min", DeviceType::CPU, extreme_kernel<Less>);
  register_kernel("argmax", DeviceType::CPU, arg_extreme_kernel<Greater>);
  register_kernel("argmin", DeviceType::CPU, arg_extreme_kernel<Less>);
  register_kernel("equal_mask", DeviceType::CPU, internal::binary_kernel<EqualOne>);
}

}  // namespace
}  // namespace meshflow
