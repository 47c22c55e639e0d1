// The CUDA device type: checked errors, one stream per device, the caching allocator with its
// statistics, copies between host and GPUs, the device count. Registered at load time; with no
// driver or no GPU, device_count(cuda) is 0 and allocating on cuda:N says so.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_util.h"
#include "meshflow/core/allocator.h"
#include "meshflow/core/error.h"

namespace meshflow::cu {

void throw_cuda_error(int code, const char* name, const char* what, const char* call, const char* file, int line) {
  MF_THROW("CUDA error ", name, " (", code, "): ", what, "\n  in ", call, "\n  at ", file, ":", line);
}

namespace {

int visible_devices() {
  static const int count = [] {
    int n = 0;
    // No driver or no GPU is not an error here: the answer is 0 devices.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

void check_index(int index) {
  const int n = visible_devices();
  MF_CHECK(index >= 0 && index < n, "device cuda:", index, ": ",
           n == 0 ? std::string("no GPU is visible to this process (no driver, no device, or CUDA_VISIBLE_DEVICES)")
                  : "this process sees " + std::to_string(n) + " GPU(s): cuda:0..cuda:" + std::to_string(n - 1));
}

}  // namespace

DeviceGuard::DeviceGuard(int index) {
  MF_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != index) MF_CUDA_CHECK(cudaSetDevice(index));
}
DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

cudaStream_t current_stream(int index) {
  static std::mutex mu;
  static std::vector<cudaStream_t> streams;
  std::lock_guard<std::mutex> lock(mu);
  if (streams.empty()) streams.assign(static_cast<size_t>(std::max(visible_devices(), 1)), nullptr);
  check_index(index);
  if (!streams[index]) {
    DeviceGuard guard(index);
    MF_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[index], cudaStreamNonBlocking));
  }
  return streams[index];
}

namespace {

// Note [CUDA caching allocator]: cudaMalloc and cudaFree synchronize the device and cost tens of
// microseconds, so freed blocks are kept and reused, as PyTorch does. All of Meshflow's work on a
// device is queued on that device's one stream, so a block freed while kernels that read it are
// still queued can be handed out again at once: the next user's kernels queue behind them. Sizes
// round to 512 bytes below 1 MiB and to 2 MiB above; a request takes the smallest cached block
// that fits if it wastes under a quarter of it. When cudaMalloc fails the cache is released and
// the call retried once; then the error names the request and the statistics.
class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int index) : index_(index) { check_index(index); }
  ~CudaAllocator() override = default;  // blocks are left to the driver at exit (tensors may outlive us)

  void* allocate(size_t bytes) override {
    const size_t rounded = round_(bytes);
    void* p = nullptr;
    bool hit = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(rounded);
      if (it != free_.end() && it->first - rounded <= it->first / 4) {
        p = it->second;
        sizes_[p] = it->first;
        cached_bytes_ -= static_cast<int64_t>(it->first);
        current_ += static_cast<int64_t>(it->first);
        free_.erase(it);
        hit = true;
      }
    }
    if (!p) {
      DeviceGuard guard(index_);
      cudaError_t err = cudaMalloc(&p, rounded);
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        empty_cache();
        err = cudaMalloc(&p, rounded);
      }
      if (err != cudaSuccess) {
        cudaGetLastError();
        MemoryStats s = stats();
        MF_THROW("out of memory on cuda:", index_, ": could not allocate ", bytes, " bytes (", cudaGetErrorString(err),
                 "); held by tensors ", s.current_bytes, " bytes, reserved ", s.reserved_bytes, ", peak ",
                 s.peak_bytes);
      }
      std::lock_guard<std::mutex> lock(mu_);
      sizes_[p] = rounded;
      reserved_ += static_cast<int64_t>(rounded);
      current_ += static_cast<int64_t>(rounded);
    }
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = std::max(peak_, current_);
    ++allocs_;
    if (hit) ++hits_;
    return p;
  }

  void deallocate(void* p, size_t) override {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return;
    const size_t size = it->second;
    sizes_.erase(it);
    current_ -= static_cast<int64_t>(size);
    cached_bytes_ += static_cast<int64_t>(size);
    free_.emplace(size, p);
  }

  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    MemoryStats s;
    s.current_bytes = current_;
    s.peak_bytes = peak_;
    s.reserved_bytes = reserved_;
    s.num_allocs = allocs_;
    s.num_cache_hits = hits_;
    return s;
  }

  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = current_;
  }

  void empty_cache() override {
    DeviceGuard guard(index_);
    // Kernels still queued may read blocks freed into the cache: wait for them before cudaFree.
    MF_CUDA_CHECK(cudaStreamSynchronize(current_stream(index_)));
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, p] : free_) {
      MF_CUDA_CHECK(cudaFree(p));
      reserved_ -= static_cast<int64_t>(size);
    }
    free_.clear();
    cached_bytes_ = 0;
  }

 private:
  static size_t round_(size_t bytes) {
    if (bytes == 0) bytes = 1;
    constexpr size_t kSmall = 512, kLarge = size_t(2) << 20, kSplit = size_t(1) << 20;
    if (bytes < kSplit) return (bytes + kSmall - 1) / kSmall * kSmall;
    return (bytes + kLarge - 1) / kLarge * kLarge;
  }

  const int index_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::map<void*, size_t> sizes_;
  int64_t current_ = 0, peak_ = 0, reserved_ = 0, cached_bytes_ = 0, allocs_ = 0, hits_ = 0;
};

