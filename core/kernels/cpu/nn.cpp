// CPU kernels for dropout (a counter-based Philox mask) and one_hot.
#include <cstring>

#include "internal/copy.h"
#include "internal/elementwise.h"
#include "meshflow/core/op.h"
#include "meshflow/core/parallel.h"
#include "meshflow/core/random.h"

namespace meshflow {
namespace {

// See Note [Dropout mask from attrs] in core/src/ops/nn.cpp: element i's fate depends only on
// (seed, counter + i / 4, i % 4), so any thread split gives the same mask.
void dropout_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& y = out[0];
  const int64_t n = y.numel();
  if (n == 0) return;
  Tensor x = in[0];
  if (!x.is_contiguous()) {
    x = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
    internal::copy_cast_cpu(x, in[0]);
  }
  const double rate = a.f("rate");
  const uint64_t seed = static_cast<uint64_t>(a.i("seed"));
  const uint64_t counter = static_cast<uint64_t>(a.i("counter"));
  // Dropped when the 32-bit word is below rate * 2^32 (exact to 2^-32; rate < 1 keeps it < 2^32).
  const uint64_t threshold = static_cast<uint64_t>(rate * 4294967296.0);
  dispatch_dtype(y.dtype(), "dropout", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool> || std::is_integral_v<T>) {
      MF_THROW("dropout: expects a floating tensor, got ", dtype_name(y.dtype()));
    } else {
      using C = internal::compute_t<T>;
      const C scale = C(1.0 / (1.0 - rate));
      const T* src = x.data<T>();
      T* dst = y.data<T>();
      if (a.has("global_shape")) {
        // A part of a split tensor (the partitioner's attrs): element i of the part is element g of
        // the whole, and takes word g % 4 of philox(seed, counter + g / 4), as one device would.
        const std::vector<int64_t> whole = a.ints("global_shape"), start = a.ints("shard_start");
        const Shape& part = y.shape();
        const size_t rank = part.size();
        MF_CHECK(whole.size() == rank && start.size() == rank, "dropout: global_shape ", shape_str(whole),
                 " and shard_start do not match the part ", shape_str(part));
        std::vector<int64_t> stride(rank, 1);
        for (size_t d = rank; d-- > 1;) stride[d - 1] = stride[d] * whole[d];
        parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
          std::vector<int64_t> at(rank, 0);
          for (int64_t i = b, d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
            at[static_cast<size_t>(d)] = i % part[static_cast<size_t>(d)];
            i /= part[static_cast<size_t>(d)];
          }
          for (int64_t i = b; i < e; ++i) {
            int64_t g = 0;
            for (size_t d = 0; d < rank; ++d) g += (start[d] + at[d]) * stride[d];
            uint32_t r[4];
            philox4x32(seed, counter + static_cast<uint64_t>(g / 4), r);
            dst[i] = r[g % 4] >= threshold ? T(C(src[i]) * scale) : T(C(0));
            for (size_t d = rank; d-- > 0;) {  // the next element's coordinates
              if (++at[d] < part[d]) break;
              at[d] = 0;
            }
          }
        });
        return;
      }
      const int64_t groups = (n + 3) / 4;
      parallel_for(0, groups, 4096, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          uint32_t r[4];
          philox4x32(seed, counter + static_cast<uint64_t>(j), r);
          const int64_t base = 4 * j, count = std::min<int64_t>(4, n - base);
          for (int64_t k = 0; k < count; ++k)
            dst[base + k] = r[k] >= threshold ? T(C(src[base + k]) * scale) : T(C(0));
        }
      });
    }
  });
}

// Ids outside [0, depth) give an all-zero row, as in tf.one_hot (-1 is the usual "no class").
void one_hot_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& y = out[0];
  if (y.numel() == 0) return;
  const int64_t depth = a.i("depth");
  Tensor ids = in[0];
  if (!ids.is_contiguous()) {
    ids = empty(ids.shape(), {.dtype = ids.dtype(), .device = ids.device()});
    internal::copy_cast_cpu(ids, in[0]);
  }
  std::memset(y.raw_data(), 0, static_cast<size_t>(y.numel()) * dtype_size(y.dtype()));
  const size_t elem = dtype_size(y.dtype());
  char* dst = static_cast<char*>(y.raw_data());
  std::vector<char> one(elem);
  internal::store_from_double(one.data(), y.dtype(), 1.0);
  dispatch_dtype(ids.dtype(), "one_hot", [&]<typename I>() {
    if constexpr (std::is_same_v<I, int32_t> || std::is_same_v<I, int64_t>) {
      const I* p = ids.data<I>();
      parallel_for(0, ids.numel(), 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t c = static_cast<int64_t>(p[i]);
          if (c >= 0 && c < depth) std::memcpy(dst + (i * depth + c) * static_cast<int64_t>(elem), one.data(), elem);
        }
      });
    } else {
      MF_THROW("one_hot: ids must be i32 or i64, got ", dtype_name(ids.dtype()));
    }
  });
}

MF_STATIC_INIT {
  register_kernel("dropout", DeviceType::CPU, dropout_kernel);
  register_kernel("one_hot", DeviceType::CPU, one_hot_kernel);
}

}  // namespace
}  // namespace meshflow
