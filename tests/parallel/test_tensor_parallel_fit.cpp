// Tensor parallelism through the Keras API: fit under a ShardedStrategy whose annotations (or
// Dense layout options) split layers over the mesh, on threads of one process, against one
// device's training in float64 (parallel/partitioner.h, models/src/spmd_step.cpp).
#include <gtest/gtest.h>

#include "devices.h"
#include "dp_models.h"
#include "meshflow/core/sharding.h"
#include "meshflow/meshflow.h"
#include "meshflow/parallel/partitioner.h"
#include "test_util.h"

namespace mf = meshflow;
using mf::DType;
using mf::Replicated;
using mf::Tensor;
using mf_test::expect_no_errors;
using mf_test::on_devices;

// --- fit under a ShardedStrategy that splits tensors -----------------------------------------------

namespace {

std::shared_ptr<mf::Optimizer> adam(const std::string& clip) {
  mf::optimizers::AdamOptions o;
  o.learning_rate = 0.01;
  if (clip == "clipnorm") o.clipnorm = 0.05;
  if (clip == "global_clipnorm") o.global_clipnorm = 0.08;
  return mf::optimizers::Adam(o);
}

// The MLP (16 -> 16 -> 3 units) trained with its middle layers split Megatron-style on `mesh`'s
// threads (weights start different per rank: rank 0's win) and on one device: History, weights,
// evaluate and predict must agree to float64 rounding on every rank.
void expect_tensor_parallel_fit(const mf::Mesh& mesh, const std::string& clip) {
  auto [x, y] = dp_test::data(37, {6}, 21);  // batches of 8 leave a last one of 5
  auto [xv, yv] = dp_test::data(9, {6}, 22);
  mf::FitOptions fo{.epochs = 3, .batch_size = 8, .verbose = 0, .shuffle = true, .seed = 3};
  fo.validation_data = std::make_pair(mf::Tensors{xv}, mf::Tensors{yv});
  auto compile = [&](mf::Model& m) {
    m.compile({.optimizer = adam(clip), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  };
  auto reference = dp_test::mlp();
  dp_test::set_known_weights(*reference, x, 0.0);
  compile(*reference);
  mf::History hr = reference->fit({x}, {y}, fo);
  auto er = reference->evaluate({xv}, {yv}, {.verbose = 0});
  Tensor pr = reference->predict({xv}, {.verbose = 0})[0];

  auto errors = on_devices(mesh.size(), [&](int r, std::shared_ptr<mf::distributed::Communicator> comm) {
    mf::ShardedStrategy s(comm, mesh);
    auto scope = s.scope();
    auto m = dp_test::mlp();
    compile(*m);
    dp_test::set_known_weights(*m, x, 0.03 * r);
    auto w = m->weights();  // kernel and bias of each of the three layers
    s.annotate(w[0], {Replicated, "model"});
    s.annotate(w[1], {"model"});
    s.annotate(w[2], {"model", Replicated});
    mf::History h = m->fit({x}, {y}, fo);
    EXPECT_TRUE(dp_test::histories_near(h, hr, 1e-10)) << "rank " << r;
    EXPECT_TRUE(dp_test::weights_near(*m, *reference, 1e-10)) << "rank " << r;
    auto e = m->evaluate({xv}, {yv}, {.verbose = 0});
    for (const auto& [k, v] : er) EXPECT_NEAR(e[k], v, 1e-10) << k << " rank " << r;
    EXPECT_TRUE(mf_test::tensors_near(m->predict({xv}, {.verbose = 0})[0], pr, 1e-10, 1e-10)) << "rank " << r;
    const std::string explained = s.explain();
    EXPECT_NE(explained.find("[R, model]"), std::string::npos) << explained;
    EXPECT_NE(explained.find("all_reduce over model"), std::string::npos) << explained;
  });
  expect_no_errors(errors);
}

}  // namespace

TEST(ShardedStrategyTensorParallel, FitMatchesOneDeviceOnAModelAxis) { expect_tensor_parallel_fit(mf::Mesh({{"model", 2}}), ""); }

TEST(ShardedStrategyTensorParallel, FitMatchesOneDeviceOnADataByModelMeshWithClipping) {
  expect_tensor_parallel_fit(mf::Mesh({{"data", 2}, {"model", 2}}), "global_clipnorm");
  expect_tensor_parallel_fit(mf::Mesh({{"model", 2}}), "clipnorm");
}

// The real MultiHeadAttention layer (causal, 4 heads) with its heads split over "model": q, k and
// v kernels by heads, the output projection by its head rows (Megatron attention: one all-reduce
// forward), followed by pooling and a softmax classifier; fit equals one device's.
std::shared_ptr<mf::Model> attention_classifier() {
  namespace L = mf::layers;
  auto in = mf::Input({5, 8}, {.dtype = DType::F64});
  auto a = L::MultiHeadAttention(4, 3, {.use_causal_mask = true, .name = "mha", .dtype = DType::F64})(mf::Tensors{in, in})[0];
  auto pooled = L::GlobalAveragePooling1D({.dtype = DType::F64})(a);
  auto out = L::Dense(3, {.activation = "softmax", .dtype = DType::F64})(pooled);
  return std::make_shared<mf::Model>(mf::Tensors{in}, mf::Tensors{out});
}

TEST(ShardedStrategyTensorParallel, MultiHeadAttentionHeadsSplitFitMatchesOneDevice) {
  auto [x, y] = dp_test::data(23, {5, 8}, 31);
  mf::FitOptions fo{.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = false};
  auto reference = attention_classifier();
  reference->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  dp_test::set_known_weights(*reference, x, 0.0);
  mf::History hr = reference->fit({x}, {y}, fo);
  auto errors = on_devices(2, [&](int r, std::shared_ptr<mf::distributed::Communicator> comm) {
    mf::ShardedStrategy s(comm, mf::Mesh({{"model", 2}}));
    auto scope = s.scope();
    auto m = attention_classifier();
    m->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
    dp_test::set_known_weights(*m, x, 0.0);
    for (const auto& w : m->weights()) {
      const std::string& n = w.name();
      if (n.find("mha/") != 0) continue;
      if (n.ends_with("attention_output/kernel")) s.annotate(w, {"model", Replicated, Replicated});
      else if (n.ends_with("/kernel")) s.annotate(w, {Replicated, "model", Replicated});
      else if (!n.ends_with("attention_output/bias")) s.annotate(w, {"model", Replicated});
    }
    EXPECT_EQ(s.annotations().size(), 7u);
    mf::History h = m->fit({x}, {y}, fo);
    EXPECT_TRUE(dp_test::histories_near(h, hr, 1e-10)) << "rank " << r;
    EXPECT_TRUE(dp_test::weights_near(*m, *reference, 1e-10)) << "rank " << r;
    int forward = 0;
    for (const auto& c : s.program()->collectives(r)) forward += !c.backward && c.axis == "model";
    EXPECT_EQ(forward, 1) << s.explain();
  });
  expect_no_errors(errors);
}

// Layouts given as layer options (Dense's kernel_layout/bias_layout) instead of annotate().
std::shared_ptr<mf::Model> megatron_dense_mlp() {
  namespace L = mf::layers;
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      L::Dense(16, {.activation = "relu", .dtype = DType::F64, .kernel_layout = mf::layout({Replicated, "model"}),
                    .bias_layout = mf::layout({"model"})}),
      L::Dense(8, {.activation = "relu", .dtype = DType::F64, .kernel_layout = mf::layout({"model", Replicated})}),
      L::Dense(3, {.activation = "softmax", .dtype = DType::F64})});
}

