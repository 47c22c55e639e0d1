// load_model restores the compile settings and the optimizer state: training continued from a
// saved model ends where an uninterrupted run does.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "meshflow/meshflow.h"
#include "test_util.h"

using namespace meshflow;
namespace fs = std::filesystem;

namespace {

// 3 -> 5 (tanh) -> 2, the same initial weights for the same seed.
std::shared_ptr<Model> mlp(std::shared_ptr<Optimizer> optimizer) {
  reset_layer_names();
  manual_seed(3);
  auto model = std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{
      make_input_layer({3}), layers::Dense(5, {.activation = "tanh"}), layers::Dense(2)});
  model->compile({.optimizer = std::move(optimizer), .loss = "mse", .metrics = {"mae"}});
  return model;
}

struct Data {
  Tensor x, y;
};
Data data() {
  Tensor x = mf_test::random_tensor({40, 3}, 8, -1, 1, DType::F32);
  Tensor y = mf_test::random_tensor({40, 2}, 9, -1, 1, DType::F32);
  return {x, y};
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Trains 3 epochs straight, and 2 epochs + save + load_model + 1 epoch: the weights must agree.
void expect_resume_equals_uninterrupted(const std::function<std::shared_ptr<Optimizer>()>& make_optimizer,
                                        const std::string& tag) {
  auto dir = mf_test::temp_folder("resume_" + tag);
  auto d = data();
  FitOptions fo{.epochs = 3, .batch_size = 8, .verbose = 0, .shuffle = true, .seed = 4};
  auto straight = mlp(make_optimizer());
  History hs = straight->fit(d.x, d.y, fo);

  auto first = mlp(make_optimizer());
  FitOptions two = fo;
  two.epochs = 2;
  first->fit(d.x, d.y, two);
  first->save(dir + "/m");
  reset_layer_names();
  auto loaded = load_model(dir + "/m");
  ASSERT_TRUE(loaded->compiled());
  EXPECT_EQ(loaded->optimizer()->name(), straight->optimizer()->name());
  EXPECT_EQ(loaded->optimizer()->iterations(), 2 * 5);  // 40 rows in batches of 8, two epochs
  EXPECT_EQ(loaded->optimizer()->get_config(), first->optimizer()->get_config());
  FitOptions last = fo;
  last.initial_epoch = 2;  // the third epoch, with the shuffle order the straight run used
  History hl = loaded->fit(d.x, d.y, last);
  auto ws = straight->get_weights(), wl = loaded->get_weights();
  ASSERT_EQ(ws.size(), wl.size());
  for (size_t i = 0; i < ws.size(); ++i) EXPECT_TRUE(mf_test::tensors_near(wl[i], ws[i], 1e-6, 1e-6)) << tag << " " << i;
  EXPECT_NEAR(hl["loss"][0], hs["loss"][2], 1e-6) << tag;
  EXPECT_NEAR(hl["mae"][0], hs["mae"][2], 1e-6) << tag;

  // The same resume without the optimizer state (a fresh optimizer) ends elsewhere: the slots mattered.
  first->save(dir + "/weights_only", /*include_optimizer=*/false);
  EXPECT_FALSE(fs::exists(dir + "/weights_only/optimizer.safetensors"));
  reset_layer_names();
  auto fresh = load_model(dir + "/weights_only");
  EXPECT_EQ(fresh->optimizer()->iterations(), 0);
  fresh->fit(d.x, d.y, last);
  EXPECT_FALSE(mf_test::tensors_near(fresh->get_weights()[0], ws[0], 1e-5, 1e-4)) << tag;
  fs::remove_all(dir);
}

}  // namespace

TEST(LoadModel, ResumedSgdWithMomentumEqualsAnUninterruptedRun) {
  expect_resume_equals_uninterrupted(
      [] {
        optimizers::SGDOptions o;
        o.learning_rate = 0.1;
        o.momentum = 0.9;
        return optimizers::SGD(o);
      },
      "sgd");
}

TEST(LoadModel, ResumedAdamEqualsAnUninterruptedRun) {
  expect_resume_equals_uninterrupted(
      [] {
        optimizers::AdamOptions o;
        o.learning_rate = 0.02;
        return optimizers::Adam(o);
      },
      "adam");
}

