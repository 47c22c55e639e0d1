// Fused optimizer kernels (core/optim.h) against float64 loops written here, threaded and inline sizes, f32 and f64.
#include <cmath>

#include "meshflow/core/optim.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::random_tensor;
using mf_test::values;

namespace {

// Sizes below and above the kernels' threading grain, and not a multiple of any vector width.
const int64_t kSizes[] = {7, 100003};

struct Arrays {
  std::vector<double> p, g, a, b, c;
};

Arrays host(const Tensor& p, const Tensor& g, const Tensor& a, const Tensor& b = Tensor(), const Tensor& c = Tensor()) {
  Arrays r{values(p), values(g), values(a), {}, {}};
  if (b.defined()) r.b = values(b);
  if (c.defined()) r.c = values(c);
  return r;
}

// Inputs are O(1), so errors are measured against max(|ref|, 1): results near 0 come from
// cancellation and carry the inputs' absolute rounding error, not a relative one.
::testing::AssertionResult near_vec(const Tensor& t, const std::vector<double>& ref, double tol) {
  auto v = values(t);
  for (size_t i = 0; i < v.size(); ++i)
    if (!(std::fabs(v[i] - ref[i]) <= tol * std::max(std::fabs(ref[i]), 1.0)))
      return ::testing::AssertionFailure() << "element " << i << ": " << v[i] << " vs " << ref[i];
  return ::testing::AssertionSuccess();
}

}  // namespace

TEST(OptimKernels, AdamMatchesLoopForBothDtypesAndSizes) {
  for (DType dt : {DType::F64, DType::F32})
    for (int64_t n : kSizes)
      for (bool amsgrad : {false, true}) {
        Tensor p = random_tensor({n}, 1).to(dt), g = random_tensor({n}, 2).to(dt);
        Tensor m = random_tensor({n}, 3, -0.1, 0.1).to(dt), v = random_tensor({n}, 4, 0.0, 0.2).to(dt);
        Tensor vm = random_tensor({n}, 5, 0.0, 0.2).to(dt);
        auto r = host(p, g, m, v, vm);
        const double lr = 0.01, b1 = 0.8, b2 = 0.95, eps = 1e-3, wd = 0.1;
        const int64_t step = 3;
        optim::adam_update_(p, g, m, v, vm, lr, b1, b2, eps, step, amsgrad, wd);
        double alpha = lr * std::sqrt(1 - std::pow(b2, 3)) / (1 - std::pow(b1, 3));
        for (int64_t i = 0; i < n; ++i) {
          r.p[i] -= lr * wd * r.p[i];
          r.a[i] = b1 * r.a[i] + (1 - b1) * r.g[i];
          r.b[i] = b2 * r.b[i] + (1 - b2) * r.g[i] * r.g[i];
          double vv = r.b[i];
          if (amsgrad) vv = r.c[i] = std::max(r.c[i], r.b[i]);
          r.p[i] -= alpha * r.a[i] / (std::sqrt(vv) + eps);
        }
        const double tol = dt == DType::F64 ? 1e-13 : 2e-6;
        EXPECT_TRUE(near_vec(p, r.p, tol)) << dtype_name(dt) << " n=" << n << " amsgrad=" << amsgrad;
        EXPECT_TRUE(near_vec(m, r.a, tol));
        EXPECT_TRUE(near_vec(v, r.b, tol));
        if (amsgrad) EXPECT_TRUE(near_vec(vm, r.c, tol));
      }
}

