// A tiny regression model and data for the callback tests (a linear layer, SGD, MSE).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "meshflow/meshflow.h"
#include "test_util.h"

namespace cb_test {

using namespace meshflow;

// y = x W + b, W from a fixed seed so separate processes start from the same weights.
class Linear : public Layer {
 public:
  Linear(int64_t units, uint64_t seed) : Layer({}, "Linear"), units_(units), seed_(seed) {}
  void build(const Shape& in) override {
    w_ = add_weight("kernel", mf_test::random_tensor({in.back(), units_}, seed_, -0.5, 0.5, DType::F32));
    b_ = add_weight("bias", zeros({units_}));
  }
  Tensor call(const Tensor& x) override { return matmul(x, w_) + b_; }

 private:
  int64_t units_;
  uint64_t seed_;
  Variable w_, b_;
};

inline std::shared_ptr<Sequential> linear_model(double lr = 0.05, const std::string& optimizer = "sgd") {
  reset_layer_names();
  auto model = std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{std::make_shared<Linear>(1, 11)});
  std::shared_ptr<Optimizer> opt;
  if (optimizer == "adam") {
    optimizers::AdamOptions o;
    o.learning_rate = lr;
    opt = optimizers::Adam(o);
  } else {
    optimizers::SGDOptions o;
    o.learning_rate = lr;
    opt = optimizers::SGD(o);
  }
  model->compile({.optimizer = opt, .loss = "mse", .metrics = {"mae"}});
  return model;
}

// 64 samples of 3 features; y = x . (1, -2, 0.5) + 0.3.
struct Data {
  Tensor x, y;
};
inline Data regression_data(int64_t n = 64, uint64_t seed = 5) {
  Tensor x = mf_test::random_tensor({n, 3}, seed, -1, 1, DType::F32);
  Tensor w = from_vector(std::vector<float>{1.f, -2.f, 0.5f}, {3, 1});
  return {x, matmul(x, w) + 0.3};
}

// A fresh, empty folder under the system temp dir.
inline std::string temp_dir(const std::string& name) { return mf_test::temp_folder(name); }

// Records what fit() passes to the hooks.
class Recorder : public Callback {
 public:
  std::vector<int> epochs_begun;
  std::vector<Logs> epoch_logs;
  std::vector<double> lr_at_epoch_begin;
  int64_t batches = 0;
  void on_epoch_begin(int epoch, Logs&) override {
    epochs_begun.push_back(epoch);
    lr_at_epoch_begin.push_back(model()->optimizer()->learning_rate());
  }
  void on_epoch_end(int, Logs& logs) override { epoch_logs.push_back(logs); }
  void on_train_batch_end(int64_t, Logs&) override { ++batches; }
};

}  // namespace cb_test
