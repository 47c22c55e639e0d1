// The pipeline bubble, measured next to its theory (p - 1) / (m + p - 1), and each stage's peak
// activation memory under GPipe and 1F1B, for p stages (one per rank) and m micro-batches.
//   OMP_NUM_THREADS=1 mpirun -np 2 ./bench_pipeline [layers] [width] [batch]
// The model: `layers` Dense(width, relu) layers (default 8 x 512, f32, batch 1024), cut evenly.
// A stage's bubble is the part of its step it spent waiting (step time minus its forward,
// backward and update time), the median of 5 steps after 2 warm-up steps; the table shows the
// mean over stages. Peak activation memory is the most host memory a stage held during a step
// above what it held before the step (MemoryStats), so weights and optimizer state do not count.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "meshflow/meshflow.h"

namespace mf = meshflow;

namespace {

std::shared_ptr<mf::Sequential> build(int layers, int64_t width) {
  std::vector<std::shared_ptr<mf::Layer>> l{mf::make_input_layer({width})};
  for (int i = 0; i < layers; ++i)
    l.push_back(mf::layers::Dense(width, {.activation = "relu", .name = "dense_" + std::to_string(i)}));
  return std::make_shared<mf::Sequential>(l);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int layers = argc > 1 ? std::atoi(argv[1]) : 8;
  const int64_t width = argc > 2 ? std::atoll(argv[2]) : 512;
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 1024;
  const int p = mf::distributed::detect_world().size;
  if (p < 2) {
    std::printf("bench_pipeline: run it under mpirun -np 2 (or more): one stage per rank\n");
    return 0;
  }
  std::vector<std::string> cuts;
  for (int s = 1; s < p; ++s) cuts.push_back("dense_" + std::to_string(s * layers / p));
  mf::Generator g(1);
  mf::Tensor x = mf::rand({batch, width}, {}, &g), y = mf::rand({batch, width}, {}, &g);
  bool chief = false;
  for (auto schedule : {mf::PipelineSchedule::GPipe, mf::PipelineSchedule::OneFOneB}) {
    const char* sname = schedule == mf::PipelineSchedule::GPipe ? "GPipe" : "1F1B";
    for (int m : {1, 2, 4, 8, 16}) {
      if (batch % m) continue;
      mf::PipelineStrategy strategy({.micro_batches = m, .schedule = schedule, .cuts = cuts});
      chief = strategy.stage() == 0;
      auto scope = strategy.scope();
      auto model = build(layers, width);
      model->compile({.optimizer = "sgd", .loss = "mse"});
      std::vector<double> step, wait, peak;
      for (int i = 0; i < 7; ++i) {
        const auto before = mf::memory_stats(mf::Device()).current_bytes;
        mf::reset_peak_memory(mf::Device());
        model->train_on_batch({x}, {y});
        const auto& st = strategy.last_step_stats();
        if (i < 2) continue;
        step.push_back(st.seconds);
        wait.push_back((st.seconds - st.busy_seconds) / st.seconds);
        peak.push_back(double(mf::memory_stats(mf::Device()).peak_bytes - before));
      }
      // Every stage's numbers to rank 0: [bubble, peak MiB, step ms] per stage.
      std::vector<double> mine(static_cast<size_t>(3 * p), 0.0);
      mine[3 * strategy.stage()] = median(wait);
      mine[3 * strategy.stage() + 1] = median(peak) / (1 << 20);
      mine[3 * strategy.stage() + 2] = median(step) * 1e3;
      strategy.reduce_sums(mine);
      if (chief) {
        if (schedule == mf::PipelineSchedule::GPipe && m == 1)
          std::printf("pipeline: %d stages, %d x Dense(%lld, relu), batch %lld, f32; bubble = idle part of a step\n", p,
                      layers, (long long)width, (long long)batch);
        double bubble = 0;
        for (int s = 0; s < p; ++s) bubble += mine[3 * s] / p;
        std::printf("%-5s m=%-3d step %8.2f ms  bubble %5.3f  theory %5.3f  peak activations MiB:", sname, m,
                    mine[2], bubble, double(p - 1) / double(m + p - 1));
        for (int s = 0; s < p; ++s) std::printf(" s%d %.1f", s, mine[3 * s + 1]);
        std::printf("\n");
      }
    }
  }
  return 0;
}
