// RandomSearch and GridSearch: the oracles on synthetic objectives, then whole searches with
// models (summary, best hyperparameters, best models reloaded from the project folder).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "meshflow/meshflow.h"
#include "meshflow/tuner/tuner.h"
#include "test_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
using namespace meshflow::tuner;

namespace {

// f(a, b) on an 8 x 8 grid: a bowl whose minimum is at a = 5, b = 0.3 with a ripple, so the
// optimum is not at a corner and no neighbour ties it.
double bowl(int64_t a, double b) { return (a - 5.2) * (a - 5.2) + 10 * (b - 0.31) * (b - 0.31) + 0.05 * std::sin(3.0 * a * b); }

HyperParameters grid_space() {
  HyperParameters hp;
  hp.Int("a", 0, 7);
  hp.Choice("b", {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7});
  return hp;
}

}  // namespace

TEST(GridSearchOracle, VisitsEveryCombinationOnceAndFindsTheExactOptimum) {
  GridSearchOracle oracle({.objective = {"f", "min"}, .max_trials = 1000});
  oracle.update_space(grid_space());
  EXPECT_EQ(oracle.combinations().size(), 64u);
  std::set<std::pair<int64_t, double>> seen;
  double brute_best = 1e300;
  std::pair<int64_t, double> brute_arg;
  for (int64_t a = 0; a < 8; ++a)
    for (double b : {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7})
      if (bowl(a, b) < brute_best) brute_best = bowl(a, b), brute_arg = {a, b};
  for (int i = 0; i < 100; ++i) {
    Trial t = oracle.create_trial("w");
    if (t.status == TrialStatus::Stopped) break;
    ASSERT_EQ(t.status, TrialStatus::Running);
    auto key = std::make_pair(t.values.at("a").get<int64_t>(), t.values.at("b").get<double>());
    EXPECT_TRUE(seen.insert(key).second) << "visited twice: a=" << key.first << " b=" << key.second;
    t.status = TrialStatus::Completed;
    t.score = bowl(key.first, key.second);
    oracle.end_trial(t);
  }
  EXPECT_EQ(seen.size(), 64u);
  EXPECT_EQ(oracle.trials().size(), 64u);
  auto best = oracle.get_best_trials(1).at(0);
  EXPECT_EQ(best.values.at("a").get<int64_t>(), brute_arg.first);
  EXPECT_DOUBLE_EQ(best.values.at("b").get<double>(), brute_arg.second);
  EXPECT_DOUBLE_EQ(*best.score, brute_best);
  // The order: the last parameter turns fastest.
  auto trials = oracle.trials();
  EXPECT_EQ(trials[0].values, (Json{{"a", 0}, {"b", 0.0}}));
  EXPECT_EQ(trials[1].values, (Json{{"a", 0}, {"b", 0.1}}));
  EXPECT_EQ(trials[8].values, (Json{{"a", 1}, {"b", 0.0}}));
}

TEST(GridSearchOracle, ConditionalParametersDoNotMultiplyTheGrid) {
  HyperParameters hp;
  hp.Choice("model", {"mlp", "linear"});
  {
    auto s = hp.conditional_scope("model", {"mlp"});
    hp.Int("units", 1, 3);
  }
  hp.Boolean("bias");
  GridSearchOracle oracle({.objective = {"f", "min"}, .max_trials = 100});
  oracle.update_space(hp);
  auto combos = oracle.combinations();
  // mlp: 3 units x 2 bias; linear: 2 bias (units does not exist there).
  ASSERT_EQ(combos.size(), 8u);
  int linear = 0;
  for (const auto& c : combos)
    if (c.at("model") == "linear") {
      ++linear;
      EXPECT_FALSE(c.contains("units"));
    }
  EXPECT_EQ(linear, 2);
}

TEST(GridSearchOracle, FloatWithoutStepIsNotAGrid) {
  HyperParameters hp;
  hp.Float("lr", 0.001, 0.1);
  GridSearchOracle oracle({.objective = {"f", "min"}});
  oracle.update_space(hp);
  EXPECT_MF_ERROR(oracle.create_trial("w"), "lr", "needs a step");
}