TEST(OptimKernels, SgdRmspropAdagradMatchLoops) {
  for (DType dt : {DType::F64, DType::F32})
    for (int64_t n : kSizes) {
      const double tol = dt == DType::F64 ? 1e-13 : 2e-6;
      Tensor g = random_tensor({n}, 12).to(dt);
      for (bool nesterov : {false, true}) {
        Tensor p = random_tensor({n}, 11).to(dt), buf = random_tensor({n}, 13).to(dt);
        auto r = host(p, g, buf);
        optim::sgd_update_(p, g, buf, 0.1, 0.9, nesterov);
        for (int64_t i = 0; i < n; ++i) {
          r.a[i] = 0.9 * r.a[i] - 0.1 * r.g[i];
          r.p[i] += nesterov ? 0.9 * r.a[i] - 0.1 * r.g[i] : r.a[i];
        }
        EXPECT_TRUE(near_vec(p, r.p, tol)) << "sgd nesterov=" << nesterov;
        EXPECT_TRUE(near_vec(buf, r.a, tol));
      }
      {
        Tensor p = random_tensor({n}, 11).to(dt), none;
        auto r = host(p, g, p);
        optim::sgd_update_(p, g, none, 0.1, 0.0, false);
        for (int64_t i = 0; i < n; ++i) r.p[i] -= 0.1 * r.g[i];
        EXPECT_TRUE(near_vec(p, r.p, tol)) << "plain sgd";
      }
      for (bool centered : {false, true}) {
        Tensor p = random_tensor({n}, 21).to(dt), ms = random_tensor({n}, 22, 0.5, 1.0).to(dt);
        Tensor mg = random_tensor({n}, 23, -0.1, 0.1).to(dt), mom = random_tensor({n}, 24).to(dt);
        auto r = host(p, g, ms, mg, mom);
        optim::rmsprop_update_(p, g, ms, mg, mom, 0.01, 0.9, 0.5, 1e-3, centered);
        for (int64_t i = 0; i < n; ++i) {
          r.a[i] = 0.9 * r.a[i] + 0.1 * r.g[i] * r.g[i];
          double var = r.a[i];
          if (centered) {
            r.b[i] = 0.9 * r.b[i] + 0.1 * r.g[i];
            var -= r.b[i] * r.b[i];
          }
          r.c[i] = 0.5 * r.c[i] + 0.01 * r.g[i] / (std::sqrt(var) + 1e-3);
          r.p[i] -= r.c[i];
        }
        EXPECT_TRUE(near_vec(p, r.p, tol)) << "rmsprop centered=" << centered;
        EXPECT_TRUE(near_vec(ms, r.a, tol));
        EXPECT_TRUE(near_vec(mom, r.c, tol));
      }
      {
        Tensor p = random_tensor({n}, 31).to(dt), acc = random_tensor({n}, 32, 0.1, 1.0).to(dt);
        auto r = host(p, g, acc);
        optim::adagrad_update_(p, g, acc, 0.05, 1e-3);
        for (int64_t i = 0; i < n; ++i) {
          r.a[i] += r.g[i] * r.g[i];
          r.p[i] -= 0.05 * r.g[i] / (std::sqrt(r.a[i]) + 1e-3);
        }
        EXPECT_TRUE(near_vec(p, r.p, tol)) << "adagrad";
        EXPECT_TRUE(near_vec(acc, r.a, tol));
      }
    }
}

TEST(OptimKernels, NormScaleClampMatchLoops) {
  for (int64_t n : kSizes) {
    Tensor t = random_tensor({n}, 41);
    auto v = values(t);
    double ss = 0;
    for (double x : v) ss += x * x;
    EXPECT_NEAR(optim::squared_norm(t), ss, 1e-10 * ss);
    EXPECT_NEAR(optim::squared_norm(t.to(DType::F32)), ss, 1e-5 * ss);
    optim::scale_(t, 0.5);
    for (auto& x : v) x *= 0.5;
    EXPECT_TRUE(near_vec(t, v, 1e-15));
    optim::clamp_(t, -0.2, 0.1);
    for (auto& x : v) x = std::min(std::max(x, -0.2), 0.1);
    EXPECT_TRUE(near_vec(t, v, 0));
  }
}

// The reduction primitives (GradBucketer's pre-divided pack, the sum of received buckets).
TEST(OptimKernels, ScaledCopyAndAccumulateMatchLoops) {
  for (int64_t n : kSizes)
    for (DType dt : {DType::F64, DType::F32}) {
      Tensor src = random_tensor({n}, 43).to(dt), acc = random_tensor({n}, 44).to(dt), dst = zeros({n}, {.dtype = dt});
      auto s = values(src), a = values(acc);
      optim::scaled_copy_(dst, src, 0.25);  // a power of two: exact in both dtypes
      std::vector<double> want(s.size());
      for (size_t i = 0; i < s.size(); ++i) want[i] = s[i] * 0.25;
      EXPECT_TRUE(near_vec(dst, want, 0)) << dtype_name(dt) << " n=" << n;
      optim::accumulate_(acc, dst);
      for (size_t i = 0; i < s.size(); ++i)
        want[i] = dt == DType::F64 ? a[i] + want[i] : double(float(a[i]) + float(want[i]));
      EXPECT_TRUE(near_vec(acc, want, 0)) << dtype_name(dt) << " n=" << n;
    }
  Tensor h = zeros({3}, {.dtype = DType::BF16}), f = zeros({3});
  EXPECT_MF_ERROR(optim::accumulate_(h, f), "accumulate_", "addend", "f32", "bf16");
  Tensor i = zeros({3}, {.dtype = DType::I64});
  EXPECT_MF_ERROR(optim::accumulate_(i, i), "accumulate_", "i64", "f32, f64, bf16 and f16");
  EXPECT_MF_ERROR(optim::scaled_copy_(f, zeros({4}), 2.0), "scaled_copy_", "source", "[4]", "[3]");
}