TEST(ShardedStrategyTensorParallel, DenseLayoutOptionsMatchOneDevice) {
  auto [x, y] = dp_test::data(29, {6}, 33);
  mf::FitOptions fo{.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = false};
  auto reference = megatron_dense_mlp();  // outside a strategy the layouts change nothing
  reference->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy"});
  dp_test::set_known_weights(*reference, x, 0.0);
  mf::History hr = reference->fit({x}, {y}, fo);
  auto errors = on_devices(2, [&](int r, std::shared_ptr<mf::distributed::Communicator> comm) {
    mf::ShardedStrategy s(comm, mf::Mesh({{"model", 2}}));
    auto scope = s.scope();
    auto m = megatron_dense_mlp();
    m->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy"});
    dp_test::set_known_weights(*m, x, 0.0);
    mf::History h = m->fit({x}, {y}, fo);
    EXPECT_TRUE(dp_test::histories_near(h, hr, 1e-10)) << "rank " << r;
    EXPECT_TRUE(dp_test::weights_near(*m, *reference, 1e-10)) << "rank " << r;
    EXPECT_EQ(mf::sharding::str(s.program()->layout_of(m->weights()[0])), "[R, model]");
    EXPECT_EQ(mf::sharding::str(s.program()->layout_of(m->weights()[2])), "[model, R]");
  });
  expect_no_errors(errors);
}