TEST(RandomSearchOracle, DrawsDistinctValuesReproduciblyAndStopsAtMaxTrials) {
  auto run = [](uint64_t seed) {
    RandomSearchOracle oracle({.objective = {"f", "min"}, .max_trials = 30, .seed = seed});
    oracle.update_space(grid_space());
    std::vector<Json> out;
    for (;;) {
      Trial t = oracle.create_trial("w");
      if (t.status == TrialStatus::Stopped) break;
      out.push_back(t.values);
      t.status = TrialStatus::Completed;
      t.score = 0.0;
      oracle.end_trial(t);
    }
    return out;
  };
  auto a = run(1), b = run(1), c = run(2);
  EXPECT_EQ(a.size(), 30u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::set<std::string> distinct;
  for (const auto& v : a) distinct.insert(v.dump());
  EXPECT_EQ(distinct.size(), 30u);
  // A space smaller than max_trials is exhausted, then the search stops.
  RandomSearchOracle small({.objective = {"f", "min"}, .max_trials = 50, .seed = 3});
  HyperParameters hp;
  hp.Int("k", 1, 4);
  small.update_space(hp);
  int n = 0;
  for (; n < 60; ++n) {
    Trial t = small.create_trial("w");
    if (t.status == TrialStatus::Stopped) break;
    t.status = TrialStatus::Completed;
    t.score = 1.0;
    small.end_trial(t);
  }
  EXPECT_EQ(n, 4);
}

TEST(Oracle, ChecksItsInputs) {
  EXPECT_MF_ERROR(RandomSearchOracle({.objective = {"f", "up"}}), "direction", "up");
  EXPECT_MF_ERROR(RandomSearchOracle({.objective = {"f", "min"}, .max_trials = 0}), "max_trials", "0");
  RandomSearchOracle o({.objective = {"f", "min"}});
  Trial t;
  t.trial_id = "0042";
  t.status = TrialStatus::Completed;
  t.score = 1.0;
  EXPECT_MF_ERROR(o.end_trial(t), "no trial '0042'");
  EXPECT_EQ(Objective::from_name("val_accuracy").direction, "max");
  EXPECT_EQ(Objective::from_name("val_loss").direction, "min");
  EXPECT_EQ(Objective::from_name("mae").direction, "min");
}

namespace {

// y = 2 x0 - x1 + 0.5 with a little noise; the learning rate decides how far 3 epochs get.
struct Data {
  mf::Tensor x, y, xv, yv;
};
Data linear_data() {
  mf::Generator g(11);
  Data d;
  d.x = mf::rand({256, 2}, {}, &g);
  d.xv = mf::rand({64, 2}, {}, &g);
  auto f = [](const mf::Tensor& x) {
    return mf::add(mf::sub(mf::mul(x.slice(1, 0, 1), mf::scalar_tensor(2.0)), x.slice(1, 1, 2)), mf::scalar_tensor(0.5));
  };
  d.y = f(d.x);
  d.yv = f(d.xv);
  return d;
}

HyperModel linear_hypermodel(int* builds = nullptr) {
  return [builds](HyperParameters& hp) {
    if (builds) ++*builds;
    int64_t units = hp.Int("units", 1, 2);
    double lr = hp.Choice("lr", {0.001, 0.03, 0.1});
    auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
        mf::make_input_layer({2}), L::Dense(units), L::Dense(1)});
    model->compile({.optimizer = mf::optimizers::SGD({{.learning_rate = lr}}), .loss = "mse"});
    return std::shared_ptr<mf::Model>(model);
  };
}

}  // namespace

