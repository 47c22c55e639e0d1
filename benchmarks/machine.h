// The machine, measured each run: the fp32 FMA peak per core (widest vector unit the CPU has),
// memory copy bandwidth, and the environment that changes which kernels BLAS picks. Benchmarks
// print their ratios against these numbers, never against a constant (issue 18).
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace bench {

// 12 independent FMA chains in registers (enough to cover 2 FMA units x 4-cycle latency) of
// 16 (AVX-512) or 8 (AVX2) floats; the empty asm keeps the compiler from folding the chains.
#define MF_FMA_CHAINS(T, FMA, SET1, ADD, STORE, LANES)                                              \
  T a0 = SET1(0.01f), a1 = SET1(0.02f), a2 = SET1(0.03f), a3 = SET1(0.04f), a4 = SET1(0.05f),      \
    a5 = SET1(0.06f), a6 = SET1(0.07f), a7 = SET1(0.08f), a8 = SET1(0.09f), a9 = SET1(0.10f),      \
    a10 = SET1(0.11f), a11 = SET1(0.12f);                                                           \
  const T m = SET1(0.999999f), c = SET1(1e-7f);                                                     \
  for (int64_t k = 0; k < iters; ++k) {                                                             \
    a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c);                 \
    a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c);                 \
    a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c);             \
    asm volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6),         \
                 "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));                               \
  }                                                                                                 \
  T s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));                          \
  s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                                                      \
  float out[LANES];                                                                                 \
  STORE(out, s);                                                                                    \
  return out[0]

__attribute__((target("avx512f"))) inline double fma_loop_avx512(int64_t iters) {
  MF_FMA_CHAINS(__m512, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_storeu_ps, 16);
}

__attribute__((target("avx2,fma"))) inline double fma_loop_avx2(int64_t iters) {
  MF_FMA_CHAINS(__m256, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps, _mm256_storeu_ps, 8);
}
#undef MF_FMA_CHAINS

struct Machine {
  int vector_bits = 0;           // 512 (AVX-512), 256 (AVX2 + FMA) or 0 (no FMA unit found)
  double peak_per_core = 0;      // fp32 GFLOP/s of one core, measured
  double copy_gbs = 0;           // memcpy GB/s (bytes read + written), one thread
  std::string blas_config;       // what OpenBLAS says it runs (its core type), when linked
  std::string environment;       // OPENBLAS_CORETYPE, OMP_NUM_THREADS as set
  double peak(int threads) const { return peak_per_core * threads; }
};

// Measures on `threads` threads at once (each runs the loop; the slowest sets the per-core rate,
// so a core shared with another job shows up as a lower peak, as it should in the ratios).
inline Machine measure_machine(int threads = 1) {
  Machine m;
  __builtin_cpu_init();
  m.vector_bits = __builtin_cpu_supports("avx512f") ? 512 : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 256 : 0;
  if (m.vector_bits) {
    const int64_t iters = 20'000'000;
    const double flops_per_iter = 12.0 * (m.vector_bits / 32) * 2.0;
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
      std::vector<double> rate(static_cast<size_t>(threads), 0.0);
#pragma omp parallel num_threads(threads)
      {
        auto t0 = std::chrono::steady_clock::now();
        volatile double sink = m.vector_bits == 512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
        (void)sink;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        rate[static_cast<size_t>(omp_get_thread_num())] = flops_per_iter * static_cast<double>(iters) / s * 1e-9;
      }
      double slowest = rate[0];
      for (double r : rate) slowest = std::min(slowest, r);
      best = std::max(best, slowest);
    }
    m.peak_per_core = best;
  }
  {
    const size_t bytes = size_t(256) << 20;
    std::vector<char> a(bytes, 1), b(bytes, 2);
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      std::memcpy(b.data(), a.data(), bytes);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      a[static_cast<size_t>(rep)] = b[static_cast<size_t>(rep) + 1];
    }
    m.copy_gbs = 2.0 * static_cast<double>(bytes) / best * 1e-9;
  }
  for (const char* v : {"OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MESHFLOW_GEMM", "DNNL_MAX_CPU_ISA"}) {
    const char* e = std::getenv(v);
    m.environment += std::string(m.environment.empty() ? "" : " ") + v + "=" + (e ? e : "(unset)");
  }
  return m;
}

inline void print_machine(const Machine& m, int threads) {
  std::printf("machine: %s FMA, peak %.0f GFLOP/s per core (measured), %.0f on %d thread(s); memcpy %.1f GB/s; %s%s%s\n",
              m.vector_bits == 512 ? "AVX-512" : m.vector_bits == 256 ? "AVX2" : "no", m.peak_per_core,
              m.peak(threads), threads, m.copy_gbs, m.environment.c_str(),
              m.blas_config.empty() ? "" : "; BLAS: ", m.blas_config.c_str());
}

}  // namespace bench
