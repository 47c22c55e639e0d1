// Scaling sweep with a cost model: one data-parallel run of N ranks (MultiWorkerMirroredStrategy),
// its step split into compute, exposed communication and update, its bus bandwidth and scaling
// efficiency against one rank, the cost model's prediction for it (parallel/cost_model.h,
// docs/cost_model.md) and the model's predictions for 64-1024 GPUs of a ResNet-50 and a GPT-2 small.
//   OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 ./bench_scaling [flags]
//   benchmarks/bench_scaling.sh 1 2 4     (the sweep: 1 rank first, its numbers passed on, one table)
// Flags: --model mlp|cnn, --mode weak|strong, --batch B (weak: per rank; strong: global), --steps S,
// --rounds R, --bucket-kib K, --base-step-ms/--base-compute-ms/--base-update-ms/--base-other-ms
// and --base-compute-samples-ms a,b,... (a 1-rank run at this run's per-rank batch; otherwise rank 0
// measures it alone, in rounds alternating with the N-rank ones), --alpha-us A --bandwidth-gbs B (the link; otherwise fitted
// from an all-reduce sweep on the gradients' communicator), --no-zoo, --gpu-tflops T,
// --nvlink-gbs, --ib-gbits, --nvlink-alpha-us, --ib-alpha-us.
// Lines starting "scaling ", "scaling_bucket ", "allreduce " and "predict " are for scripts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "meshflow/meshflow.h"
#include "meshflow/parallel/cost_model.h"
#include "meshflow/zoo/gpt.h"
#include "meshflow/zoo/resnet.h"
#include "machine.h"
#include "dp_models.h"
#include "timing.h"

namespace mf = meshflow;
namespace cost = meshflow::cost;
namespace dist = meshflow::distributed;

namespace {

struct Options {
  std::string model = "mlp", mode = "weak";
  int64_t batch = 128;
  int steps = 30, rounds = 5;
  size_t bucket_kib = 0;  // 0: the runtime's default
  double base_step_ms = 0, base_compute_ms = 0, base_update_ms = 0, base_other_ms = -1;
  std::vector<double> base_samples_ms;  // the 1-rank run's per-step compute (stragglers)
  double alpha_us = -1, bandwidth_gbs = -1;
  bool zoo = true;
  double gpu_tflops = 300, nvlink_gbs = 450, ib_gbits = 400, nvlink_alpha_us = 1, ib_alpha_us = 5;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "bench_scaling: %s\n(see the flags at the top of benchmarks/bench_scaling.cpp)\n", why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  std::map<std::string, double*> numbers{
      {"--base-step-ms", &o.base_step_ms},     {"--base-compute-ms", &o.base_compute_ms},
      {"--base-update-ms", &o.base_update_ms}, {"--base-other-ms", &o.base_other_ms},
      {"--alpha-us", &o.alpha_us},             {"--bandwidth-gbs", &o.bandwidth_gbs},
      {"--gpu-tflops", &o.gpu_tflops},         {"--nvlink-gbs", &o.nvlink_gbs},
      {"--ib-gbits", &o.ib_gbits},             {"--nvlink-alpha-us", &o.nvlink_alpha_us},
      {"--ib-alpha-us", &o.ib_alpha_us}};
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (f == "--no-zoo") {
      o.zoo = false;
      continue;
    }
    if (i + 1 >= argc) usage("flag " + f + " needs a value (or is unknown)");
    const std::string v = argv[++i];
    try {
      if (numbers.count(f)) *numbers[f] = std::stod(v);
      else if (f == "--base-compute-samples-ms") {
        for (size_t at = 0; at < v.size();) {
          size_t used = 0;
          o.base_samples_ms.push_back(std::stod(v.substr(at), &used));
          at += used + 1;  // past the comma
        }
      } else if (f == "--model") o.model = v;
      else if (f == "--mode") o.mode = v;
      else if (f == "--batch") o.batch = std::stoll(v);
      else if (f == "--steps") o.steps = std::stoi(v);
      else if (f == "--rounds") o.rounds = std::stoi(v);
      else if (f == "--bucket-kib") o.bucket_kib = std::stoul(v);
      else usage("unknown flag " + f);
    } catch (const std::logic_error&) {
      usage("flag " + f + " wants a number, got '" + v + "'");
    }
  }
  if (o.model != "mlp" && o.model != "cnn") usage("--model must be mlp or cnn, got " + o.model);
  if (o.mode != "weak" && o.mode != "strong") usage("--mode must be weak or strong, got " + o.mode);
  if (o.batch < 1 || o.steps < 1 || o.rounds < 1) usage("--batch, --steps and --rounds must be >= 1");
  if ((o.alpha_us >= 0) != (o.bandwidth_gbs > 0)) usage("give --alpha-us and --bandwidth-gbs together");
  return o;
}