TEST(OptimKernels, BadOperandsAreNamedErrors) {
  Tensor p = zeros({3, 4}, {.dtype = DType::F64}), g = zeros({3, 4}, {.dtype = DType::F64});
  Tensor m = zeros({3, 4}, {.dtype = DType::F64}), v = zeros({4, 3}, {.dtype = DType::F64}), none;
  EXPECT_MF_ERROR(optim::adam_update_(p, g, m, v, none, 0.1, 0.9, 0.999, 1e-7, 1, false), "adam_update_",
                  "second moment", "[4, 3]", "[3, 4]");
  Tensor g32 = zeros({3, 4});
  EXPECT_MF_ERROR(optim::adagrad_update_(p, g32, m, 0.1, 1e-7), "adagrad_update_", "gradient", "f32", "f64");
  Tensor gt = zeros({4, 3}, {.dtype = DType::F64}).t();
  EXPECT_MF_ERROR(optim::sgd_update_(p, gt, none, 0.1, 0.0, false), "sgd_update_", "contiguous");
  Tensor pi = zeros({3}, {.dtype = DType::I64}), gi = zeros({3}, {.dtype = DType::I64});
  EXPECT_MF_ERROR(optim::sgd_update_(pi, gi, none, 0.1, 0.0, false), "sgd_update_", "i64", "f32 and f64");
  EXPECT_MF_ERROR(optim::adam_update_(p, g, m, m, none, 0.1, 0.9, 0.999, 1e-7, 0, false), "step must be >= 1");
}

// Note [Prepared Adam step]: a batch kept over steps equals the one-parameter update applied to
// each parameter, also after a parameter is re-bound to another tensor.
TEST(OptimKernels, AdamBatchEqualsOneUpdatePerParameterOverSteps) {
  for (bool amsgrad : {false, true}) {
    const int64_t sizes[] = {5, 100003, 12};
    std::vector<Tensor> p, m, v, vm, rp, rm, rv, rvm;
    for (int s = 0; s < 3; ++s) {
      p.push_back(random_tensor({sizes[s]}, 20 + s).to(DType::F32));
      m.push_back(zeros({sizes[s]}));
      v.push_back(zeros({sizes[s]}));
      vm.push_back(zeros({sizes[s]}));
      for (auto* pair : {&rp, &rm, &rv, &rvm}) pair->push_back(Tensor());
      rp[s] = p[s].clone(), rm[s] = m[s].clone(), rv[s] = v[s].clone(), rvm[s] = vm[s].clone();
    }
    optim::AdamBatch batch;
    batch.resize(3);
    for (int64_t step = 1; step <= 3; ++step) {
      if (step == 3) {  // parameter 1 is replaced by another tensor holding the same values
        p[1] = p[1].clone();
        m[1] = m[1].clone();
      }
      for (int s = 0; s < 3; ++s) {
        Tensor g = random_tensor({sizes[s]}, 100 * step + s).to(DType::F32);
        optim::adam_update_(rp[s], g, rm[s], rv[s], rvm[s], 0.01, 0.8, 0.95, 1e-3, step, amsgrad, 0.1);
        batch.bind(s, p[s], g.clone(), m[s], v[s], amsgrad ? vm[s] : Tensor());
      }
      batch.run(0.01, 0.8, 0.95, 1e-3, step, amsgrad, 0.1);
      for (int s = 0; s < 3; ++s) {
        EXPECT_EQ(values(p[s]), values(rp[s])) << "amsgrad=" << amsgrad << " step " << step << " param " << s;
        EXPECT_EQ(values(m[s]), values(rm[s]));
        EXPECT_EQ(values(v[s]), values(rv[s]));
        if (amsgrad) EXPECT_EQ(values(vm[s]), values(rvm[s]));
      }
    }
  }
}

TEST(OptimKernels, AdamBatchNamesBadBindings) {
  optim::AdamBatch batch;
  batch.resize(2);
  Tensor p = zeros({3}), g = zeros({3}), m = zeros({3}), v = zeros({4});
  EXPECT_MF_ERROR(batch.bind(2, p, g.clone(), m, m, Tensor()), "adam_update_", "parameter 2", "batch of 2");
  batch.bind(0, p, g.clone(), m, v, Tensor());
  EXPECT_MF_ERROR(batch.run(0.1, 0.9, 0.999, 1e-7, 1, false), "adam_update_", "second moment", "[4]", "[3]");
  batch.bind(0, p, g.clone(), m, m, Tensor());
  EXPECT_MF_ERROR(batch.run(0.1, 0.9, 0.999, 1e-7, 1, false), "adam_update_", "parameter 1", "never bound");
  batch.resize(1);
  batch.bind(0, p, g.clone(), m, m, Tensor());
  EXPECT_MF_ERROR(batch.run(0.1, 0.9, 0.999, 1e-7, 1, true), "amsgrad maximum of parameter 0");
  EXPECT_MF_ERROR(batch.run(0.1, 0.9, 0.999, 1e-7, 0, false), "step must be >= 1");
}
