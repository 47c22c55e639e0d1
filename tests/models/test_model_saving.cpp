// Saving models: weights by name, mismatch errors, checkpoints with optimizer state, and
// save_model/load_model rebuilding functional and Sequential models of registered layers.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "meshflow/models/saving.h"
#include "saving_layers.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::Affine;
using mf_test::FlattenRows;
using mf_test::SumDiff;
namespace fs = std::filesystem;

MF_REGISTER_LAYER(Affine, "Affine");
MF_REGISTER_LAYER(SumDiff, "SumDiff");
MF_REGISTER_LAYER(FlattenRows, "FlattenRows");

namespace {

// 4 -> 8 (relu) -> 3, functional; fresh names so two builds get the same variable names.
std::shared_ptr<Model> mlp(int64_t hidden = 8, uint64_t seed = 1) {
  reset_layer_names();
  manual_seed(seed);
  auto in = Input({4});
  auto h = make_layer<Affine>(hidden, true)(in);
  auto out = make_layer<Affine>(3)(h);
  return std::make_shared<Model>(in, out);
}

Tensor batch_x(uint64_t seed, int64_t n = 6) { return mf_test::random_tensor({n, 4}, seed, -1, 1, DType::F32); }

}  // namespace

TEST(SaveWeights, RoundTripByVariableName) {
  auto dir = mf_test::temp_folder("weights");
  auto a = mlp(8, 1);
  a->save_weights(dir + "/w.safetensors");
  auto names = read_safetensors(dir + "/w.safetensors");
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names[0].first, "affine/kernel");
  EXPECT_EQ(names[3].first, "affine_1/bias");
  auto b = mlp(8, 2);  // other initial values
  Tensor x = batch_x(3);
  EXPECT_FALSE(mf_test::tensors_near(b->predict_on_batch(x)[0], a->predict_on_batch(x)[0]));
  b->load_weights(dir + "/w.safetensors");
  EXPECT_TRUE(mf_test::tensors_near(b->predict_on_batch(x)[0], a->predict_on_batch(x)[0], 0, 0));
  fs::remove_all(dir);
}

TEST(SaveWeights, AnotherArchitectureListsEveryMismatchAndChangesNothing) {
  auto dir = mf_test::temp_folder("weights_mismatch");
  auto path = dir + "/w.safetensors";
  mlp(8)->save_weights(path);
  auto wider = mlp(5);
  auto before = wider->get_weights();
  EXPECT_MF_ERROR(wider->load_weights(path), path.c_str(), "does not match",
                  "affine/kernel (file [4, 8], model [4, 5])", "affine/bias (file [8], model [5])",
                  "affine_1/kernel (file [8, 3], model [5, 3])");
  auto after = wider->get_weights();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(mf_test::tensors_near(after[i], before[i], 0, 0));
  // Different names: missing and unexpected.
  reset_layer_names();
  auto in = Input({4});
  Model other(in, make_layer<Affine>(8, false, LayerOptions{.name = "first"})(in));
  EXPECT_MF_ERROR(other.load_weights(path), "missing in the file: first/kernel, first/bias",
                  "unexpected in the file: affine/kernel, affine/bias, affine_1/kernel, affine_1/bias");
  fs::remove_all(dir);
}

TEST(Checkpoint, RestoresOptimizerSlotsAndStepSoTrainingContinuesIdentically) {
  auto dir = mf_test::temp_folder("ckpt");
  auto path = dir + "/ckpt.safetensors";
  Tensor y = mf_test::random_tensor({6, 3}, 9, -1, 1, DType::F32);
  auto train = [&](Model& m, int from, int to) {
    for (int s = from; s < to; ++s) m.train_on_batch(batch_x(100 + s), y);
  };
  auto a = mlp();
  a->compile({.optimizer = optimizers::Adam({{.learning_rate = 0.01}}), .loss = "mse"});
  train(*a, 0, 3);
  save_checkpoint(*a, path, Json{{"epoch", 3}, {"val_loss", 0.25}});
  auto at_step_3 = a->get_weights();
  train(*a, 3, 6);

  auto b = mlp(8, 77);
  b->compile({.optimizer = optimizers::Adam({{.learning_rate = 0.01}}), .loss = "mse"});
  Json meta = load_checkpoint(*b, path);
  EXPECT_EQ(meta["epoch"], 3);
  EXPECT_EQ(meta["val_loss"], 0.25);
  EXPECT_EQ(b->optimizer()->iterations(), 3);
  train(*b, 3, 6);
  auto wa = a->get_weights(), wb = b->get_weights();
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(mf_test::tensors_near(wb[i], wa[i], 1e-7, 1e-6)) << i;

  // Weights alone with a fresh Adam (slots zero, step 0) end elsewhere: the state mattered.
  auto c = mlp(8, 77);
  c->compile({.optimizer = optimizers::Adam({{.learning_rate = 0.01}}), .loss = "mse"});
  c->set_weights(at_step_3);
  train(*c, 3, 6);
  EXPECT_FALSE(mf_test::tensors_near(c->get_weights()[0], wa[0], 1e-5, 1e-4));
  fs::remove_all(dir);
}