using bench::cnn;
using bench::mlp;

// The model's layers for the cost model: trainable weights' bytes (in weight order) and forward
// FLOPs per sample, 2 x (elements of weights with 2+ dims) x output positions (the dims between
// batch and channels: a convolution's pixels, a sequence's tokens), plus 4 T^2 d for attention.
// A tied embedding (the zoo GPT's) counts as its output head; pooling and activations count 0.
std::vector<cost::LayerSpec> layer_specs(const mf::Model& model) {
  std::vector<cost::LayerSpec> specs;
  for (const auto& layer : model.layers()) {
    cost::LayerSpec s{.name = layer->name()};
    double matrix_elements = 0;
    for (const auto& w : layer->trainable_weights()) {
      s.param_bytes.push_back(w.numel() * static_cast<int64_t>(mf::dtype_size(w.dtype())));
      if (w.dim() >= 2) matrix_elements += double(w.numel());
    }
    const mf::Shape out = layer->output_shapes().empty() ? mf::Shape{} : layer->output_shapes()[0];
    double positions = 1;
    for (size_t d = 1; d + 1 < out.size(); ++d) positions *= double(out[d]);
    s.forward_flops = 2 * matrix_elements * positions;
    const std::string kind = layer->class_name();
    if (out.size() == 3 && (kind.find("Transformer") != std::string::npos || kind.find("Attention") != std::string::npos))
      s.forward_flops += 4 * double(out[1]) * double(out[1]) * double(out[2]);
    specs.push_back(s);
  }
  return specs;
}

// Times a one-replica step's parts: the runtime's run_step records only steps with several replicas.
class TimedDefaultStrategy : public mf::DefaultStrategy {
 public:
  std::vector<double> compute_samples;  // each step's forward+backward seconds
  void run_step(mf::ReplicaGroup&, const mf::TrainStep& step) override {
    const auto t0 = bench::Clock::now();
    step.forward_backward({.replica = 0, .begin = 0, .count = step.local_rows, .loss_scale = 1.0});
    const double computed = bench::seconds_since(t0);
    compute_samples.push_back(computed);
    const auto t1 = bench::Clock::now();
    step.update();
    record_step(computed, 0.0, bench::seconds_since(t1));
  }
};

// One round's step, per step: wall time and its parts (other: the training loop around them).
struct StepSplit {
  double step_s = 0, compute_s = 0, wait_s = 0, update_s = 0;
  std::vector<double> compute_samples;  // each step's forward+backward, when a TimedDefaultStrategy ran it
  double other_s() const { return std::max(0.0, step_s - compute_s - wait_s - update_s); }
};

struct Trainer {
  std::shared_ptr<mf::Model> model;
  mf::Strategy* strategy = nullptr;
  int64_t batch = 0;  // fit's batch size (global under the strategy)
};

StepSplit train_round(Trainer& t, const mf::Tensor& x, const mf::Tensor& y, int steps) {
  t.strategy->reset_step_times();
  auto* timer = dynamic_cast<TimedDefaultStrategy*>(t.strategy);
  if (timer) timer->compute_samples.clear();
  mf::FitOptions fo{.epochs = 1, .batch_size = t.batch, .verbose = 0, .shuffle = false, .steps_per_epoch = steps};
  const auto t0 = bench::Clock::now();
  t.model->fit({x}, {y}, fo);
  const double wall = bench::seconds_since(t0);
  const mf::StepTimes& st = t.strategy->step_times();
  const double n = double(std::max<int64_t>(1, st.steps));
  return {wall / steps, st.forward_backward_s / n, st.gradient_wait_s / n, st.update_s / n,
          timer ? timer->compute_samples : std::vector<double>{}};
}

