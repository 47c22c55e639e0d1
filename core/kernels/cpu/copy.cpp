// CPU kernels for cast and contiguous, and the typed strided copy they share.
#include <cstring>

#include "internal/copy.h"
#include "internal/elementwise.h"
#include "meshflow/core/op.h"

namespace meshflow::internal {

double load_as_double(const void* p, DType t) {
  return dispatch_dtype(t, "load", [&]<typename T>() -> double {
    return static_cast<double>(static_cast<compute_t<T>>(*static_cast<const T*>(p)));
  });
}

void store_from_double(void* p, DType t, double v) {
  dispatch_dtype(t, "store", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) *static_cast<T*>(p) = v != 0.0;
    else *static_cast<T*>(p) = static_cast<T>(static_cast<compute_t<T>>(v));
  });
}

void copy_cast_cpu(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() && dst.shape() == src.shape()) {
    size_t bytes = static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype());
    char* d = static_cast<char*>(dst.raw_data());
    const char* s = static_cast<const char*>(src.raw_data());
    parallel_for(0, static_cast<int64_t>(bytes), 1 << 20,
                 [&](int64_t b, int64_t e) { std::memcpy(d + b, s + b, static_cast<size_t>(e - b)); });
    return;
  }
  dispatch_dtype(dst.dtype(), "copy", [&]<typename R>() {
    dispatch_dtype(src.dtype(), "copy", [&]<typename T>() {
      unary_loop<T, R>(src, dst, [](compute_t<T> v) {
        if constexpr (std::is_same_v<R, bool>) return static_cast<bool>(v != compute_t<T>(0));
        else return static_cast<compute_t<R>>(v);
      });
    });
  });
}

}  // namespace meshflow::internal

namespace meshflow {
namespace {
void copy_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  internal::copy_cast_cpu(out[0], in[0]);
}
MF_STATIC_INIT {
  register_kernel("cast", DeviceType::CPU, copy_kernel);
  register_kernel("contiguous", DeviceType::CPU, copy_kernel);
  register_kernel("assign", DeviceType::CPU, [](const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&,
                                                const Attrs&) { internal::copy_cast_cpu(in[0], in[1]); });
}
}  // namespace
}  // namespace meshflow