TEST(SaveModel, FunctionalWithSharedLayerAndTwoOutputsRebuildsAndPredictsTheSame) {
  auto dir = mf_test::temp_folder("model_functional");
  reset_layer_names();
  manual_seed(5);
  auto a = Input({4}), b = Input({4});
  auto shared = make_layer<Affine>(4, true);
  auto ha = shared(a), hb = shared(b);  // one layer, two calls: node 0 and node 1
  auto sd = make_layer<SumDiff>()({ha, hb});
  auto head = make_layer<Affine>(2, false, LayerOptions{.name = "head"});
  Model model({a, b}, {head(sd["sum"]), sd["diff"]});
  model.save(dir + "/m");

  // The config lists the shared layer's two calls as Keras inbound nodes.
  std::ifstream f(dir + "/m/config.json");
  Json config = Json::parse(f);
  EXPECT_EQ(config["class_name"], "Functional");
  bool found = false;
  for (const auto& l : config["config"]["layers"])
    if (l["name"] == "affine") {
      found = true;
      EXPECT_EQ(l["inbound_nodes"], Json::parse(R"([[["input_1",0,0,{}]],[["input_2",0,0,{}]]])"));
    }
  EXPECT_TRUE(found);

  reset_layer_names();
  auto loaded = load_model(dir + "/m");
  EXPECT_TRUE(loaded->is_functional());
  EXPECT_EQ(loaded->name(), model.name());
  EXPECT_EQ(loaded->input_names(), model.input_names());
  EXPECT_EQ(loaded->output_names(), model.output_names());
  EXPECT_EQ(loaded->count_params(), model.count_params());
  EXPECT_EQ(loaded->count_params(), 4 * 4 + 4 + 4 * 2 + 2);  // the shared layer counted once
  Tensor x1 = batch_x(11), x2 = batch_x(12);
  Tensors want = model.predict_on_batch({x1, x2}), got = loaded->predict_on_batch({x1, x2});
  ASSERT_EQ(got.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(mf_test::tensors_near(got[i], want[i], 0, 0)) << i;
  fs::remove_all(dir);
}

TEST(SaveModel, SequentialWithInputShapeAndNestedModel) {
  auto dir = mf_test::temp_folder("model_sequential");
  reset_layer_names();
  manual_seed(6);
  auto seq = std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{
      make_input_layer({2, 3}), std::make_shared<FlattenRows>(), std::make_shared<Affine>(5, true),
      std::make_shared<Affine>(1)});
  seq->compile({.optimizer = "adam", .loss = "mse"});
  Tensor x = mf_test::random_tensor({4, 2, 3}, 21, -1, 1, DType::F32);
  seq->train_on_batch(x, mf_test::random_tensor({4, 1}, 22, -1, 1, DType::F32));
  save_model(*seq, dir + "/s");
  EXPECT_TRUE(fs::exists(dir + "/s/optimizer.safetensors"));
  Json meta;
  read_safetensors(dir + "/s/optimizer.safetensors", &meta);
  EXPECT_EQ(meta["iterations"], "1");

  // A functional model using the Sequential as a layer.
  auto in = Input({2, 3});
  Model outer(in, make_layer<Affine>(2)((*seq)(in)), LayerOptions{.name = "outer"});
  outer.save(dir + "/o");

  reset_layer_names();
  auto s2 = load_model(dir + "/s");
  ASSERT_NE(dynamic_cast<Sequential*>(s2.get()), nullptr);
  EXPECT_TRUE(mf_test::tensors_near(s2->predict_on_batch(x)[0], seq->predict_on_batch(x)[0], 0, 0));
  auto o2 = load_model(dir + "/o");
  EXPECT_TRUE(mf_test::tensors_near(o2->predict_on_batch(x)[0], outer.predict_on_batch(x)[0], 0, 0));
  fs::remove_all(dir);
}

