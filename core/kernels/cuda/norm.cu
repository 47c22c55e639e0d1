// CUDA kernels for layer_norm (one block per row) and batch_norm (column sums of [M, C] in two
// deterministic stages), training, backward and inference, with the CPU kernels' outputs and
// saved statistics. Sums accumulate in float (double for f64); per-channel scalars (rstd, scale,
// shift) are computed in double, as on the CPU.
#include <algorithm>
#include <cmath>

#include "cuda_util.h"
#include "device_types.cuh"
#include "meshflow/core/autograd.h"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

using cu::acc_t;
using cu::convert;
using cu::load;

// Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every thread. Every
// thread of the block must call it; `shared` holds 32 values.
template <typename C>
__device__ C block_sum(C v, C* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();  // the previous call's readers are done with `shared`
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? shared[lane] : C(0);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}

// Threads per row-block: at least 4 elements per thread, 32 to 1024 threads.
int row_threads(int64_t n) {
  int t = 32;
  while (t < 1024 && int64_t(t) * 4 < n) t *= 2;
  return t;
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(rows, 1), 1 << 20)); }

// layer_norm -------------------------------------------------------------------------------------

// Note [Normalization statistics] (CPU kernel): two passes per row, mean then squared deviations;
// one-pass E[x^2] - E[x]^2 cancels badly when |mean| >> std.
template <typename D>
__global__ void layer_norm_fwd(const D* __restrict__ x, const D* __restrict__ gamma, const D* __restrict__ beta,
                               D* __restrict__ y, D* __restrict__ mean_out, D* __restrict__ rstd_out, int64_t rows,
                               int64_t n, acc_t<D> eps) {
  using C = acc_t<D>;
  __shared__ C shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const D* xr = x + r * n;
    C s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += load(xr, i);
    const C mean = block_sum(s, shared) / C(n);
    C ss = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const C d = load(xr, i) - mean;
      ss += d * d;
    }
    const C rstd = C(1) / sqrt(block_sum(ss, shared) / C(n) + eps);
    if (threadIdx.x == 0) {
      mean_out[r] = convert<D>(mean);
      rstd_out[r] = convert<D>(rstd);
    }
    D* yr = y + r * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      C v = (load(xr, i) - mean) * rstd;
      if (gamma) v *= load(gamma, i);
      if (beta) v += load(beta, i);
      yr[i] = convert<D>(v);
    }
  }
}

// A contiguous copy of an input (itself when already dense), outside autograd.
Tensor dense(const Tensor& t) {
  NoGradGuard no_grad;
  return t.detach().contiguous();
}

template <typename D>
const D* ptr(const Tensor& t) {
  return t.defined() ? static_cast<const D*>(t.raw_data()) : nullptr;
}

void layer_norm_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  if (out[0].numel() == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  const int64_t rows = out[1].numel(), n = out[0].numel() / rows;
  const Tensor x = dense(in[0]);
  size_t k = 1;
  const Tensor gamma = a.b("has_gamma") ? dense(in[k++]) : Tensor();
  const Tensor beta = a.b("has_beta") ? dense(in[k]) : Tensor();
  cu::dispatch_floating(x.dtype(), "layer_norm", [&]<typename D>() {
    layer_norm_fwd<D><<<row_blocks(rows), row_threads(n), 0, cu::stream_of(ctx)>>>(
        ptr<D>(x), ptr<D>(gamma), ptr<D>(beta), static_cast<D*>(out[0].raw_data()),
        static_cast<D*>(out[1].raw_data()), static_cast<D*>(out[2].raw_data()), rows, n, acc_t<D>(a.f("epsilon")));
    MF_CUDA_CHECK_LAUNCH();
  });
}

