// The allocator registry and the CPU caching allocator.
#include "meshflow/core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "meshflow/core/error.h"

namespace meshflow {
namespace {

// Note [CPU caching allocator]: freeing and re-mapping large blocks costs a page fault per 4 KiB
// on every use (glibc returns big blocks to the system), which halves the bandwidth of an
// elementwise op on a fresh output. Blocks of 64 KiB and more are kept, keyed by their rounded
// size, and reused. Small blocks are kept too, in one free list per 64-byte size class (up to
// 16 MiB in all): aligned_alloc costs about 600 instructions a call, a tenth of a tiny op.
class CpuAllocator final : public Allocator {
 public:
  static constexpr size_t kAlign = 64;
  static constexpr size_t kCacheMin = 64 * 1024;
  static constexpr int64_t kCacheLimit = int64_t(4) << 30;
  static constexpr int64_t kSmallCacheLimit = int64_t(16) << 20;

  ~CpuAllocator() override { empty_cache(); }

  void* allocate(size_t bytes) override {
    size_t rounded = round_(bytes);
    void* p = nullptr;
    bool hit = false;
    if (rounded < kCacheMin) {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<void*>& list = small_[rounded / kAlign];
      if (!list.empty()) {
        p = list.back();
        list.pop_back();
        cached_bytes_ -= static_cast<int64_t>(rounded);
        small_bytes_ -= static_cast<int64_t>(rounded);
        hit = true;
      }
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = cache_.find(rounded);
      if (it != cache_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= static_cast<int64_t>(rounded);
        hit = true;
      }
    }
    if (!p) {
      p = std::aligned_alloc(kAlign, rounded);
      MF_CHECK(p != nullptr, "out of host memory: could not allocate ", bytes, " bytes");
    }
    int64_t cur = current_.fetch_add(static_cast<int64_t>(rounded)) + static_cast<int64_t>(rounded);
    int64_t peak = peak_.load();
    while (cur > peak && !peak_.compare_exchange_weak(peak, cur)) {}
    allocs_.fetch_add(1);
    if (hit) hits_.fetch_add(1);
    return p;
  }

  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    size_t rounded = round_(bytes);
    current_.fetch_sub(static_cast<int64_t>(rounded));
    if (rounded < kCacheMin) {
      std::lock_guard<std::mutex> lock(mu_);
      if (small_bytes_ + static_cast<int64_t>(rounded) <= kSmallCacheLimit) {
        small_[rounded / kAlign].push_back(p);
        small_bytes_ += static_cast<int64_t>(rounded);
        cached_bytes_ += static_cast<int64_t>(rounded);
        return;
      }
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_bytes_ + static_cast<int64_t>(rounded) <= kCacheLimit) {
        cache_[rounded].push_back(p);
        cached_bytes_ += static_cast<int64_t>(rounded);
        return;
      }
    }
    std::free(p);
  }

  MemoryStats stats() const override {
    MemoryStats s;
    s.current_bytes = current_.load();
    s.peak_bytes = peak_.load();
    {
      std::lock_guard<std::mutex> lock(mu_);
      s.reserved_bytes = s.current_bytes + cached_bytes_;
    }
    s.num_allocs = allocs_.load();
    s.num_cache_hits = hits_.load();
    return s;
  }

  void reset_peak() override { peak_.store(current_.load()); }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, ptrs] : cache_)
      for (void* p : ptrs) std::free(p);
    cache_.clear();
    for (auto& list : small_) {
      for (void* p : list) std::free(p);
      list.clear();
    }
    cached_bytes_ = 0;
    small_bytes_ = 0;
  }

 private:
  static size_t round_(size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes < kCacheMin) return (bytes + kAlign - 1) / kAlign * kAlign;
    // Round large blocks up to 1/32 of the power of two below them, so near sizes share a bucket
    // and no block wastes more than about 3%. (Rounding to 1/8 of the power of two above wasted up
    // to 25%: ZeRO's half of a 16 MiB kernel plus its bias, 8 MiB + 4 KiB, took 10 MiB.)
    size_t p2 = 1;
    while (p2 * 2 <= bytes) p2 <<= 1;
    size_t step = std::max<size_t>(p2 / 32, 4096);
    return (bytes + step - 1) / step * step;
  }

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> cache_;
  std::vector<void*> small_[kCacheMin / kAlign];  // index: rounded size / kAlign
  int64_t cached_bytes_ = 0;
  int64_t small_bytes_ = 0;
  std::atomic<int64_t> current_{0}, peak_{0}, allocs_{0}, hits_{0};
};

