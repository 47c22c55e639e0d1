// CPU kernels for comparisons, logical ops, where, maximum, minimum and pow.
#include <cmath>

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

// NaN propagates (a != a only for NaN); ties pick a, matching the backward's tie rule.
struct MaximumOp { template <typename C> C operator()(C a, C b) const { return (a >= b || a != a) ? a : b; } };
struct MinimumOp { template <typename C> C operator()(C a, C b) const { return (a <= b || a != a) ? a : b; } };
struct PowOp { template <typename C> C operator()(C a, C b) const { return std::pow(a, b); } };

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

void pow_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  dispatch_dtype(in[0].dtype(), "pow", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      internal::binary_loop<T, T>(in[0], in[1], out[0], PowOp{});
    } else {
      MF_THROW("pow: needs floating tensors, got ", dtype_name(in[0].dtype()));
    }
  });
}

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
  register_kernel("maximum", DeviceType::CPU, internal::binary_kernel<MaximumOp>);
  register_kernel("minimum", DeviceType::CPU, internal::binary_kernel<MinimumOp>);
  register_kernel("pow", DeviceType::CPU, pow_kernel);
  register_kernel("where", DeviceType::CPU, where_kernel);
}

}  // namespace
}  // namespace meshflow
