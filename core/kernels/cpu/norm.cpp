// CPU kernels for layer_norm (rows) and batch_norm (columns of [M, C]), training and inference.
#include <cmath>

#include "internal/elementwise.h"
#include "meshflow/core/autograd.h"

namespace meshflow {
namespace {

// x, gamma and beta as contiguous typed pointers (gamma/beta null when absent).
template <typename T>
struct AffineInputs {
  Tensor x, gamma, beta;
  AffineInputs(const std::vector<Tensor>& in, const Attrs& a, size_t first_affine) {
    NoGradGuard no_grad;
    x = in[0].contiguous();
    size_t k = first_affine;
    if (a.b("has_gamma")) gamma = in[k++].contiguous();
    if (a.b("has_beta")) beta = in[k].contiguous();
  }
  const T* px() const { return static_cast<const T*>(x.raw_data()); }
  const T* pg() const { return gamma.defined() ? static_cast<const T*>(gamma.raw_data()) : nullptr; }
  const T* pb() const { return beta.defined() ? static_cast<const T*>(beta.raw_data()) : nullptr; }
};

// Running statistics or per-channel vectors (any floating dtype, any strides) as doubles.
std::vector<double> running_stats(const Tensor& t, int64_t c) {
  std::vector<double> v = t.to(DType::F64).contiguous().to_vector<double>();
  v.resize(static_cast<size_t>(c));
  return v;
}

// Note [Normalization statistics]: two passes per row or column (mean, then squared deviations),
// accumulated in double: one-pass E[x^2] - E[x]^2 loses every digit when |mean| >> std.
void layer_norm_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const int64_t n = shape_numel(out[0].shape()) / std::max<int64_t>(out[1].numel(), 1), rows = out[1].numel();
  const double eps = attrs.f("epsilon");
  if (out[0].numel() == 0) return;
  dispatch_dtype(in[0].dtype(), "layer_norm", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      using C = internal::compute_t<T>;
      AffineInputs<T> a(in, attrs, 1);
      const T *x = a.px(), *gamma = a.pg(), *beta = a.pb();
      T* y = static_cast<T*>(out[0].raw_data());
      T* mean_out = static_cast<T*>(out[1].raw_data());
      T* rstd_out = static_cast<T*>(out[2].raw_data());
      parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* xr = x + r * n;
          T* yr = y + r * n;
          double s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t i = 0; i < n; ++i) s += double(C(xr[i]));
          const double mean = s / double(n);
          double ss = 0;
#pragma omp simd reduction(+ : ss)
          for (int64_t i = 0; i < n; ++i) {
            double d = double(C(xr[i])) - mean;
            ss += d * d;
          }
          const double rstd = 1.0 / std::sqrt(ss / double(n) + eps);
          mean_out[r] = T(C(mean));
          rstd_out[r] = T(C(rstd));
          const C m = C(mean), rs = C(rstd);
          if (gamma && beta) {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) yr[i] = T((C(xr[i]) - m) * rs * C(gamma[i]) + C(beta[i]));
          } else {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) {
              C v = (C(xr[i]) - m) * rs;
              if (gamma) v *= C(gamma[i]);
              if (beta) v += C(beta[i]);
              yr[i] = T(v);
            }
          }
        }
      });
    }
  });
}

// dx = rstd * (gx - mean(gx) - xhat * mean(gx * xhat)) per row, gx = g * gamma; dgamma and
// dbeta are column sums of g * xhat and g over the rows (threads own blocks of columns).
void layer_norm_backward_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const int64_t n = std::max<int64_t>(out[1].numel(), 1), rows = out[0].numel() / n;
  if (out[0].numel() == 0) {
    out[1].fill_(0);
    out[2].fill_(0);
    return;
  }
  dispatch_dtype(in[1].dtype(), "layer_norm backward", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      using C = internal::compute_t<T>;
      NoGradGuard no_grad;
      Tensor gt = in[0].contiguous(), xt = in[1].contiguous(), mt = in[2].contiguous(), rt = in[3].contiguous();
      Tensor gamma_t = attrs.b("has_gamma") ? in[4].contiguous() : Tensor();
      const T *g = static_cast<const T*>(gt.raw_data()), *x = static_cast<const T*>(xt.raw_data());
      const T *mean = static_cast<const T*>(mt.raw_data()), *rstd = static_cast<const T*>(rt.raw_data());
      const T* gamma = gamma_t.defined() ? static_cast<const T*>(gamma_t.raw_data()) : nullptr;
      T* dx = static_cast<T*>(out[0].raw_data());
      parallel_for(0, rows, std::max<int64_t>(1, 8192 / n), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T *gr = g + r * n, *xr = x + r * n;
          const C m = C(mean[r]), rs = C(rstd[r]);
          double sum_gx = 0, sum_gx_xhat = 0;
#pragma omp simd reduction(+ : sum_gx, sum_gx_xhat)
          for (int64_t i = 0; i < n; ++i) {
            const C gx = gamma ? C(gr[i]) * C(gamma[i]) : C(gr[i]);
            sum_gx += double(gx);
            sum_gx_xhat += double(gx * ((C(xr[i]) - m) * rs));
          }
          const C a = C(sum_gx / double(n)), bb = C(sum_gx_xhat / double(n));
          T* dr = dx + r * n;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) {
            const C gx = gamma ? C(gr[i]) * C(gamma[i]) : C(gr[i]);
            dr[i] = T(rs * (gx - a - (C(xr[i]) - m) * rs * bb));
          }
        }
      });
      T *dgamma = static_cast<T*>(out[1].raw_data()), *dbeta = static_cast<T*>(out[2].raw_data());
      parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
        std::vector<double> acc_g(static_cast<size_t>(e - b), 0.0), acc_b(static_cast<size_t>(e - b), 0.0);
        double *ag = acc_g.data() - b, *ab = acc_b.data() - b;
        for (int64_t r = 0; r < rows; ++r) {
          const T *gr = g + r * n, *xr = x + r * n;
          const C m = C(mean[r]), rs = C(rstd[r]);
#pragma omp simd
          for (int64_t j = b; j < e; ++j) {
            ag[j] += double(C(gr[j]) * ((C(xr[j]) - m) * rs));
            ab[j] += double(C(gr[j]));
          }
        }
        for (int64_t j = b; j < e; ++j) {
          dgamma[j] = T(C(ag[j]));
          dbeta[j] = T(C(ab[j]));
        }
      });
    }
  });
}

