// What every CUDA kernel file shares: checked calls that name the call, file and line, the stream
// of an execution context, a device guard, and the geometry of a strided tensor for kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "meshflow/core/op.h"

namespace meshflow::cu {

[[noreturn]] void throw_cuda_error(int code, const char* name, const char* what, const char* call, const char* file,
                                   int line);

}  // namespace meshflow::cu

// MF_CUDA_CHECK(cudaMemcpyAsync(...)): a failure throws meshflow::Error naming the call, the
// CUDA error and where it was made.
#define MF_CUDA_CHECK(call)                                                                          \
  do {                                                                                               \
    cudaError_t mf_err_ = (call);                                                                    \
    if (mf_err_ != cudaSuccess)                                                                      \
      ::meshflow::cu::throw_cuda_error(static_cast<int>(mf_err_), cudaGetErrorName(mf_err_),       \
                                         cudaGetErrorString(mf_err_), #call, __FILE__, __LINE__);    \
  } while (0)

// After a <<<launch>>>: checks the launch itself (bad configuration), not the kernel's completion.
#define MF_CUDA_CHECK_LAUNCH() MF_CUDA_CHECK(cudaGetLastError())

namespace meshflow::cu {

inline cudaStream_t stream_of(const ExecContext& ctx) { return static_cast<cudaStream_t>(ctx.stream()); }

// The stream Meshflow queues work on for a device (created on first use, non-blocking).
cudaStream_t current_stream(int device_index);

// Makes a device current for the guard's lifetime and restores the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// A tensor's geometry as a kernel reads it: sizes and element strides of up to kMaxDims dims
// (strides already broadcast to the output's shape: 0 on broadcast dims).
inline constexpr int kMaxDims = 8;
struct Geometry {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};
};

// The geometry of `t` read at `out_shape` (t broadcast to it); throws past kMaxDims dims.
Geometry geometry_of(const Tensor& t, const Shape& out_shape);
// True when every geometry is the dense row-major layout of out_shape (a flat loop serves).
bool all_dense(const Shape& out_shape, std::initializer_list<const Geometry*> geoms);

// 1-D launch configuration: 256 threads, enough blocks to cover n (capped; kernels grid-stride).
inline unsigned grid_for(int64_t n, int threads = 256) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

}  // namespace meshflow::cu

// cuBLAS / cuBLASLt ---------------------------------------------------------------------------------
// The status travels as an int (CUBLAS_STATUS_SUCCESS is 0) so this header needs no cuBLAS include;
// blas_handles.cpp turns it into cuBLAS's own name and message.
namespace meshflow::cu {
[[noreturn]] void throw_cublas_error(int status, const char* call, const char* file, int line);
}  // namespace meshflow::cu

// MF_CUBLAS_CHECK(cublasLtMatmul(...)): a failure throws meshflow::Error naming the call, the
// cuBLAS status and where it was made (for cuBLAS and cuBLASLt calls alike).
#define MF_CUBLAS_CHECK(call)                                                                   \
  do {                                                                                          \
    const int mf_status_ = static_cast<int>(call);                                              \
    if (mf_status_ != 0) ::meshflow::cu::throw_cublas_error(mf_status_, #call, __FILE__, __LINE__); \
  } while (0)

struct cublasLtContext;  // cublasLtHandle_t is a cublasLtContext*

namespace meshflow::cu {
// The cuBLASLt handle of a device, made on first use and kept for the process. cuBLASLt takes
// the stream with each call and keeps no per-call state in the handle, so threads share it.
cublasLtContext* cublaslt_handle(int device_index);
}  // namespace meshflow::cu