struct Registry {
  std::mutex mu;
  AllocatorFactory factories[kNumDeviceTypes];
  std::map<std::pair<int, int>, std::unique_ptr<Allocator>> allocators;
  CopyFn copies[kNumDeviceTypes][kNumDeviceTypes] = {};
  DeviceCountFn counters[kNumDeviceTypes] = {};
  SyncFn syncs[kNumDeviceTypes] = {};
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry();  // never destroyed: tensors may outlive static destruction order
    reg->factories[static_cast<int>(DeviceType::CPU)] = [](int) { return std::make_unique<CpuAllocator>(); };
    reg->copies[0][0] = [](void* dst, Device, const void* src, Device, size_t bytes) {
      std::memcpy(dst, src, bytes);
    };
    return reg;
  }();
  return *r;
}

}  // namespace

void register_device_counter(DeviceType type, DeviceCountFn fn) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.counters[static_cast<int>(type)] = fn;
}

int device_count(DeviceType type) {
  if (type == DeviceType::CPU) return 1;
  DeviceCountFn fn;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    fn = r.counters[static_cast<int>(type)];
  }
  return fn ? fn() : 0;
}

void register_synchronize(DeviceType type, SyncFn fn) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.syncs[static_cast<int>(type)] = fn;
}

void synchronize(Device device) {
  SyncFn fn;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    fn = r.syncs[static_cast<int>(device.type)];
  }
  if (fn) fn(device.index);
}

void register_allocator(DeviceType type, AllocatorFactory factory) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.factories[static_cast<int>(type)] = std::move(factory);
}

bool has_allocator(DeviceType type) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return static_cast<bool>(r.factories[static_cast<int>(type)]);
}

// The registry's allocator for a device, made on first use.
static Allocator& allocator_lookup(Device device) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto key = std::make_pair(static_cast<int>(device.type), device.index);
  auto it = r.allocators.find(key);
  if (it != r.allocators.end()) return *it->second;
  auto& factory = r.factories[static_cast<int>(device.type)];
  MF_CHECK(factory, "device ", device.str(), ": no allocator is registered for ", device_type_name(device.type),
           device.is_cuda() ? " (this build has no CUDA backend, or it found no GPU)" : "");
  MF_CHECK(device.index >= 0, "device ", device.str(), ": negative device index");
  auto alloc = factory(device.index);
  auto& ref = *alloc;
  r.allocators.emplace(key, std::move(alloc));
  return ref;
}

Allocator& allocator_for(Device device) {
  // Allocators are never removed, so each thread remembers the last one it looked up: every
  // tensor allocation asks, and the lock plus map lookup cost as much as a tiny op's kernel.
  [[gnu::tls_model("initial-exec")]] thread_local Device last_device;
  [[gnu::tls_model("initial-exec")]] thread_local Allocator* last = nullptr;
  if (last && last_device == device) return *last;
  Allocator& found = allocator_lookup(device);
  last_device = device;
  last = &found;
  return found;
}

MemoryStats memory_stats(Device device) { return allocator_for(device).stats(); }
void reset_peak_memory(Device device) { allocator_for(device).reset_peak(); }
void empty_cache(Device device) { allocator_for(device).empty_cache(); }

void register_copy(DeviceType from, DeviceType to, CopyFn fn) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.copies[static_cast<int>(from)][static_cast<int>(to)] = fn;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  CopyFn fn;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    fn = r.copies[static_cast<int>(src_device.type)][static_cast<int>(dst_device.type)];
  }
  MF_CHECK(fn, "copy from ", src_device.str(), " to ", dst_device.str(), ": no copy function is registered");
  fn(dst, dst_device, src, src_device, bytes);
}

}  // namespace meshflow
