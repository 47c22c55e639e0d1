// CPU kernel for concat: a strided copy of each input into its window of the output.
#include "internal/copy.h"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

void concat_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  const int64_t axis = normalize_axis(a.i("axis"), out[0].dim(), "concat");
  int64_t start = 0;
  for (const Tensor& x : in) {
    const int64_t len = x.size(axis);
    if (x.numel() > 0) internal::copy_cast_cpu(internal::axis_window(out[0], axis, start, len), x);
    start += len;
  }
}

MF_STATIC_INIT { register_kernel("concat", DeviceType::CPU, concat_kernel); }

}  // namespace
}  // namespace meshflow
