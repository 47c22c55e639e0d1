// CUDA kernels for dropout (the CPU's counter-based Philox mask, bit for bit) and one_hot.
// Inputs of any strides are read in place.
#include "cuda_util.h"
#include "device_types.cuh"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

using cu::acc_t;
using cu::convert;

// Philox4x32-10 exactly as philox4x32() in core/src/random.cpp, so a mask made on the GPU equals
// the CPU's for the same (seed, counter).
__device__ __forceinline__ void philox_device(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = __umulhi(kM0, c0), lo0 = kM0 * c0;
    const uint32_t hi1 = __umulhi(kM1, c2), lo1 = kM1 * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// See Note [Dropout mask from attrs] in core/src/ops/nn.cpp: element i is kept when word i % 4
// of philox(seed, counter + i / 4) is at least rate * 2^32. One thread per group of 4 elements.
template <typename D, bool Dense>
__global__ void dropout_kernel(const D* __restrict__ x, cu::Geometry gx, D* __restrict__ y, int64_t n, uint64_t seed,
                               uint64_t counter, uint64_t threshold, acc_t<D> scale) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < groups; j += int64_t(gridDim.x) * blockDim.x) {
    uint32_t r[4];
    philox_device(seed, counter + static_cast<uint64_t>(j), r);
    const int64_t base = 4 * j;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = base + k;
      if (i >= n) break;
      const D v = x[Dense ? i : cu::offset_of(gx, i)];
      y[i] = r[k] >= threshold ? convert<D>(convert<acc_t<D>>(v) * scale) : convert<D>(acc_t<D>(0));
    }
  }
}

void dropout_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& y = out[0];
  const int64_t n = y.numel();
  if (n == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  const double rate = a.f("rate");
  const uint64_t seed = static_cast<uint64_t>(a.i("seed"));
  const uint64_t counter = static_cast<uint64_t>(a.i("counter"));
  const uint64_t threshold = static_cast<uint64_t>(rate * 4294967296.0);  // as on the CPU
  const cu::Geometry gx = cu::geometry_of(in[0], y.shape());
  const bool dense = cu::all_dense(y.shape(), {&gx});
  cu::dispatch_floating(y.dtype(), "dropout", [&]<typename D>() {
    const auto scale = acc_t<D>(1.0 / (1.0 - rate));
    const D* x = static_cast<const D*>(in[0].raw_data());
    D* py = static_cast<D*>(y.raw_data());
    const unsigned blocks = cu::grid_for((n + 3) / 4);
    if (dense)
      dropout_kernel<D, true><<<blocks, 256, 0, cu::stream_of(ctx)>>>(x, gx, py, n, seed, counter, threshold, scale);
    else
      dropout_kernel<D, false><<<blocks, 256, 0, cu::stream_of(ctx)>>>(x, gx, py, n, seed, counter, threshold, scale);
    MF_CUDA_CHECK_LAUNCH();
  });
}

// One thread per id: ids outside [0, depth) leave their row zero (tf.one_hot's rule, as on the CPU).
template <typename I, typename D>
__global__ void one_hot_kernel(const I* __restrict__ ids, cu::Geometry gi, bool dense, D* __restrict__ y, int64_t n,
                               int64_t depth) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = static_cast<int64_t>(ids[dense ? i : cu::offset_of(gi, i)]);
    if (c >= 0 && c < depth) y[i * depth + c] = convert<D>(1.0f);
  }
}

void one_hot_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& y = out[0];
  if (y.numel() == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  cudaStream_t stream = cu::stream_of(ctx);
  const int64_t depth = a.i("depth"), n = in[0].numel();
  MF_CUDA_CHECK(cudaMemsetAsync(y.raw_data(), 0, static_cast<size_t>(y.numel()) * dtype_size(y.dtype()), stream));
  const cu::Geometry gi = cu::geometry_of(in[0], in[0].shape());
  const bool dense = cu::all_dense(in[0].shape(), {&gi});
  auto launch = [&]<typename I>() {
    cu::dispatch_any(y.dtype(), "one_hot", [&]<typename D>() {
      one_hot_kernel<I, D><<<cu::grid_for(n), 256, 0, stream>>>(static_cast<const I*>(in[0].raw_data()), gi, dense,
                                                                static_cast<D*>(y.raw_data()), n, depth);
      MF_CUDA_CHECK_LAUNCH();
    });
  };
  if (in[0].dtype() == DType::I32) launch.template operator()<int32_t>();
  else if (in[0].dtype() == DType::I64) launch.template operator()<int64_t>();
  else MF_THROW("one_hot: ids must be i32 or i64, got ", dtype_name(in[0].dtype()));
}

MF_STATIC_INIT {
  register_kernel("dropout", DeviceType::CUDA, dropout_cuda);
  register_kernel("one_hot", DeviceType::CUDA, one_hot_cuda);
}

}  // namespace
}  // namespace meshflow
