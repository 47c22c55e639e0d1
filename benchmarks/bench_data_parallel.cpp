// Data-parallel fit() throughput: samples/s of one rank alone and of every rank together under
// MultiWorkerMirroredStrategy, on the MLP 784-512-512-10 (global batch 128 and 512) and the CNN
// Conv(32,3)-Pool-Conv(64,3)-Pool-Dense(128)-Dense(10) (global batch 64), SGD, f32.
//   OMP_NUM_THREADS=1 mpirun -np 2 ./bench_data_parallel      (rank 0 prints; peer: peers/ddp_torch.py)
// Rounds alternate: rank 0 trains a model alone (no strategy) while the others wait, then all ranks
// train under the strategy with the same global batch; each round's ratio is the second over the first.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "meshflow/meshflow.h"
#include "meshflow/models/layers/conv.h"
#include "meshflow/models/layers/core.h"
#include "meshflow/models/layers/pooling.h"
#include "dp_models.h"
#include "timing.h"

namespace mf = meshflow;

namespace {

using bench::cnn;
using bench::mlp;

void compile(mf::Model& m) { m.compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy"}); }

// Best samples/s of `repeats` one-epoch fits of `steps` global batches (after a warm-up epoch if `warm`).
double samples_per_second(mf::Model& model, const mf::Tensor& x, const mf::Tensor& y, int64_t batch, int repeats,
                          bool warm = true) {
  mf::FitOptions fo{.epochs = 1, .batch_size = batch, .verbose = 0, .shuffle = false};
  // With no repeats (a warm-up only) the best time is infinite and the rate 0.
  return double(x.size(0)) /
         bench::best_seconds({.repeats = repeats, .warmups = warm ? 1 : 0}, [&] { model.fit({x}, {y}, fo); });
}

// The machine's speed drifts (other tenants), so one rank alone and all ranks together are timed
// in alternating rounds and each round gives a ratio; the median and the range are printed.
void row(mf::Strategy& strategy, const char* name, std::shared_ptr<mf::Model> (*build)(),
         const mf::Shape& sample, int64_t batch, int64_t steps) {
  constexpr int kRounds = 5;
  mf::Shape shape{batch * steps};
  shape.insert(shape.end(), sample.begin(), sample.end());
  mf::Generator g(3);
  mf::Tensor x = mf::rand(shape, {}, &g);
  mf::Tensor y = mf::cast(mf::rand({batch * steps}, {}, &g) * 10.0, mf::DType::I64);
  auto comm = strategy.process_communicator();
  std::shared_ptr<mf::Model> alone_model = strategy.is_chief() ? build() : nullptr;
  double share = 0;
  if (alone_model) {
    compile(*alone_model);
    // The bound without communication: every rank as fast as one rank on its share of a batch.
    share = samples_per_second(*alone_model, x, y, batch / strategy.num_processes(), 3) * strategy.num_processes();
    samples_per_second(*alone_model, x, y, batch, 0);  // warm-up at the full batch
  }
  std::shared_ptr<mf::Model> model;
  {
    auto scope = strategy.scope();
    model = mf::replicate_model(build);
    compile(*model);
  }
  samples_per_second(*model, x, y, batch, 0);  // warm-up
  strategy.reset_step_times();
  std::vector<double> ratios;
  double alone = 0, together = 0;
  for (int round = 0; round < kRounds; ++round) {
    comm->barrier();
    const double a = alone_model ? samples_per_second(*alone_model, x, y, batch, 2, false) : 0;
    comm->barrier();
    const double t = samples_per_second(*model, x, y, batch, 2, false);
    ratios.push_back(t / std::max(a, 1e-9));
    alone = std::max(alone, a);
    together = std::max(together, t);
  }
  std::sort(ratios.begin(), ratios.end());
  const mf::StepTimes& t = strategy.step_times();
  auto per_step = [&](double s) { return 1e3 * s / double(std::max<int64_t>(1, t.steps)); };
  if (strategy.is_chief()) {
    std::printf("%-4s %d-rank step: forward+backward %.2f ms, gradient wait %.2f ms, update %.2f ms (mean of %lld)\n",
                name, strategy.num_processes(), per_step(t.forward_backward_s), per_step(t.gradient_wait_s),
                per_step(t.update_s), static_cast<long long>(t.steps));
    std::printf("%-4s global batch %3lld: 1 rank %8.0f samples/s, %d ranks %8.0f samples/s (best of each); ratio "
                "%.2fx, median of %d rounds (%.2f-%.2fx); no-communication bound %.2fx\n",
                name, static_cast<long long>(batch), alone, strategy.num_processes(), together, ratios[kRounds / 2],
                kRounds, ratios.front(), ratios.back(), share / alone);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // --no-verify: collectives without the call fingerprint exchange (CommOptions::verify_calls).
  bool verify = true;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--no-verify") verify = false;
  mf::MultiWorkerMirroredStrategy strategy(mf::distributed::CommOptions{.verify_calls = verify});
  // --bucket-kib K: gradient bucket size; --only mlp|cnn: one model; --scale S: S times the steps;
  // --compress bf16|fp16: halves on the wire.
  std::string only;
  int64_t scale = 1;
  for (int i = 1; i + 1 < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--bucket-kib") {
      auto o = strategy.bucket_options();
      o.bucket_bytes = std::stoul(argv[i + 1]) << 10;
      strategy.set_bucket_options(o);
    }
    if (flag == "--only") only = argv[i + 1];
    if (flag == "--scale") scale = std::max<int64_t>(1, std::stoll(argv[i + 1]));
    if (flag == "--compress") {  // bf16 | fp16: gradient buckets sent as halves
      auto o = strategy.bucket_options();
      o.compression = std::string(argv[i + 1]) == "fp16" ? mf::distributed::GradCompression::FP16
                                                         : mf::distributed::GradCompression::BF16;
      strategy.set_bucket_options(o);
    }
  }
  if (strategy.is_chief())
    std::printf("bench_data_parallel: %d ranks, %d threads each, buckets of %zu KiB\n", strategy.num_processes(),
                mf::num_threads(), strategy.bucket_options().bucket_bytes >> 10);
  // The MLP twice: its 2.7 MB of gradients per step weigh on a small batch (Note in the README).
  if (only.empty() || only == "mlp") row(strategy, "mlp", mlp, {784}, 128, 40 * scale);
  if (only.empty() || only == "mlp") row(strategy, "mlp", mlp, {784}, 512, 10 * scale);
  if (only.empty() || only == "cnn") row(strategy, "cnn", cnn, {28, 28, 1}, 64, 16 * scale);
  return 0;
}
