// CPU kernels for maximum, minimum, pow and pow_scalar, whose definitions are in
// core/src/ops/binary_math.cpp (f16/bf16 compute in float).
#include <cmath>

#include "internal/elementwise.h"

namespace meshflow {
namespace {

// NaN propagates (a != a only for NaN); ties pick a, matching the backward's tie rule.
struct MaximumOp { template <typename C> C operator()(C a, C b) const { return (a >= b || a != a) ? a : b; } };
struct MinimumOp { template <typename C> C operator()(C a, C b) const { return (a <= b || a != a) ? a : b; } };
struct PowOp { template <typename C> C operator()(C a, C b) const { return std::pow(a, b); } };
struct PowScalarOp {
  double e;
  explicit PowScalarOp(const Attrs& a) : e(a.f("exponent")) {}
  template <typename C> C operator()(C x) const { return e == 2.0 ? x * x : std::pow(x, C(e)); }
};

void pow_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  dispatch_dtype(in[0].dtype(), "pow", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      internal::binary_loop<T, T>(in[0], in[1], out[0], PowOp{});
    } else {
      MF_THROW("pow: needs floating tensors, got ", dtype_name(in[0].dtype()));
    }
  });
}

MF_STATIC_INIT {
  register_kernel("maximum", DeviceType::CPU, internal::binary_kernel<MaximumOp>);
  register_kernel("minimum", DeviceType::CPU, internal::binary_kernel<MinimumOp>);
  register_kernel("pow", DeviceType::CPU, pow_kernel);
  register_kernel("pow_scalar", DeviceType::CPU, internal::unary_float_attr_kernel<PowScalarOp>);
}

}  // namespace
}  // namespace meshflow
