// compile/fit/evaluate/predict: numbers against PyTorch on identical weights, Keras's History
// and progress output, and the errors users hit.
#include <cmath>
#include <regex>

#include "meshflow/meshflow.h"
#include "test_util.h"
#include "torch_io.h"

using namespace meshflow;
using mf_test::random_tensor;
using mf_test::tensors_near;
namespace L = meshflow::layers;

namespace {

std::shared_ptr<Sequential> mlp_f64() {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{
      make_input_layer({4}, {.dtype = DType::F64}), L::Dense(8, {.activation = "relu", .dtype = DType::F64}),
      L::Dense(3, {.dtype = DType::F64})});
}

}  // namespace

TEST(Training, MlpLossGradientsAndSgdStepsMatchPyTorch) {
  if (!mf_test::torch_available()) GTEST_SKIP() << "python3-torch is not installed";
  reset_layer_names();
  auto model = mlp_f64();
  Tensor x = random_tensor({6, 4}, 1);
  Tensor y = one_hot(from_vector(std::vector<int64_t>{0, 2, 1, 1, 0, 2}, {6}), 3, DType::F64);
  auto w = model->weights();
  ASSERT_EQ(w.size(), 4u);
  mf_test::TempDir dir;
  mf_test::write_f64(dir.file("x"), x);
  mf_test::write_f64(dir.file("y"), y);
  for (size_t i = 0; i < w.size(); ++i) mf_test::write_f64(dir.file("w" + std::to_string(i)), w[i]);

  // Our loss and gradients on the initial weights.
  auto loss_fn = losses::CategoricalCrossentropy({.from_logits = true});
  Tensor loss = (*loss_fn)(y, (*model)(x));
  loss.backward();
  std::vector<Tensor> grads;
  for (auto& v : w) grads.push_back(v.grad().clone());
  for (auto& v : w) v.zero_grad();
  // Three SGD steps with momentum through train_on_batch.
  model->compile({.optimizer = optimizers::SGD({{.learning_rate = 0.1}, 0.9}), .loss = loss_fn});
  for (int i = 0; i < 3; ++i) model->train_on_batch(x, y);

  std::string out = mf_test::run_python(std::string(mf_test::kPythonPrelude) + R"PY(
x, y = load("x", (6, 4)), load("y", (6, 3))
W1, b1, W2, b2 = [load("w%d" % i, s).requires_grad_() for i, s in enumerate([(4, 8), (8,), (8, 3), (3,)])]
def forward():
    return torch.relu(x @ W1 + b1) @ W2 + b2
loss = torch.nn.functional.cross_entropy(forward(), y)   # soft targets, mean over the batch
loss.backward()
print("loss %.17g" % loss.item())
for i, p in enumerate([W1, b1, W2, b2]):
    save("g%d" % i, p.grad)
opt = torch.optim.SGD([W1, b1, W2, b2], lr=0.1, momentum=0.9)
for p in [W1, b1, W2, b2]:
    p.grad = None
for _ in range(3):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(forward(), y).backward()
    opt.step()
for i, p in enumerate([W1, b1, W2, b2]):
    save("s%d" % i, p)
)PY", dir);
  double torch_loss = std::stod(out.substr(out.find("loss ") + 5));
  EXPECT_NEAR(loss.item(), torch_loss, 1e-12 * std::fabs(torch_loss));
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_TRUE(tensors_near(grads[i], mf_test::read_f64(dir.file("g" + std::to_string(i)), w[i].shape()), 1e-12, 1e-10))
        << "gradient of " << w[i].name();
    EXPECT_TRUE(tensors_near(w[i], mf_test::read_f64(dir.file("s" + std::to_string(i)), w[i].shape()), 1e-12, 1e-10))
        << "weights after 3 SGD steps: " << w[i].name();
  }
}

TEST(Training, HistoryEvaluatePredictAndTrainOnBatch) {
  reset_layer_names();
  auto model = mlp_f64();
  Tensor x = random_tensor({40, 4}, 2);
  Tensor y = one_hot(argmax(x.slice(1, 0, 3), 1), 3, DType::F64);
  model->compile({.optimizer = "adam", .loss = losses::CategoricalCrossentropy({.from_logits = true}),
                  .metrics = {"accuracy"}});
  auto h = model->fit(x, y, {.epochs = 3, .batch_size = 16, .verbose = 0, .validation_split = 0.25});
  EXPECT_EQ(h.epoch, (std::vector<int>{0, 1, 2}));
  for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy"}) EXPECT_EQ(h[k].size(), 3u) << k;

  // evaluate's loss is the sample-weighted mean over batches: the loss of the whole set at once.
  auto logs = model->evaluate(x, y, {.batch_size = 7, .verbose = 0});
  auto loss_fn = losses::CategoricalCrossentropy({.from_logits = true});
  double whole;
  {
    NoGradGuard ng;
    whole = (*loss_fn)(y, (*model)(x)).item();
  }
  EXPECT_NEAR(logs["loss"], whole, 1e-12);
  double acc = mean(cast(eq(argmax((*model)(x).detach(), 1), argmax(y, 1)), DType::F64)).item();
  EXPECT_NEAR(logs["accuracy"], acc, 1e-12);

  // predict concatenates its batches.
  Tensor p = model->predict(x, {.batch_size = 7})[0];
  EXPECT_TRUE(tensors_near(p, (*model)(x).detach(), 1e-14));

  // train_on_batch reports the loss before its update.
  double before;
  {
    NoGradGuard ng;
    before = (*loss_fn)(y, (*model)(x)).item();
  }
  auto r = model->train_on_batch(x, y);
  EXPECT_NEAR(r["loss"], before, 1e-12);
}

