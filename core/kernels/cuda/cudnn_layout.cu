// The strided 4-D copy behind cuDNN's layout changes (see copy_4d in cudnn_util.h): one thread per
// element, elements moved as raw bits.
#include "cudnn_util.h"
#include "device_types.cuh"

namespace meshflow::cu {
namespace {

struct Copy4 {
  int64_t size[4], src[4], dst[4];
};

template <typename R>
__global__ void copy_4d_kernel(const R* __restrict__ src, R* __restrict__ dst, Copy4 g, int64_t total) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = e, s = 0, d = 0;
    for (int k = 3; k >= 0; --k) {
      const int64_t i = rem % g.size[k];
      rem /= g.size[k];
      s += i * g.src[k];
      d += i * g.dst[k];
    }
    dst[d] = src[s];
  }
}

}  // namespace

void copy_4d(const void* src, const Dims4& src_strides, void* dst, const Dims4& dst_strides, const Dims4& sizes,
             size_t elem_size, cudaStream_t stream) {
  const int64_t total = sizes[0] * sizes[1] * sizes[2] * sizes[3];
  if (total == 0) return;
  Copy4 g;
  for (int k = 0; k < 4; ++k) {
    g.size[k] = sizes[k];
    g.src[k] = src_strides[k];
    g.dst[k] = dst_strides[k];
  }
  auto launch = [&]<typename R>() {
    copy_4d_kernel<R><<<grid_for(total), 256, 0, stream>>>(static_cast<const R*>(src), static_cast<R*>(dst), g, total);
    MF_CUDA_CHECK_LAUNCH();
  };
  switch (elem_size) {
    case 1: launch.template operator()<uint8_t>(); break;
    case 2: launch.template operator()<uint16_t>(); break;
    case 4: launch.template operator()<uint32_t>(); break;
    case 8: launch.template operator()<uint64_t>(); break;
    default: MF_THROW("copy_4d: unsupported element size ", elem_size);
  }
}

}  // namespace meshflow::cu
