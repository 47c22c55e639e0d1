// Elementwise kernel templates: unary and binary loops over any strides with broadcasting,
// vectorizable when contiguous, threaded over the pool. f16/bf16 compute in float.
#pragma once

#include <type_traits>

#include "internal/strided.h"
#include "meshflow/core/dtype.h"
#include "meshflow/core/op.h"

namespace meshflow::internal {

template <typename T>
using compute_t = std::conditional_t<std::is_same_v<T, bf16> || std::is_same_v<T, f16>, float, T>;

// out = op(a): a is broadcast to out's shape.
template <typename T, typename R, typename F>
void unary_loop(const Tensor& a, const Tensor& out, F op) {
  strided_for_each<2>(out.shape(), {out.strides(), broadcast_strides(a, out.shape())},
                      {byte_ptr(out), byte_ptr(a)}, {int64_t(sizeof(R)), int64_t(sizeof(T))},
                      [&](std::array<char*, 2> p, int64_t n, const std::array<int64_t, 2>& st) {
                        R* o = reinterpret_cast<R*>(p[0]);
                        const T* x = reinterpret_cast<const T*>(p[1]);
                        if (st[0] == sizeof(R) && st[1] == sizeof(T)) {
#pragma omp simd
                          for (int64_t i = 0; i < n; ++i) o[i] = R(op(compute_t<T>(x[i])));
                        } else {
                          for (int64_t i = 0; i < n; ++i) {
                            *reinterpret_cast<R*>(p[0] + i * st[0]) =
                                R(op(compute_t<T>(*reinterpret_cast<const T*>(p[1] + i * st[1]))));
                          }
                        }
                      });
}

// out = op(a, b) with broadcasting; T is the inputs' type, R the output's.
template <typename T, typename R, typename F>
void binary_loop(const Tensor& a, const Tensor& b, const Tensor& out, F op) {
  using C = compute_t<T>;
  strided_for_each<3>(
      out.shape(), {out.strides(), broadcast_strides(a, out.shape()), broadcast_strides(b, out.shape())},
      {byte_ptr(out), byte_ptr(a), byte_ptr(b)}, {int64_t(sizeof(R)), int64_t(sizeof(T)), int64_t(sizeof(T))},
      [&](std::array<char*, 3> p, int64_t n, const std::array<int64_t, 3>& st) {
        R* o = reinterpret_cast<R*>(p[0]);
        const T* x = reinterpret_cast<const T*>(p[1]);
        const T* y = reinterpret_cast<const T*>(p[2]);
        if (st[0] == sizeof(R) && st[1] == sizeof(T) && st[2] == sizeof(T)) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = R(op(C(x[i]), C(y[i])));
        } else if (st[0] == sizeof(R) && st[1] == sizeof(T) && st[2] == 0) {
          const C yv = C(y[0]);
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = R(op(C(x[i]), yv));
        } else if (st[0] == sizeof(R) && st[1] == 0 && st[2] == sizeof(T)) {
          const C xv = C(x[0]);
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = R(op(xv, C(y[i])));
        } else {
          for (int64_t i = 0; i < n; ++i) {
            C xv = C(*reinterpret_cast<const T*>(p[1] + i * st[1]));
            C yv = C(*reinterpret_cast<const T*>(p[2] + i * st[2]));
            *reinterpret_cast<R*>(p[0] + i * st[0]) = R(op(xv, yv));
          }
        }
      });
}

// Kernel for a same-dtype binary op whose output has the inputs' dtype (all dtypes but bool).
template <typename Op>
void binary_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  dispatch_dtype(in[0].dtype(), "binary op", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      MF_THROW("arithmetic on bool tensors is not supported; cast to a number type first");
    } else {
      binary_loop<T, T>(in[0], in[1], out[0], Op{});
    }
  });
}

// Kernel for a same-dtype binary op with a bool output (comparisons).
template <typename Op>
void compare_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  dispatch_dtype(in[0].dtype(), "comparison", [&]<typename T>() { binary_loop<T, bool>(in[0], in[1], out[0], Op{}); });
}

// Kernel for a floating unary op (output dtype = input dtype).
template <typename Op>
void unary_float_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  dispatch_dtype(in[0].dtype(), "unary op", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) {
      unary_loop<T, T>(in[0], out[0], Op{});
    } else {
      MF_THROW("this op needs a floating tensor, got ", dtype_name(in[0].dtype()));
    }
  });
}

// Kernel for a floating unary op whose functor is built from the op's attributes.
template <typename Op>
void unary_float_attr_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  Op op(attrs);
  dispatch_dtype(in[0].dtype(), "unary op", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<compute_t<T>>) {
      unary_loop<T, T>(in[0], out[0], op);
    } else {
      MF_THROW("this op needs a floating tensor, got ", dtype_name(in[0].dtype()));
    }
  });
}

// Kernel for a unary op on any number type (bool excluded), optionally built from attributes.
template <typename Op>
void unary_numeric_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  dispatch_dtype(in[0].dtype(), "unary op", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      MF_THROW("this op is not defined for bool tensors");
    } else if constexpr (std::is_constructible_v<Op, const Attrs&>) {
      unary_loop<T, T>(in[0], out[0], Op(attrs));
    } else {
      unary_loop<T, T>(in[0], out[0], Op{});
    }
  });
}

}  // namespace meshflow::internal
