// CPU kernels for the fused optimizer updates, the clipping helpers and the primitives of gradient
// reduction (ops defined and operands checked in core/src/ops/optim.cpp). See Note [Fused optimizer updates].
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/parallel.h"

namespace meshflow {
namespace {

// Below this many elements an update runs inline: waking the pool costs more than the work.
constexpr int64_t kGrain = 1 << 15;

template <typename F>
void chunked(int64_t n, F&& fn) {
  if (n <= kGrain) {
    fn(int64_t(0), n);
    return;
  }
  parallel_for(0, n, kGrain, fn);
}

// Operands: param, grad, buf (the parameter itself when momentum == 0).
void sgd_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs& a) {
  const char* op = "sgd_update";
  const Tensor &param = in[0], &grad = in[1], &buf = in[2];
  const double lr = a.f("lr"), momentum = a.f("momentum");
  const bool nesterov = a.b("nesterov");
  dispatch_float(param.dtype(), op, [&]<typename T>() {
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* b = momentum != 0.0 ? buf.data<T>() : nullptr;
    const T lr_ = T(lr), mu = T(momentum);
    chunked(param.numel(), [&](int64_t s, int64_t e) {
      if (!b) {
#pragma omp simd
        for (int64_t i = s; i < e; ++i) p[i] -= lr_ * g[i];
      } else if (nesterov) {
#pragma omp simd
        for (int64_t i = s; i < e; ++i) {
          T bi = mu * b[i] - lr_ * g[i];
          b[i] = bi;
          p[i] += mu * bi - lr_ * g[i];
        }
      } else {
#pragma omp simd
        for (int64_t i = s; i < e; ++i) {
          T bi = mu * b[i] - lr_ * g[i];
          b[i] = bi;
          p[i] += bi;
        }
      }
    });
  });
}

// Operands: param, grad, m, v, v_max (the parameter itself unless amsgrad), five per parameter
// for one or more parameters. `alpha` is the bias-corrected step size, `decay` is lr * weight_decay
// (AdamW).
void adam_one(const Tensor* in, double alpha, double beta1, double beta2, double eps, bool amsgrad, double decay_) {
  const char* op = "adam_update";
  const Tensor &param = in[0], &grad = in[1], &m = in[2], &v = in[3], &v_max = in[4];
  dispatch_float(param.dtype(), op, [&]<typename T>() {
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* m_ = m.data<T>();
    T* v_ = v.data<T>();
    T* vm = amsgrad ? v_max.data<T>() : nullptr;
    const T one_b1 = T(1.0 - beta1), one_b2 = T(1.0 - beta2), a = T(alpha), e_ = T(eps);
    const T decay = T(decay_);
    chunked(param.numel(), [&](int64_t s, int64_t e) {
      if (decay != T(0)) {
#pragma omp simd
        for (int64_t i = s; i < e; ++i) p[i] -= p[i] * decay;
      }
      if (!vm) {
#pragma omp simd
        for (int64_t i = s; i < e; ++i) {
          T gi = g[i];
          T mi = m_[i] + (gi - m_[i]) * one_b1;
          T vi = v_[i] + (gi * gi - v_[i]) * one_b2;
          m_[i] = mi;
          v_[i] = vi;
          p[i] -= a * mi / (std::sqrt(vi) + e_);
        }
      } else {
#pragma omp simd
        for (int64_t i = s; i < e; ++i) {
          T gi = g[i];
          T mi = m_[i] + (gi - m_[i]) * one_b1;
          T vi = v_[i] + (gi * gi - v_[i]) * one_b2;
          T vmi = std::max(vm[i], vi);
          m_[i] = mi;
          v_[i] = vi;
          vm[i] = vmi;
          p[i] -= a * mi / (std::sqrt(vmi) + e_);
        }
      }
    });
  });
}

void adam_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs& at) {
  const double alpha = at.f("alpha"), beta1 = at.f("beta1"), beta2 = at.f("beta2"), eps = at.f("eps");
  const double decay = at.f("decay");
  const bool amsgrad = at.b("amsgrad");
  for (size_t i = 0; i + 5 <= in.size(); i += 5) adam_one(&in[i], alpha, beta1, beta2, eps, amsgrad, decay);
}