// Per-channel scale/shift applied to rows of [M, C]: y = x * scale + shift.
template <typename T>
void apply_channels(const T* x, T* y, const std::vector<double>& scale, const std::vector<double>& shift, int64_t m,
                    int64_t c) {
  using C = internal::compute_t<T>;
  std::vector<C> sc(scale.begin(), scale.end()), sh(shift.begin(), shift.end());
  parallel_for(0, m, std::max<int64_t>(1, 32768 / std::max<int64_t>(c, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * c;
      T* yr = y + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) yr[j] = T(C(xr[j]) * sc[j] + sh[j]);
    }
  });
}

// Column sums of f(x[r][j]) over the rows of [M, C], threads owning blocks of channels.
template <typename T, typename F>
std::vector<double> column_sums(const T* x, int64_t m, int64_t c, F f) {
  using C = internal::compute_t<T>;
  std::vector<double> acc(static_cast<size_t>(c), 0.0);
  parallel_for(0, c, 256, [&](int64_t b, int64_t e) {
    double* a = acc.data();
    for (int64_t r = 0; r < m; ++r) {
      const T* xr = x + r * c;
#pragma omp simd
      for (int64_t j = b; j < e; ++j) a[j] += f(double(C(xr[j])), j);
    }
  });
  return acc;
}

template <typename T>
void store(const Tensor& t, const std::vector<double>& v) {
  using C = internal::compute_t<T>;
  T* p = static_cast<T*>(t.raw_data());
  for (size_t i = 0; i < v.size(); ++i) p[i] = T(C(v[i]));
}

// Scale and shift from the statistics: y = (x - mean) * rstd * gamma + beta.
void scale_shift(const double* gamma_or_null, const double* beta_or_null, const std::vector<double>& mean,
                 const std::vector<double>& rstd, std::vector<double>& scale, std::vector<double>& shift) {
  scale.resize(mean.size());
  shift.resize(mean.size());
  for (size_t j = 0; j < mean.size(); ++j) {
    scale[j] = rstd[j] * (gamma_or_null ? gamma_or_null[j] : 1.0);
    shift[j] = (beta_or_null ? beta_or_null[j] : 0.0) - mean[j] * scale[j];
  }
}

template <typename T>
std::vector<double> to_doubles(const T* p, int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = double(internal::compute_t<T>(p[i]));
  return v;
}

void batch_norm_train_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const int64_t m = in[0].shape()[0], c = in[0].shape()[1];
  const double eps = attrs.f("epsilon");
  dispatch_dtype(in[0].dtype(), "batch_norm", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      AffineInputs<T> a(in, attrs, 1);
      const T* x = a.px();
      std::vector<double> mean = column_sums(x, m, c, [](double v, int64_t) { return v; });
      for (double& v : mean) v /= double(m);
      const double* mp = mean.data();
      std::vector<double> var = column_sums(x, m, c, [mp](double v, int64_t j) { return (v - mp[j]) * (v - mp[j]); });
      std::vector<double> rstd(var.size());
      for (size_t j = 0; j < var.size(); ++j) {
        var[j] /= double(m);
        rstd[j] = 1.0 / std::sqrt(var[j] + eps);
      }
      std::vector<double> gamma, beta, scale, shift;
      if (a.pg()) gamma = to_doubles(a.pg(), c);
      if (a.pb()) beta = to_doubles(a.pb(), c);
      scale_shift(a.pg() ? gamma.data() : nullptr, a.pb() ? beta.data() : nullptr, mean, rstd, scale, shift);
      apply_channels(x, static_cast<T*>(out[0].raw_data()), scale, shift, m, c);
      store<T>(out[1], mean);
      store<T>(out[2], rstd);
      store<T>(out[3], var);
    }
  });
}

