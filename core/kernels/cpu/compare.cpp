// CPU kernels for the comparisons (eq, ne, lt, le, gt, ge) and logical ops (logical_and, logical_or,
// logical_not), whose definitions are in core/src/ops/compare.cpp.
#include "internal/elementwise.h"

namespace meshflow {
namespace {

struct EqOp { template <typename C> bool operator()(C a, C b) const { return a == b; } };
struct NeOp { template <typename C> bool operator()(C a, C b) const { return a != b; } };
struct LtOp { template <typename C> bool operator()(C a, C b) const { return a < b; } };
struct LeOp { template <typename C> bool operator()(C a, C b) const { return a <= b; } };
struct GtOp { template <typename C> bool operator()(C a, C b) const { return a > b; } };
struct GeOp { template <typename C> bool operator()(C a, C b) const { return a >= b; } };
struct AndOp { bool operator()(bool a, bool b) const { return a && b; } };
struct OrOp { bool operator()(bool a, bool b) const { return a || b; } };

void logical_kernel_check(const std::vector<Tensor>& in) {
  for (const Tensor& t : in) MF_CHECK(t.dtype() == DType::Bool, "logical op kernel: expected bool inputs");
}

template <typename Op>
void logical_binary_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  logical_kernel_check(in);
  internal::binary_loop<bool, bool>(in[0], in[1], out[0], Op{});
}

void logical_not_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  logical_kernel_check(in);
  internal::unary_loop<bool, bool>(in[0], out[0], [](bool x) { return !x; });
}

MF_STATIC_INIT {
  using internal::compare_kernel;
  register_kernel("eq", DeviceType::CPU, compare_kernel<EqOp>);
  register_kernel("ne", DeviceType::CPU, compare_kernel<NeOp>);
  register_kernel("lt", DeviceType::CPU, compare_kernel<LtOp>);
  register_kernel("le", DeviceType::CPU, compare_kernel<LeOp>);
  register_kernel("gt", DeviceType::CPU, compare_kernel<GtOp>);
  register_kernel("ge", DeviceType::CPU, compare_kernel<GeOp>);
  register_kernel("logical_and", DeviceType::CPU, logical_binary_kernel<AndOp>);
  register_kernel("logical_or", DeviceType::CPU, logical_binary_kernel<OrOp>);
  register_kernel("logical_not", DeviceType::CPU, logical_not_kernel);
}

}  // namespace
}  // namespace meshflow
