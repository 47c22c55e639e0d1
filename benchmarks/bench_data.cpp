// Input pipeline throughput against training: Fashion-MNIST through from_idx -> map (scale to
// [0, 1], add the channel axis) -> shuffle -> batch 64 -> prefetch 2, in batches/s on its one
// background thread, next to the CNN's training step rate (Conv(32,3)-Pool-Conv(64,3)-Pool-
// Dense(128)-Dense(10), batch 64). The ratio says how far ahead the pipeline stays.
// Run: OMP_NUM_THREADS=1 ./build/benchmarks/bench_data   (then with 2 for the step on two cores)
#include <cstdio>
#include <filesystem>

#include "meshflow/meshflow.h"
#include "meshflow/models/data.h"
#include "timing.h"

namespace mf = meshflow;

namespace {

const std::string kDir = "/usr/share/datasets/fashion-mnist/";

mf::Dataset pipeline(const mf::Dataset& source) {
  return source
      .map([](mf::Dataset::Element e) {
        e.first = mf::Tensors((e.first[0] * (1.0 / 255.0)).reshape({28, 28, 1}));
        return e;
      })
      .shuffle(10000, 1)
      .batch(64, true)
      .prefetch(2);
}

std::shared_ptr<mf::Model> cnn() {
  using namespace mf::layers;
  auto in = mf::Input({28, 28, 1});
  auto h = Conv2D(32, 3, {.activation = "relu"})(in);
  h = MaxPooling2D(2)(h);
  h = Conv2D(64, 3, {.activation = "relu"})(h);
  h = MaxPooling2D(2)(h);
  h = Flatten()(h);
  h = Dense(128, {.activation = "relu"})(h);
  auto model = std::make_shared<mf::Model>(in, Dense(10)(h));
  mf::losses::CrossentropyOptions logits;
  logits.from_logits = true;
  model->compile({.optimizer = "adam", .loss = mf::losses::SparseCategoricalCrossentropy(logits)});
  return model;
}

}  // namespace

int main() {
  if (!std::filesystem::exists(kDir + "train-images-idx3-ubyte.gz")) {
    std::printf("skipped: %s is missing (install dataset-fashion-mnist)\n", kDir.c_str());
    return 0;
  }
  auto t0 = bench::Clock::now();
  mf::Dataset source = mf::Dataset::from_idx(kDir + "train-images-idx3-ubyte.gz", kDir + "train-labels-idx1-ubyte.gz");
  std::printf("from_idx (gunzip + parse 60000 images): %.2f s\n", bench::seconds_since(t0));

  // The pipeline alone: the consumer only takes batches, so this is the producer thread's rate.
  mf::Dataset data = pipeline(source);
  t0 = bench::Clock::now();
  data.next();  // the first batch waits for the shuffle buffer to fill (10000 elements)
  std::printf("first batch (fills the 10000-element shuffle buffer): %.3f s\n", bench::seconds_since(t0));
  const int pipeline_batches = 400;
  t0 = bench::Clock::now();
  for (int i = 0; i < pipeline_batches; ++i) data.next();
  double pipeline_rate = pipeline_batches / bench::seconds_since(t0);
  std::printf("pipeline: %.0f batches/s (%.0f images/s) on one background thread\n", pipeline_rate,
              pipeline_rate * 64);

  // The training step on batches the pipeline made.
  auto model = cnn();
  auto batch = data.next();
  model->train_on_batch(batch->first, batch->second);  // warm-up: oneDNN primitives, slots
  const int steps = 20;
  t0 = bench::Clock::now();
  for (int i = 0; i < steps; ++i) model->train_on_batch(batch->first, batch->second);
  double step_rate = steps / bench::seconds_since(t0);
  std::printf("CNN train step (batch 64, %d OpenMP threads): %.1f steps/s\n", mf::num_threads(), step_rate);

  // fit() fed by the pipeline: the step rate should hold when batches come from the queue. fit()
  // starts a new pass, so this includes one shuffle-buffer fill.
  const int fit_steps = 100;
  t0 = bench::Clock::now();
  model->fit(data, {.epochs = 1, .verbose = 0, .steps_per_epoch = fit_steps});
  double fit_rate = fit_steps / bench::seconds_since(t0);
  std::printf("fit(Dataset), %d steps: %.1f steps/s (%.0f%% of the bare step rate)\n", fit_steps, fit_rate,
              100.0 * fit_rate / step_rate);
  std::printf("pipeline / training = %.1fx: %s\n", pipeline_rate / step_rate,
              pipeline_rate > 2 * step_rate ? "keeps up with room to spare" : "does NOT keep up with room to spare");
  return 0;
}
