// CUDA kernels for the fused optimizer updates, clipping helpers and reduction primitives (ops defined and operands
// checked in core/src/ops/optim.cpp; the CPU twins are in core/kernels/cpu/optim.cpp). One pass
// over memory per update, float math for f32 and double for f64, as on the CPU.
#include <cmath>

#include "cuda_util.h"
#include "device_types.cuh"
#include "meshflow/core/error.h"

namespace meshflow {
namespace {

template <typename T>
__global__ void sgd_k(T* p, const T* g, T* b, int64_t n, T lr, T mu, bool use_b, bool nesterov) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T gi = g[i];
    if (!use_b) {
      p[i] -= lr * gi;
    } else {
      const T bi = mu * b[i] - lr * gi;
      b[i] = bi;
      p[i] += nesterov ? mu * bi - lr * gi : bi;
    }
  }
}

template <typename T>
__global__ void adam_k(T* p, const T* g, T* m, T* v, T* vm, int64_t n, T one_b1, T one_b2, T alpha, T eps, T decay) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T pi = p[i];
    if (decay != T(0)) pi -= pi * decay;
    const T gi = g[i];
    const T mi = m[i] + (gi - m[i]) * one_b1;
    const T vi = v[i] + (gi * gi - v[i]) * one_b2;
    m[i] = mi;
    v[i] = vi;
    T denom_v = vi;
    if (vm) {
      denom_v = vm[i] > vi ? vm[i] : vi;
      vm[i] = denom_v;
    }
    p[i] = pi - alpha * mi / (sqrt(denom_v) + eps);
  }
}

template <typename T>
__global__ void rmsprop_k(T* p, const T* g, T* s2, T* s1, T* b, int64_t n, T rho, T lr, T mu, T eps) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T gi = g[i];
    const T msi = rho * s2[i] + (T(1) - rho) * gi * gi;
    s2[i] = msi;
    T var = msi;
    if (s1) {
      const T mgi = rho * s1[i] + (T(1) - rho) * gi;
      s1[i] = mgi;
      var = msi - mgi * mgi;
    }
    T delta = lr * gi / (sqrt(var) + eps);
    if (b) {
      delta = mu * b[i] + delta;
      b[i] = delta;
    }
    p[i] -= delta;
  }
}

template <typename T>
__global__ void adagrad_k(T* p, const T* g, T* acc, int64_t n, T lr, T eps) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T gi = g[i];
    const T ai = acc[i] + gi * gi;
    acc[i] = ai;
    p[i] -= lr * gi / (sqrt(ai) + eps);
  }
}

template <typename T>
__global__ void scale_k(T* x, int64_t n, T f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= f;
}

template <typename T>
__global__ void clamp_k(T* x, int64_t n, T lo, T hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
}

template <typename T>
__global__ void scaled_copy_k(T* d, const T* x, int64_t n, T f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    d[i] = x[i] * f;
}

// b += a in the accumulation type (float for the halves), rounded once to D.
template <typename D>
__global__ void accumulate_k(D* b, const D* a, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    b[i] = cu::convert<D>(cu::convert<cu::acc_t<D>>(b[i]) + cu::convert<cu::acc_t<D>>(a[i]));
}

// One block sums the squares in double, in a fixed order for a given n (a deterministic result).
template <typename T>
__global__ void squared_norm_k(const T* x, int64_t n, double* out) {
  __shared__ double part[256];
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += double(x[i]) * double(x[i]);
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = part[0];
}

template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

// Calls launch.template operator()<T>() for the parameter's dtype (f32 or f64: the op checked it)
// and checks the launch; nothing is launched for an empty parameter unless `even_empty`.
template <typename F>
void run_float(const Tensor& p, const char* op, F&& launch, bool even_empty = false) {
  if (p.numel() == 0 && !even_empty) return;
  dispatch_float(p.dtype(), op, [&]<typename T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      launch.template operator()<T>();
      MF_CUDA_CHECK_LAUNCH();
    }
  });
}

using Operands = std::vector<Tensor>;

void sgd_kernel(const ExecContext& ctx, const Operands& in, Operands&, const Attrs& a) {
  const int64_t n = in[0].numel();
  run_float(in[0], "sgd_update", [&]<typename T>() {
    sgd_k<T><<<cu::grid_for(n), 256, 0, cu::stream_of(ctx)>>>(ptr<T>(in[0]), ptr<T>(in[1]), ptr<T>(in[2]), n,
                                                               T(a.f("lr")), T(a.f("momentum")),
                                                               a.f("momentum") != 0.0, a.b("nesterov"));
  });
}

// Five operands per parameter (param, grad, m, v, v_max), one launch per parameter.
void adam_kernel(const ExecContext& ctx, const Operands& in, Operands&, const Attrs& a) {
  for (size_t i = 0; i + 5 <= in.size(); i += 5) {
    const int64_t n = in[i].numel();
    run_float(in[i], "adam_update", [&]<typename T>() {
      adam_k<T><<<cu::grid_for(n), 256, 0, cu::stream_of(ctx)>>>(
          ptr<T>(in[i]), ptr<T>(in[i + 1]), ptr<T>(in[i + 2]), ptr<T>(in[i + 3]),
          a.b("amsgrad") ? ptr<T>(in[i + 4]) : nullptr, n, T(1.0 - a.f("beta1")), T(1.0 - a.f("beta2")),
          T(a.f("alpha")), T(a.f("eps")), T(a.f("decay")));
    });
  }
}