// The round with the median step time (its parts add up, unlike medians taken part by part).
StepSplit median_round(std::vector<StepSplit> rounds) {
  std::sort(rounds.begin(), rounds.end(), [](const StepSplit& a, const StepSplit& b) { return a.step_s < b.step_s; });
  return rounds[rounds.size() / 2];
}

double load_average() {
  std::ifstream f("/proc/loadavg");
  double one = -1;
  f >> one;
  return one;
}

// All-reduce (sum, f32) seconds per call on `comm` for sizes 4 KiB .. 16 MiB: rank 0's median of 5 runs.
std::vector<cost::TimingSample> all_reduce_sweep(dist::Communicator& comm) {
  std::vector<cost::TimingSample> samples;
  for (int64_t bytes = 4 << 10; bytes <= (16 << 20); bytes *= 4) {
    mf::Tensor t = mf::full({bytes / 4}, 1.0);
    const int iters = static_cast<int>(std::clamp<int64_t>((32ll << 20) / bytes, 3, 200));
    std::vector<double> runs;
    for (int w = 0; w < 2; ++w) comm.all_reduce(t);
    for (int rep = 0; rep < 5; ++rep) {
      comm.barrier();
      runs.push_back(bench::seconds_per_call(iters, [&] { comm.all_reduce(t); }));
    }
    samples.push_back({bytes, bench::median(runs)});
  }
  return samples;
}

