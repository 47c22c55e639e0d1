// The op sweep's cases: one call of every public op on given input shapes, shared by the CPU
// sweep (tests/core/test_op_sweep.cpp) and the CUDA sweep (tests/cuda/test_cuda_ops.cpp).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "meshflow/core/optim.h"
#include "test_util.h"

namespace mf_test {

using namespace meshflow;

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Case {
  std::vector<Shape> shapes;
  Fn fn;
  bool differentiable = true;
  double lo = -1.0, hi = 1.0;  // input range (kept away from kinks and poles)
};

inline Tensor ids(const std::vector<int64_t>& v, Device d = Device()) {
  return from_vector(v, {static_cast<int64_t>(v.size())}).to(d);
}

inline std::map<std::string, Case> op_cases() {
  std::map<std::string, Case> c;
  auto unary = [&](const char* name, Tensor (*f)(const Tensor&), double lo = -1, double hi = 1) {
    c[name] = {{{3, 4}}, [f](const std::vector<Tensor>& x) { return f(x[0]); }, true, lo, hi};
  };
  unary("abs", abs, 0.2, 1.0);
  unary("neg", neg);
  unary("exp", exp);
  unary("log", log, 0.5, 2.0);
  unary("sqrt", sqrt, 0.5, 2.0);
  unary("rsqrt", rsqrt, 0.5, 2.0);
  unary("square", square);
  unary("sign", sign, 0.2, 1.0);
  unary("tanh", tanh);
  unary("sigmoid", sigmoid);
  unary("relu", relu, 0.2, 1.0);
  unary("softplus", softplus);
  unary("silu", silu);
  c["leaky_relu"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return leaky_relu(x[0], 0.1); }, true, 0.2, 1.0};
  c["elu"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return elu(x[0] - 0.5); }};
  c["gelu"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return gelu(x[0]) + gelu(x[0] * 2.0, true); }};
  c["bias_gelu"] = {{{2, 3, 4}, {4}}, [](const std::vector<Tensor>& x) {
    return bias_gelu(x[0], x[1]) + bias_gelu(x[0], x[1] * 2.0, true);
  }};
  c["bias_relu"] = {{{2, 3, 4}, {4}}, [](const std::vector<Tensor>& x) { return bias_relu(x[0], x[1]); }};
  c["clip"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return clip(x[0], -0.5, 0.55); }};
  auto binary = [&](const char* name, Tensor (*f)(const Tensor&, const Tensor&), double lo = -1, double hi = 1) {
    c[name] = {{{3, 1}, {1, 4}}, [f](const std::vector<Tensor>& x) { return f(x[0], x[1]); }, true, lo, hi};
  };
  binary("add", add);
  binary("sub", sub);
  binary("mul", mul);
  binary("div", div, 0.5, 2.0);
  binary("maximum", maximum);
  binary("minimum", minimum);
  c["pow"] = {{{3, 1}, {1, 4}}, [](const std::vector<Tensor>& x) { return pow(x[0], x[1]); }, true, 0.5, 2.0};
  c["pow_scalar"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return pow(x[0], 2.5); }, true, 0.5, 2.0};
  for (const char* name : {"eq", "ne", "lt", "le", "gt", "ge"}) {
    static const std::map<std::string, Tensor (*)(const Tensor&, const Tensor&)> f = {
        {"eq", eq}, {"ne", ne}, {"lt", lt}, {"le", le}, {"gt", gt}, {"ge", ge}};
    auto fn = f.at(name);
    c[name] = {{{3, 1}, {1, 4}}, [fn](const std::vector<Tensor>& x) { return fn(x[0], x[1]); }, false};
  }
  c["logical_not"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return logical_not(gt(x[0], scalar_like(0, x[0]))); }, false};
  c["logical_and"] = {{{3, 4}, {3, 4}}, [](const std::vector<Tensor>& x) {
    return logical_and(gt(x[0], scalar_like(0, x[0])), gt(x[1], scalar_like(0, x[1])));
  }, false};
  c["logical_or"] = {{{3, 4}, {3, 4}}, [](const std::vector<Tensor>& x) {
    return logical_or(gt(x[0], scalar_like(0, x[0])), gt(x[1], scalar_like(0, x[1])));
  }, false};
  c["where"] = {{{3, 4}, {3, 1}, {1, 4}}, [](const std::vector<Tensor>& x) {
    return where(gt(x[0].detach(), scalar_like(0, x[0])), x[1], x[2]);
  }};
  c["cast"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return cast(x[0], DType::F64); }};
  c["contiguous"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return x[0].t().contiguous(); }};
  c["reshape"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return x[0].reshape({2, 6}); }};
  c["permute"] = {{{2, 3, 4}}, [](const std::vector<Tensor>& x) { return x[0].permute({2, 0, 1}); }};
  c["slice"] = {{{4, 5}}, [](const std::vector<Tensor>& x) { return x[0].slice(1, 1, 5, 2); }};
  c["expand"] = {{{3, 1}}, [](const std::vector<Tensor>& x) { return x[0].expand({2, 3, 4}); }};
  c["sum"] = {{{3, 4, 5}}, [](const std::vector<Tensor>& x) { return sum(x[0], {0, 2}); }};
  c["mean"] = {{{3, 4, 5}}, [](const std::vector<Tensor>& x) { return mean(x[0], {1}, true); }};
  c["max"] = {{{3, 4, 5}}, [](const std::vector<Tensor>& x) { return max(x[0], {2}); }};
  c["min"] = {{{3, 4, 5}}, [](const std::vector<Tensor>& x) { return min(x[0], {0}); }};
  c["var"] = {{{3, 4, 5}}, [](const std::vector<Tensor>& x) { return var(x[0], {1}, false, 1); }};
  c["argmax"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return argmax(x[0], 1); }, false};
  c["argmin"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return argmin(x[0], 0); }, false};
  c["softmax"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return softmax(x[0], 0); }};
  c["log_softmax"] = {{{3, 4}}, [](const std::vector<Tensor>& x) { return log_softmax(x[0], -1); }};
  c["layer_norm"] = {{{3, 4}, {4}, {4}}, [](const std::vector<Tensor>& x) { return layer_norm(x[0], x[1], x[2]); }};
  c["batch_norm_train"] = {{{4, 2, 3}, {3}, {3}}, [](const std::vector<Tensor>& x) {
    Tensor rm = zeros({3}, {.dtype = DType::F64, .device = x[0].device()});
    Tensor rv = ones({3}, {.dtype = DType::F64, .device = x[0].device()});
    return batch_norm(x[0], x[1], x[2], rm, rv, true);
  }};
  c["batch_norm_infer"] = {{{4, 3}, {3}, {3}}, [](const std::vector<Tensor>& x) {
    Tensor rm = full({3}, 0.1, {.dtype = DType::F64, .device = x[0].device()});
    Tensor rv = full({3}, 0.7, {.dtype = DType::F64, .device = x[0].device()});
    return batch_norm(x[0], x[1], x[2], rm, rv, false);
  }};
  c["matmul"] = {{{2, 3, 4}, {4, 5}}, [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); }};
  c["conv2d"] = {{{2, 5, 5, 2}, {3, 3, 2, 4}}, [](const std::vector<Tensor>& x) {
    return conv2d(x[0], x[1], {.strides = {2, 1}, .padding = "same"});
  }};
  c["max_pool2d"] = {{{1, 4, 4, 2}}, [](const std::vector<Tensor>& x) { return max_pool2d(x[0]); }};
  c["avg_pool2d"] = {{{1, 5, 5, 2}}, [](const std::vector<Tensor>& x) {
    return avg_pool2d(x[0], {.pool_size = {3, 3}, .strides = {2, 2}, .padding = "same"});
  }};
  c["concat"] = {{{2, 3}, {2, 1}}, [](const std::vector<Tensor>& x) { return concat({x[0], x[1], x[0]}, 1); }};
  c["pad"] = {{{2, 3}}, [](const std::vector<Tensor>& x) { return pad(x[0], {{1, 0}, {0, 2}}, 0.5); }};
  c["gather"] = {{{4, 3}}, [](const std::vector<Tensor>& x) { return gather(x[0], ids({3, 0, 3, 1}, x[0].device()), 0); }};
  c["embedding"] = {{{5, 3}}, [](const std::vector<Tensor>& x) { return embedding(ids({4, 4, 0}, x[0].device()).reshape({3, 1}), x[0]); }};
  c["dropout"] = {{{4, 5}}, [](const std::vector<Tensor>& x) {
    Generator g(7);
    return dropout(x[0], 0.4, true, g);
  }};
  c["unbind"] = {{{2, 3, 4}}, [](const std::vector<Tensor>& x) { return concat(unbind(x[0], 1), 1); }};
  c["one_hot"] = {{{1}}, [](const std::vector<Tensor>& x) { return one_hot(ids({2, 0, 1}, x[0].device()), 3, DType::F64); },
                  false};
  return c;
}

