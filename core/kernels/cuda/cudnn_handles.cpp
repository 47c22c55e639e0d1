// cuDNN errors as meshflow::Error and the per-device pools of cuDNN handles (see cudnn_util.h).
#include <map>
#include <mutex>
#include <vector>

#include "cudnn_util.h"
#include "meshflow/core/error.h"

namespace meshflow::cu {

void throw_cudnn_error(int status, const char* call, const char* file, int line) {
  // cuDNN 9 keeps a more specific message for the last failure on this thread (e.g. which
  // descriptor field it refused); it is often the useful part.
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  MF_THROW("cuDNN error ", cudnnGetErrorString(static_cast<cudnnStatus_t>(status)), " (", status, ")",
           detail[0] ? ": " : "", detail, "\n  in ", call, "\n  at ", file, ":", line);
}

namespace {

std::mutex g_mu;
std::map<int, std::vector<cudnnHandle_t>>& free_handles() {
  static auto* pools = new std::map<int, std::vector<cudnnHandle_t>>();  // leaked: outlives static destructors
  return *pools;
}

}  // namespace

CudnnHandle::CudnnHandle(int device_index, cudaStream_t stream) : device_(device_index) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto& pool = free_handles()[device_index];
    if (!pool.empty()) {
      handle_ = pool.back();
      pool.pop_back();
    }
  }
  if (!handle_) {
    DeviceGuard guard(device_index);  // a handle belongs to the device current at its creation
    MF_CUDNN_CHECK(cudnnCreate(&handle_));
  }
  const cudnnStatus_t st = cudnnSetStream(handle_, stream);
  if (st != CUDNN_STATUS_SUCCESS) {
    std::lock_guard<std::mutex> lock(g_mu);
    free_handles()[device_].push_back(handle_);
    throw_cudnn_error(static_cast<int>(st), "cudnnSetStream(handle_, stream)", __FILE__, __LINE__);
  }
}

CudnnHandle::~CudnnHandle() {
  std::lock_guard<std::mutex> lock(g_mu);
  free_handles()[device_].push_back(handle_);
}

}  // namespace meshflow::cu