// A CNN with its channels split Megatron-style: the first convolution's filters (and bias) over
// "model", the second's input channels over "model" (a pending sum completed once per step), then
// pooling and a softmax head; images over "data" (5 + 4 of a batch of 9) on a 2x2 mesh.
std::shared_ptr<mf::Model> split_cnn(bool batch_norm = false) {
  namespace L = mf::layers;
  std::vector<std::shared_ptr<mf::Layer>> layers{
      mf::make_input_layer({6, 6, 2}, {.dtype = DType::F64}),
      L::Conv2D(6, 3, {.padding = "same", .activation = "relu", .name = "c1", .dtype = DType::F64})};
  if (batch_norm) layers.push_back(L::BatchNormalization({.name = "bn", .dtype = DType::F64}));
  for (auto l : std::vector<std::shared_ptr<mf::Layer>>{
      L::MaxPooling2D(2, {.dtype = DType::F64}),
      L::Conv2D(4, 2, {.activation = "relu", .name = "c2", .dtype = DType::F64}),
      L::GlobalAveragePooling2D({.dtype = DType::F64}),
      L::Dense(3, {.activation = "softmax", .dtype = DType::F64})})
    layers.push_back(l);
  return std::make_shared<mf::Sequential>(layers);
}

TEST(ShardedStrategyTensorParallel, ConvolutionChannelsSplitFitMatchesOneDevice) {
  auto [x, y] = dp_test::data(21, {6, 6, 2}, 35);
  mf::FitOptions fo{.epochs = 2, .batch_size = 9, .verbose = 0, .shuffle = false};
  auto reference = split_cnn();
  reference->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  dp_test::set_known_weights(*reference, x, 0.0);
  mf::History hr = reference->fit({x}, {y}, fo);
  Tensor pr = reference->predict({x}, {.verbose = 0})[0];
  const mf::Mesh mesh({{"data", 2}, {"model", 2}});
  auto errors = on_devices(mesh.size(), [&](int r, std::shared_ptr<mf::distributed::Communicator> comm) {
    mf::ShardedStrategy s(comm, mesh);
    auto scope = s.scope();
    auto m = split_cnn();
    m->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
    dp_test::set_known_weights(*m, x, 0.0);
    for (const auto& w : m->weights()) {
      const std::string& n = w.name();
      if (n == "c1/kernel") s.annotate(w, {Replicated, Replicated, Replicated, "model"});
      if (n == "c1/bias") s.annotate(w, {"model"});
      if (n == "c2/kernel") s.annotate(w, {Replicated, Replicated, "model", Replicated});
    }
    EXPECT_EQ(s.annotations().size(), 3u);
    mf::History h = m->fit({x}, {y}, fo);
    EXPECT_TRUE(dp_test::histories_near(h, hr, 1e-10)) << "rank " << r;
    EXPECT_TRUE(dp_test::weights_near(*m, *reference, 1e-10)) << "rank " << r;
    EXPECT_TRUE(mf_test::tensors_near(m->predict({x}, {.verbose = 0})[0], pr, 1e-10, 1e-10)) << "rank " << r;
    // Forward: the second convolution's pending sum over "model"; the images' split carries to the
    // end (the uneven 5 + 4 rows never meet a reshape that would need them even).
    int forward_model = 0;
    for (const auto& c : s.program()->collectives(r)) forward_model += !c.backward && c.axis == "model";
    EXPECT_EQ(forward_model, 1) << s.explain();
  });
  expect_no_errors(errors);
}