// Every in-place op in turn (the fused updates, scale, clamp, then squared_norm and copy_) on
// parameters and slots of `shape` made on `device`: returns the norm and the final parameter, cast
// to f32 by copy_ into a fresh tensor on the device.
inline std::pair<double, Tensor> apply_every_inplace_op(Device device, DType dtype, const Shape& shape) {
  std::vector<Tensor> t;
  for (uint64_t seed = 1; seed <= 6; ++seed) t.push_back(random_tensor(shape, seed, 0.1, 1.0, dtype).to(device));
  Tensor g = t[1];
  optim::sgd_update_(t[0], g, t[2], 0.1, 0.9, true);
  optim::adam_update_(t[0], g, t[3], t[4], t[5], 0.01, 0.9, 0.999, 1e-7, 3, true, 0.01);
  optim::rmsprop_update_(t[0], g, t[2], t[3], t[4], 0.01, 0.9, 0.5, 1e-7, false);
  optim::adagrad_update_(t[0], g, t[5], 0.1, 1e-7);
  optim::scale_(t[0], 0.5);
  optim::clamp_(t[0], -0.2, 0.3);
  optim::scaled_copy_(t[2], t[0], -0.75);
  optim::accumulate_(t[0], t[2]);
  optim::accumulate_(t[0], t[4]);
  const double norm = optim::squared_norm(t[0]);
  Shape wide = shape;
  wide.insert(wide.begin(), 3);
  Tensor dst = zeros(wide, {.dtype = DType::F32, .device = device});
  dst.copy_(t[0]);  // broadcast and cast
  return {norm, dst};
}

}  // namespace mf_test
