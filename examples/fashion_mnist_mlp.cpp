// The main job: an MLP trained on Fashion-MNIST with Meshflow's core (tensors, autograd, Adam).
//   ./fashion_mnist_mlp [--epochs N] [--batch B] [--data DIR]
#include <chrono>
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "example_util.h"
#include "meshflow/meshflow.h"

namespace mf = meshflow;

namespace {

struct Adam {
  double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-7;
  int64_t t = 0;
  std::vector<mf::Tensor> m, v;
  void step(std::vector<mf::Tensor>& params) {
    mf::NoGradGuard no_grad;
    if (m.empty())
      for (auto& p : params) {
        m.push_back(mf::zeros_like(p));
        v.push_back(mf::zeros_like(p));
      }
    ++t;
    double c1 = 1 - std::pow(b1, double(t)), c2 = 1 - std::pow(b2, double(t));
    for (size_t i = 0; i < params.size(); ++i) {
      mf::Tensor g = params[i].grad();
      m[i] = m[i] * b1 + g * (1 - b1);
      v[i] = v[i] * b2 + mf::square(g) * (1 - b2);
      params[i].copy_(params[i] - (m[i] / c1) * lr / (mf::sqrt(v[i] / c2) + eps));
      params[i].zero_grad();
    }
  }
};

}  // namespace

int main(int argc, char** argv) try {
  example::FashionArgs args = example::parse_fashion_args(argc, argv, /*default_epochs=*/3);
  auto load = [&](const char* images, const char* labels) {
    mf::Tensor x = mf::io::read_idx(args.data + "/" + images);
    mf::Tensor y = mf::io::read_idx(args.data + "/" + labels, /*as_float=*/false);
    return std::make_pair(x.reshape({x.size(0), 784}) / 255.0, y);
  };
  auto [x_train, y_train] = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz");
  auto [x_test, y_test] = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");
  std::printf("Fashion-MNIST: %lld training and %lld test images, %d threads\n",
              static_cast<long long>(x_train.size(0)), static_cast<long long>(x_test.size(0)), mf::num_threads());

  mf::Generator gen(42);
  std::vector<mf::Tensor> params = {mf::init::glorot_uniform({784, 256}, &gen), mf::init::zeros({256}),
                                    mf::init::glorot_uniform({256, 10}, &gen), mf::init::zeros({10})};
  for (auto& p : params) p.set_requires_grad(true);
  auto forward = [&](const mf::Tensor& x) {
    mf::Tensor h = mf::relu(mf::matmul(x, params[0]) + params[1]);
    return mf::matmul(h, params[2]) + params[3];
  };
  auto accuracy = [&](const mf::Tensor& x, const mf::Tensor& y) {
    mf::NoGradGuard no_grad;
    mf::Tensor pred = mf::argmax(forward(x), 1);
    return mf::mean(mf::cast(mf::eq(pred, y), mf::DType::F32)).item();
  };

  Adam opt;
  const int64_t n = x_train.size(0);
  for (int epoch = 1; epoch <= args.epochs; ++epoch) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(static_cast<uint64_t>(epoch));
    std::shuffle(order.begin(), order.end(), rng);
    mf::Tensor idx = mf::from_vector(order, {n});
    mf::Tensor xs = mf::gather(x_train, idx, 0), ys = mf::gather(y_train, idx, 0);
    double loss_sum = 0;
    int64_t steps = 0;
    for (int64_t b = 0; b < n; b += args.batch) {
      int64_t e = std::min(n, b + args.batch);
      mf::Tensor xb = xs.slice(0, b, e), yb = ys.slice(0, b, e);
      mf::Tensor logits = forward(xb);
      mf::Tensor loss = -mf::mean(mf::sum(mf::one_hot(yb, 10) * mf::log_softmax(logits, 1), {1}));
      loss.backward();
      opt.step(params);
      loss_sum += loss.item();
      ++steps;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("Epoch %d/%d - %.1fs - loss: %.4f - test accuracy: %.4f\n", epoch, args.epochs, secs,
                loss_sum / double(steps), accuracy(x_test, y_test));
  }
  double acc = accuracy(x_test, y_test);
  std::printf("final test accuracy: %.4f\n", acc);
  return acc > 0.8 ? 0 : 1;
} catch (const mf::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
