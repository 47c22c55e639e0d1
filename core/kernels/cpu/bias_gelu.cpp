// CPU kernel of bias_gelu: gelu(x + bias) with bias broadcast along the last axis, one pass.
#pragma GCC optimize("no-trapping-math")
#include "internal/elementwise.h"
#include "internal/gelu.h"

namespace meshflow {
namespace {

template <typename Form>
struct BiasGelu {
  template <typename C> C operator()(C x, C b) const { return Form{}(x + b); }
};

void bias_gelu_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  dispatch_float(in[0].dtype(), "bias_gelu", [&]<typename T>() {
    if (a.b("approximate")) {
      internal::binary_loop<T, T>(in[0], in[1], out[0], BiasGelu<internal::GeluTanhOp>{});
    } else {
      internal::binary_loop<T, T>(in[0], in[1], out[0], BiasGelu<internal::GeluErfOp>{});
    }
  });
}

MF_STATIC_INIT { register_kernel("bias_gelu", DeviceType::CPU, bias_gelu_kernel); }

}  // namespace
}  // namespace meshflow