// Operands: param, grad, ms, mg (param unless centered), mom (param unless momentum > 0).
void rmsprop_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs& a) {
  const char* op = "rmsprop_update";
  const Tensor &param = in[0], &grad = in[1], &ms = in[2], &mg = in[3], &mom = in[4];
  const double lr = a.f("lr"), rho = a.f("rho"), momentum = a.f("momentum"), eps = a.f("eps");
  const bool centered = a.b("centered");
  dispatch_float(param.dtype(), op, [&]<typename T>() {
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* s2 = ms.data<T>();
    T* s1 = centered ? mg.data<T>() : nullptr;
    T* b = momentum > 0 ? mom.data<T>() : nullptr;
    const T r = T(rho), one_r = T(1.0 - rho), lr_ = T(lr), mu = T(momentum), e_ = T(eps);
    chunked(param.numel(), [&](int64_t s, int64_t e) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) {
        T gi = g[i];
        T msi = r * s2[i] + one_r * gi * gi;
        s2[i] = msi;
        T var = msi;
        if (s1) {
          T mgi = r * s1[i] + one_r * gi;
          s1[i] = mgi;
          var = msi - mgi * mgi;
        }
        T delta = lr_ * gi / (std::sqrt(var) + e_);
        if (b) {
          delta = mu * b[i] + delta;
          b[i] = delta;
        }
        p[i] -= delta;
      }
    });
  });
}

// Operands: param, grad, acc.
void adagrad_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs& a) {
  const char* op = "adagrad_update";
  const Tensor &param = in[0], &grad = in[1], &acc = in[2];
  const double lr = a.f("lr"), eps = a.f("eps");
  dispatch_float(param.dtype(), op, [&]<typename T>() {
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* a = acc.data<T>();
    const T lr_ = T(lr), e_ = T(eps);
    chunked(param.numel(), [&](int64_t s, int64_t e) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) {
        T gi = g[i];
        T ai = a[i] + gi * gi;
        a[i] = ai;
        p[i] -= lr_ * gi / (std::sqrt(ai) + e_);
      }
    });
  });
}

// Operands: t, out (an f64 scalar that receives the sum of squares).
void squared_norm_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs&) {
  const Tensor& t = in[0];
  *in[1].data<double>() = dispatch_float(t.dtype(), "squared_norm", [&]<typename T>() {
    const T* x = t.data<T>();
    const int64_t n = t.numel();
    // Fixed chunks summed in order, so the result does not depend on the thread count.
    const int64_t chunks = (n + kGrain - 1) / kGrain;
    std::vector<double> partial(static_cast<size_t>(std::max<int64_t>(chunks, 1)), 0.0);
    parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        double s = 0;
        const int64_t e = std::min(n, (c + 1) * kGrain);
#pragma omp simd reduction(+ : s)
        for (int64_t i = c * kGrain; i < e; ++i) s += double(x[i]) * double(x[i]);
        partial[static_cast<size_t>(c)] = s;
      }
    });
    double total = 0;
    for (double s : partial) total += s;
    return total;
  });
}

void scale_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs& a) {
  const Tensor& t = in[0];
  const double factor = a.f("factor");
  dispatch_float(t.dtype(), "scale_", [&]<typename T>() {
    T* x = t.data<T>();
    const T f = T(factor);
    chunked(t.numel(), [&](int64_t s, int64_t e) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) x[i] *= f;
    });
  });
}

void clamp_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs& a) {
  const Tensor& t = in[0];
  const double lo = a.f("lo"), hi = a.f("hi");
  dispatch_float(t.dtype(), "clamp_", [&]<typename T>() {
    T* x = t.data<T>();
    const T l = T(lo), h = T(hi);
    chunked(t.numel(), [&](int64_t s, int64_t e) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) x[i] = std::min(std::max(x[i], l), h);
    });
  });
}