// Per channel: dbeta = sum(g), dgamma = sum(g * xhat) over the M rows, then
// dx = gamma * rstd * (g - dbeta / M - xhat * dgamma / M).
void batch_norm_backward_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const int64_t m = in[1].shape()[0], c = in[1].shape()[1];
  dispatch_dtype(in[1].dtype(), "batch_norm backward", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      using C = internal::compute_t<T>;
      NoGradGuard no_grad;
      Tensor gt = in[0].contiguous(), xt = in[1].contiguous();
      const T *g = static_cast<const T*>(gt.raw_data()), *x = static_cast<const T*>(xt.raw_data());
      std::vector<double> mean = running_stats(in[2], c), rstd = running_stats(in[3], c);
      std::vector<double> gamma = attrs.b("has_gamma") ? running_stats(in[4], c) : std::vector<double>(c, 1.0);
      std::vector<double> sum_g(static_cast<size_t>(c), 0.0), sum_g_xhat(static_cast<size_t>(c), 0.0);
      parallel_for(0, c, 256, [&](int64_t b, int64_t e) {
        double *sg = sum_g.data(), *sgx = sum_g_xhat.data();
        const double *mp = mean.data(), *rp = rstd.data();
        for (int64_t r = 0; r < m; ++r) {
          const T *gr = g + r * c, *xr = x + r * c;
#pragma omp simd
          for (int64_t j = b; j < e; ++j) {
            const double gv = double(C(gr[j]));
            sg[j] += gv;
            sgx[j] += gv * (double(C(xr[j])) - mp[j]) * rp[j];
          }
        }
      });
      // dx = k * g - k * xhat * sum_g_xhat / M - k * sum_g / M, k = gamma * rstd, as x * a + g * k + b.
      std::vector<C> k(c), a(c), bias(c), mc(c);
      for (int64_t j = 0; j < c; ++j) {
        const double kj = gamma[j] * rstd[j], cx = kj * rstd[j] * sum_g_xhat[j] / double(m);
        k[j] = C(kj);
        a[j] = C(-cx);
        bias[j] = C(cx * mean[j] - kj * sum_g[j] / double(m));
      }
      T* dx = static_cast<T*>(out[0].raw_data());
      parallel_for(0, m, std::max<int64_t>(1, 32768 / std::max<int64_t>(c, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T *gr = g + r * c, *xr = x + r * c;
          T* dr = dx + r * c;
#pragma omp simd
          for (int64_t j = 0; j < c; ++j) dr[j] = T(C(xr[j]) * a[j] + C(gr[j]) * k[j] + bias[j]);
        }
      });
      store<T>(out[1], sum_g_xhat);
      store<T>(out[2], sum_g);
    }
  });
}

// Inputs: x [M, C], running mean, running var, then gamma and beta when present.
void batch_norm_infer_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const int64_t m = in[0].shape()[0], c = in[0].shape()[1];
  const double eps = attrs.f("epsilon");
  dispatch_dtype(in[0].dtype(), "batch_norm", [&]<typename T>() {
    if constexpr (std::is_floating_point_v<internal::compute_t<T>>) {
      AffineInputs<T> a(in, attrs, 3);
      NoGradGuard no_grad;
      std::vector<double> mean = running_stats(in[1], c), var = running_stats(in[2], c), rstd(var.size());
      for (size_t j = 0; j < var.size(); ++j) rstd[j] = 1.0 / std::sqrt(var[j] + eps);
      std::vector<double> gamma, beta, scale, shift;
      if (a.pg()) gamma = to_doubles(a.pg(), c);
      if (a.pb()) beta = to_doubles(a.pb(), c);
      scale_shift(a.pg() ? gamma.data() : nullptr, a.pb() ? beta.data() : nullptr, mean, rstd, scale, shift);
      apply_channels(a.px(), static_cast<T*>(out[0].raw_data()), scale, shift, m, c);
      store<T>(out[1], rstd);
    }
  });
}

MF_STATIC_INIT {
  register_kernel("layer_norm", DeviceType::CPU, layer_norm_kernel);
  register_kernel("layer_norm_backward", DeviceType::CPU, layer_norm_backward_kernel);
  register_kernel("batch_norm_backward", DeviceType::CPU, batch_norm_backward_kernel);
  register_kernel("batch_norm_train", DeviceType::CPU, batch_norm_train_kernel);
  register_kernel("batch_norm_infer", DeviceType::CPU, batch_norm_infer_kernel);
}

}  // namespace
}  // namespace meshflow
