// Training speed of the model zoo's GPT on the CPU next to PyTorch on the same threads: a small
// GPT (6 layers, width 256, 8 heads, context 128, vocabulary 4096; batch 16) with AdamW, tokens per
// second and milliseconds per step (median after 3 warm-up steps), and the FLOP rate both reach
// (6 x parameters x tokens + 12 x layers x width x context x tokens per step, the usual count).
//   OMP_NUM_THREADS=2 ./bench_gpt [steps] [--python /usr/bin/python3]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "meshflow/meshflow.h"
#include "meshflow/zoo/gpt.h"
#include "machine.h"
#include "timing.h"

namespace mf = meshflow;
namespace zoo = meshflow::zoo;

int main(int argc, char** argv) {
  int steps = 10;
  std::string python = "/usr/bin/python3";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--python" && i + 1 < argc) python = argv[++i];
    else steps = std::max(1, std::atoi(argv[i]));
  }
  const char* env = std::getenv("OMP_NUM_THREADS");
  const int threads = env ? std::max(1, std::atoi(env)) : 1;
  const bench::Machine machine = bench::measure_machine(threads);
  bench::print_machine(machine, threads);
  zoo::GptConfig c;
  c.vocab_size = 4096;
  c.context = 128;
  c.layers = 6;
  c.heads = 8;
  c.width = 256;
  const int64_t batch = 16;
  auto model = zoo::gpt(c);
  model->compile({.optimizer = "adamw", .loss = mf::losses::SparseCategoricalCrossentropy({.from_logits = true})});
  mf::Generator g(1);
  mf::Tensor x = mf::randint(0, c.vocab_size, {batch, c.context}, {.dtype = mf::DType::I64}, &g);
  mf::Tensor y = mf::randint(0, c.vocab_size, {batch, c.context}, {.dtype = mf::DType::I64}, &g);
  auto runs = bench::time_runs({.repeats = steps, .calls = 1, .warmups = 3}, [&] { model->train_on_batch({x}, {y}); });
  std::sort(runs.begin(), runs.end());
  const double ours = runs[runs.size() / 2];
  const double tokens = static_cast<double>(batch * c.context);
  const double flops = 6.0 * static_cast<double>(model->count_params()) * tokens +
                       12.0 * c.layers * c.width * c.context * tokens;

  std::string cmd = "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp " + python + " " MESHFLOW_BENCH_DIR
                    "/peers/gpt_torch.py " + std::to_string(threads) + " " + std::to_string(steps) + " " +
                    std::to_string(c.vocab_size) + " " + std::to_string(c.context) + " " + std::to_string(c.layers) +
                    " " + std::to_string(c.heads) + " " + std::to_string(c.width) + " " + std::to_string(batch) +
                    " 2>/dev/null";
  double torch_tps = 0, torch_ms = 0;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    if (std::fscanf(p, "torch %lf %lf", &torch_tps, &torch_ms) != 2) torch_tps = 0;
    pclose(p);
  }
  std::printf("bench_gpt: %lld layers, width %lld, %lld heads, context %lld, vocabulary %lld, batch %lld, "
              "%lld parameters, f32, AdamW, %d threads\n",
              (long long)c.layers, (long long)c.width, (long long)c.heads, (long long)c.context,
              (long long)c.vocab_size, (long long)batch, (long long)model->count_params(), threads);
  const double peak = machine.peak(threads);
  std::printf("meshflow  %9.0f tokens/s  %8.1f ms/step  %6.1f GFLOP/s  (%.1f%% of the measured peak)\n", tokens / ours,
              ours * 1e3, flops / ours / 1e9, 100.0 * flops / ours / 1e9 / peak);
  if (torch_tps > 0)
    std::printf("pytorch   %9.0f tokens/s  %8.1f ms/step  %6.1f GFLOP/s  (%.1f%% of the measured peak)  -> "
                "meshflow/pytorch %.2fx\n",
                torch_tps, torch_ms, flops / (torch_ms / 1e3) / 1e9, 100.0 * flops / (torch_ms / 1e3) / 1e9 / peak,
                (tokens / ours) / torch_tps);
  else
    std::printf("pytorch   not run (no torch for %s)\n", python.c_str());
  return 0;
}
