// CUDA kernel of bias_gelu: gelu(x + bias) with bias broadcast along the last axis, one pass
// (the CPU twin is core/kernels/cpu/bias_gelu.cpp).
#include "gelu_cuda.cuh"

namespace meshflow {
namespace {

template <typename Form>
struct BiasGelu {
  template <typename C> __device__ C operator()(C x, C b) const { return Form{}(x + b); }
};

void bias_gelu_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                      const Attrs& a) {
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_float(in[0].dtype(), "bias_gelu", [&]<typename T>() {
    if (a.b("approximate")) {
      cu::launch_binary<T, T>(ctx, in[0], in[1], out[0], BiasGelu<cu::GeluTanhOp>{});
    } else {
      cu::launch_binary<T, T>(ctx, in[0], in[1], out[0], BiasGelu<cu::GeluErfOp>{});
    }
  });
}

MF_STATIC_INIT { register_kernel("bias_gelu", DeviceType::CUDA, bias_gelu_kernel); }

}  // namespace
}  // namespace meshflow