TEST(SaveModel, ErrorsNameTheFileAndTheFix) {
  auto dir = mf_test::temp_folder("model_errors");
  auto m = mlp();
  m->save(dir + "/m");
  const std::string config_path = dir + "/m/config.json";
  std::ifstream f(config_path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  f.close();
  // An unknown layer class.
  std::string renamed = text;
  for (size_t p; (p = renamed.find("\"Affine\"")) != std::string::npos;) renamed.replace(p, 8, "\"Unheard\"");
  std::ofstream(config_path) << renamed;
  EXPECT_MF_ERROR(load_model(dir + "/m"), config_path.c_str(), "unknown layer class 'Unheard'", "MF_REGISTER_LAYER");
  // Broken JSON, a missing folder, missing weights, truncated weights.
  std::ofstream(config_path) << text.substr(0, text.size() / 2);
  EXPECT_MF_ERROR(load_model(dir + "/m"), config_path.c_str(), "not valid JSON");
  EXPECT_MF_ERROR(load_model(dir + "/nowhere"), "nowhere", "not a folder");
  std::ofstream(config_path) << text;
  const std::string weights = dir + "/m/model.safetensors";
  std::string bytes;
  {
    std::ifstream w(weights, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(w), std::istreambuf_iterator<char>());
  }
  std::ofstream(weights, std::ios::binary) << bytes.substr(0, bytes.size() - 7);
  EXPECT_MF_ERROR(load_model(dir + "/m"), weights.c_str(), "truncated");
  fs::remove(weights);
  EXPECT_MF_ERROR(load_model(dir + "/m"), weights.c_str(), "does not exist");
  // Ops outside layers and subclassed models cannot be rebuilt from a config.
  reset_layer_names();
  auto in = Input({4});
  Model with_op(in, make_layer<Affine>(2)(in) * 2.0);
  EXPECT_MF_ERROR(with_op.save(dir + "/op"), "outside a layer", "wrap it in a custom layer");
  fs::remove_all(dir);
}

TEST(SaveModel, BuiltInLayersConvDenseAndBatchNormRoundTrip) {
  auto dir = mf_test::temp_folder("model_builtin");
  reset_layer_names();
  manual_seed(8);
  using namespace layers;
  auto in = Input({8, 8, 1});
  auto h = Conv2D(4, 3, {.activation = "relu"})(in);
  h = MaxPooling2D(2)(h);
  h = Flatten()(h);
  h = BatchNormalization()(h);
  Model model(in, Dense(3, {.activation = "softmax"})(Dense(6, {.activation = "relu"})(h)));
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy"});
  Tensor x = mf_test::random_tensor({5, 8, 8, 1}, 41, 0, 1, DType::F32);
  model.train_on_batch(x, from_vector(std::vector<int64_t>{0, 1, 2, 1, 0}, {5}));  // moves the BN statistics
  model.save(dir + "/cnn");
  reset_layer_names();
  auto loaded = load_model(dir + "/cnn");
  auto names = [](const Model& m) {
    std::vector<std::string> v;
    for (const auto& l : m.layers()) v.push_back(l->name() + ":" + l->class_name());
    return v;
  };
  EXPECT_EQ(names(*loaded), names(model));
  EXPECT_EQ(loaded->count_params(), model.count_params());
  EXPECT_TRUE(mf_test::tensors_near(loaded->predict_on_batch(x)[0], model.predict_on_batch(x)[0], 0, 0));

  auto seq = std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{
      make_input_layer({6}), Dense(4, {.activation = "tanh"}), Dropout(0.5), Dense(2)});
  seq->save(dir + "/seq");
  auto seq2 = load_model(dir + "/seq");
  Tensor xs = mf_test::random_tensor({3, 6}, 42, -1, 1, DType::F32);
  EXPECT_TRUE(mf_test::tensors_near(seq2->predict_on_batch(xs)[0], seq->predict_on_batch(xs)[0], 0, 0));
  fs::remove_all(dir);
}

