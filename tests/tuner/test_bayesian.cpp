// BayesianOptimization against RandomSearch at an equal budget on a smooth synthetic objective.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "meshflow/meshflow.h"
#include "meshflow/tuner/tuner.h"
#include "test_util.h"

using namespace meshflow::tuner;

namespace {

// A smooth 2-D objective with one basin off-centre and a gentle ripple (to be minimized).
double objective(double x, double y) {
  return (x - 0.37) * (x - 0.37) + 2.0 * (y - 0.71) * (y - 0.71) + 0.05 * std::sin(6.0 * x) * std::cos(4.0 * y);
}

// Its minimum over [0, 1]^2, found on a fine grid (an independent reference).
double true_minimum() {
  double best = 1e300;
  for (int i = 0; i <= 2000; ++i)
    for (int j = 0; j <= 2000; ++j) best = std::min(best, objective(i / 2000.0, j / 2000.0));
  return best;
}

double run(Oracle& oracle, int budget) {
  HyperParameters hp;
  hp.Float("x", 0.0, 1.0);
  hp.Float("y", 0.0, 1.0);
  oracle.update_space(hp);
  double best = 1e300;
  for (int i = 0; i < budget; ++i) {
    Trial t = oracle.create_trial("w");
    EXPECT_EQ(t.status, TrialStatus::Running);
    double f = objective(t.values.at("x").get<double>(), t.values.at("y").get<double>());
    t.status = TrialStatus::Completed;
    t.score = f;
    oracle.end_trial(t);
    best = std::min(best, f);
  }
  return best;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

TEST(BayesianOptimization, MedianRegretBeatsRandomSearchOverTenSeeds) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  const double f_min = true_minimum();
  const int budget = 20;
  std::vector<double> bo, rs;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    BayesianOptimizationOracle b({.objective = {"f", "min"}, .max_trials = budget, .seed = seed}, {.num_initial_points = 5});
    RandomSearchOracle r({.objective = {"f", "min"}, .max_trials = budget, .seed = seed});
    bo.push_back(run(b, budget) - f_min);
    rs.push_back(run(r, budget) - f_min);
  }
  double mb = median(bo), mr = median(rs);
  std::printf("median regret over 10 seeds, %d trials: Bayesian %.3g, random %.3g\n", budget, mb, mr);
  EXPECT_LT(mb, mr);
  // Not by luck: the GP should find the basin's floor to within a small fraction of random's regret.
  EXPECT_LT(mb, 0.5 * mr);
  for (double r : bo) EXPECT_GE(r, 0.0);
}

TEST(BayesianOptimization, MaximizesWhenAskedTo) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  // The same objective negated, as "max": the GP must climb, not descend.
  BayesianOptimizationOracle b({.objective = {"g", "max"}, .max_trials = 20, .seed = 3}, {.num_initial_points = 5});
  HyperParameters hp;
  hp.Float("x", 0.0, 1.0);
  hp.Float("y", 0.0, 1.0);
  b.update_space(hp);
  double best = -1e300;
  for (int i = 0; i < 20; ++i) {
    Trial t = b.create_trial("w");
    t.status = TrialStatus::Completed;
    t.score = -objective(t.values.at("x").get<double>(), t.values.at("y").get<double>());
    best = std::max(best, *t.score);
    b.end_trial(t);
  }
  EXPECT_GT(best, -true_minimum() - 0.01);
}

TEST(BayesianOptimization, ChecksItsOptions) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  EXPECT_MF_ERROR(BayesianOptimizationOracle({.objective = {"f", "min"}}, {.alpha = 0}), "alpha", "0");
  EXPECT_MF_ERROR(BayesianOptimizationOracle({.objective = {"f", "min"}}, {.num_initial_points = -1}),
                  "num_initial_points");
}

TEST(BayesianOptimization, TunerRunsItsTrials) {
  if (!MESHFLOW_HAVE_EIGEN) GTEST_SKIP() << "built without Eigen";
  namespace mf = meshflow;
  auto dir = mf_test::temp_folder("tuner_bayes");
  mf::Generator g(2);
  mf::Tensor x = mf::rand({64, 2}, {}, &g), y = mf::sum(x, {1}, true);
  BayesianOptimization tuner(
      [](HyperParameters& hp) {
        double lr = hp.Float("lr", 0.001, 0.3, {.sampling = "log"});
        auto model = std::make_shared<mf::Sequential>(
            std::vector<std::shared_ptr<mf::Layer>>{mf::make_input_layer({2}), mf::layers::Dense(1)});
        model->compile({.optimizer = mf::optimizers::SGD({{.learning_rate = lr}}), .loss = "mse"});
        return std::shared_ptr<mf::Model>(model);
      },
      {.objective = "loss", .max_trials = 5, .directory = dir, .project_name = "p", .seed = 3, .verbose = 0},
      {.num_initial_points = 2});
  tuner.search(x, y, {.epochs = 2, .verbose = 0});
  auto trials = tuner.oracle().trials();
  ASSERT_EQ(trials.size(), 5u);
  for (const auto& t : trials) EXPECT_EQ(t.status, TrialStatus::Completed) << t.message;
  // After the 2 random points the GP proposed the rest (the oracle records its expected improvement).
  EXPECT_FALSE(trials[1].info.contains("expected_improvement"));
  EXPECT_TRUE(trials[2].info.contains("expected_improvement"));
  std::filesystem::remove_all(dir);
}
