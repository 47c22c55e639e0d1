// CPU kernel for sum: rows reduced with a wide accumulator, or columns accumulated in place.
#include <algorithm>
#include <cstring>

#include "internal/elementwise.h"
#include "internal/reduce.h"

namespace meshflow {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_floating_point_v<internal::compute_t<T>>, double, int64_t>;

constexpr int64_t kSplitChunk = 1 << 16;

void sum_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const Tensor& x = in[0];
  auto axes = internal::reduce_axes(attrs.ints("axes"), x.dim(), "sum");
  internal::ReduceLayout l = internal::reduce_layout(x, axes);
  dispatch_dtype(x.dtype(), "sum", [&]<typename T>() {
    using A = acc_t<T>;
    using C = internal::compute_t<T>;
    const T* src = static_cast<const T*>(l.data.raw_data());
    T* dst = static_cast<T*>(out[0].raw_data());
    if (!l.columns && l.outer < num_threads() && l.inner >= 2 * kSplitChunk) {
      // Few long rows (a full reduction): split each row into fixed chunks so every thread
      // works; chunk sizes do not depend on the thread count, so the result is reproducible.
      const int64_t chunks = (l.inner + kSplitChunk - 1) / kSplitChunk;
      std::vector<A> partial(static_cast<size_t>(l.outer * chunks));
      parallel_for(0, l.outer * chunks, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t r = t / chunks, lo = (t % chunks) * kSplitChunk, hi = std::min(l.inner, lo + kSplitChunk);
          const T* row = src + r * l.inner;
          A acc = 0;
#pragma omp simd reduction(+ : acc)
          for (int64_t i = lo; i < hi; ++i) acc += static_cast<A>(static_cast<C>(row[i]));
          partial[t] = acc;
        }
      });
      for (int64_t r = 0; r < l.outer; ++r) {
        A acc = 0;
        for (int64_t c = 0; c < chunks; ++c) acc += partial[r * chunks + c];
        dst[r] = static_cast<T>(static_cast<C>(acc));
      }
    } else if (!l.columns) {
      parallel_for(0, l.outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(l.inner, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* row = src + r * l.inner;
          A acc = 0;
#pragma omp simd reduction(+ : acc)
          for (int64_t i = 0; i < l.inner; ++i) acc += static_cast<A>(static_cast<C>(row[i]));
          dst[r] = static_cast<T>(static_cast<C>(acc));
        }
      });
    } else {
      // [inner, outer]: each thread owns a block of columns and walks down the rows.
      parallel_for(0, l.outer, 4096, [&](int64_t b, int64_t e) {
        std::vector<A> acc(static_cast<size_t>(e - b), A(0));
        for (int64_t r = 0; r < l.inner; ++r) {
          const T* row = src + r * l.outer + b;
          A* a = acc.data();
#pragma omp simd
          for (int64_t j = 0; j < e - b; ++j) a[j] += static_cast<A>(static_cast<C>(row[j]));
        }
        for (int64_t j = b; j < e; ++j) dst[j] = static_cast<T>(static_cast<C>(acc[j - b]));
      });
    }
  });
}

// mean: the sum, scaled in place by 1/n (n = the number of elements reduced; 0/0 gives NaN).
void mean_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  sum_kernel(ctx, in, out, attrs);
  const Tensor& x = in[0];
  double n = 1;
  for (int64_t a : internal::reduce_axes(attrs.ints("axes"), x.dim(), "mean")) n *= static_cast<double>(x.shape()[a]);
  dispatch_dtype(out[0].dtype(), "mean", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      using C = internal::compute_t<T>;
      T* o = static_cast<T*>(out[0].raw_data());
      const C scale = static_cast<C>(1.0 / n);
      for (int64_t i = 0; i < out[0].numel(); ++i) o[i] = static_cast<T>(static_cast<C>(o[i]) * scale);
    } else {
      MF_THROW("mean: expected a floating tensor, got ", dtype_name(out[0].dtype()));
    }
  });
}

MF_STATIC_INIT {
  register_kernel("sum", DeviceType::CPU, sum_kernel);
  register_kernel("mean", DeviceType::CPU, mean_kernel);
}

}  // namespace
}  // namespace meshflow