// Note [Whole saves]: a save killed at any moment leaves the previous save or the new one, never
// files of both; the next save removes what the killed one left. Two models whose every weight is
// 1 (optimizer step 11) or 2 (step 22) are saved in turn by a child killed at random moments.
TEST(SaveModel, KilledAtRandomMomentsTheFolderHoldsOneWholeSave) {
  auto dir = mf_test::temp_folder("model_kill");
  const std::string target = dir + "/m";
  auto make = [](double value, int64_t step) {
    auto m = mlp(512);  // 2.6k weights and Adam's two slots each: several writes per save
    m->compile({.optimizer = "adam", .loss = "mse"});
    m->train_on_batch({batch_x(1)}, {mf_test::random_tensor({6, 3}, 2, -1, 1, DType::F32)});
    for (auto& w : m->weights()) w.assign(full(w.shape(), value, {.dtype = w.dtype()}));
    m->optimizer()->set_iterations(step);
    return m;
  };
  auto one = make(1.0, 11), two = make(2.0, 22);
  // Kills land up to four saves' time in (measured here: on a loaded machine a save takes several
  // times longer), so some rounds always see a save the child finished.
  double save_s = 0;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    (i % 2 ? two : one)->save(target);
    save_s = std::max(save_s, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  one->save(target);
  const int latest_us = 5000 + static_cast<int>(4e6 * save_s);
  std::mt19937 rng(7);
  int seen[3] = {0, 0, 0};
  for (int round = 0; round < 20; ++round) {
    int done[2];  // the child writes a byte after each save it finishes
    ASSERT_EQ(::pipe(done), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(done[0]);
      for (int k = round;; ++k) {
        (k % 2 ? two : one)->save(target);
        if (::write(done[1], "s", 1) != 1) ::_exit(1);
      }
    }
    ::close(done[1]);
    if (round % 2 == 0) {
      ::usleep(std::uniform_int_distribution<int>(200, latest_us)(rng));  // any moment
    } else {
      // Right after the child's first save (of `two`) ends: while its next one is under way. Saves
      // slow down under I/O load (fsync), so waiting for the byte, not a guessed time, makes sure
      // some rounds reload a save the child finished.
      pollfd p{done[0], POLLIN, 0};
      char byte = 0;
      ASSERT_EQ(::poll(&p, 1, 60000), 1) << "round " << round << ": the child's save took over 60 s";
      ASSERT_EQ(::read(done[0], &byte, 1), 1);
    }
    ::kill(pid, SIGKILL);
    ::close(done[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    auto back = load_model(target);
    const double v = back->weights()[0].to_vector<float>()[0];
    ASSERT_TRUE(v == 1.0 || v == 2.0) << "round " << round << ": weight " << v;
    for (const auto& w : back->weights())
      for (float x : w.to_vector<float>()) ASSERT_EQ(x, v) << "round " << round << ": weights of two saves";
    EXPECT_EQ(back->optimizer()->iterations(), v == 1.0 ? 11 : 22) << "round " << round;
    ++seen[static_cast<int>(v)];
  }
  // The kills must also have landed after some of the child's saves finished (else the test would
  // only ever reload the first save): the odd rounds kill just after the child's save of `two` ends.
  EXPECT_GT(seen[2], 0) << "no round loaded a save the child finished (seen 1: " << seen[1] << ")";
  // What the killed saves left beside the target goes with the next save.
  two->save(target);
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(dir)) entries.push_back(e.path().filename().string());
  EXPECT_EQ(entries, std::vector<std::string>{"m"});
  EXPECT_EQ(load_model(target)->optimizer()->iterations(), 22);
  // A folder that holds something else is never replaced.
  std::ofstream(dir + "/notes.txt") << "mine";
  fs::create_directories(dir + "/other");
  std::ofstream(dir + "/other/notes.txt") << "mine";
  EXPECT_MF_ERROR(one->save(dir + "/other"), "holds something other than a saved model");
  EXPECT_TRUE(fs::exists(dir + "/other/notes.txt"));
  fs::remove_all(dir);
}
