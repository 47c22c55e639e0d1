// CPU kernel for pad, whose definition is in core/src/ops/pad.cpp: the output is filled with the
// constant, then the input is copied into its interior window.
#include "internal/copy.h"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

void pad_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& y = out[0];
  if (y.numel() == 0) return;
  internal::copy_cast_cpu(y, full({}, a.f("value"), {.dtype = y.dtype()}));
  const auto& pads = a.ints("pads");  // before_0, after_0, before_1, after_1, ...
  Tensor inner = y;
  for (int64_t d = 0; d < y.dim(); ++d) inner = internal::axis_window(inner, d, pads[2 * d], in[0].size(d));
  if (in[0].numel() > 0) internal::copy_cast_cpu(inner, in[0]);
}

MF_STATIC_INIT { register_kernel("pad", DeviceType::CPU, pad_kernel); }

}  // namespace
}  // namespace meshflow
