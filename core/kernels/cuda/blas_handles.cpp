// cuBLAS/cuBLASLt errors as meshflow::Error, and the per-device cuBLASLt handles.
#include <cublasLt.h>

#include <mutex>
#include <vector>

#include "cuda_util.h"
#include "meshflow/core/error.h"

namespace meshflow::cu {

void throw_cublas_error(int status, const char* call, const char* file, int line) {
  const auto s = static_cast<cublasStatus_t>(status);
  MF_THROW("cuBLAS error ", cublasGetStatusName(s), " (", status, "): ", cublasGetStatusString(s), "\n  in ", call,
           "\n  at ", file, ":", line);
}

cublasLtContext* cublaslt_handle(int device_index) {
  MF_CHECK(device_index >= 0, "cublaslt_handle: bad device index ", device_index);
  static std::mutex mu;
  static std::vector<cublasLtHandle_t> handles;
  std::lock_guard<std::mutex> lock(mu);
  if (handles.size() <= static_cast<size_t>(device_index)) handles.resize(static_cast<size_t>(device_index) + 1, nullptr);
  cublasLtHandle_t& h = handles[static_cast<size_t>(device_index)];
  if (!h) {
    // Made with the device current so any context state it keeps belongs to that device. Never
    // destroyed: tensors and kernels may run during static destruction, and the driver frees it.
    DeviceGuard guard(device_index);
    MF_CUBLAS_CHECK(cublasLtCreate(&h));
  }
  return h;
}

}  // namespace meshflow::cu
