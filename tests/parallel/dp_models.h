// Small float64 models, data and a single-process reference for the data-parallel tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "meshflow/meshflow.h"

namespace dp_test {

namespace mf = meshflow;
using mf::DType;
using mf::Shape;
using mf::Tensor;

// Dense written with add_weight + matmul, so these tests do not depend on the layers library.
class TestDense : public mf::Layer {
 public:
  TestDense(int64_t units, std::string activation) : Layer({.dtype = DType::F64}), units_(units), act_(activation) {}
  void build(const Shape& s) override {
    w_ = add_weight("kernel", {s.back(), units_});
    b_ = add_weight("bias", {units_}, "zeros");
  }
  Tensor call(const Tensor& x) override {
    Tensor y = mf::matmul(x, w_) + b_;
    if (act_ == "relu") return mf::relu(y);
    if (act_ == "softmax") return mf::softmax(y, 1);
    return y;
  }

 private:
  int64_t units_;
  std::string act_;
  mf::Variable w_, b_;
};

class TestConv : public mf::Layer {
 public:
  explicit TestConv(int64_t filters) : Layer({.dtype = DType::F64}), filters_(filters) {}
  void build(const Shape& s) override {
    w_ = add_weight("kernel", {3, 3, s.back(), filters_});
    b_ = add_weight("bias", {filters_}, "zeros");
  }
  Tensor call(const Tensor& x) override { return mf::relu(mf::conv2d(x, w_) + b_); }

 private:
  int64_t filters_;
  mf::Variable w_, b_;
};

class TestPoolFlatten : public mf::Layer {
 public:
  TestPoolFlatten() : Layer({.dtype = DType::F64}) {}
  Tensor call(const Tensor& x) override { return mf::max_pool2d(x).flatten(1); }
};

inline std::shared_ptr<mf::Model> mlp() {
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      std::make_shared<TestDense>(16, "relu"), std::make_shared<TestDense>(16, "relu"),
      std::make_shared<TestDense>(3, "softmax")});
}

inline std::shared_ptr<mf::Model> cnn() {
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      std::make_shared<TestConv>(4), std::make_shared<TestPoolFlatten>(), std::make_shared<TestDense>(8, "relu"),
      std::make_shared<TestDense>(3, "softmax")});
}

// n samples of `shape` (without the batch dim), values from a fixed seed; labels 0..2 that
// depend on the inputs, so the models can learn something.
inline std::pair<Tensor, Tensor> data(int64_t n, const Shape& shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  int64_t per = 1;
  for (int64_t d : shape) per *= d;
  std::vector<double> x(static_cast<size_t>(n * per));
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < per; ++j) {
      x[i * per + j] = normal(rng);
      s += x[i * per + j] * (j % 3 == 0 ? 1.0 : -0.5);
    }
    y[i] = s > 0.5 ? 2 : (s > -0.5 ? 1 : 0);
  }
  Shape full{n};
  full.insert(full.end(), shape.begin(), shape.end());
  return {mf::from_vector(x, full, {.dtype = DType::F64}), mf::from_vector(y, {n})};
}

// Builds `model` on one sample and sets its weights to values from a fixed seed plus `shift`.
inline void set_known_weights(mf::Model& model, const Tensor& x, double shift) {
  model.predict_on_batch({x.slice(0, 0, 1)});
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-0.4, 0.4);
  std::vector<Tensor> ws;
  for (const auto& w : model.get_weights()) {
    std::vector<double> v(static_cast<size_t>(w.numel()));
    for (auto& e : v) e = u(rng) + shift;
    ws.push_back(mf::from_vector(v, w.shape(), {.dtype = DType::F64}));
  }
  model.set_weights(ws);
}

inline void compile(mf::Model& model) {
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
}

// build() replicated and compiled inside the strategy's scope, as users write it.
inline std::shared_ptr<mf::Model> replicated(mf::Strategy& s, std::shared_ptr<mf::Model> (*build)() = mlp) {
  auto scope = s.scope();
  auto model = mf::replicate_model(build);
  compile(*model);
  return model;
}

inline ::testing::AssertionResult histories_near(const mf::History& a, const mf::History& b, double rtol) {
  if (a.history.size() != b.history.size()) return ::testing::AssertionFailure() << "different keys";
  for (const auto& [k, va] : a.history) {
    auto it = b.history.find(k);
    if (it == b.history.end() || it->second.size() != va.size())
      return ::testing::AssertionFailure() << "key " << k << " missing or of another length";
    for (size_t e = 0; e < va.size(); ++e)
      if (std::abs(va[e] - it->second[e]) > rtol * std::max(1.0, std::abs(it->second[e])))
        return ::testing::AssertionFailure() << k << "[" << e << "]: " << va[e] << " vs " << it->second[e];
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult weights_near(const mf::Model& a, const mf::Model& b, double rtol) {
  auto wa = a.get_weights(), wb = b.get_weights();
  if (wa.size() != wb.size()) return ::testing::AssertionFailure() << "weight counts differ";
  for (size_t i = 0; i < wa.size(); ++i) {
    auto va = wa[i].to_vector<double>(), vb = wb[i].to_vector<double>();
    for (size_t j = 0; j < va.size(); ++j)
      if (std::abs(va[j] - vb[j]) > rtol * std::max(1.0, std::abs(vb[j])))
        return ::testing::AssertionFailure() << "weight " << i << "[" << j << "]: " << va[j] << " vs " << vb[j];
  }
  return ::testing::AssertionSuccess();
}


// An optimizer slot key of `from` ("<weight name>/<slot>") with the weight's name in `to` (the
// same architecture built again gets other layer names).
inline std::string renamed_slot(const mf::Model& from, const mf::Model& to, const std::string& key) {
  auto a = from.weights(), b = to.weights();
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (key.starts_with(a[i].name() + "/")) return b[i].name() + key.substr(a[i].name().size());
  return key;
}

}  // namespace dp_test
