// A host allocator for the harnesses that build tensors: it refuses (with meshflow::Error, as the
// real one does when the system says no) once the tensors alive would pass 64 MiB, so inputs that
// ask for huge layers are cheap rejections instead of gigabytes allocated and filled per input.
#pragma once

#include <atomic>
#include <cstdlib>
#include <memory>

#include "meshflow/core/allocator.h"
#include "meshflow/core/error.h"

namespace mf_fuzz {

class CappedAllocator final : public meshflow::Allocator {
 public:
  static constexpr int64_t kCap = int64_t(64) << 20;

  void* allocate(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    MF_CHECK(rounded >= bytes && static_cast<int64_t>(rounded) >= 0 &&
                 current_.load() + static_cast<int64_t>(rounded) <= kCap,
             "out of host memory: could not allocate ", bytes, " bytes (the fuzz harness's cap is ", kCap, ")");
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    MF_CHECK(p != nullptr, "out of host memory: could not allocate ", bytes, " bytes");
    current_ += static_cast<int64_t>(rounded);
    allocs_ += 1;
    return p;
  }
  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    current_ -= static_cast<int64_t>((bytes + 63) / 64 * 64);
    std::free(p);
  }
  meshflow::MemoryStats stats() const override {
    return {.current_bytes = current_.load(), .num_allocs = allocs_.load()};
  }
  void reset_peak() override {}

 private:
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> allocs_{0};
};

// Call before the first tensor is made: the registry makes each device's allocator on first use.
inline void cap_host_memory() {
  meshflow::register_allocator(meshflow::DeviceType::CPU,
                               [](int) -> std::unique_ptr<meshflow::Allocator> { return std::make_unique<CappedAllocator>(); });
}

}  // namespace mf_fuzz