// BatchNormalization after a column-parallel convolution, rows split over "data": the step
// returns the whole batch's statistics and every rank updates the moving mean and variance as one
// device does, so the weights (moving statistics included), evaluate and predict (which use them)
// all match; 21 rows in batches of 9 leave a last batch of 3, a second traced program.
TEST(ShardedStrategyTensorParallel, BatchNormalizationMovingStatisticsMatchOneDevice) {
  auto [x, y] = dp_test::data(21, {6, 6, 2}, 36);
  mf::FitOptions fo{.epochs = 2, .batch_size = 9, .verbose = 0, .shuffle = false};
  auto reference = split_cnn(true);
  reference->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  dp_test::set_known_weights(*reference, x, 0.0);
  mf::History hr = reference->fit({x}, {y}, fo);
  auto er = reference->evaluate({x}, {y}, {.verbose = 0});
  Tensor pr = reference->predict({x}, {.verbose = 0})[0];
  const mf::Mesh mesh({{"data", 2}, {"model", 2}});
  auto errors = on_devices(mesh.size(), [&](int r, std::shared_ptr<mf::distributed::Communicator> comm) {
    mf::ShardedStrategy s(comm, mesh);
    auto scope = s.scope();
    auto m = split_cnn(true);
    m->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
    dp_test::set_known_weights(*m, x, 0.0);
    for (const auto& w : m->weights()) {
      if (w.name() == "c1/kernel") s.annotate(w, {Replicated, Replicated, Replicated, "model"});
      if (w.name() == "c1/bias") s.annotate(w, {"model"});
    }
    mf::History h = m->fit({x}, {y}, fo);
    EXPECT_TRUE(dp_test::histories_near(h, hr, 1e-10)) << "rank " << r;
    EXPECT_TRUE(dp_test::weights_near(*m, *reference, 1e-10)) << "rank " << r;
    for (const auto& w : m->weights())
      if (w.name() == "bn/moving_variance") EXPECT_GT(std::abs(w.to_vector<double>()[0] - 1.0), 1e-6) << "never updated";
    auto e = m->evaluate({x}, {y}, {.verbose = 0});
    for (const auto& [k, v] : er) EXPECT_NEAR(e[k], v, 1e-10) << k << " rank " << r;
    EXPECT_TRUE(mf_test::tensors_near(m->predict({x}, {.verbose = 0})[0], pr, 1e-10, 1e-10)) << "rank " << r;
  });
  expect_no_errors(errors);
}

// A model whose layers carry their layouts (Dense's kernel_layout), trained for two epochs on a
// 2x2 data x model mesh of threads and on one device: History and weights must agree on every rank.
void expect_split_fit_matches_one_device(std::shared_ptr<mf::Model> (*build)(), uint64_t seed) {
  auto [x, y] = dp_test::data(29, {6}, seed);
  mf::FitOptions fo{.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = false};
  auto reference = build();
  reference->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy"});
  dp_test::set_known_weights(*reference, x, 0.0);
  mf::History hr = reference->fit({x}, {y}, fo);
  ASSERT_GT(hr.history.at("loss")[0], 0.0);
  const mf::Mesh mesh({{"data", 2}, {"model", 2}});
  auto errors = on_devices(mesh.size(), [&](int r, std::shared_ptr<mf::distributed::Communicator> comm) {
    mf::ShardedStrategy s(comm, mesh);
    auto scope = s.scope();
    auto m = build();
    m->compile({.optimizer = adam(""), .loss = "sparse_categorical_crossentropy"});
    dp_test::set_known_weights(*m, x, 0.0);
    mf::History h = m->fit({x}, {y}, fo);
    EXPECT_TRUE(dp_test::histories_near(h, hr, 1e-10)) << "rank " << r;
    EXPECT_TRUE(dp_test::weights_near(*m, *reference, 1e-10)) << "rank " << r;
  });
  expect_no_errors(errors);
}

// Weight penalties on split layers: each rank adds its parts' L1/L2 terms; the loss (data plus
// penalties, as Keras reports it) and the weights equal one device's on a 2x2 mesh.
std::shared_ptr<mf::Model> regularized_mlp() {
  namespace L = mf::layers;
  namespace R = mf::regularizers;
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      L::Dense(16, {.activation = "relu", .kernel_regularizer = R::L2(0.02), .bias_regularizer = R::L1(0.01),
                    .dtype = DType::F64, .kernel_layout = mf::layout({Replicated, "model"}),
                    .bias_layout = mf::layout({"model"})}),
      L::Dense(8, {.activation = "relu", .kernel_regularizer = R::L1L2(0.01, 0.03), .dtype = DType::F64,
                   .kernel_layout = mf::layout({"model", Replicated})}),
      L::Dense(3, {.activation = "softmax", .kernel_regularizer = R::L2(0.05), .dtype = DType::F64})});
}

