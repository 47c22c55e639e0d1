// Megatron-style tensor parallelism from annotations alone: a Dense -> Dense(relu) -> Dense block
// whose middle layers are split over the mesh's "model" axis (first kernel by columns, second by
// rows), with the batch optionally split over "data". The partitioner (parallel/partitioner.h)
// works out every other layout and the collectives, prints them (explain), trains with SGD, and
// checks the loss against the same model trained on one device.
//   mpirun -np 2 ./tensor_parallel_mlp                 # Mesh(model=2), one rank per device
//   mpirun -np 4 ./tensor_parallel_mlp --data 2        # Mesh(data=2, model=2)
//   ./tensor_parallel_mlp [--devices 2] [--data 1]      # one process, devices are threads
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "meshflow/distributed/counting.h"
#include "meshflow/distributed/world.h"
#include "meshflow/meshflow.h"
#include "meshflow/parallel/partitioner.h"

namespace mf = meshflow;
namespace dist = meshflow::distributed;
namespace L = meshflow::layers;
using mf::Replicated;

namespace {

constexpr int64_t kBatch = 32, kFeatures = 16, kHidden = 64;
constexpr int kSteps = 30;
constexpr double kLearningRate = 0.05;

struct Net {
  mf::LayerRef<mf::layers::DenseLayer> in = L::Dense(kFeatures, {.activation = "relu", .name = "in", .dtype = mf::DType::F64});
  mf::LayerRef<mf::layers::DenseLayer> up = L::Dense(kHidden, {.activation = "relu", .name = "up", .dtype = mf::DType::F64});
  mf::LayerRef<mf::layers::DenseLayer> down = L::Dense(kFeatures, {.name = "down", .dtype = mf::DType::F64});
  std::vector<mf::Tensor> operator()(const std::vector<mf::Tensor>& xs) {
    mf::Tensor d = down(up(in(xs[0]))) - xs[1];
    return {mf::mean(d * d)};
  }
};

// The same weights on every device and in the one-device reference.
void init(Net& net, const mf::Tensor& x, const mf::Tensor& y) {
  net({x, y});  // builds the layers
  std::mt19937 rng(7);
  std::normal_distribution<double> n(0, 0.3);
  mf::NoGradGuard ng;
  for (auto* layer : {&net.in, &net.up, &net.down})
    for (mf::Tensor w : (*layer)->weights()) {
      std::vector<double> v(static_cast<size_t>(w.numel()));
      for (auto& e : v) e = n(rng);
      w.copy_(mf::from_vector(v, w.shape(), {.dtype = mf::DType::F64}));
    }
}

std::vector<double> train(mf::SpmdProgram* program, Net& net, const mf::Tensor& x, const mf::Tensor& y) {
  std::vector<double> losses;
  for (int step = 0; step < kSteps; ++step) {
    std::vector<mf::Tensor> weights;
    mf::Tensor loss;
    if (program) {
      weights = program->local_weights();
      for (auto& w : weights) w.zero_grad();
      loss = program->run({x, y})[0];
    } else {
      for (auto* layer : {&net.in, &net.up, &net.down})
        for (mf::Tensor w : (*layer)->trainable_weights()) weights.push_back(w);
      for (auto& w : weights) w.zero_grad();
      loss = net({x, y})[0];
    }
    loss.backward();
    losses.push_back(loss.item());
    mf::NoGradGuard ng;
    for (auto& w : weights)
      if (w.requires_grad()) w.copy_(w - w.grad() * kLearningRate);
  }
  return losses;
}

// One device of the mesh: returns 0 when its losses match the reference.
int run_device(std::shared_ptr<dist::Communicator> comm, const mf::Mesh& mesh, const mf::Tensor& x, const mf::Tensor& y,
               const std::vector<double>& reference) {
  Net net;
  init(net, x, y);
  mf::SpmdOptions options;
  if (mesh.has_axis("data")) options.inputs = {mf::layout({"data", Replicated}), mf::layout({"data", Replicated})};
  std::vector<std::pair<mf::Tensor, mf::Layout>> annotations{
      {net.up->weights()[0], mf::layout({Replicated, "model"})},  // column-parallel kernel
      {net.up->weights()[1], mf::layout({"model"})},              // and its bias
      {net.down->weights()[0], mf::layout({"model", Replicated})},  // row-parallel kernel
  };
  mf::SpmdProgram program(std::ref(net), {{{kBatch, kFeatures}, mf::DType::F64}, {{kBatch, kFeatures}, mf::DType::F64}},
                          mesh, annotations, options);
  auto counted = std::make_shared<dist::CountingCommunicator>(comm);
  program.bind(counted);
  counted->counts()->reset();
  const bool chief = comm->rank() == 0;
  if (chief) std::printf("%s", program.explain(0).c_str());
  auto losses = train(&program, net, x, y);
  const int64_t measured = counted->counts()->total_bytes() / kSteps, planned = program.bytes_per_step(comm->rank());
  double worst = 0;
  for (int s = 0; s < kSteps; ++s) worst = std::max(worst, std::abs(losses[s] - reference[s]) / std::abs(reference[s]));
  if (chief) {
    std::printf("step %2d loss %.6f ... step %2d loss %.6f (one device: %.6f)\n", 0, losses[0], kSteps - 1,
                losses.back(), reference.back());
    std::printf("bytes per step on rank 0: measured %lld, planned %lld\n", static_cast<long long>(measured),
                static_cast<long long>(planned));
    std::printf("largest relative loss difference from one device: %.2e\n", worst);
  }
  const bool ok = worst < 1e-9 && measured == planned && losses.back() < 0.5 * losses.front();
  if (!ok) std::fprintf(stderr, "rank %d: FAILED (difference %.2e, bytes %lld vs %lld)\n", comm->rank(), worst,
                        static_cast<long long>(measured), static_cast<long long>(planned));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 2, data = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--devices" && i + 1 < argc) devices = std::atoi(argv[++i]);
    else if (a == "--data" && i + 1 < argc) data = std::atoi(argv[++i]);
    else throw mf::Error("tensor_parallel_mlp: unknown argument '" + a + "' (usage: [--devices N] [--data D])");
  }
  dist::WorldInfo world = dist::detect_world();
  if (world.size > 1) devices = world.size;
  if (data < 1 || devices % data != 0)
    throw mf::Error("tensor_parallel_mlp: --data " + std::to_string(data) + " must divide the " +
                    std::to_string(devices) + " devices");
  mf::Mesh mesh = data > 1 ? mf::Mesh({{"data", data}, {"model", devices / data}}) : mf::Mesh({{"model", devices}});

