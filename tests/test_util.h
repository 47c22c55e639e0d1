// Shared test helpers: tensor comparison, finite-difference gradient checks, error assertions.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "meshflow/core/core.h"

namespace mf_test {

// A fresh, empty folder under the system temp dir, named by `tag` and this process.
inline std::string temp_folder(const std::string& tag) {
  auto dir = std::filesystem::temp_directory_path() / ("meshflow_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

using meshflow::DType;
using meshflow::Shape;
using meshflow::Tensor;

// A float64 tensor of values in [lo, hi) from a fixed seed.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0,
                            DType dtype = DType::F64) {
  meshflow::Generator gen(seed);
  Tensor t = meshflow::empty(shape, {.dtype = dtype});
  meshflow::uniform_(t, lo, hi, &gen);
  return t;
}

inline std::vector<double> values(const Tensor& t) {
  return t.to(DType::F64).contiguous().to_vector<double>();
}

// Every element close: |a - b| <= atol + rtol * |b|. Reports the first mismatch with its index.
inline ::testing::AssertionResult tensors_near(const Tensor& a, const Tensor& b, double atol = 1e-6,
                                               double rtol = 1e-6) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shapes differ: " << meshflow::shape_str(a.shape()) << " vs "
                                         << meshflow::shape_str(b.shape());
  auto va = values(a), vb = values(b);
  for (size_t i = 0; i < va.size(); ++i) {
    bool both_nan = std::isnan(va[i]) && std::isnan(vb[i]);
    if (!both_nan && !(std::fabs(va[i] - vb[i]) <= atol + rtol * std::fabs(vb[i])))
      return ::testing::AssertionFailure() << "element " << i << ": " << va[i] << " vs " << vb[i]
                                           << " (shape " << meshflow::shape_str(a.shape()) << ")";
  }
  return ::testing::AssertionSuccess();
}

inline Tensor from_values(const std::vector<double>& v, const Shape& s, DType dtype = DType::F64) {
  return meshflow::from_vector(v, s, {.dtype = dtype});
}

// Checks the analytic gradient of sum(fn(inputs) * w) (w fixed random weights, so every output
// element matters) against central finite differences in float64.
inline ::testing::AssertionResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                                            std::vector<Tensor> inputs, double eps = 1e-6, double atol = 1e-5,
                                            double rtol = 1e-4) {
  for (auto& x : inputs) {
    x = x.to(DType::F64).contiguous().clone().detach();
    x.set_requires_grad(true);
  }
  Tensor probe = fn(inputs);
  Tensor w = random_tensor(probe.shape(), 12345, 0.5, 1.5);
  auto objective = [&](const std::vector<Tensor>& xs) { return meshflow::sum(fn(xs) * w); };
  Tensor loss = objective(inputs);
  loss.backward();
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor g = inputs[k].grad();
    if (!g.defined()) g = meshflow::zeros_like(inputs[k]);
    std::vector<double> analytic = values(g);
    Tensor base = inputs[k].detach();
    double* p = base.data<double>();
    for (int64_t i = 0; i < base.numel(); ++i) {
      double orig = p[i];
      std::vector<Tensor> xs;
      for (auto& x : inputs) xs.push_back(x.detach());
      meshflow::NoGradGuard ng;
      p[i] = orig + eps;
      double fp = objective(xs).item();
      p[i] = orig - eps;
      double fm = objective(xs).item();
      p[i] = orig;
      double numeric = (fp - fm) / (2 * eps);
      if (!(std::fabs(numeric - analytic[i]) <= atol + rtol * std::fabs(numeric)))
        return ::testing::AssertionFailure() << "input " << k << " element " << i << ": analytic " << analytic[i]
                                             << " vs numeric " << numeric;
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace mf_test

// EXPECT_MF_ERROR(statement, "part1", "part2", ...): throws meshflow::Error whose message has every part.
#define EXPECT_MF_ERROR(statement, ...)                                                         \
  do {                                                                                          \
    bool mf_thrown_ = false;                                                                    \
    try {                                                                                       \
      statement;                                                                                \
    } catch (const meshflow::Error& e) {                                                        \
      mf_thrown_ = true;                                                                        \
      std::string mf_msg_ = e.what();                                                           \
      for (const char* part : {__VA_ARGS__})                                                    \
        EXPECT_NE(mf_msg_.find(part), std::string::npos) << "message: " << mf_msg_ << "\nmissing: " << part; \
    }                                                                                           \
    EXPECT_TRUE(mf_thrown_) << "expected meshflow::Error from " #statement;                     \
  } while (0)
