// CPU kernels for gather, embedding (row copies) and gather_backward (a race-free scatter-add).
#include <cstring>

#include "internal/copy.h"
#include "internal/elementwise.h"
#include "meshflow/core/op.h"
#include "meshflow/core/parallel.h"

namespace meshflow {
namespace {

Tensor contiguous_host(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor c = empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  internal::copy_cast_cpu(c, t);
  return c;
}

std::string position_str(int64_t flat, const Shape& shape) {
  Shape pos(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    pos[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(pos);
}

// The indices as i64, checked serially (so the error is thrown outside any parallel region).
// `embedding` words the error for ids and a vocabulary; gather for indices along an axis.
std::vector<int64_t> checked_indices(const Tensor& indices, int64_t limit, int64_t axis, bool embedding) {
  std::vector<int64_t> idx(static_cast<size_t>(indices.numel()));
  Tensor src = contiguous_host(indices);
  dispatch_dtype(src.dtype(), "gather", [&]<typename I>() {
    if constexpr (std::is_same_v<I, int32_t> || std::is_same_v<I, int64_t>) {
      const I* p = src.data<I>();
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(p[i]);
    } else {
      MF_THROW("gather: indices must be i32 or i64, got ", dtype_name(src.dtype()));
    }
  });
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] >= 0 && idx[i] < limit) continue;
    std::string where = position_str(static_cast<int64_t>(i), indices.shape());
    if (embedding)
      MF_THROW("embedding: id ", idx[i], " at index ", where, " of ids is out of range for a vocabulary of ", limit,
               " (valid ids are 0..", limit - 1, ")");
    MF_THROW("gather: index ", idx[i], " at position ", where, " of indices is out of range for axis ", axis,
             " of size ", limit, " (valid range is [0, ", limit, "); negative indices are not allowed)");
  }
  return idx;
}

struct Layout {
  int64_t outer = 1, n = 1, inner = 1;  // x viewed as [outer, n, inner] around the axis
};

Layout layout_of(const Shape& x_shape, int64_t axis) {
  Layout l;
  for (int64_t d = 0; d < axis; ++d) l.outer *= x_shape[d];
  l.n = x_shape[axis];
  for (size_t d = static_cast<size_t>(axis) + 1; d < x_shape.size(); ++d) l.inner *= x_shape[d];
  return l;
}

// out[o, j, :] = x[o, idx[j], :], each row one memcpy.
void gather_rows(const Tensor& x_in, const std::vector<int64_t>& idx, int64_t axis, Tensor& out) {
  if (out.numel() == 0) return;
  Tensor x = contiguous_host(x_in);
  const Layout l = layout_of(x.shape(), axis);
  const int64_t m = static_cast<int64_t>(idx.size());
  const size_t row_bytes = static_cast<size_t>(l.inner) * dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / static_cast<int64_t>(std::max<size_t>(row_bytes, 1)));
  parallel_for(0, l.outer * m, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t o = r / m, j = r % m;
      std::memcpy(dst + r * row_bytes, src + (o * l.n + idx[j]) * row_bytes, row_bytes);
    }
  });
}

void gather_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  const int64_t axis = normalize_axis(a.i("axis"), in[0].dim(), "gather");
  gather_rows(in[0], checked_indices(in[1], in[0].size(axis), axis, false), axis, out[0]);
}

void embedding_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  gather_rows(in[1], checked_indices(in[0], in[1].size(0), 0, true), 0, out[0]);
}

// Note [Race-free scatter-add]: repeated indices send several gradient rows to the same output
// row, so threads never split the index list. Work is split over (outer, column block) pairs
// instead: each pair owns a disjoint set of output elements and adds its rows in index order,
// so the result is also the same for every thread count. For embeddings (outer = 1) this is
// parallelism over the embedding dimension.
void gather_backward_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& gx = out[0];
  if (gx.numel() == 0) return;
  std::memset(gx.raw_data(), 0, static_cast<size_t>(gx.numel()) * dtype_size(gx.dtype()));
  const Shape& x_shape = gx.shape();
  const int64_t axis = normalize_axis(a.i("axis"), gx.dim(), "gather_backward");
  const std::vector<int64_t> idx = checked_indices(in[1], x_shape[axis], axis, false);
  const Tensor g = contiguous_host(in[0]);
  const Layout l = layout_of(x_shape, axis);
  const int64_t m = static_cast<int64_t>(idx.size());
  if (m == 0 || l.inner == 0) return;
  constexpr int64_t kBlock = 512;
  const int64_t blocks = (l.inner + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, (1 << 15) / (m * std::min(kBlock, l.inner)));
  dispatch_dtype(gx.dtype(), "gather_backward", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      MF_THROW("gather_backward: cannot scatter-add bool gradients");
    } else {
      using C = internal::compute_t<T>;
      const T* src = g.data<T>();
      T* dst = gx.data<T>();
      parallel_for(0, l.outer * blocks, grain, [&](int64_t b, int64_t e) {
        for (int64_t w = b; w < e; ++w) {
          const int64_t o = w / blocks, c0 = (w % blocks) * kBlock, c1 = std::min(l.inner, c0 + kBlock);
          for (int64_t j = 0; j < m; ++j) {
            T* d = dst + (o * l.n + idx[j]) * l.inner;
            const T* s = src + (o * m + j) * l.inner;
#pragma omp simd
            for (int64_t c = c0; c < c1; ++c) d[c] = T(C(d[c]) + C(s[c]));
          }
        }
      });
    }
  });
}

MF_STATIC_INIT {
  register_kernel("gather", DeviceType::CPU, gather_kernel);
  register_kernel("embedding", DeviceType::CPU, embedding_kernel);
  register_kernel("gather_backward", DeviceType::CPU, gather_backward_kernel);
}

}  // namespace
}  // namespace meshflow
