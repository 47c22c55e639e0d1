// CPU matmul kernel: one BLAS GEMM per batch (or one for all batches when they fold into rows).
#include <optional>

#include "internal/blas.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/op.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/parallel.h"

namespace meshflow {
namespace {

// How BLAS sees one stored [rows, cols] matrix: row-major with leading dim `ld`, or (flip) as
// the transpose of a row-major [cols, rows] matrix. Size-1 dims may carry any stride.
struct BlasLayout {
  int64_t ld;
  bool flip;
};

std::optional<BlasLayout> blas_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  const int64_t rmax = std::max<int64_t>(rows, 1), cmax = std::max<int64_t>(cols, 1);
  if ((cols == 1 || col_stride == 1) && (rows == 1 || row_stride >= cmax))
    return BlasLayout{rows == 1 ? cmax : row_stride, false};
  if ((rows == 1 || row_stride == 1) && (cols == 1 || col_stride >= rmax))
    return BlasLayout{cols == 1 ? rmax : col_stride, true};
  return std::nullopt;
}

// An operand ready for BLAS: a BLAS-compatible tensor (the input, or a contiguous copy), its
// layout and its batch strides broadcast to the output's batch shape.
struct Operand {
  Tensor t;
  BlasLayout layout;
  Strides batch_strides;
};

Operand prepare(const Tensor& x, const Shape& batch) {
  const int64_t r = x.dim();
  auto layout = blas_layout(x.size(r - 2), x.size(r - 1), x.strides()[r - 2], x.strides()[r - 1]);
  Tensor t = x;
  if (!layout) {
    NoGradGuard no_grad;  // a private copy inside the kernel, not part of the graph
    t = x.detach().contiguous();
    layout = blas_layout(t.size(r - 2), t.size(r - 1), t.strides()[r - 2], t.strides()[r - 1]);
  }
  // Batch strides right-aligned to the output's batch dims; broadcast dims step by 0.
  Strides batch_strides(batch.size(), 0);
  const size_t skip = batch.size() - static_cast<size_t>(r - 2);
  for (int64_t d = 0; d < r - 2; ++d)
    if (x.size(d) != 1) batch_strides[skip + d] = t.strides()[d];
  return {t, *layout, batch_strides};
}

int64_t batch_offset(int64_t index, const Shape& batch, const Strides& strides) {
  int64_t off = 0;
  for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
    off += (index % batch[d]) * strides[d];
    index /= batch[d];
  }
  return off;
}

// Batches of A fold into the rows of one GEMM when B is shared by every batch and A's batches
// are stacked rows at a uniform step (a Dense layer applied to [batch, time, features]).
bool batches_fold_into_rows(const Operand& a, const Operand& b, const Shape& batch, int64_t m) {
  if (batch.empty() || a.layout.flip) return false;
  for (int64_t s : b.batch_strides)
    if (s != 0) return false;
  int64_t expected = m * a.layout.ld;
  for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
    if (batch[d] != 1 && a.batch_strides[d] != expected) return false;
    expected *= batch[d];
  }
  return true;
}

template <typename T>
void matmul_blas(const Tensor& a_in, const Tensor& b_in, Tensor& out, bool ta, bool tb) {
  const int64_t r = out.dim();
  const int64_t m = out.size(r - 2), n = out.size(r - 1);
  const int64_t k = ta ? a_in.size(a_in.dim() - 2) : a_in.size(a_in.dim() - 1);
  T* c = out.data<T>();
  if (out.numel() == 0) return;
  if (k == 0) {
    std::fill(c, c + out.numel(), T(0));
    return;
  }
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const Operand a = prepare(a_in, batch), b = prepare(b_in, batch);
  const bool trans_a = ta != a.layout.flip, trans_b = tb != b.layout.flip;
  const T* pa = static_cast<const T*>(a.t.raw_data());
  const T* pb = static_cast<const T*>(b.t.raw_data());
  const int64_t nbatch = shape_numel(batch);
  if (batches_fold_into_rows(a, b, batch, m) && !ta) {
    internal::gemm<T>(false, trans_b, nbatch * m, n, k, T(1), pa, a.layout.ld, pb, b.layout.ld, T(0), c, n);
    return;
  }
  // Note [batched matmul threading]: OpenBLAS threads one GEMM well only when it is large; for
  // small matrices, splitting the batches over the pool (OpenBLAS then runs single-threaded
  // inside the parallel region) measured 1.5-2x faster on 2 threads (bench_matmul: 64 x
  // [128,128]^2: 193 vs 126 GFLOP/s; 16 x [256,256]^2: 190 vs 121). Large GEMMs keep OpenBLAS's threads.
  auto run = [&](int64_t i) {
    internal::gemm<T>(trans_a, trans_b, m, n, k, T(1), pa + batch_offset(i, batch, a.batch_strides), a.layout.ld,
                      pb + batch_offset(i, batch, b.batch_strides), b.layout.ld, T(0), c + i * m * n, n);
  };
  const bool small = static_cast<double>(m) * n * k <= 256.0 * 256.0 * 256.0;
  if (small && nbatch >= num_threads()) {
    parallel_for(0, nbatch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i) run(i);
    });
  } else {
    for (int64_t i = 0; i < nbatch; ++i) run(i);
  }
}

void matmul_cpu(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const bool ta = attrs.b("transpose_a"), tb = attrs.b("transpose_b");
  const DType t = out[0].dtype();
  if (t == DType::F32) return matmul_blas<float>(in[0], in[1], out[0], ta, tb);
  if (t == DType::F64) return matmul_blas<double>(in[0], in[1], out[0], ta, tb);
  // bf16/f16: BLAS has no half-precision GEMM here; compute in f32 and round once at the end.
  NoGradGuard no_grad;
  Tensor a32 = cast(in[0].detach(), DType::F32), b32 = cast(in[1].detach(), DType::F32);
  Tensor c32 = empty(out[0].shape(), {.dtype = DType::F32, .device = out[0].device()});
  matmul_blas<float>(a32, b32, c32, ta, tb);
  out[0].copy_(c32);
}

MF_STATIC_INIT { register_kernel("matmul", DeviceType::CPU, matmul_cpu); }

}  // namespace
}  // namespace meshflow