// dx = rstd * (gx - mean(gx) - xhat * mean(gx * xhat)) per row, gx = g * gamma (see Note
// [Normalization backward] in core/src/ops/norm.cpp).
template <typename D>
__global__ void layer_norm_bwd_rows(const D* __restrict__ g, const D* __restrict__ x, const D* __restrict__ mean,
                                    const D* __restrict__ rstd, const D* __restrict__ gamma, D* __restrict__ dx,
                                    int64_t rows, int64_t n) {
  using C = acc_t<D>;
  __shared__ C shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const D *gr = g + r * n, *xr = x + r * n;
    const C m = load(mean, r), rs = load(rstd, r);
    C s_gx = 0, s_gx_xhat = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const C gx = gamma ? load(gr, i) * load(gamma, i) : load(gr, i);
      s_gx += gx;
      s_gx_xhat += gx * ((load(xr, i) - m) * rs);
    }
    const C mean_gx = block_sum(s_gx, shared) / C(n);
    const C mean_gx_xhat = block_sum(s_gx_xhat, shared) / C(n);
    D* dr = dx + r * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const C gx = gamma ? load(gr, i) * load(gamma, i) : load(gr, i);
      dr[i] = convert<D>(rs * (gx - mean_gx - (load(xr, i) - m) * rs * mean_gx_xhat));
    }
  }
}

// Column sums ------------------------------------------------------------------------------------

// Note [Deterministic column sums]: sums over the rows of a [rows, n] matrix (dgamma/dbeta, batch
// statistics) run in two stages without atomics, so results do not depend on scheduling: stage 1
// has each block of 32 columns x 8 row lanes sum one chunk of rows into partials[chunk][j];
// stage 2 adds a column's partials in chunk order. F::operator()(r, j, a0, a1) adds row r's
// terms of column j to two accumulators.
constexpr int kColsPerBlock = 32, kRowLanes = 8;

template <typename C, typename F>
__global__ void column_partials(int64_t rows, int64_t n, int64_t rows_per_chunk, F f, C* __restrict__ part0,
                                C* __restrict__ part1) {
  __shared__ C s0[kRowLanes][kColsPerBlock + 1], s1[kRowLanes][kColsPerBlock + 1];
  const int64_t j = int64_t(blockIdx.x) * kColsPerBlock + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
  C a0 = 0, a1 = 0;
  if (j < n)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) f(r, j, a0, a1);
  s0[threadIdx.y][threadIdx.x] = a0;
  s1[threadIdx.y][threadIdx.x] = a1;
  __syncthreads();
  if (threadIdx.y == 0 && j < n) {
    C t0 = 0, t1 = 0;
    for (int l = 0; l < kRowLanes; ++l) {
      t0 += s0[l][threadIdx.x];
      t1 += s1[l][threadIdx.x];
    }
    part0[chunk * n + j] = t0;
    part1[chunk * n + j] = t1;
  }
}

// Stage 2: Fin::operator()(j, sum0, sum1) gets column j's totals (added in double).
template <typename C, typename Fin>
__global__ void column_finish(const C* __restrict__ part0, const C* __restrict__ part1, int64_t chunks, int64_t n,
                              Fin fin) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    double t0 = 0, t1 = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      t0 += double(part0[c * n + j]);
      t1 += double(part1[c * n + j]);
    }
    fin(j, t0, t1);
  }
}

template <typename C, typename F, typename Fin>
void column_sums(const ExecContext& ctx, int64_t rows, int64_t n, F f, Fin fin) {
  if (n == 0) return;
  const int64_t col_blocks = (n + kColsPerBlock - 1) / kColsPerBlock;
  // Enough chunks to fill the GPU (about 1024 blocks), each of at least 32 rows.
  int64_t chunks = std::min<int64_t>((rows + 31) / 32, std::max<int64_t>(1, 1024 / col_blocks));
  chunks = std::clamp<int64_t>(chunks, 1, 65535);
  const int64_t per_chunk = std::max<int64_t>(1, (rows + chunks - 1) / chunks);
  C* part = static_cast<C*>(ctx.workspace(2 * static_cast<size_t>(chunks * n) * sizeof(C)));
  MF_CHECK(col_blocks <= INT32_MAX, "column sums: ", n, " columns are too many for one launch");
  column_partials<C, F><<<dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks)),
                          dim3(kColsPerBlock, kRowLanes), 0, cu::stream_of(ctx)>>>(rows, n, per_chunk, f, part,
                                                                                  part + chunks * n);
  MF_CUDA_CHECK_LAUNCH();
  column_finish<C, Fin><<<cu::grid_for(n), 256, 0, cu::stream_of(ctx)>>>(part, part + chunks * n, chunks, n, fin);
  MF_CUDA_CHECK_LAUNCH();
}