TEST(GridSearch, WholeSearchSummaryAndBestModels) {
  auto dir = mf_test::temp_folder("tuner_grid");
  Data d = linear_data();
  int builds = 0;
  GridSearch tuner(linear_hypermodel(&builds),
                   {.objective = "val_loss", .max_trials = 100, .directory = dir, .project_name = "p", .verbose = 0});
  tuner.search(d.x, d.y, {.epochs = 3, .batch_size = 32, .verbose = 0, .validation_data = std::make_pair(mf::Tensors(d.xv), mf::Tensors(d.yv))});
  auto trials = tuner.oracle().trials();
  ASSERT_EQ(trials.size(), 6u);  // 3 learning rates x 2 widths
  for (const auto& t : trials) EXPECT_EQ(t.status, TrialStatus::Completed) << t.message;
  // The best trial's score is the smallest val_loss any trial reached.
  double smallest = 1e300;
  for (const auto& t : trials) smallest = std::min(smallest, *t.score);
  auto best_hp = tuner.get_best_hyperparameters(1).at(0);
  auto best_trial = tuner.oracle().get_best_trials(1).at(0);
  EXPECT_DOUBLE_EQ(*best_trial.score, smallest);
  EXPECT_EQ(best_hp.values(), best_trial.values);
  // The smallest learning rate cannot win in 3 epochs of 8 steps.
  EXPECT_NE(best_hp.get("lr").get<double>(), 0.001);
  // The best model, rebuilt with its best epoch's weights, evaluates to the recorded score.
  auto model = tuner.get_best_models(1).at(0);
  auto logs = model->evaluate(d.xv, d.yv, {.verbose = 0});
  EXPECT_NEAR(logs.at("loss"), *best_trial.score, 1e-5 * std::max(1.0, *best_trial.score));
  std::string summary = tuner.results_summary_string(2);
  EXPECT_NE(summary.find("Objective(name=\"val_loss\", direction=\"min\")"), std::string::npos) << summary;
  EXPECT_NE(summary.find("Trial " + best_trial.trial_id + " summary"), std::string::npos) << summary;
  EXPECT_NE(summary.find("lr: " + value_str(best_trial.values.at("lr"))), std::string::npos) << summary;
  // Declared order (units, then lr), not alphabetical.
  auto first_trial = summary.find("Trial " + best_trial.trial_id);
  EXPECT_LT(summary.find("units: ", first_trial), summary.find("lr: ", first_trial)) << summary;
  // The project folder holds the oracle and each trial as JSON.
  EXPECT_TRUE(std::filesystem::exists(dir + "/p/oracle.json"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/p/trial_0000/trial.json"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/p/trial_0000/checkpoint.safetensors"));
  // A second search on the finished project runs nothing.
  int before = builds;
  GridSearch again(linear_hypermodel(&builds),
                   {.objective = "val_loss", .max_trials = 100, .directory = dir, .project_name = "p", .verbose = 0});
  again.search(d.x, d.y, {.epochs = 3, .verbose = 0, .validation_data = std::make_pair(mf::Tensors(d.xv), mf::Tensors(d.yv))});
  EXPECT_EQ(builds, before);
  EXPECT_EQ(again.oracle().get_best_trials(1).at(0).trial_id, best_trial.trial_id);
  std::filesystem::remove_all(dir);
}

TEST(RandomSearch, ObjectiveMissingFailsTrialsAndNamesTheKeys) {
  auto dir = mf_test::temp_folder("tuner_missing");
  Data d = linear_data();
  RandomSearch tuner(linear_hypermodel(), {.objective = "val_accuracy", .max_trials = 3, .directory = dir,
                                            .project_name = "p", .max_consecutive_failed_trials = 2, .verbose = 0});
  EXPECT_MF_ERROR(tuner.search(d.x, d.y, {.epochs = 1, .verbose = 0}), "2 trials failed in a row",
                  "objective 'val_accuracy' is not in fit()'s history", "loss");
  for (const auto& t : tuner.oracle().trials()) EXPECT_EQ(t.status, TrialStatus::Failed);
  EXPECT_MF_ERROR(RandomSearch(linear_hypermodel(), {.executions_per_trial = 0, .directory = dir}),
                  "executions_per_trial");
  EXPECT_MF_ERROR(RandomSearch(linear_hypermodel(), {.direction = "sideways", .directory = dir}), "direction",
                  "sideways");
  EXPECT_MF_ERROR(RandomSearch(nullptr, {.directory = dir}), "hypermodel is empty");
  std::filesystem::remove_all(dir);
}