// Operands: dst, src; dst = src * factor.
void scaled_copy_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs& a) {
  const Tensor &dst = in[0], &src = in[1];
  const double factor = a.f("factor");
  dispatch_float(dst.dtype(), "scaled_copy_", [&]<typename T>() {
    T* d = dst.data<T>();
    const T* x = src.data<T>();
    const T f = T(factor);
    chunked(dst.numel(), [&](int64_t s, int64_t e) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) d[i] = x[i] * f;
    });
  });
}

// The bf16 constructor's rounding (nearest even, NaN kept quiet) on whole lanes, so it vectorizes.
[[gnu::always_inline]] inline void add_bf16_loop(const uint16_t* a, uint16_t* b, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float s = std::bit_cast<float>(uint32_t(a[i]) << 16) + std::bit_cast<float>(uint32_t(b[i]) << 16);
    const uint32_t u = std::bit_cast<uint32_t>(s);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    b[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : rounded);
  }
}

void add_bf16_portable(const uint16_t* a, uint16_t* b, int64_t n) { add_bf16_loop(a, b, n); }

__attribute__((target("avx2"))) void add_bf16_avx2(const uint16_t* a, uint16_t* b, int64_t n) {
  add_bf16_loop(a, b, n);
}

void add_f16_portable(const uint16_t* a, uint16_t* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    f16 x, y;
    std::memcpy(&x, a + i, 2);
    std::memcpy(&y, b + i, 2);
    const f16 r(static_cast<float>(x) + static_cast<float>(y));
    std::memcpy(b + i, &r, 2);
  }
}

__attribute__((target("avx,f16c"))) void add_f16_f16c(const uint16_t* a, uint16_t* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256 y = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b + i), _mm256_cvtps_ph(_mm256_add_ps(x, y), _MM_FROUND_TO_NEAREST_INT));
  }
  add_f16_portable(a + i, b + i, n - i);
}

// F16C from CPUID leaf 1 (ECX bit 29), with AVX (which the OS must enable) as its prerequisite;
// __builtin_cpu_supports("f16c") would say the same but clang 14 does not know the name.
static bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}

// Operands: inout, in; inout += in. It runs on the calling thread: the MPI backend calls it from
// inside a reduction, on its progress thread, where waking the compute pool would steal its cores.
void accumulate_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs&) {
  const Tensor &acc = in[0], &add = in[1];
  const int64_t n = acc.numel();
  static const bool avx2 = __builtin_cpu_supports("avx2"), f16c = has_f16c();
  switch (acc.dtype()) {
    case DType::F32: {
      float* b = acc.data<float>();
      const float* x = add.data<float>();
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) b[i] += x[i];
      break;
    }
    case DType::F64: {
      double* b = acc.data<double>();
      const double* x = add.data<double>();
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) b[i] += x[i];
      break;
    }
    case DType::BF16: {
      const auto* x = static_cast<const uint16_t*>(add.raw_data());
      auto* b = static_cast<uint16_t*>(acc.raw_data());
      avx2 ? add_bf16_avx2(x, b, n) : add_bf16_portable(x, b, n);
      break;
    }
    case DType::F16: {
      const auto* x = static_cast<const uint16_t*>(add.raw_data());
      auto* b = static_cast<uint16_t*>(acc.raw_data());
      f16c ? add_f16_f16c(x, b, n) : add_f16_portable(x, b, n);
      break;
    }
    default:
      MF_THROW("accumulate_: ", dtype_name(acc.dtype()), " is not summed here");
  }
}

MF_STATIC_INIT {
  register_kernel("sgd_update", DeviceType::CPU, sgd_kernel);
  register_kernel("adam_update", DeviceType::CPU, adam_kernel);
  register_kernel("rmsprop_update", DeviceType::CPU, rmsprop_kernel);
  register_kernel("adagrad_update", DeviceType::CPU, adagrad_kernel);
  register_kernel("squared_norm", DeviceType::CPU, squared_norm_kernel);
  register_kernel("scale_inplace", DeviceType::CPU, scale_kernel);
  register_kernel("clamp_inplace", DeviceType::CPU, clamp_kernel);
  register_kernel("scaled_copy", DeviceType::CPU, scaled_copy_kernel);
  register_kernel("accumulate", DeviceType::CPU, accumulate_kernel);
}

}  // namespace
}  // namespace meshflow
