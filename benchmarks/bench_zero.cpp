// Per-rank memory of data parallelism with Adam: replicated (MultiWorkerMirroredStrategy) next to
// ZeRO stage 1 and stage 2 (ShardedStrategy), for one model of `layers` Dense(width) layers
// (default 12 x 2048, 50.4M f32 parameters), next to what ZeRO's arithmetic predicts.
//   OMP_NUM_THREADS=1 mpirun -np 2 ./bench_zero [layers] [width] [batch]
// "held" is the host memory live tensors hold between steps (weights, gradients, Adam's moments);
// "peak" the most held during a step (plus activations and buckets in flight); both in MiB, the
// maximum over ranks, after 2 warm-up steps (the first step creates the optimizer's slots). The
// prediction for Psi parameters of 4 bytes on N ranks: replicated 16 Psi (weights 4, gradients 4,
// moments 8); stage 1: 8 Psi + 8 Psi / N; stage 2: 4 Psi + 12 Psi / N (gradients live in buckets
// only while they are reduced); stage 3: 16 Psi / N (weights whole only while used, at most
// live_buckets buckets at once, none between train_on_batch steps). Step time is the median of 3 steps, as a ratio to replicated.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "meshflow/meshflow.h"

namespace mf = meshflow;

namespace {

std::shared_ptr<mf::Sequential> build(int layers, int64_t width) {
  std::vector<std::shared_ptr<mf::Layer>> l{mf::make_input_layer({width})};
  for (int i = 0; i < layers; ++i) l.push_back(mf::layers::Dense(width, {.activation = i + 1 < layers ? "relu" : "linear"}));
  return std::make_shared<mf::Sequential>(l);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Result {
  double held_mib = 0, peak_mib = 0, step_s = 0;
};

Result measure(mf::Strategy& strategy, int layers, int64_t width, const mf::Tensor& x, const mf::Tensor& y) {
  const mf::Device cpu;
  const int64_t base = mf::memory_stats(cpu).current_bytes;
  std::shared_ptr<mf::Model> model;
  {
    auto scope = strategy.scope();
    model = build(layers, width);
    model->compile({.optimizer = "adam", .loss = "mse"});
  }
  std::vector<double> held, peak, step;
  for (int i = 0; i < 5; ++i) {
    mf::reset_peak_memory(cpu);
    auto t0 = std::chrono::steady_clock::now();
    model->train_on_batch({x}, {y});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i < 2) continue;
    const auto st = mf::memory_stats(cpu);
    held.push_back(double(st.current_bytes - base) / (1 << 20));
    peak.push_back(double(st.peak_bytes - base) / (1 << 20));
    step.push_back(s);
  }
  std::vector<double> v{median(held), median(peak), median(step)};
  // The worst rank's memory, the slowest rank's step.
  std::vector<double> all(3 * strategy.num_processes(), 0.0);
  for (int k = 0; k < 3; ++k) all[3 * strategy.process_rank() + k] = v[k];
  strategy.reduce_sums(all);
  Result r;
  for (int p = 0; p < strategy.num_processes(); ++p) {
    r.held_mib = std::max(r.held_mib, all[3 * p]);
    r.peak_mib = std::max(r.peak_mib, all[3 * p + 1]);
    r.step_s = std::max(r.step_s, all[3 * p + 2]);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int layers = argc > 1 ? std::atoi(argv[1]) : 12;
  const int64_t width = argc > 2 ? std::atoll(argv[2]) : 2048;
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 32;
  const int n = mf::distributed::detect_world().size;
  if (n < 2) {
    std::printf("bench_zero: run it under mpirun -np 2 (or more): one rank per ZeRO shard\n");
    return 0;
  }
  mf::Generator g(1);
  mf::Tensor x = mf::rand({batch, width}, {}, &g), y = mf::rand({batch, width}, {}, &g);
  const double psi = double(layers) * double(width * width + width);
  const double psi_mib = 4.0 * psi / (1 << 20);

  Result rep, z1, z2, z3;
  {
    mf::MultiWorkerMirroredStrategy s;
    rep = measure(s, layers, width, x, y);
  }
  {
    mf::ShardedStrategy s(mf::Mesh({{"data", n}}), {.zero_stage = 1});
    z1 = measure(s, layers, width, x, y);
  }
  {
    mf::ShardedStrategy s(mf::Mesh({{"data", n}}), {.zero_stage = 2});
    z2 = measure(s, layers, width, x, y);
  }
  {
    mf::ShardedStrategy s(mf::Mesh({{"data", n}}), {.zero_stage = 3});
    z3 = measure(s, layers, width, x, y);
  }
  if (mf::distributed::detect_world().rank != 0) return 0;
  std::printf("zero: %d ranks, %d x Dense(%lld), batch %lld, f32, Adam: %.1fM parameters (%.0f MiB)\n", n, layers,
              (long long)width, (long long)batch, psi / 1e6, psi_mib);
  auto row = [&](const char* name, const Result& r, double predicted) {
    std::printf("%-11s held %7.0f MiB (predicted %6.0f, %.2fx)  peak %7.0f MiB  vs replicated: held %.2fx peak %.2fx  "
                "step %.2fx (%.0f ms)\n",
                name, r.held_mib, predicted, r.held_mib / predicted, r.peak_mib, r.held_mib / rep.held_mib,
                r.peak_mib / rep.peak_mib, r.step_s / rep.step_s, r.step_s * 1e3);
  };
  row("replicated", rep, 4 * psi_mib);
  row("zero-1", z1, 2 * psi_mib + 2 * psi_mib / n);
  row("zero-2", z2, psi_mib + 3 * psi_mib / n);
  row("zero-3", z3, 4 * psi_mib / n);
  return 0;
}