TEST(RandomSearch, ExecutionsPerTrialAverageAndEarlyStoppingPassesThrough) {
  auto dir = mf_test::temp_folder("tuner_exec");
  Data d = linear_data();
  int builds = 0;
  RandomSearch tuner(linear_hypermodel(&builds), {.objective = "val_loss", .max_trials = 2, .executions_per_trial = 2,
                                                   .directory = dir, .project_name = "p", .seed = 4, .verbose = 0});
  auto stop = std::make_shared<mf::callbacks::EarlyStopping>(
      mf::callbacks::EarlyStoppingOptions{.monitor = "val_loss", .patience = 0, .baseline = -1.0});
  struct CountEpochs : mf::Callback {
    int ends = 0;
    void on_epoch_end(int, mf::Logs&) override { ++ends; }
  };
  auto count = std::make_shared<CountEpochs>();
  tuner.search(d.x, d.y, {.epochs = 5, .verbose = 0, .validation_data = std::make_pair(mf::Tensors(d.xv), mf::Tensors(d.yv)),
                          .callbacks = {stop, count}});
  // One build declares the space, then 2 trials x 2 executions.
  EXPECT_EQ(builds, 1 + 4);
  // A baseline of -1 can never be beaten: as in Keras, every fit stops after its second epoch
  // (EarlyStopping never stops at epoch 0), so 4 fits run 8 epochs, not 20.
  EXPECT_EQ(count->ends, 8);
  for (const auto& t : tuner.oracle().trials()) EXPECT_LE(t.best_step, 1);
  std::filesystem::remove_all(dir);
}

TEST(GridSearch, ExploresEveryConditionalBranch) {
  // "layers" exists only in the deep branch, which the first build (with defaults: "wide") never
  // sees; the tuner must discover it before the grid is laid out.
  auto dir = mf_test::temp_folder("tuner_branches");
  Data d = linear_data();
  GridSearch tuner(
      [](HyperParameters& hp) {
        std::string kind = hp.Choice("kind", {"wide", "deep"});
        std::vector<std::shared_ptr<mf::Layer>> layers{mf::make_input_layer({2})};
        {
          auto s = hp.conditional_scope("kind", {Json("wide")});
          int64_t units = hp.Int("units", 4, 8, {.step = 4});
          if (kind == "wide") layers.push_back(L::Dense(units, {.activation = "tanh"}));
        }
        {
          auto s = hp.conditional_scope("kind", {Json("deep")});
          int64_t depth = hp.Int("layers", 1, 3);
          if (kind == "deep")
            for (int64_t i = 0; i < depth; ++i) layers.push_back(L::Dense(2, {.activation = "tanh"}));
        }
        layers.push_back(L::Dense(1));
        auto model = std::make_shared<mf::Sequential>(layers);
        model->compile({.optimizer = "sgd", .loss = "mse"});
        return std::shared_ptr<mf::Model>(model);
      },
      {.objective = "loss", .max_trials = 100, .directory = dir, .project_name = "p", .verbose = 0});
  tuner.search(d.x, d.y, {.epochs = 1, .verbose = 0});
  std::set<std::string> got;
  for (const auto& t : tuner.oracle().trials()) {
    EXPECT_EQ(t.status, TrialStatus::Completed) << t.message;
    got.insert(t.values.dump());
  }
  std::set<std::string> expected;
  for (int u : {4, 8}) expected.insert(Json{{"kind", "wide"}, {"units", u}}.dump());
  for (int l : {1, 2, 3}) expected.insert(Json{{"kind", "deep"}, {"layers", l}}.dump());
  EXPECT_EQ(got, expected);
  std::filesystem::remove_all(dir);
}
