// GPU speed next to its peers in the same run: Meshflow's matmul against cublasGemmEx called
// directly on the same buffers (f32 strict, TF32, bf16) and against the bf16 peak this GPU
// reaches with that call at 8192; elementwise add and layer norm bandwidth against a
// device-to-device copy. Prints ratios; asserts nothing. Needs a GPU (says so and exits 0 without).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>

#include "meshflow/meshflow.h"
#include "timing.h"

namespace mf = meshflow;

namespace {

const mf::Device kGpu = mf::cuda(0);

// The best of 20 timed runs after a warm-up, each ended by a synchronize, in seconds.
double best_synced_seconds(const std::function<void()>& fn) {
  return bench::best_seconds({.repeats = 20, .warmups = 1}, [&] {
    fn();
    mf::synchronize(kGpu);
  });
}

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s failed: %d\n", what, static_cast<int>(s));
    std::exit(1);
  }
}

}  // namespace

int main() {
  if (mf::device_count(mf::DeviceType::CUDA) == 0) {
    std::printf("bench_cuda: skipped (no GPU visible)\n");
    return 0;
  }
  cudaStream_t stream = nullptr;
  {
    // Meshflow's stream for cuda:0, so the direct cuBLAS calls queue where Meshflow's kernels do.
    mf::ExecContext ctx(kGpu);
    stream = static_cast<cudaStream_t>(ctx.stream());
  }
  cublasHandle_t handle;
  check(cublasCreate(&handle), "cublasCreate");
  check(cublasSetStream(handle, stream), "cublasSetStream");

  struct Mode {
    const char* name;
    mf::DType dtype;
    bool tf32;
    cudaDataType_t cuda_type;
    cublasComputeType_t compute;
  };
  const Mode modes[] = {
      {"f32", mf::DType::F32, false, CUDA_R_32F, CUBLAS_COMPUTE_32F},
      {"tf32", mf::DType::F32, true, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32},
      {"bf16", mf::DType::BF16, false, CUDA_R_16BF, CUBLAS_COMPUTE_32F},
  };
  std::printf("matmul [n,n]x[n,n], TFLOP/s\n%6s %6s %10s %10s %9s\n", "mode", "n", "meshflow", "cublas", "mf/cublas");
  double bf16_peak = 0;
  for (const Mode& m : modes) {
    mf::set_allow_tf32(m.tf32);
    for (int64_t n : {1024, 4096, 8192}) {
      mf::Tensor a = mf::full({n, n}, 0.5, {.dtype = m.dtype, .device = kGpu}), b = mf::full({n, n}, 0.25, {.dtype = m.dtype, .device = kGpu});
      mf::Tensor c = mf::empty({n, n}, {.dtype = m.dtype, .device = kGpu});
      const float one = 1.0f, zero = 0.0f;
      const double flop = 2.0 * n * n * n;
      double t_mf = best_synced_seconds([&] { mf::Tensor r = mf::matmul(a, b); });
      double t_cb = best_synced_seconds([&] {
        // Row-major C = A B is column-major C^T = B^T A^T: pass b first.
        check(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, b.raw_data(), m.cuda_type, n, a.raw_data(),
                           m.cuda_type, n, &zero, c.raw_data(), m.cuda_type, n, m.compute, CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx");
      });
      const double tf_mf = flop / t_mf * 1e-12, tf_cb = flop / t_cb * 1e-12;
      if (m.dtype == mf::DType::BF16) bf16_peak = std::max(bf16_peak, tf_cb);
      std::printf("%6s %6ld %10.1f %10.1f %8.2fx\n", m.name, static_cast<long>(n), tf_mf, tf_cb, tf_mf / tf_cb);
    }
  }
  mf::set_allow_tf32(false);
  std::printf("bf16 peak measured with cublasGemmEx: %.1f TFLOP/s\n\n", bf16_peak);

  std::printf("bandwidth, GB/s (bytes read + written)\n%18s %10s %10s %8s\n", "op", "meshflow", "d2d copy", "ratio");
  for (int64_t n : {int64_t(1) << 24, int64_t(1) << 26}) {
    mf::Tensor x = mf::full({n}, 0.5, {.device = kGpu}), y = mf::full({n}, 0.25, {.device = kGpu});
    mf::Tensor dst = mf::empty({n}, {.device = kGpu});
    const double bytes = 4.0 * n;
    double t_copy = best_synced_seconds([&] {
      cudaMemcpyAsync(dst.raw_data(), x.raw_data(), static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, stream);
    });
    double t_add = best_synced_seconds([&] { mf::Tensor r = x + y; });
    const double bw_copy = 2 * bytes / t_copy * 1e-9, bw_add = 3 * bytes / t_add * 1e-9;
    std::printf("%12s %5s %10.0f %10.0f %7.2fx\n", "add", n == (int64_t(1) << 24) ? "16M" : "64M", bw_add, bw_copy,
                bw_add / bw_copy);
    const int64_t cols = 4096, rows = n / cols;
    mf::Tensor xr = x.reshape({rows, cols});
    mf::Tensor g = mf::ones({cols}, {.device = kGpu}), bta = mf::zeros({cols}, {.device = kGpu});
    double t_ln = best_synced_seconds([&] { mf::Tensor r = mf::layer_norm(xr, g, bta); });
    const double bw_ln = 2 * bytes / t_ln * 1e-9;
    std::printf("%12s %5s %10.0f %10.0f %7.2fx\n", "layer_norm", n == (int64_t(1) << 24) ? "16M" : "64M", bw_ln,
                bw_copy, bw_ln / bw_copy);
  }
  cublasDestroy(handle);
  return 0;
}
