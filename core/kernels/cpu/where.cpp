// CPU kernel for where(cond, a, b), whose definition is in core/src/ops/where.cpp.
#include <array>

#include "internal/strided.h"
#include "meshflow/core/op.h"

namespace meshflow {
namespace {

// Four operands (out, cond, a, b), each with its own broadcast strides.
void where_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  const Tensor &cond = in[0], &a = in[1], &b = in[2], &o = out[0];
  const Shape& s = o.shape();
  dispatch_dtype(o.dtype(), "where", [&]<typename T>() {
    constexpr int64_t sz = sizeof(T);
    internal::strided_for_each<4>(
        s, {o.strides(), internal::broadcast_strides(cond, s), internal::broadcast_strides(a, s),
            internal::broadcast_strides(b, s)},
        {internal::byte_ptr(o), internal::byte_ptr(cond), internal::byte_ptr(a), internal::byte_ptr(b)},
        {sz, int64_t(sizeof(bool)), sz, sz},
        [&](std::array<char*, 4> p, int64_t n, const std::array<int64_t, 4>& st) {
          T* op = reinterpret_cast<T*>(p[0]);
          const bool* c = reinterpret_cast<const bool*>(p[1]);
          const T* x = reinterpret_cast<const T*>(p[2]);
          const T* y = reinterpret_cast<const T*>(p[3]);
          if (st[0] == sz && st[1] == 1 && st[2] == sz && st[3] == sz) {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) op[i] = c[i] ? x[i] : y[i];
          } else if (st[0] == sz && st[1] == 1 && st[2] == sz && st[3] == 0) {
            const T yv = y[0];  // where(cond, x, 0): the common masking form
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) op[i] = c[i] ? x[i] : yv;
          } else {
            for (int64_t i = 0; i < n; ++i) {
              bool ci = *reinterpret_cast<const bool*>(p[1] + i * st[1]);
              const char* src = ci ? p[2] + i * st[2] : p[3] + i * st[3];
              *reinterpret_cast<T*>(p[0] + i * st[0]) = *reinterpret_cast<const T*>(src);
            }
          }
        });
  });
}

MF_STATIC_INIT { register_kernel("where", DeviceType::CPU, where_kernel); }

}  // namespace
}  // namespace meshflow