// Copies wait for the transfer: the host side may be pageable memory the caller frees next.
void copy_h2d(void* dst, Device d, const void* src, Device, size_t bytes) {
  if (!bytes) return;
  DeviceGuard guard(d.index);
  cudaStream_t s = current_stream(d.index);
  MF_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
  MF_CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_d2h(void* dst, Device, const void* src, Device s_dev, size_t bytes) {
  if (!bytes) return;
  DeviceGuard guard(s_dev.index);
  cudaStream_t s = current_stream(s_dev.index);
  MF_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
  MF_CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_d2d(void* dst, Device d, const void* src, Device s_dev, size_t bytes) {
  if (!bytes) return;
  if (d.index == s_dev.index) {
    DeviceGuard guard(d.index);
    MF_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, current_stream(d.index)));
    return;
  }
  // Between GPUs: the source's queued writes must land first, and the destination's stream must
  // not start on dst before the copy ends, so both sides wait.
  {
    DeviceGuard guard(s_dev.index);
    MF_CUDA_CHECK(cudaStreamSynchronize(current_stream(s_dev.index)));
  }
  DeviceGuard guard(d.index);
  cudaStream_t s = current_stream(d.index);
  MF_CUDA_CHECK(cudaMemcpyPeerAsync(dst, d.index, src, s_dev.index, bytes, s));
  MF_CUDA_CHECK(cudaStreamSynchronize(s));
}

MF_STATIC_INIT {
  register_device_counter(DeviceType::CUDA, [] { return visible_devices(); });
  register_allocator(DeviceType::CUDA, [](int index) -> std::unique_ptr<Allocator> {
    return std::make_unique<CudaAllocator>(index);
  });
  register_stream_provider(DeviceType::CUDA, [](int index) -> void* { return current_stream(index); });
  register_synchronize(DeviceType::CUDA, [](int index) {
    DeviceGuard guard(index);
    MF_CUDA_CHECK(cudaStreamSynchronize(current_stream(index)));
  });
  register_copy(DeviceType::CPU, DeviceType::CUDA, copy_h2d);
  register_copy(DeviceType::CUDA, DeviceType::CPU, copy_d2h);
  register_copy(DeviceType::CUDA, DeviceType::CUDA, copy_d2d);
}

}  // namespace

Geometry geometry_of(const Tensor& t, const Shape& out_shape) {
  MF_CHECK(out_shape.size() <= static_cast<size_t>(kMaxDims), "cuda kernels take tensors of up to ", kMaxDims,
           " dims, got ", shape_str(out_shape));
  Geometry g;
  g.ndim = static_cast<int>(out_shape.size());
  const int64_t off = static_cast<int64_t>(out_shape.size()) - t.dim();
  for (int i = 0; i < g.ndim; ++i) {
    g.size[i] = out_shape[i];
    const int64_t j = i - off;
    g.stride[i] = (j < 0 || t.shape()[j] == 1) ? 0 : t.strides()[j];
  }
  return g;
}

bool all_dense(const Shape& out_shape, std::initializer_list<const Geometry*> geoms) {
  Strides dense = contiguous_strides(out_shape);
  for (const Geometry* g : geoms)
    for (int i = 0; i < g->ndim; ++i)
      if (g->size[i] != 1 && g->stride[i] != dense[i]) return false;
  return true;
}

}  // namespace meshflow::cu
