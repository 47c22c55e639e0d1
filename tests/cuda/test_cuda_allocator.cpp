// The CUDA caching allocator under churn: many sizes, tensors freed in a scrambled order, across
// the host and device, with its statistics checked exactly against what the test holds.
#include <random>

#include "test_util.h"

using namespace meshflow;

namespace {
const Device kGpu = cuda(0);
}

TEST(CudaAllocator, ChurnLeavesNothingHeldAndTheStatisticsAdd) {
  empty_cache(kGpu);
  const MemoryStats before = memory_stats(kGpu);
  std::mt19937_64 rng(5);
  std::vector<Tensor> live;
  int64_t allocs = 0;
  for (int round = 0; round < 2000; ++round) {
    const int64_t n = static_cast<int64_t>(rng() % 3000000);
    live.push_back(empty({n}, {.dtype = DType::F32, .device = kGpu}));
    ++allocs;
    if (live.size() > 40 || rng() % 3 == 0) {
      size_t k = rng() % live.size();
      live.erase(live.begin() + static_cast<long>(k));
    }
    const MemoryStats s = memory_stats(kGpu);
    int64_t held = 0;
    for (const Tensor& t : live) held += t.numel() * 4;
    // What the allocator says is held covers the tensors (rounded up by at most 2 MiB each).
    ASSERT_GE(s.current_bytes - before.current_bytes, held);
    ASSERT_LE(s.current_bytes - before.current_bytes, held + int64_t(live.size()) * (2 << 20));
    ASSERT_GE(s.reserved_bytes, s.current_bytes);
    ASSERT_GE(s.peak_bytes, s.current_bytes);
  }
  live.clear();
  const MemoryStats after = memory_stats(kGpu);
  EXPECT_EQ(after.current_bytes, before.current_bytes);
  EXPECT_EQ(after.num_allocs - before.num_allocs, allocs);
  EXPECT_GT(after.num_cache_hits - before.num_cache_hits, allocs / 2) << "the cache should serve most requests";
  empty_cache(kGpu);
  EXPECT_EQ(memory_stats(kGpu).reserved_bytes, memory_stats(kGpu).current_bytes);
}

TEST(CudaAllocator, DataSurvivesReuseInStreamOrder) {
  // A block freed while a kernel that reads it is still queued is handed out again: the values
  // computed from it must still be right (all work is on one stream).
  Tensor keep;
  for (int i = 0; i < 50; ++i) {
    Tensor a = full({1 << 20}, double(i), {.device = kGpu});
    Tensor b = a * 2.0;  // queued
    a = Tensor();        // freed while b's kernel may still run
    Tensor c = full({1 << 20}, -1.0, {.device = kGpu});  // likely reuses a's block
    keep = b + c;
    EXPECT_DOUBLE_EQ(keep.to(cpu()).at({12345}), 2.0 * i - 1.0);
  }
}

TEST(CudaAllocator, PeakAndReset) {
  reset_peak_memory(kGpu);
  const int64_t base = memory_stats(kGpu).current_bytes;
  {
    Tensor t = empty({8 << 20}, {.dtype = DType::F32, .device = kGpu});  // 32 MiB
    EXPECT_GE(memory_stats(kGpu).peak_bytes - base, int64_t(32) << 20);
  }
  reset_peak_memory(kGpu);
  EXPECT_EQ(memory_stats(kGpu).peak_bytes, memory_stats(kGpu).current_bytes);
}