// layer_norm's dgamma (sum of g * xhat) and dbeta (sum of g) over the rows.
template <typename D>
struct LayerNormAffineTerms {
  const D *g, *x, *mean, *rstd;
  int64_t n;
  __device__ void operator()(int64_t r, int64_t j, acc_t<D>& a0, acc_t<D>& a1) const {
    const acc_t<D> gv = load(g, r * n + j);
    a0 += gv * ((load(x, r * n + j) - load(mean, r)) * load(rstd, r));
    a1 += gv;
  }
};

template <typename D>
struct StoreTwo {
  D *out0, *out1;
  __device__ void operator()(int64_t j, double s0, double s1) const {
    out0[j] = convert<D>(acc_t<D>(s0));
    out1[j] = convert<D>(acc_t<D>(s1));
  }
};

void layer_norm_backward_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                              const Attrs& a) {
  cu::DeviceGuard guard(ctx.device().index);
  cudaStream_t stream = cu::stream_of(ctx);
  const int64_t n = std::max<int64_t>(out[1].numel(), 1), rows = out[0].numel() / n;
  if (out[0].numel() == 0) {
    for (int i = 1; i < 3; ++i)
      if (out[i].numel() > 0)
        MF_CUDA_CHECK(cudaMemsetAsync(out[i].raw_data(), 0, out[i].numel() * dtype_size(out[i].dtype()), stream));
    return;
  }
  const Tensor g = dense(in[0]), x = dense(in[1]), mean = dense(in[2]), rstd = dense(in[3]);
  const Tensor gamma = a.b("has_gamma") ? dense(in[4]) : Tensor();
  cu::dispatch_floating(x.dtype(), "layer_norm backward", [&]<typename D>() {
    using C = acc_t<D>;
    layer_norm_bwd_rows<D><<<row_blocks(rows), row_threads(n), 0, stream>>>(
        ptr<D>(g), ptr<D>(x), ptr<D>(mean), ptr<D>(rstd), ptr<D>(gamma), static_cast<D*>(out[0].raw_data()), rows, n);
    MF_CUDA_CHECK_LAUNCH();
    column_sums<C>(ctx, rows, n, LayerNormAffineTerms<D>{ptr<D>(g), ptr<D>(x), ptr<D>(mean), ptr<D>(rstd), n},
                   StoreTwo<D>{static_cast<D*>(out[1].raw_data()), static_cast<D*>(out[2].raw_data())});
  });
}

// batch_norm -------------------------------------------------------------------------------------

// A per-channel vector of any floating dtype and stride (running statistics may differ in dtype
// from x, as on the CPU, which reads them as doubles).
struct ChannelVec {
  const void* p = nullptr;
  int64_t stride = 1;
  DType dtype = DType::F32;
};

ChannelVec channel_vec(const Tensor& t) {
  if (!t.defined()) return {};
  MF_CHECK(is_floating(t.dtype()), "batch_norm: per-channel tensors must be floating, got ", dtype_name(t.dtype()));
  return {t.raw_data(), t.dim() == 0 ? 0 : t.strides()[0], t.dtype()};
}