TEST(LoadModel, RestoresLossesMetricsLossWeightsAndSchedule) {
  auto dir = mf_test::temp_folder("compile_config");
  reset_layer_names();
  manual_seed(2);
  auto in = Input({4});
  auto h = layers::Dense(6, {.activation = "relu"})(in);
  auto reg = layers::Dense(1, {.name = "regression"})(h);
  auto clf = layers::Dense(3, {.activation = "softmax", .name = "classification"})(h);
  Model model({in}, {reg, clf});
  optimizers::RMSpropOptions ro;
  ro.schedule = schedules::ExponentialDecay(0.01, 10, 0.5);
  ro.clipnorm = 1.0;
  model.compile({.optimizer = optimizers::RMSprop(ro),
                 .loss = {{"regression", "huber"}, {"classification", "sparse_categorical_crossentropy"}},
                 .metrics = {{"regression", {"mae"}}, {"classification", {"accuracy"}}},
                 .loss_weights = {{"regression", 0.25}}});
  Tensor x = mf_test::random_tensor({12, 4}, 1, -1, 1, DType::F32);
  Tensors y{{"regression", mf_test::random_tensor({12, 1}, 2, -1, 1, DType::F32)},
            {"classification", from_vector(std::vector<int64_t>{0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2}, {12})}};
  model.fit(x, y, {.epochs = 1, .batch_size = 4, .verbose = 0});
  model.save(dir + "/m");
  Json config = Json::parse(read_text(dir + "/m/config.json"));
  EXPECT_EQ(config["compile_config"]["loss_weights"]["regression"], 0.25);
  EXPECT_EQ(config["compile_config"]["metrics"]["classification"], Json::parse(R"(["accuracy"])"));
  EXPECT_EQ(config["compile_config"]["optimizer"]["learning_rate"]["class_name"], "ExponentialDecay");

  reset_layer_names();
  auto loaded = load_model(dir + "/m");
  ASSERT_TRUE(loaded->compiled());
  EXPECT_EQ(loaded->get_compile_config(), model.get_compile_config());
  EXPECT_EQ(loaded->optimizer()->learning_rate(), model.optimizer()->learning_rate());  // step 3 of the schedule
  auto want = model.evaluate(x, y, {.batch_size = 5, .verbose = 0});
  auto got = loaded->evaluate(x, y, {.batch_size = 5, .verbose = 0});
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [k, v] : want) EXPECT_EQ(got.at(k), v) << k;
  EXPECT_TRUE(got.count("classification_accuracy") && got.count("regression_mae") && got.count("regression_loss"));

  // compile = false: the Keras way to get the bare model.
  EXPECT_FALSE(load_model(dir + "/m", false)->compiled());
  fs::remove_all(dir);
}

TEST(LoadModel, UnknownOptimizerOrLossInTheConfigIsAClearError) {
  auto dir = mf_test::temp_folder("compile_errors");
  auto model = mlp(optimizers::get("adam"));
  model->save(dir + "/m");
  const std::string config_path = dir + "/m/config.json";
  Json config = Json::parse(read_text(config_path));
  Json bad_opt = config;
  bad_opt["compile_config"]["optimizer"]["name"] = "adamm";
  std::ofstream(config_path) << bad_opt.dump(2);
  EXPECT_MF_ERROR(load_model(dir + "/m"), config_path.c_str(), "unknown optimizer 'adamm'", "sgd, adam",
                  "load_model(folder, false)");
  EXPECT_FALSE(load_model(dir + "/m", false)->compiled());

  Json bad_schedule = config;
  bad_schedule["compile_config"]["optimizer"]["learning_rate"] = Json{{"class_name", "WarmupThenDecay"}};
  std::ofstream(config_path) << bad_schedule.dump(2);
  EXPECT_MF_ERROR(load_model(dir + "/m"), config_path.c_str(), "unknown learning-rate schedule 'WarmupThenDecay'");

  // A custom loss is saved by name but cannot be rebuilt from it.
  reset_layer_names();
  auto custom = mlp(optimizers::get("sgd"));
  custom->compile({.optimizer = "sgd", .loss = losses::from_function("my_loss", [](const Tensor& t, const Tensor& p) {
                                         return mean(abs(t - p), {-1});
                                       })});
  custom->save(dir + "/c");
  EXPECT_MF_ERROR(load_model(dir + "/c"), "output 'output_1'", "unknown loss 'my_loss'", "load_model(folder, false)");
  fs::remove_all(dir);
}
