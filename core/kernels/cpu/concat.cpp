// CPU kernels for concat and pad: strided copies of each input into its window of the output.
#include "internal/copy.h"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

// A view of `out` restricted to [start, start + len) along `axis` (no op recorded: kernels
// write through it directly).
Tensor window(const Tensor& out, int64_t axis, int64_t start, int64_t len) {
  Shape shape = out.shape();
  shape[axis] = len;
  return make_view(out, shape, out.strides(), out.offset() + (len > 0 ? start * out.strides()[axis] : 0));
}

void concat_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  const int64_t axis = normalize_axis(a.i("axis"), out[0].dim(), "concat");
  int64_t start = 0;
  for (const Tensor& x : in) {
    const int64_t len = x.size(axis);
    if (x.numel() > 0) internal::copy_cast_cpu(window(out[0], axis, start, len), x);
    start += len;
  }
}

void pad_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  Tensor& y = out[0];
  if (y.numel() == 0) return;
  internal::copy_cast_cpu(y, full({}, a.f("value"), {.dtype = y.dtype()}));
  const auto& pads = a.ints("pads");  // before_0, after_0, before_1, after_1, ...
  Tensor inner = y;
  for (int64_t d = 0; d < y.dim(); ++d) inner = window(inner, d, pads[2 * d], in[0].size(d));
  if (in[0].numel() > 0) internal::copy_cast_cpu(inner, in[0]);
}

MF_STATIC_INIT {
  register_kernel("concat", DeviceType::CPU, concat_kernel);
  register_kernel("pad", DeviceType::CPU, pad_kernel);
}

}  // namespace
}  // namespace meshflow
