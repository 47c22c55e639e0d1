// fit() throughput next to PyTorch on the same models, batch sizes and optimizer (Adam), with
// equal threads: the MLP 784-512-512-10 (batch 128 and 32), the CNN Conv(32,3)-Pool-Conv(64,3)-
// Pool-Dense(128)-Dense(10) (batch 64), the seeds' attention classifier (Embedding 10000x64,
// MultiHeadAttention 2 heads key_dim 64, sequence 128, batch 32) and a tiny 4-3-1 model's step.
//   OMP_NUM_THREADS=2 ./bench_fit [steps]     (runs benchmarks/peers/fit_torch.py when torch is there)
//   ./bench_fit 50 --device cuda:0 --python /opt/venv/bin/python3   (both on the GPU)
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "meshflow/meshflow.h"
#include "machine.h"
#include "meshflow/core/kernels.h"
#include "timing.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

namespace {

struct Result {
  double samples_per_s;
  double us_per_step;
};

// FLOPs per sample of a training step as issue 18 counts them: 3 x the forward pass's matmul and
// convolution FLOPs (2mnk), from the layer shapes of the workloads below.
double mlp_flops() { return 3.0 * 2 * (784.0 * 512 + 512.0 * 512 + 512.0 * 10); }
double cnn_flops() {
  const double conv1 = 26.0 * 26 * 32 * (3 * 3 * 1), conv2 = 11.0 * 11 * 64 * (3 * 3 * 32);
  return 3.0 * 2 * (conv1 + conv2 + 1600.0 * 128 + 128.0 * 10);
}
double attention_flops() {
  // Q, K, V projections 128 x 64 -> 2 heads x 64; scores and mixing per head 128 x 128 x 64; output 128 x 128 -> 64.
  const double seq = 128, d = 64, heads = 2, key = 64;
  return 3.0 * 2 * (3 * seq * d * heads * key + 2 * heads * seq * seq * key + seq * heads * key * d + d);
}

// Times train_on_batch over `steps` steps, best of 3 rounds after 5 warm-up steps.
Result time_steps(mf::Model& model, const mf::Tensors& x, const mf::Tensors& y, int steps) {
  double best = bench::best_seconds({.repeats = 3, .calls = steps, .warmups = 5}, [&] { model.train_on_batch(x, y); });
  return {static_cast<double>(x[0].size(0)) / best, best * 1e6};
}

std::map<std::string, Result> run_torch(int threads, int steps, const std::string& python, const mf::Device& device) {
  std::map<std::string, Result> r;
  std::string cmd = "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp " + python + " " MESHFLOW_BENCH_DIR
                    "/peers/fit_torch.py " + std::to_string(threads) + " " + std::to_string(steps) + " " +
                    (device.is_cuda() ? "cuda:" + std::to_string(device.index) : std::string("cpu")) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char name[64];
  double sps, us;
  while (std::fscanf(p, "%63s %lf %lf", name, &sps, &us) == 3) r[name] = {sps, us};
  pclose(p);
  return r;
}

mf::Tensor labels(int64_t n, int64_t classes, uint64_t seed) {
  mf::Generator g(seed);
  return mf::one_hot(mf::randint(0, classes, {n}, {.dtype = mf::DType::I64}, &g), classes);
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 50;
  mf::Device device;
  std::string python = "/usr/bin/python3";
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--device" && i + 1 < argc) device = mf::Device(std::string(argv[++i]));
    else if (k == "--python" && i + 1 < argc) python = argv[++i];
    else steps = std::atoi(argv[i]);
  }
  // Models, data and every op of the workloads on the chosen device.
  mf::DeviceScope on(device);
  int threads = omp_get_max_threads();
  mf::Generator g(1);
  std::map<std::string, Result> ours;