__device__ double load_channel(const ChannelVec& v, int64_t j, double absent) {
  if (!v.p) return absent;
  const int64_t i = j * v.stride;
  switch (v.dtype) {
    case DType::F64: return static_cast<const double*>(v.p)[i];
    case DType::F32: return static_cast<const float*>(v.p)[i];
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(v.p)[i]);
    case DType::F16: return __half2float(static_cast<const __half*>(v.p)[i]);
    default: return 0.0;
  }
}

// Column sums of x (stage-1 terms for the batch mean).
template <typename D>
struct SumX {
  const D* x;
  int64_t c;
  __device__ void operator()(int64_t r, int64_t j, acc_t<D>& a0, acc_t<D>&) const { a0 += load(x, r * c + j); }
};

// Column sums of (x - mean)^2 with the mean from the first pass.
template <typename D>
struct SumSqDev {
  const D* x;
  const acc_t<D>* mean;
  int64_t c;
  __device__ void operator()(int64_t r, int64_t j, acc_t<D>& a0, acc_t<D>&) const {
    const acc_t<D> d = load(x, r * c + j) - mean[j];
    a0 += d * d;
  }
};

template <typename D>
struct FinishMean {
  acc_t<D>* mean_acc;
  D* mean_out;
  int64_t m;
  __device__ void operator()(int64_t j, double s0, double) const {
    const double mean = s0 / double(m);
    mean_acc[j] = acc_t<D>(mean);
    mean_out[j] = convert<D>(acc_t<D>(mean));
  }
};

// From the biased variance: rstd, and y = x * scale + shift with scale = rstd * gamma and
// shift = beta - mean * scale.
template <typename D>
struct FinishVar {
  const acc_t<D>* mean_acc;
  ChannelVec gamma, beta;
  acc_t<D>*scale, *shift;
  D *rstd_out, *var_out;
  int64_t m;
  double eps;
  __device__ void operator()(int64_t j, double s0, double) const {
    const double var = s0 / double(m), rstd = 1.0 / sqrt(var + eps);
    const double sc = rstd * load_channel(gamma, j, 1.0);
    scale[j] = acc_t<D>(sc);
    shift[j] = acc_t<D>(load_channel(beta, j, 0.0) - double(mean_acc[j]) * sc);
    rstd_out[j] = convert<D>(acc_t<D>(rstd));
    var_out[j] = convert<D>(acc_t<D>(var));
  }
};

// y[r, j] = x[r, j] * scale[j] + shift[j] over [m, c].
template <typename D>
__global__ void apply_channels(const D* __restrict__ x, D* __restrict__ y, const acc_t<D>* __restrict__ scale,
                               const acc_t<D>* __restrict__ shift, int64_t total, int64_t c) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % c;
    y[i] = convert<D>(load(x, i) * scale[j] + shift[j]);
  }
}

