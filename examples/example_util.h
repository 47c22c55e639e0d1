// Shared helpers for the examples: made-up data and the "did the loss fall" check.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "meshflow/meshflow.h"

namespace example {

namespace mf = meshflow;

// Prints the first and last epoch's loss and returns the process exit code: 0 when it fell.
inline int report(const mf::History& h, const std::string& key = "loss") {
  const auto& v = h[key];
  std::printf("%s: %.4f -> %.4f over %zu epochs\n", key.c_str(), v.front(), v.back(), v.size());
  if (!(v.back() < v.front())) {
    std::printf("FAILED: %s did not fall\n", key.c_str());
    return 1;
  }
  return 0;
}

inline mf::Tensor uniform(const mf::Shape& shape, uint64_t seed) {
  mf::Generator g(seed);
  return mf::rand(shape, {}, &g);
}

inline mf::Tensor one_hot_labels(const mf::Tensor& ids, int64_t classes) { return mf::one_hot(ids, classes); }

// The seed programs' one option, --device D (cpu, cpu:1, cuda:0, /gpu:0): main opens a DeviceScope
// on it, so the data, the weights and every op of the program are made and run there.
// A bad option or a device this process cannot use ends the program with a sentence and exit code 2.
inline mf::Device parse_device(int argc, char** argv) {
  try {
    mf::Device device;
    for (int i = 1; i < argc; ++i) {
      std::string k = argv[i];
      if (k == "--device" && i + 1 < argc) device = mf::Device(std::string(argv[++i]));
      else throw mf::Error("unknown option '" + k + "' (expected --device cpu|cpu:N|cuda:N)");
    }
    if (device.is_cuda() && device.index >= mf::device_count(mf::DeviceType::CUDA))
      throw mf::Error("--device " + device.str() + ": this process sees " +
                      std::to_string(mf::device_count(mf::DeviceType::CUDA)) + " GPU(s)");
    return device;
  } catch (const mf::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    std::exit(2);
  }
}

// The Fashion-MNIST programs' options: --epochs N, --batch B, --data DIR (Debian's dataset folder).
struct FashionArgs {
  int epochs = 3;
  int64_t batch = 128;
  std::string data = "/usr/share/datasets/fashion-mnist";
};

inline FashionArgs parse_fashion_args(int argc, char** argv, int default_epochs) {
  FashionArgs a;
  a.epochs = default_epochs;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw mf::Error("option " + k + " needs a value");
      return argv[++i];
    };
    if (k == "--epochs") a.epochs = std::stoi(value());
    else if (k == "--batch") a.batch = std::stoll(value());
    else if (k == "--data") a.data = value();
    else throw mf::Error("unknown option '" + k + "' (expected --epochs, --batch, --data)");
  }
  if (a.epochs < 1 || a.batch < 1) throw mf::Error("--epochs and --batch must be positive");
  return a;
}

}  // namespace example