TEST(Training, KerasProgressOutput) {
  reset_layer_names();
  auto model = mlp_f64();
  Tensor x = random_tensor({32, 4}, 3), y = random_tensor({32, 3}, 4);
  model->compile({.optimizer = "sgd", .loss = "mse", .metrics = {"mae"}});
  testing::internal::CaptureStdout();
  model->fit(x, y, {.epochs = 2, .batch_size = 8, .verbose = 1});
  std::string out = testing::internal::GetCapturedStdout();
  // Off a terminal, one line per epoch: "4/4 [==============================] - 0s 1ms/step - loss: 0.1234 - mae: 0.2345"
  std::regex line(R"(Epoch 2/2\n4/4 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: \d\.\d{4}(e-\d+)? - mae: \d\.\d{4}\n)");
  EXPECT_TRUE(std::regex_search(out, line)) << out;
  testing::internal::CaptureStdout();
  model->fit(x, y, {.epochs = 1, .batch_size = 8, .verbose = 2});
  out = testing::internal::GetCapturedStdout();
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(4/4 - \d+s - loss: \d\.\d{4} - mae: \d\.\d{4} - \d+ms/epoch)"))) << out;
  testing::internal::CaptureStdout();
  model->fit(x, y, {.epochs = 1, .batch_size = 8, .verbose = 0});
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
}

TEST(Training, ErrorsNameWhatIsWrong) {
  reset_layer_names();
  auto inp = Input({4});
  auto h = L::Dense(3, {.activation = "relu"})(inp);
  auto reg = L::Dense(1, {.name = "regression"})(h);
  auto clf = L::Dense(5, {.activation = "softmax", .name = "classification"})(h);
  Model model({inp}, {reg, clf});
  Tensor x = random_tensor({10, 4}, 5, -1, 1, DType::F32);
  Tensors y{{"regression", zeros({10, 1})}, {"classification", zeros({10, 5})}};
  EXPECT_MF_ERROR(model.fit(x, y), "must be compiled", "compile()");
  EXPECT_MF_ERROR(model.compile({.optimizer = "adam", .loss = {{"regresion", "mse"}}}), "'regresion'",
                  "not an output", "regression, classification");
  EXPECT_MF_ERROR(model.compile({.optimizer = "adam", .loss = "msee"}), "msee", "mean_squared_error");
  EXPECT_MF_ERROR(model.compile({.optimizer = "adamm", .loss = "mse"}), "adamm", "adam");
  model.compile({.optimizer = "adam", .loss = {{"regression", "mse"}, {"classification", "categorical_crossentropy"}}});
  Tensors short_y{{"regression", zeros({9, 1})}, {"classification", zeros({9, 5})}};
  EXPECT_MF_ERROR(model.fit(x, short_y, {.verbose = 0}), "x has 10 samples", "y has 9");
  EXPECT_MF_ERROR(model.fit(x, Tensors{{"regression", zeros({10, 1})}}, {.verbose = 0}), "no target", "classification");
  EXPECT_MF_ERROR(model.fit({x, x}, y, {.verbose = 0}), "expects 1 input(s)", "got 2");
  EXPECT_MF_ERROR(model.fit(ones({10, 4}, {.dtype = DType::I64}), y, {.verbose = 0}), "expects f32", "got i64");
  EXPECT_MF_ERROR(model.fit(ones({10, 7}), y, {.verbose = 0}), "[?, 4]", "[10, 7]");
}

// One NaN pixel in the input of a Dense(relu) network: relu lets it through (as PyTorch), so the
// loss is NaN and TerminateOnNaN stops at that batch; check_gradients names the first layer.
TEST(NonFinite, NanInputReachesTheLossAndTheCheckNamesTheLayer) {
  auto build = [] {
    reset_layer_names();
    manual_seed(3);
    auto in = Input({4});
    auto h = L::Dense(8, {.activation = "relu"})(in);  // "dense", the first layer
    auto out = L::Dense(1)(h);
    auto m = std::make_shared<Model>(in, out);
    m->compile({.optimizer = "sgd", .loss = "mse"});
    return m;
  };
  std::vector<double> v = random_tensor({64, 4}, 1).to_vector<double>();
  v[5 * 4 + 2] = std::nan("");  // row 5: in the first batch of 16
  Tensor x = from_vector(v, {64, 4}, {.dtype = DType::F32}), y = random_tensor({64, 1}, 2).to(DType::F32);
  auto m = build();
  auto h = m->fit(x, y, {.epochs = 5, .batch_size = 16, .verbose = 0, .shuffle = false,
                         .callbacks = {std::make_shared<callbacks::TerminateOnNaN>()}});
  ASSERT_EQ(h.epoch.size(), 1u);
  EXPECT_TRUE(std::isnan(h["loss"][0]));
  EXPECT_TRUE(m->stop_training);
  EXPECT_MF_ERROR(build()->fit(x, y, {.epochs = 1, .batch_size = 16, .verbose = 0, .shuffle = false,
                                      .check_gradients = true}),
                  "check_gradients", "'dense/kernel'", "layer 'dense'", "not finite");
  // Finite data passes the check.
  Tensor clean = random_tensor({64, 4}, 1).to(DType::F32);
  EXPECT_NO_THROW(build()->fit(clean, y, {.epochs = 1, .batch_size = 16, .verbose = 0, .check_gradients = true}));
}