void batch_norm_train_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                           const Attrs& a) {
  const int64_t m = in[0].shape()[0], c = in[0].shape()[1];
  if (c == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  cudaStream_t stream = cu::stream_of(ctx);
  const Tensor x = dense(in[0]);
  size_t k = 1;
  const ChannelVec gamma = a.b("has_gamma") ? channel_vec(in[k++]) : ChannelVec{};
  const ChannelVec beta = a.b("has_beta") ? channel_vec(in[k]) : ChannelVec{};
  cu::dispatch_floating(x.dtype(), "batch_norm", [&]<typename D>() {
    using C = acc_t<D>;
    C* ws = static_cast<C*>(ctx.workspace(3 * static_cast<size_t>(c) * sizeof(C)));
    C *mean = ws, *scale = ws + c, *shift = ws + 2 * c;
    column_sums<C>(ctx, m, c, SumX<D>{ptr<D>(x), c}, FinishMean<D>{mean, static_cast<D*>(out[1].raw_data()), m});
    column_sums<C>(ctx, m, c, SumSqDev<D>{ptr<D>(x), mean, c},
                   FinishVar<D>{mean, gamma, beta, scale, shift, static_cast<D*>(out[2].raw_data()),
                                static_cast<D*>(out[3].raw_data()), m, a.f("epsilon")});
    if (m * c > 0) {
      apply_channels<D><<<cu::grid_for(m * c), 256, 0, stream>>>(ptr<D>(x), static_cast<D*>(out[0].raw_data()),
                                                                  scale, shift, m * c, c);
      MF_CUDA_CHECK_LAUNCH();
    }
  });
}

// Per channel: sum(g) and sum(g * xhat) over the M rows.
template <typename D>
struct BatchNormGradTerms {
  const D *g, *x;
  const acc_t<D>*mean, *rstd;
  int64_t c;
  __device__ void operator()(int64_t r, int64_t j, acc_t<D>& a0, acc_t<D>& a1) const {
    const acc_t<D> gv = load(g, r * c + j);
    a0 += gv;
    a1 += gv * (load(x, r * c + j) - mean[j]) * rstd[j];
  }
};

// Copies per-channel vectors into the accumulation type (so stage 1 reads them cheaply).
template <typename C>
__global__ void load_channels(ChannelVec src0, ChannelVec src1, C* dst0, C* dst1, int64_t c) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < c; j += int64_t(gridDim.x) * blockDim.x) {
    dst0[j] = C(load_channel(src0, j, 0.0));
    dst1[j] = C(load_channel(src1, j, 0.0));
  }
}

// dx = k * g - k * xhat * sum(g * xhat) / M - k * sum(g) / M with k = gamma * rstd, written as
// x * a + g * k + bias (a = -k * rstd * sum(g * xhat) / M, bias = -a * mean - k * sum(g) / M).
template <typename D>
struct FinishBatchNormGrad {
  ChannelVec mean, rstd, gamma;
  acc_t<D>*a, *k, *bias;
  D *dgamma, *dbeta;
  int64_t m;
  __device__ void operator()(int64_t j, double sum_g, double sum_g_xhat) const {
    const double rs = load_channel(rstd, j, 0.0), kj = load_channel(gamma, j, 1.0) * rs;
    const double cx = kj * rs * sum_g_xhat / double(m);
    k[j] = acc_t<D>(kj);
    a[j] = acc_t<D>(-cx);
    bias[j] = acc_t<D>(cx * load_channel(mean, j, 0.0) - kj * sum_g / double(m));
    dgamma[j] = convert<D>(acc_t<D>(sum_g_xhat));
    dbeta[j] = convert<D>(acc_t<D>(sum_g));
  }
};

template <typename D>
__global__ void batch_norm_dx(const D* __restrict__ g, const D* __restrict__ x, D* __restrict__ dx,
                              const acc_t<D>* __restrict__ a, const acc_t<D>* __restrict__ k,
                              const acc_t<D>* __restrict__ bias, int64_t total, int64_t c) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % c;
    dx[i] = convert<D>(load(x, i) * a[j] + load(g, i) * k[j] + bias[j]);
  }
}

