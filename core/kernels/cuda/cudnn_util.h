// cuDNN helpers for the files that use cuDNN (cudnn_* and *_cudnn.*, such as conv_cudnn.cpp;
// compiled only when cuDNN is found): checked calls that throw meshflow::Error, and leased
// per-device handles bound to the kernel's stream.
#pragma once

#include <cudnn.h>

#include <array>

#include "cuda_util.h"

namespace meshflow::cu {
[[noreturn]] void throw_cudnn_error(int status, const char* call, const char* file, int line);
}  // namespace meshflow::cu

// MF_CUDNN_CHECK(cudnnConvolutionForward(...)): a failure throws meshflow::Error naming the call,
// cuDNN's status and its last error message, and where the call was made.
#define MF_CUDNN_CHECK(call)                                                                          \
  do {                                                                                                \
    const cudnnStatus_t mf_status_ = (call);                                                          \
    if (mf_status_ != CUDNN_STATUS_SUCCESS)                                                           \
      ::meshflow::cu::throw_cudnn_error(static_cast<int>(mf_status_), #call, __FILE__, __LINE__);     \
  } while (0)

namespace meshflow::cu {

// A cuDNN handle for one kernel call: taken from the device's pool (made on first need), set to
// `stream`, returned when the lease ends. A cuDNN handle must not be used by two threads at once,
// so each concurrent caller gets its own; handles are made once and reused, never destroyed.
class CudnnHandle {
 public:
  CudnnHandle(int device_index, cudaStream_t stream);
  ~CudnnHandle();
  CudnnHandle(const CudnnHandle&) = delete;
  CudnnHandle& operator=(const CudnnHandle&) = delete;
  cudnnHandle_t get() const { return handle_; }

 private:
  int device_;
  cudnnHandle_t handle_ = nullptr;
};

}  // namespace meshflow::cu

namespace meshflow::cu {

using Dims4 = std::array<int64_t, 4>;

// Copies a 4-D array of `sizes` (any logical order) between two strided layouts, strides in
// elements of `elem_size` bytes (1, 2, 4 or 8), queued on `stream`: the layout changes cuDNN
// needs (HWIO weights to KRSC/KCRS, NHWC to NCHW, into or out of a padded buffer). Defined in
// cudnn_layout.cu.
void copy_4d(const void* src, const Dims4& src_strides, void* dst, const Dims4& dst_strides, const Dims4& sizes,
             size_t elem_size, cudaStream_t stream);

}  // namespace meshflow::cu
