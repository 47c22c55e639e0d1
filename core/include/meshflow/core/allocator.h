// The allocator interface, per-device registration and memory statistics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "meshflow/core/device.h"

namespace meshflow {

struct MemoryStats {
  int64_t current_bytes = 0;    // held by live tensors
  int64_t peak_bytes = 0;       // the most held at once since the last reset_peak
  int64_t reserved_bytes = 0;   // held from the system, including the allocator's cache
  int64_t num_allocs = 0;       // allocations served
  int64_t num_cache_hits = 0;   // of those, served from the cache
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void empty_cache() {}
};

// A device type registers a factory; allocator_for(Device) creates one allocator per device index
// on first use. core registers CPU; the CUDA backend registers CUDA when it is built in.
using AllocatorFactory = std::function<std::unique_ptr<Allocator>(int index)>;
void register_allocator(DeviceType type, AllocatorFactory factory);
Allocator& allocator_for(Device device);
bool has_allocator(DeviceType type);

MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);
void empty_cache(Device device);

// How many devices of a type this process can use: `cpu` has any number of virtual devices
// (returns 1: the real one); `cuda` counts the visible GPUs, 0 when the CUDA backend is not built
// in or no GPU or driver is present. Backends register their counter.
using DeviceCountFn = int (*)();
void register_device_counter(DeviceType type, DeviceCountFn fn);
int device_count(DeviceType type);
// Waits until the device has finished all queued work (a no-op on the host).
using SyncFn = void (*)(int index);
void register_synchronize(DeviceType type, SyncFn fn);
void synchronize(Device device);

// Copies bytes between devices; a device type that can copy registers its function.
using CopyFn = void (*)(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void register_copy(DeviceType from, DeviceType to, CopyFn fn);
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace meshflow