// Inputs g, x [M, C], the saved batch mean and rstd, then gamma when present.
void batch_norm_backward_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                              const Attrs& a) {
  const int64_t m = in[1].shape()[0], c = in[1].shape()[1];
  if (c == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  cudaStream_t stream = cu::stream_of(ctx);
  const Tensor g = dense(in[0]), x = dense(in[1]);
  const ChannelVec mean = channel_vec(in[2]), rstd = channel_vec(in[3]);
  const ChannelVec gamma = a.b("has_gamma") ? channel_vec(in[4]) : ChannelVec{};
  cu::dispatch_floating(x.dtype(), "batch_norm backward", [&]<typename D>() {
    using C = acc_t<D>;
    C* ws = static_cast<C*>(ctx.workspace(5 * static_cast<size_t>(c) * sizeof(C)));
    C *mean_c = ws, *rstd_c = ws + c, *coef_a = ws + 2 * c, *coef_k = ws + 3 * c, *bias = ws + 4 * c;
    load_channels<C><<<cu::grid_for(c), 256, 0, stream>>>(mean, rstd, mean_c, rstd_c, c);
    MF_CUDA_CHECK_LAUNCH();
    column_sums<C>(ctx, m, c, BatchNormGradTerms<D>{ptr<D>(g), ptr<D>(x), mean_c, rstd_c, c},
                   FinishBatchNormGrad<D>{mean, rstd, gamma, coef_a, coef_k, bias, static_cast<D*>(out[1].raw_data()),
                                          static_cast<D*>(out[2].raw_data()), m});
    if (m * c > 0) {
      batch_norm_dx<D><<<cu::grid_for(m * c), 256, 0, stream>>>(ptr<D>(g), ptr<D>(x),
                                                                 static_cast<D*>(out[0].raw_data()), coef_a, coef_k,
                                                                 bias, m * c, c);
      MF_CUDA_CHECK_LAUNCH();
    }
  });
}

// With fixed statistics: rstd = 1 / sqrt(running_var + eps), then the same scale and shift.
template <typename D>
__global__ void infer_channels(ChannelVec mean, ChannelVec var, ChannelVec gamma, ChannelVec beta, double eps,
                               acc_t<D>* scale, acc_t<D>* shift, D* rstd_out, int64_t c) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < c; j += int64_t(gridDim.x) * blockDim.x) {
    const double rstd = 1.0 / sqrt(load_channel(var, j, 0.0) + eps);
    const double sc = rstd * load_channel(gamma, j, 1.0);
    scale[j] = acc_t<D>(sc);
    shift[j] = acc_t<D>(load_channel(beta, j, 0.0) - load_channel(mean, j, 0.0) * sc);
    rstd_out[j] = convert<D>(acc_t<D>(rstd));
  }
}

// Inputs x [M, C], running mean, running var, then gamma and beta when present.
void batch_norm_infer_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                           const Attrs& a) {
  const int64_t m = in[0].shape()[0], c = in[0].shape()[1];
  if (c == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  cudaStream_t stream = cu::stream_of(ctx);
  const Tensor x = dense(in[0]);
  size_t k = 3;
  const ChannelVec gamma = a.b("has_gamma") ? channel_vec(in[k++]) : ChannelVec{};
  const ChannelVec beta = a.b("has_beta") ? channel_vec(in[k]) : ChannelVec{};
  cu::dispatch_floating(x.dtype(), "batch_norm", [&]<typename D>() {
    using C = acc_t<D>;
    C* ws = static_cast<C*>(ctx.workspace(2 * static_cast<size_t>(c) * sizeof(C)));
    infer_channels<D><<<cu::grid_for(c), 256, 0, stream>>>(channel_vec(in[1]), channel_vec(in[2]), gamma, beta,
                                                           a.f("epsilon"), ws, ws + c,
                                                           static_cast<D*>(out[1].raw_data()), c);
    MF_CUDA_CHECK_LAUNCH();
    if (m * c > 0) {
      apply_channels<D><<<cu::grid_for(m * c), 256, 0, stream>>>(ptr<D>(x), static_cast<D*>(out[0].raw_data()), ws,
                                                                  ws + c, m * c, c);
      MF_CUDA_CHECK_LAUNCH();
    }
  });
}

MF_STATIC_INIT {
  register_kernel("layer_norm", DeviceType::CUDA, layer_norm_cuda);
  register_kernel("layer_norm_backward", DeviceType::CUDA, layer_norm_backward_cuda);
  register_kernel("batch_norm_train", DeviceType::CUDA, batch_norm_train_cuda);
  register_kernel("batch_norm_backward", DeviceType::CUDA, batch_norm_backward_cuda);
  register_kernel("batch_norm_infer", DeviceType::CUDA, batch_norm_infer_cuda);
}

}  // namespace
}  // namespace meshflow
