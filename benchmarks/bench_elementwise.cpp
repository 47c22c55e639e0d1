// Elementwise benchmark: 16M-float add bandwidth next to memcpy, and eager dispatch overhead of tiny adds.
// Run with OMP_NUM_THREADS=1 and =2; it prints ratios and never fails.
#include <cstdio>
#include <cstring>
#include <vector>

#include "meshflow/core/core.h"
#include "timing.h"

using namespace meshflow;

int main() {
  constexpr int64_t kElems = 16 << 20;  // 16M floats = 64 MiB per tensor
  constexpr double kMiB = 1024.0 * 1024.0;
  const double bytes = 3 * 64 * kMiB;   // read a, read b, write out
  std::printf("threads: %d\n", num_threads());

  // memcpy of a 64 MiB buffer into a fresh-but-touched destination: read + write = 2 x 64 MiB.
  std::vector<char> src(kElems * 4, 1), dst(kElems * 4, 0);
  double t_memcpy = bench::best_seconds({.repeats = 10}, [&] { std::memcpy(dst.data(), src.data(), src.size()); });
  double memcpy_gbs = 2 * 64 * kMiB / t_memcpy / 1e9;

  Tensor a = full({kElems}, 1.5f), b = full({kElems}, 2.25f);
  Tensor sink;
  // The first call maps fresh pages (a fault per 4 KiB); later calls reuse the caching
  // allocator's block (Note [CPU caching allocator]), which is what a training loop sees.
  auto t0 = bench::Clock::now();
  sink = add(a, b);
  double t_cold = bench::seconds_since(t0);
  double t_add = bench::best_seconds({.repeats = 10}, [&] { sink = Tensor(); sink = add(a, b); });
  double add_gbs = bytes / t_add / 1e9;
  std::printf("add 16M f32 (out of place): %.2f ms, %.2f GB/s\n", t_add * 1e3, add_gbs);
  std::printf("  first call (fresh pages):  %.2f ms, %.2f GB/s\n", t_cold * 1e3, bytes / t_cold / 1e9);
  std::printf("memcpy 64 MiB:              %.2f ms, %.2f GB/s\n", t_memcpy * 1e3, memcpy_gbs);
  std::printf("add / memcpy bandwidth:     %.2fx (target >= 0.8x)\n", add_gbs / memcpy_gbs);

  for (int64_t n : {int64_t(1), int64_t(16)}) {
    Tensor x = full({n}, 1.0f), y = full({n}, 2.0f);
    // The 1000 warm-up calls warm caches and the allocator.
    double per_call =
        bench::median_seconds({.repeats = 51, .calls = 2000, .warmups = 1000}, [&] { sink = add(x, y); });
    std::printf("add of two %2lld-element tensors: %.3f us per call (target <= 1 us)\n", (long long)n,
                per_call * 1e6);
  }
  return 0;
}
