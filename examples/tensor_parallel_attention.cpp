// Megatron-style attention through the Keras API: a causal MultiHeadAttention classifier trained
// with model->fit under ShardedStrategy, its 4 heads split over the mesh's "model" axis by
// annotating the layer's kernels (q, k, v by heads, the output projection by its head rows). The
// partitioner inserts one all-reduce per step forward (after the output projection) and the
// matching one backward; this program prints the plan (explain), trains, and checks the History
// against the same model trained on one device.
//   mpirun -np 2 ./tensor_parallel_attention            # Mesh(model=2), one rank per device
//   ./tensor_parallel_attention [--devices 2|4]         # one process, devices are threads
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "meshflow/distributed/world.h"
#include "meshflow/meshflow.h"

namespace mf = meshflow;
namespace dist = meshflow::distributed;
namespace L = meshflow::layers;
using mf::Replicated;

namespace {

constexpr int64_t kRows = 96, kTime = 8, kFeatures = 16;

std::shared_ptr<mf::Model> build() {
  auto in = mf::Input({kTime, kFeatures}, {.dtype = mf::DType::F64});
  auto a = L::MultiHeadAttention(4, 8, {.use_causal_mask = true, .name = "mha", .dtype = mf::DType::F64})(
      mf::Tensors{in, in})[0];
  auto pooled = L::GlobalAveragePooling1D({.dtype = mf::DType::F64})(a);
  auto out = L::Dense(2, {.activation = "softmax", .name = "head", .dtype = mf::DType::F64})(pooled);
  return std::make_shared<mf::Model>(mf::Tensors{in}, mf::Tensors{out});
}

// Same weights everywhere: built on one row, then values from a fixed seed.
void init(mf::Model& m, const mf::Tensor& x) {
  m.predict_on_batch({x.slice(0, 0, 1)});
  std::mt19937 rng(3);
  std::normal_distribution<double> n(0, 0.3);
  std::vector<mf::Tensor> ws;
  for (const auto& w : m.get_weights()) {
    std::vector<double> v(static_cast<size_t>(w.numel()));
    for (auto& e : v) e = n(rng);
    ws.push_back(mf::from_vector(v, w.shape(), {.dtype = mf::DType::F64}));
  }
  m.set_weights(ws);
}

void compile(mf::Model& m) {
  m.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
}

const mf::FitOptions kFit{.epochs = 6, .batch_size = 16, .verbose = 0, .shuffle = false};

int run_device(std::shared_ptr<dist::Communicator> comm, const mf::Tensor& x, const mf::Tensor& y,
               const mf::History& reference) {
  mf::ShardedStrategy strategy(comm, mf::Mesh({{"model", comm->size()}}));
  std::shared_ptr<mf::Model> model;
  {
    auto scope = strategy.scope();
    model = build();
    compile(*model);
  }
  init(*model, x);
  for (const auto& w : model->weights()) {
    const std::string& n = w.name();
    if (n.rfind("mha/", 0) != 0) continue;
    if (n.ends_with("attention_output/kernel")) strategy.annotate(w, {"model", Replicated, Replicated});
    else if (n.ends_with("/kernel")) strategy.annotate(w, {Replicated, "model", Replicated});  // [dim, heads, key_dim]
    else if (!n.ends_with("attention_output/bias")) strategy.annotate(w, {"model", Replicated});  // [heads, key_dim]
  }
  mf::History h = model->fit({x}, {y}, kFit);
  double worst = 0;
  for (const auto& [k, v] : reference.history)
    for (size_t e = 0; e < v.size(); ++e) worst = std::max(worst, std::abs(h.history.at(k)[e] - v[e]));
  const auto& loss = h.history.at("loss");
  if (comm->rank() == 0) {
    std::printf("%s", strategy.explain().c_str());
    std::printf("loss %.5f -> %.5f, accuracy %.3f -> %.3f (one device: loss %.5f -> %.5f)\n", loss.front(),
                loss.back(), h.history.at("accuracy").front(), h.history.at("accuracy").back(),
                reference.history.at("loss").front(), reference.history.at("loss").back());
    std::printf("largest History difference from one device: %.2e\n", worst);
  }
  const bool ok = worst < 1e-9 && loss.back() < loss.front();
  if (!ok) std::fprintf(stderr, "rank %d: FAILED (difference %.2e)\n", comm->rank(), worst);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 2;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--devices" && i + 1 < argc) devices = std::atoi(argv[++i]);
    else throw mf::Error("tensor_parallel_attention: unknown argument '" + a + "' (usage: [--devices N])");
  }
  dist::WorldInfo world = dist::detect_world();
  // A sequence task: the class says whether the first feature's running sum ends above zero.
  std::mt19937 rng(1);
  std::normal_distribution<double> n(0, 1);
  std::vector<double> xv(kRows * kTime * kFeatures);
  std::vector<int64_t> yv(kRows);
  for (auto& v : xv) v = n(rng);
  for (int64_t r = 0; r < kRows; ++r) {
    double s = 0;
    for (int64_t t = 0; t < kTime; ++t) s += xv[(r * kTime + t) * kFeatures];
    yv[r] = s > 0;
  }
  mf::Tensor x = mf::from_vector(xv, {kRows, kTime, kFeatures}, {.dtype = mf::DType::F64});
  mf::Tensor y = mf::from_vector(yv, {kRows});

  auto reference = build();
  compile(*reference);
  init(*reference, x);
  const mf::History href = reference->fit({x}, {y}, kFit);

  if (world.size > 1) return run_device(dist::make_communicator("mpi"), x, y, href);
  dist::LocalGroup group(devices);
  std::vector<int> codes(devices, 1);
  std::vector<std::thread> threads;
  for (int r = 0; r < devices; ++r)
    threads.emplace_back([&, r] {
      try {
        codes[r] = run_device(group.communicator(r), x, y, href);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "device %d: %s\n", r, e.what());
      }
    });
  for (auto& t : threads) t.join();
  for (int c : codes)
    if (c != 0) return 1;
  return 0;
}