  // A regression target from a fixed random teacher.
  std::mt19937 rng(1);
  std::normal_distribution<double> n(0, 1);
  std::vector<double> xv(kBatch * kFeatures), yv(kBatch * kFeatures);
  for (auto& v : xv) v = n(rng);
  for (size_t i = 0; i < yv.size(); ++i) yv[i] = std::tanh(xv[i] + 0.5 * xv[(i * 7 + 3) % xv.size()]);
  mf::Tensor x = mf::from_vector(xv, {kBatch, kFeatures}, {.dtype = mf::DType::F64});
  mf::Tensor y = mf::from_vector(yv, {kBatch, kFeatures}, {.dtype = mf::DType::F64});

  Net reference_net;
  init(reference_net, x, y);
  const std::vector<double> reference = train(nullptr, reference_net, x, y);

  if (world.size > 1) return run_device(dist::make_communicator("mpi"), mesh, x, y, reference);
  dist::LocalGroup group(devices);
  std::vector<int> codes(devices, 1);
  std::vector<std::thread> threads;
  for (int r = 0; r < devices; ++r)
    threads.emplace_back([&, r] {
      try {
        codes[r] = run_device(group.communicator(r), mesh, x, y, reference);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "device %d: %s\n", r, e.what());
      }
    });
  for (auto& t : threads) t.join();
  for (int c : codes)
    if (c != 0) return 1;
  return 0;
}
