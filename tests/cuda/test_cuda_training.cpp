// Keras training on cuda:0 against the same model on the CPU, from identical weights and batches:
// the per-step losses of 20 train_on_batch steps (TF32 off) within 1e-4 relative, and fit()'s
// History and predictions, for an MLP (SGD with momentum, Adam) and a small CNN.
#include "meshflow/meshflow.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::random_tensor;
using mf_test::tensors_near;
namespace L = meshflow::layers;

namespace {

const Device kGpu = cuda(0);

std::shared_ptr<Sequential> mlp() {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{
      make_input_layer({20}), L::Dense(64, {.activation = "relu"}), L::Dense(32, {.activation = "tanh"}),
      L::Dense(5, {.activation = "softmax"})});
}

std::shared_ptr<Sequential> cnn() {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{
      make_input_layer({12, 12, 2}), L::Conv2D(8, {3, 3}, {.activation = "relu"}), L::MaxPooling2D({2, 2}),
      L::Flatten(), L::Dense(5, {.activation = "softmax"})});
}

// Builds the model twice with the same weights, one copy moved to the GPU, and trains both on
// the same 20 batches; returns the per-step losses of each.
template <typename Build>
void expect_same_training(Build build, const Shape& x_shape, const std::string& optimizer) {
  reset_layer_names();
  auto on_cpu = build();
  auto on_gpu = build();
  on_gpu->set_weights(on_cpu->get_weights());
  on_gpu->to(kGpu);
  for (const auto& w : on_gpu->weights()) ASSERT_EQ(w.device(), kGpu) << w.name();
  on_cpu->compile({.optimizer = optimizer, .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  on_gpu->compile({.optimizer = optimizer, .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  Shape batch_shape = x_shape;
  batch_shape.insert(batch_shape.begin(), 32);
  for (int step = 0; step < 20; ++step) {
    Tensor x = random_tensor(batch_shape, 100 + step, -1, 1, DType::F32);
    // Labels from the inputs, so there is something to learn.
    Tensor y = one_hot(argmax(x.reshape({32, -1}).slice(1, 0, 5), 1), 5, DType::F32);
    auto l_cpu = on_cpu->train_on_batch(x, y);
    auto l_gpu = on_gpu->train_on_batch(x, y);
    EXPECT_NEAR(l_gpu.at("loss"), l_cpu.at("loss"), 1e-4 * std::fabs(l_cpu.at("loss")))
        << optimizer << " step " << step;
  }
  Tensor xt = random_tensor(batch_shape, 7, -1, 1, DType::F32);
  Tensor p_cpu = on_cpu->predict(xt)[0];
  Tensor p_gpu = on_gpu->predict(xt)[0];
  EXPECT_TRUE(tensors_near(p_gpu.to(cpu()), p_cpu, 1e-4, 1e-3));
}

}  // namespace

TEST(CudaTraining, MlpWithSgdMomentumMatchesTheCpu) { expect_same_training(mlp, {20}, "sgd"); }
TEST(CudaTraining, MlpWithAdamMatchesTheCpu) { expect_same_training(mlp, {20}, "adam"); }
TEST(CudaTraining, CnnWithAdamMatchesTheCpu) { expect_same_training(cnn, {12, 12, 2}, "adam"); }

TEST(CudaTraining, FitOnTheGpuGivesTheCpuHistoryAndSavesForTheCpu) {
  reset_layer_names();
  auto on_cpu = mlp();
  auto on_gpu = mlp();
  on_gpu->set_weights(on_cpu->get_weights());
  on_gpu->to(kGpu);
  Tensor x = random_tensor({256, 20}, 3, -1, 1, DType::F32);
  Tensor y = one_hot(argmax(x.slice(1, 0, 5), 1), 5, DType::F32);
  for (auto* m : {on_cpu.get(), on_gpu.get()})
    m->compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
  auto h_cpu = on_cpu->fit(x, y, {.epochs = 3, .batch_size = 32, .verbose = 0, .shuffle = false});
  auto h_gpu = on_gpu->fit(x, y, {.epochs = 3, .batch_size = 32, .verbose = 0, .shuffle = false});
  for (const char* key : {"loss", "accuracy"})
    for (size_t e = 0; e < 3; ++e)
      EXPECT_NEAR(h_gpu.history.at(key)[e], h_cpu.history.at(key)[e], 1e-4) << key << " epoch " << e;
  // A model saved from the GPU reloads on the CPU with the same predictions.
  const std::string dir = mf_test::temp_folder("cuda_save") + "/m";
  on_gpu->save(dir);
  auto loaded = load_model(dir);
  for (const auto& w : loaded->weights()) EXPECT_EQ(w.device(), cpu()) << w.name();
  EXPECT_TRUE(tensors_near(loaded->predict(x)[0], on_gpu->predict(x)[0].to(cpu()), 1e-5, 1e-5));
}
