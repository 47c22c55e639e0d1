// CPU kernels for add, sub, mul, div.
#include "internal/elementwise.h"

namespace meshflow {
namespace {
struct AddOp { template <typename C> C operator()(C a, C b) const { return a + b; } };
struct SubOp { template <typename C> C operator()(C a, C b) const { return a - b; } };
struct MulOp { template <typename C> C operator()(C a, C b) const { return a * b; } };
struct NegOp { template <typename C> C operator()(C a) const { return -a; } };
struct DivOp { template <typename C> C operator()(C a, C b) const { return a / b; } };

MF_STATIC_INIT {
  register_kernel("add", DeviceType::CPU, internal::binary_kernel<AddOp>);
  register_kernel("sub", DeviceType::CPU, internal::binary_kernel<SubOp>);
  register_kernel("mul", DeviceType::CPU, internal::binary_kernel<MulOp>);
  register_kernel("neg", DeviceType::CPU, [](const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
    dispatch_dtype(in[0].dtype(), "neg", [&]<typename T>() {
      if constexpr (!std::is_same_v<T, bool>) internal::unary_loop<T, T>(in[0], out[0], NegOp{});
    });
  });
  register_kernel("div", DeviceType::CPU, internal::binary_kernel<DivOp>);
}
}  // namespace
}  // namespace meshflow