  auto mlp = [] {
    return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
        mf::make_input_layer({784}), L::Dense(512, {.activation = "relu"}), L::Dense(512, {.activation = "relu"}),
        L::Dense(10)});
  };
  for (int64_t batch : {128, 32}) {
    auto m = mlp();
    m->compile({.optimizer = "adam", .loss = mf::losses::CategoricalCrossentropy({.from_logits = true})});
    ours["mlp_b" + std::to_string(batch)] = time_steps(*m, mf::rand({batch, 784}, {}, &g), labels(batch, 10, 2), steps);
  }
  {
    mf::Sequential m({mf::make_input_layer({28, 28, 1}), L::Conv2D(32, 3, {.activation = "relu"}), L::MaxPooling2D(2),
                      L::Conv2D(64, 3, {.activation = "relu"}), L::MaxPooling2D(2), L::Flatten(),
                      L::Dense(128, {.activation = "relu"}), L::Dense(10)});
    m.compile({.optimizer = "adam", .loss = mf::losses::CategoricalCrossentropy({.from_logits = true})});
    ours["cnn_b64"] = time_steps(m, mf::rand({64, 28, 28, 1}, {}, &g), labels(64, 10, 3), std::max(steps / 2, 5));
  }
  {
    auto inputs = mf::Input({128}, {.dtype = mf::DType::I64});
    auto x = L::Embedding(10000, 64)(inputs);
    auto attn = L::MultiHeadAttention(2, 64)(mf::Tensors{x, x})[0];
    auto pooled = L::GlobalAveragePooling1D()(attn);
    auto out = L::Dense(1, {.activation = "sigmoid"})(pooled);
    mf::Model m({inputs}, {out});
    m.compile({.optimizer = "adam", .loss = "binary_crossentropy"});
    mf::Tensor ids = mf::randint(0, 10000, {32, 128}, {.dtype = mf::DType::I64}, &g);
    mf::Tensor y = mf::cast(mf::randint(0, 2, {32, 1}, {.dtype = mf::DType::I64}, &g), mf::DType::F32);
    ours["attention_b32"] = time_steps(m, ids, y, std::max(steps / 2, 5));
  }
  {
    mf::Sequential m({mf::make_input_layer({4}), L::Dense(3, {.activation = "relu"}), L::Dense(1)});
    m.compile({.optimizer = "adam", .loss = "mse"});
    ours["tiny_b32"] = time_steps(m, mf::rand({32, 4}, {}, &g), mf::rand({32, 1}, {}, &g), steps * 10);
  }

  auto torch = run_torch(threads, steps, python, device);
  // The machine after the runs (its FMA loop would otherwise warm the cores for the first workload).
  const bench::Machine machine = bench::measure_machine(threads);
  bench::print_machine(machine, threads);
  std::printf("kernels: %s\n", mf::cpu_kernel_summary().c_str());
  std::printf("fit() throughput on %s, %d thread(s), Adam; ratio = Meshflow / PyTorch samples per second; "
              "%%peak = 3 x forward matmul/conv FLOPs per sample x samples/s over the measured peak (%.0f GFLOP/s)\n",
              device.str().c_str(), threads, machine.peak(threads));
  std::printf("%-15s %14s %12s %14s %12s %8s %10s %7s\n", "workload", "meshflow/s", "us/step", "pytorch/s", "us/step",
              "ratio", "MFLOP/smp", "%peak");
  const std::map<std::string, double> flops = {{"mlp_b128", mlp_flops()}, {"mlp_b32", mlp_flops()},
                                               {"cnn_b64", cnn_flops()}, {"attention_b32", attention_flops()}};
  for (const char* k : {"mlp_b128", "mlp_b32", "cnn_b64", "attention_b32", "tiny_b32"}) {
    const Result& o = ours[k];
    char peak[32] = "n/a", mflop[32] = "n/a";
    if (flops.count(k) && !device.is_cuda()) {
      std::snprintf(mflop, sizeof mflop, "%.2f", flops.at(k) * 1e-6);
      std::snprintf(peak, sizeof peak, "%.1f", 100.0 * flops.at(k) * o.samples_per_s * 1e-9 / machine.peak(threads));
    }
    if (torch.count(k)) {
      const Result& t = torch[k];
      std::printf("%-15s %14.1f %12.1f %14.1f %12.1f %7.2fx %10s %7s\n", k, o.samples_per_s, o.us_per_step,
                  t.samples_per_s, t.us_per_step, o.samples_per_s / t.samples_per_s, mflop, peak);
    } else {
      std::printf("%-15s %14.1f %12.1f %14s %12s %8s %10s %7s\n", k, o.samples_per_s, o.us_per_step, "n/a", "n/a",
                  "n/a", mflop, peak);
    }
  }
  return 0;
}
