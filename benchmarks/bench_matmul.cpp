// matmul throughput: Meshflow's matmul vs cblas_sgemm called directly on the same buffers vs
// oneDNN's dnnl_sgemm, square f32 sizes, GFLOP/s against the machine's fp32 peak.
// Run: OMP_NUM_THREADS=1 ./build/benchmarks/bench_matmul  (and =2)
#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdio>
#include <cstdlib>

#include "meshflow/core/core.h"
#include "machine.h"
#include "timing.h"

extern "C" char* openblas_get_config();

namespace mf = meshflow;

namespace {

// Enough repetitions to fill ~0.5 s (at least 2 after a warm-up); the best time is kept, as the
// minimum is the least disturbed by other processes sharing the cores.
constexpr bench::Runs kRuns{.repeats = 2, .warmups = 1, .budget_s = 0.5, .max_repeats = 50};

}  // namespace

int main(int argc, char** argv) {
  const int threads = omp_get_max_threads();
  mf::set_num_threads(threads);
  bench::Machine machine = bench::measure_machine(threads);
  machine.blas_config = openblas_get_config();
  bench::print_machine(machine, threads);
  const double peak = machine.peak(threads);
  std::printf("matmul f32, %d thread(s); ratios against the measured peak %.0f GFLOP/s\n", threads, peak);
  std::printf("%6s %12s %12s %12s %10s %10s\n", "n", "meshflow", "cblas_sgemm", "dnnl_sgemm", "mf/cblas", "mf/peak");
  const int max_n = argc > 1 ? std::atoi(argv[1]) : 4096;
  for (int64_t n : {256, 512, 1024, 2048, 4096}) {
    if (n > max_n) break;
    mf::Tensor a = mf::randn({n, n}), b = mf::randn({n, n});
    mf::Tensor c = mf::empty({n, n});
    const float *pa = a.data<float>(), *pb = b.data<float>();
    float* pc = c.data<float>();
    const double flop = 2.0 * n * n * n;
    double t_mf = bench::best_seconds(kRuns, [&] { mf::Tensor r = mf::matmul(a, b); });
    double t_blas = bench::best_seconds(kRuns, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, pa, n, pb, n, 0.0f, pc, n);
    });
    double t_dnnl = bench::best_seconds(kRuns, [&] { dnnl_sgemm('N', 'N', n, n, n, 1.0f, pa, n, pb, n, 0.0f, pc, n); });
    const double g_mf = flop / t_mf * 1e-9, g_blas = flop / t_blas * 1e-9, g_dnnl = flop / t_dnnl * 1e-9;
    std::printf("%6ld %12.1f %12.1f %12.1f %9.2fx %9.2fx\n", static_cast<long>(n), g_mf, g_blas, g_dnnl,
                g_mf / g_blas, g_mf / peak);
  }
  // Batched small matrices: the kernel's loop (OpenBLAS threads each GEMM) vs the same GEMMs
  // split over batches by OpenMP (OpenBLAS runs single-threaded inside a parallel region).
  std::printf("\nbatched [b, n, n] x [b, n, n]: GFLOP/s\n%6s %6s %12s %14s %14s\n", "b", "n", "meshflow",
              "blas loop", "omp over batch");
  for (auto [batch, n] : {std::pair<int64_t, int64_t>{4096, 16}, {1024, 32}, {256, 64}, {64, 128}, {16, 256}}) {
    mf::Tensor a = mf::randn({batch, n, n}), b = mf::randn({batch, n, n}), c = mf::empty({batch, n, n});
    const float *pa = a.data<float>(), *pb = b.data<float>();
    float* pc = c.data<float>();
    const double flop = 2.0 * batch * n * n * n;
    auto one = [&](int64_t i) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, pa + i * n * n, n, pb + i * n * n, n,
                  0.0f, pc + i * n * n, n);
    };
    double t_mf = bench::best_seconds(kRuns, [&] { mf::Tensor r = mf::matmul(a, b); });
    double t_loop = bench::best_seconds(kRuns, [&] { for (int64_t i = 0; i < batch; ++i) one(i); });
    double t_omp = bench::best_seconds(kRuns, [&] {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < batch; ++i) one(i);
    });
    std::printf("%6ld %6ld %12.1f %14.1f %14.1f\n", static_cast<long>(batch), static_cast<long>(n), flop / t_mf * 1e-9,
                flop / t_loop * 1e-9, flop / t_omp * 1e-9);
  }
  return 0;
}