TEST(ShardedStrategyTensorParallel, RegularizedSplitLayersMatchOneDevice) { expect_split_fit_matches_one_device(regularized_mlp, 37); }

// A layer loss (add_loss) on activations split over "model" and rows split over "data": 0.01 times
// the sum of squares of the column-parallel layer's output over the batch, and a mean of the
// next layer's output, both traced into the step; loss and weights equal one device's.
class ActivityPenalty : public mf::Layer {
 public:
  ActivityPenalty(double scale, bool mean) : Layer({.dtype = DType::F64}), scale_(scale), mean_(mean) {}
  Tensor call(const Tensor& x) override {
    add_loss((mean_ ? mf::mean(mf::square(x), {0, 1}) : mf::sum(mf::square(x), {0, 1})) * scale_);
    return x;
  }

 private:
  double scale_;
  bool mean_;
};

std::shared_ptr<mf::Model> penalized_mlp() {
  namespace L = mf::layers;
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      L::Dense(16, {.activation = "relu", .dtype = DType::F64, .kernel_layout = mf::layout({Replicated, "model"}),
                    .bias_layout = mf::layout({"model"})}),
      std::make_shared<ActivityPenalty>(0.01, false),
      L::Dense(8, {.activation = "tanh", .dtype = DType::F64, .kernel_layout = mf::layout({"model", Replicated})}),
      std::make_shared<ActivityPenalty>(0.5, true),
      L::Dense(3, {.activation = "softmax", .dtype = DType::F64})});
}

TEST(ShardedStrategyTensorParallel, LayerLossesOnSplitActivationsMatchOneDevice) { expect_split_fit_matches_one_device(penalized_mlp, 38); }

// Dropout on split activations (after the column-parallel layer: features split over "model",
// rows over "data"): each part draws its elements' mask from their global indices, and every step
// after the first reserves new counters as one device's step does, so two epochs of masks match
// one device's (the same mask every step, or a part drawing from its local indices, would not).
// Seeded layers: the device threads of one process would otherwise share the global generator.
std::shared_ptr<mf::Model> dropout_mlp() {
  namespace L = mf::layers;
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      L::Dense(16, {.activation = "relu", .dtype = DType::F64, .kernel_layout = mf::layout({Replicated, "model"}),
                    .bias_layout = mf::layout({"model"})}),
      L::Dropout(0.3, {.seed = 11, .dtype = DType::F64}),
      L::Dense(8, {.activation = "tanh", .dtype = DType::F64, .kernel_layout = mf::layout({"model", Replicated})}),
      L::Dropout(0.25, {.seed = 12, .dtype = DType::F64}),
      L::Dense(3, {.activation = "softmax", .dtype = DType::F64})});
}

TEST(ShardedStrategyTensorParallel, DropoutOnSplitActivationsMatchesOneDevice) { expect_split_fit_matches_one_device(dropout_mlp, 39); }

TEST(ShardedStrategyTensorParallel, BadAnnotationsAreNamed) {
  mf::distributed::LocalGroup group(2);
  mf::ShardedStrategy s(group.communicator(0), mf::Mesh({{"model", 2}}));
  Tensor w = mf::zeros({4, 6}, {.dtype = DType::F64});
  w.set_name("dense/kernel");
  EXPECT_MF_ERROR(s.annotate(w, {Replicated, "data"}), "mesh axis 'data' is not in the mesh", "'dense/kernel'",
                  "[R, data]", "Mesh(model=2)");
  EXPECT_MF_ERROR(s.annotate(w, {"model"}), "layout has 1 dimensions but the tensor has 2", "'dense/kernel'");
  EXPECT_MF_ERROR(s.explain(), "no training step has been partitioned yet");
  // ZeRO does not combine with tensor parallelism: refused, and nothing is recorded.
  mf::ShardedStrategy zero(group.communicator(0), mf::Mesh({{"data", 2}}), {.zero_stage = 2});
  EXPECT_MF_ERROR(zero.annotate(w, {Replicated, "data"}), "'dense/kernel'", "zero_stage 2", "do not combine");
  EXPECT_TRUE(zero.annotations().empty());
  EXPECT_FALSE(zero.partitioned());
}