void rmsprop_kernel(const ExecContext& ctx, const Operands& in, Operands&, const Attrs& a) {
  const int64_t n = in[0].numel();
  run_float(in[0], "rmsprop_update", [&]<typename T>() {
    rmsprop_k<T><<<cu::grid_for(n), 256, 0, cu::stream_of(ctx)>>>(
        ptr<T>(in[0]), ptr<T>(in[1]), ptr<T>(in[2]), a.b("centered") ? ptr<T>(in[3]) : nullptr,
        a.f("momentum") > 0 ? ptr<T>(in[4]) : nullptr, n, T(a.f("rho")), T(a.f("lr")), T(a.f("momentum")),
        T(a.f("eps")));
  });
}

void adagrad_kernel(const ExecContext& ctx, const Operands& in, Operands&, const Attrs& a) {
  const int64_t n = in[0].numel();
  run_float(in[0], "adagrad_update", [&]<typename T>() {
    adagrad_k<T><<<cu::grid_for(n), 256, 0, cu::stream_of(ctx)>>>(ptr<T>(in[0]), ptr<T>(in[1]), ptr<T>(in[2]), n,
                                                                   T(a.f("lr")), T(a.f("eps")));
  });
}

// Runs for an empty tensor too: the block then writes 0.
void squared_norm_kernel(const ExecContext& ctx, const Operands& in, Operands&, const Attrs&) {
  run_float(in[0], "squared_norm", [&]<typename T>() {
    squared_norm_k<T><<<1, 256, 0, cu::stream_of(ctx)>>>(ptr<T>(in[0]), in[0].numel(), ptr<double>(in[1]));
  }, /*even_empty=*/true);
}

void scale_kernel(const ExecContext& ctx, const Operands& in, Operands&, const Attrs& a) {
  const int64_t n = in[0].numel();
  run_float(in[0], "scale_", [&]<typename T>() {
    scale_k<T><<<cu::grid_for(n), 256, 0, cu::stream_of(ctx)>>>(ptr<T>(in[0]), n, T(a.f("factor")));
  });
}

void clamp_kernel(const ExecContext& ctx, const Operands& in, Operands&, const Attrs& a) {
  const int64_t n = in[0].numel();
  run_float(in[0], "clamp_", [&]<typename T>() {
    clamp_k<T><<<cu::grid_for(n), 256, 0, cu::stream_of(ctx)>>>(ptr<T>(in[0]), n, T(a.f("lo")), T(a.f("hi")));
  });
}

void scaled_copy_kernel(const ExecContext& ctx, const Operands& in, Operands&, const Attrs& a) {
  const int64_t n = in[0].numel();
  run_float(in[0], "scaled_copy_", [&]<typename T>() {
    scaled_copy_k<T><<<cu::grid_for(n), 256, 0, cu::stream_of(ctx)>>>(ptr<T>(in[0]), ptr<T>(in[1]), n,
                                                                        T(a.f("factor")));
  });
}

void accumulate_kernel(const ExecContext& ctx, const Operands& in, Operands&, const Attrs&) {
  const int64_t n = in[0].numel();
  if (n == 0) return;
  auto launch = [&]<typename D>() {
    accumulate_k<D><<<cu::grid_for(n), 256, 0, cu::stream_of(ctx)>>>(ptr<D>(in[0]), ptr<D>(in[1]), n);
    MF_CUDA_CHECK_LAUNCH();
  };
  switch (in[0].dtype()) {
    case DType::F32: return launch.template operator()<float>();
    case DType::F64: return launch.template operator()<double>();
    case DType::BF16: return launch.template operator()<__nv_bfloat16>();
    case DType::F16: return launch.template operator()<__half>();
    default: MF_THROW("accumulate_: ", dtype_name(in[0].dtype()), " is not summed here");
  }
}

MF_STATIC_INIT {
  register_kernel("sgd_update", DeviceType::CUDA, sgd_kernel);
  register_kernel("adam_update", DeviceType::CUDA, adam_kernel);
  register_kernel("rmsprop_update", DeviceType::CUDA, rmsprop_kernel);
  register_kernel("adagrad_update", DeviceType::CUDA, adagrad_kernel);
  register_kernel("squared_norm", DeviceType::CUDA, squared_norm_kernel);
  register_kernel("scale_inplace", DeviceType::CUDA, scale_kernel);
  register_kernel("clamp_inplace", DeviceType::CUDA, clamp_kernel);
  register_kernel("scaled_copy", DeviceType::CUDA, scaled_copy_kernel);
  register_kernel("accumulate", DeviceType::CUDA, accumulate_kernel);
}

}  // namespace
}  // namespace meshflow