// The cost model's view of 64-1024 GPUs (8 per node) training a zoo model, weak scaling from one GPU.
void predict_zoo(const char* label, const mf::Model& model, double samples_per_gpu, const char* sample_name,
                 const Options& o) {
  auto specs = layer_specs(model);
  double flops = 0;
  int64_t grad_bytes = 0;
  for (const auto& s : specs) {
    flops += s.forward_flops;
    for (int64_t b : s.param_bytes) grad_bytes += b;
  }
  const double compute_s = 3 * flops * samples_per_gpu / (o.gpu_tflops * 1e12);
  // Adam: weight, gradient and two moments read and written, f32: 32 bytes per parameter at 3.35 TB/s (HBM3).
  const double update_s = double(grad_bytes) / 4 * 32 / 3.35e12;
  const double pack_s = 2.0 * double(grad_bytes) / 3.35e12;  // each gradient copied into its bucket
  const auto layers = cost::spread_compute(specs, compute_s);
  const cost::StepOptions step{.overlap = true, .update_s = update_s, .pack_s = pack_s};
  std::printf("%s: %zu layers, %.1f M parameters, %.1f MB of f32 gradients, %.2f GFLOP forward per %s; "
              "%.0f %ss per GPU at %.0f TFLOP/s: compute %.2f ms, update %.2f ms\n",
              label, specs.size(), double(grad_bytes) / 4e6, double(grad_bytes) / 1e6, flops / 1e9, sample_name,
              samples_per_gpu, sample_name, o.gpu_tflops, compute_s * 1e3, update_s * 1e3);
  for (int ranks : {64, 128, 256, 512, 1024}) {
    const cost::Cluster c{.ranks = ranks,
                          .ranks_per_node = 8,
                          .intra = {.alpha_s = o.nvlink_alpha_us * 1e-6, .bandwidth_Bps = o.nvlink_gbs * 1e9},
                          .inter = {.alpha_s = o.ib_alpha_us * 1e-6, .bandwidth_Bps = o.ib_gbits / 8 * 1e9},
                          .intra_algorithm = cost::Algorithm::Ring,
                          .inter_algorithm = cost::Algorithm::Best};
    const auto p = cost::predict_step(layers, c, step);
    auto all_reduce = [&c](int64_t bytes) { return cost::all_reduce_time(c, bytes); };
    const size_t suggested = cost::suggest_bucket_bytes(layers, all_reduce, step);
    const double alone = compute_s + update_s;  // one GPU: no bucketer, no packing
    std::printf("predict model=%s ranks=%d nodes=%d buckets=%zu bucket_kib=%zu step_ms=%.3f compute_ms=%.3f "
                "comm_ms=%.3f exposed_ms=%.3f update_ms=%.3f efficiency=%.3f suggested_bucket_kib=%zu\n",
                label, ranks, ranks / 8, p.buckets.size(), step.bucket_bytes >> 10, p.step_s * 1e3, p.compute_s() * 1e3,
                p.communication_s * 1e3, p.exposed_s * 1e3, p.update_s * 1e3, alone / p.step_s, suggested >> 10);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  mf::MultiWorkerMirroredStrategy strategy;
  if (o.bucket_kib > 0) {
    auto b = strategy.bucket_options();
    b.bucket_bytes = o.bucket_kib << 10;
    strategy.set_bucket_options(b);
  }
  const int p = strategy.num_processes();
  const bool chief = strategy.is_chief();
  auto comm = strategy.process_communicator();
  const bool weak = o.mode == "weak";
  const int64_t global = weak ? o.batch * p : o.batch;
  const int64_t mine = global / p + (global % p > 0 ? 1 : 0);  // rank 0's rows (numpy.array_split)
  auto build = o.model == "mlp" ? mlp : cnn;
  const mf::Shape sample = o.model == "mlp" ? mf::Shape{784} : mf::Shape{28, 28, 1};
  // Whether buckets go out during backward here (Auto resolves by free cores: Note [Bucket overlap]).
  mf::Tensor probe = mf::zeros({1});
  probe.set_requires_grad(true);
  const bool overlap = dist::GradBucketer(strategy.replica_communicator(0), {probe}, strategy.bucket_options()).overlaps();
  bench::Machine machine;
  if (chief) {
    std::printf("bench_scaling: %s, %s scaling, %d rank(s) of %d thread(s), batch %lld per rank (global %lld), "
                "buckets of %zu KiB, overlap %s; load average %.2f\n",
                o.model.c_str(), o.mode.c_str(), p, mf::num_threads(), static_cast<long long>(mine),
                static_cast<long long>(global), strategy.bucket_options().bucket_bytes >> 10, overlap ? "on" : "off",
                load_average());
    machine = bench::measure_machine(mf::num_threads());
    bench::print_machine(machine, mf::num_threads());
  }
  comm->barrier();

  // The link: given, or fitted to an all-reduce sweep on the communicator the gradients use.
  cost::Link link{.alpha_s = std::max(0.0, o.alpha_us) * 1e-6, .bandwidth_Bps = std::max(0.0, o.bandwidth_gbs) * 1e9};
  const bool fitted = p > 1 && o.alpha_us < 0;
  if (fitted) {
    auto samples = all_reduce_sweep(*strategy.replica_communicator(0));
    if (chief) link = cost::fit_link(samples, p, cost::Algorithm::Ring);  // rank 0's times; it alone predicts
    if (chief)
      for (const auto& s : samples)
        std::printf("allreduce ranks=%d bytes=%lld ms=%.4f busbw_gbs=%.3f model_ms=%.4f\n", p,
                    static_cast<long long>(s.bytes), s.seconds * 1e3, 2.0 * (p - 1) / p * double(s.bytes) / s.seconds / 1e9,
                    cost::all_reduce_time(link, s.bytes, p) * 1e3);
  }

  mf::Generator g(3);
  mf::Shape shape{global * o.steps};
  shape.insert(shape.end(), sample.begin(), sample.end());
  mf::Tensor x = mf::rand(shape, {}, &g);
  mf::Tensor y = mf::cast(mf::rand({global * o.steps}, {}, &g) * 10.0, mf::DType::I64);
  auto compile = [](mf::Model& m) { m.compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy"}); };

  // Rank 0 alone (no strategy but a timer): at this run's per-rank rows (the compute the model is
  // calibrated with) and, for strong scaling, at the whole batch (the 1-rank time efficiency needs).
  const bool given = o.base_compute_ms > 0;
  const bool need_base_step = o.base_step_ms <= 0 && (p > 1 || !weak);
  TimedDefaultStrategy timed[2];
  std::vector<Trainer> alone;  // [0]: per-rank rows; [1]: the global batch (strong scaling)
  if (chief && (p == 1 || !given || need_base_step)) {
    for (int64_t rows : {mine, global}) {
      if (!alone.empty() && (rows == mine || weak)) break;
      TimedDefaultStrategy& t = timed[alone.size()];
      auto scope = t.scope();
      alone.push_back({build(), &t, rows});
      compile(*alone.back().model);
      train_round(alone.back(), x, y, std::min(o.steps, 3));  // warm-up
    }
  }
  std::shared_ptr<mf::Model> together_model;
  Trainer together;
  if (p > 1) {
    {
      auto scope = strategy.scope();
      together_model = mf::replicate_model(build);
      compile(*together_model);
    }
    together = {together_model, &strategy, global};
    train_round(together, x, y, std::min(o.steps, 3));  // warm-up
  }
  std::vector<StepSplit> alone_rounds[2], together_rounds;
  for (int r = 0; r < o.rounds; ++r) {
    comm->barrier();
    for (size_t k = 0; k < alone.size(); ++k) alone_rounds[k].push_back(train_round(alone[k], x, y, o.steps));
    comm->barrier();
    if (p > 1) together_rounds.push_back(train_round(together, x, y, o.steps));
  }
  if (!chief) return 0;

  // Calibration: compute, update and the rest of a step on one rank, at this run's per-rank rows.
  StepSplit base;
  if (given) base = {0, o.base_compute_ms * 1e-3, 0, o.base_update_ms * 1e-3};
  else base = median_round(alone_rounds[0]);
  const double base_other = given ? std::max(0.0, o.base_other_ms) * 1e-3 : base.other_s();
  std::vector<double> samples;  // per-step compute seconds of the 1-rank run
  for (double ms : o.base_samples_ms) samples.push_back(ms * 1e-3);
  if (samples.empty() && !given && !alone.empty()) samples = base.compute_samples;  // the median round's steps
  // The step waits for the slowest of p ranks (Note [Stragglers]): what that adds to the mean.
  double mean = 0;
  for (double v : samples) mean += v / double(samples.size());
  const double straggler = samples.empty() ? 0.0 : std::max(0.0, cost::expected_maximum(samples, p) - mean);
  if (p == 1 && !samples.empty()) {  // for the script, which passes them to the N-rank runs
    std::printf("scaling_samples ranks=1 compute_ms=");
    for (size_t i = 0; i < samples.size(); ++i) std::printf("%s%.4f", i ? "," : "", samples[i] * 1e3);
    std::printf("\n");
  }
  const StepSplit run = p > 1 ? median_round(together_rounds) : median_round(alone_rounds[0]);
  double one_rank_step = o.base_step_ms * 1e-3;
  if (one_rank_step <= 0)  // strong scaling: the whole batch on one rank (the same rows when p is 1)
    one_rank_step = median_round(weak || alone_rounds[1].empty() ? alone_rounds[0] : alone_rounds[1]).step_s;

  auto model_for_specs = build();
  const auto specs = layer_specs(*model_for_specs);
  int64_t grad_bytes = 0;
  for (const auto& s : specs)
    for (int64_t b : s.param_bytes) grad_bytes += b;
  const auto layers = cost::spread_compute(specs, base.compute_s + straggler);
  // Packing copies every gradient byte once (read and written), at the machine's memcpy rate; only
  // a run of several ranks has a bucketer to do it.
  const double pack = p > 1 && machine.copy_gbs > 0 ? 2.0 * double(grad_bytes) / (machine.copy_gbs * 1e9) : 0.0;
  const cost::StepOptions step{.bucket_bytes = strategy.bucket_options().bucket_bytes,
                               .overlap = overlap,
                               .update_s = base.update_s,
                               .other_s = base_other,
                               .pack_s = pack};
  auto all_reduce = [&](int64_t bytes) { return p > 1 ? cost::all_reduce_time(link, bytes, p) : 0.0; };
  const auto predicted = cost::predict_step(layers, all_reduce, step);
  // The same without the straggler and packing terms: compute, alpha-beta communication, update, rest.
  cost::StepOptions plain_step = step;
  plain_step.pack_s = 0;
  const double plain = cost::predict_step(cost::spread_compute(specs, base.compute_s), all_reduce, plain_step).step_s;
  const size_t suggested = p > 1 ? cost::suggest_bucket_bytes(layers, all_reduce, step) : step.bucket_bytes;
  const double efficiency = weak ? one_rank_step / run.step_s : one_rank_step / (p * run.step_s);
  const double busbw = run.wait_s > 0 ? 2.0 * (p - 1) / p * double(grad_bytes) / run.wait_s / 1e9 : 0.0;

  std::printf("%d rank(s): step %.3f ms = compute %.3f + exposed communication %.3f + update %.3f + rest %.3f "
              "(median of %d rounds of %d steps); predicted %.3f ms (measured/predicted %.3f); %s efficiency %.3f\n",
              p, run.step_s * 1e3, run.compute_s * 1e3, run.wait_s * 1e3, run.update_s * 1e3, run.other_s() * 1e3,
              o.rounds, o.steps, predicted.step_s * 1e3, run.step_s / predicted.step_s, o.mode.c_str(), efficiency);
  std::printf("  predicted: compute %.3f (of which the slowest of %d ranks adds %.3f) + packing %.3f + exposed "
              "communication %.3f + update %.3f + rest %.3f; without stragglers and packing %.3f ms (ratio %.3f)\n",
              (base.compute_s + straggler) * 1e3, p, straggler * 1e3, pack * 1e3, predicted.exposed_s * 1e3,
              predicted.update_s * 1e3, predicted.other_s * 1e3, plain * 1e3, run.step_s / plain);
  std::printf("  calibration (%s): 1-rank compute %.3f ms, update %.3f ms, rest %.3f ms at %lld rows; 1-rank step "
              "%.3f ms; link alpha %.2f us, bandwidth %.3f GB/s (%s)\n",
              given ? "given" : p > 1 ? "rank 0 alone, alternating rounds" : "this run", base.compute_s * 1e3,
              base.update_s * 1e3, base_other * 1e3, static_cast<long long>(mine), one_rank_step * 1e3,
              link.alpha_s * 1e6, link.bandwidth_Bps / 1e9, fitted ? "fitted to the all-reduce sweep, ring" : "given");
  std::printf("  per-bucket waits are not exposed by the runtime (StepTimes holds their sum); predicted per bucket:\n");
  for (size_t b = 0; b < predicted.buckets.size(); ++b) {
    const auto& t = predicted.buckets[b];
    std::printf("scaling_bucket ranks=%d bucket=%zu bytes=%lld predicted_allreduce_ms=%.4f predicted_exposed_ms=%.4f\n",
                p, b, static_cast<long long>(t.bytes), (t.end_s - t.start_s) * 1e3, t.exposed_s * 1e3);
  }
  std::printf("scaling ranks=%d model=%s mode=%s batch_per_rank=%lld global_batch=%lld step_ms=%.4f compute_ms=%.4f "
              "comm_ms=%.4f update_ms=%.4f other_ms=%.4f predicted_ms=%.4f predicted_comm_ms=%.4f ratio=%.4f "
              "straggler_ms=%.4f pack_ms=%.4f predicted_plain_ms=%.4f efficiency=%.4f base_step_ms=%.4f busbw_gbs=%.4f grad_bytes=%lld buckets=%zu bucket_kib=%zu "
              "suggested_bucket_kib=%zu overlap=%d alpha_us=%.3f bandwidth_gbs=%.4f load=%.2f\n",
              p, o.model.c_str(), o.mode.c_str(), static_cast<long long>(mine), static_cast<long long>(global),
              run.step_s * 1e3, run.compute_s * 1e3, run.wait_s * 1e3, run.update_s * 1e3, run.other_s() * 1e3,
              predicted.step_s * 1e3, predicted.exposed_s * 1e3, run.step_s / predicted.step_s, straggler * 1e3,
              pack * 1e3, plain * 1e3, efficiency,
              one_rank_step * 1e3, busbw, static_cast<long long>(grad_bytes), predicted.buckets.size(),
              step.bucket_bytes >> 10, suggested >> 10, overlap ? 1 : 0, link.alpha_s * 1e6, link.bandwidth_Bps / 1e9,
              load_average());
  std::fflush(stdout);

  if (o.zoo) {
    std::printf("cost model: %d GPUs per node, NVLink %.0f GB/s (alpha %.1f us) inside, InfiniBand %.0f Gb/s "
                "(alpha %.1f us) per GPU across; ring inside, the better of ring and double binary tree across; "
                "runtime buckets of %zu KiB, overlapping backward\n",
                8, o.nvlink_gbs, o.nvlink_alpha_us, o.ib_gbits, o.ib_alpha_us, cost::StepOptions{}.bucket_bytes >> 10);
    {
      auto resnet = mf::zoo::resnet(50);
      predict_zoo("resnet50", *resnet, 64, "image", o);
    }
    {
      auto gpt = mf::zoo::gpt(mf::zoo::GptConfig::small());
      predict_zoo("gpt2_small", *gpt, 8, "sequence", o);
    }
  }
  return 0;
}
