// GridSearchCV / RandomizedSearchCV: scikit-learn's KFold folds, fold scores that equal training
// the same model by hand on the other folds, ranks, the refit, random draws from the space.
#include <gtest/gtest.h>

#include <numeric>
#include <set>

#include "meshflow/meshflow.h"
#include "meshflow/tuner/cross_validation.h"
#include "test_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
using namespace meshflow::tuner;

TEST(KFold, FoldsMatchScikitLearn) {
  // KFold(n_splits=3).split(range(10)): test folds [0..3], [4..6], [7..9].
  auto f = kfold_indices(10, 3);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0], (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(f[1], (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(f[2], (std::vector<int64_t>{7, 8, 9}));
  // Shuffled: still a partition of 0..n-1, reproducible by seed.
  auto s = kfold_indices(23, 4, true, 7);
  std::vector<int64_t> all;
  for (const auto& fold : s) all.insert(all.end(), fold.begin(), fold.end());
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expect(23);
  std::iota(expect.begin(), expect.end(), 0);
  EXPECT_EQ(all, expect);
  EXPECT_EQ(s, kfold_indices(23, 4, true, 7));
  EXPECT_NE(s, kfold_indices(23, 4, true, 8));
  EXPECT_EQ(s[0].size(), 6u);
  EXPECT_EQ(s[3].size(), 5u);
  EXPECT_MF_ERROR(kfold_indices(10, 1), "cv must be >= 2");
  EXPECT_MF_ERROR(kfold_indices(3, 5), "5 folds need at least 5 rows");
}

namespace {

// Deterministic training: zero-initialized weights, no shuffling, so a fold's score can be
// recomputed by hand.
std::shared_ptr<mf::Model> build_with(double lr) {
  auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      mf::make_input_layer({3}), L::Dense(1, {.kernel_initializer = "zeros"})});
  model->compile({.optimizer = mf::optimizers::SGD({{.learning_rate = lr}}), .loss = "mse", .metrics = {"mae"}});
  return model;
}

HyperModel estimator() {
  return [](HyperParameters& hp) { return build_with(hp.Choice("lr", {0.001, 0.05, 0.2})); };
}

}  // namespace

TEST(GridSearchCV, FoldScoresEqualTrainingByHandAndTheBestIsRefit) {
  mf::Generator g(4);
  mf::Tensor x = mf::rand({30, 3}, {}, &g);
  mf::Tensor y = mf::add(mf::sum(x, {1}, true), mf::scalar_tensor(0.25));
  mf::FitOptions fit{.epochs = 4, .batch_size = 8, .verbose = 0, .shuffle = false};
  GridSearchCV search(estimator(), {.scoring = "mae", .cv = 3});
  search.fit(x, y, fit);
  const auto& res = search.cv_results();
  ASSERT_EQ(res.size(), 3u);
  // Fold k holds rows [10k, 10k + 10); its score is the model trained on the other 20 rows.
  for (const auto& r : res) {
    double lr = r.params.at("lr").get<double>();
    ASSERT_EQ(r.split_scores.size(), 3u);
    double sum = 0;
    for (int k = 0; k < 3; ++k) {
      std::vector<mf::Tensor> xs, ys;  // the rows before and after fold k, in order
      if (k > 0) xs.push_back(x.slice(0, 0, 10 * k)), ys.push_back(y.slice(0, 0, 10 * k));
      if (k < 2) xs.push_back(x.slice(0, 10 * k + 10, 30)), ys.push_back(y.slice(0, 10 * k + 10, 30));
      mf::Tensor xt = mf::concat(xs, 0), yt = mf::concat(ys, 0);
      auto m = build_with(lr);
      m->fit(xt, yt, fit);
      double mae = m->evaluate(x.slice(0, 10 * k, 10 * k + 10), y.slice(0, 10 * k, 10 * k + 10), {.verbose = 0}).at("mae");
      EXPECT_NEAR(r.split_scores[static_cast<size_t>(k)], mae, 1e-6) << "lr " << lr << " fold " << k;
      sum += mae;
    }
    EXPECT_NEAR(r.mean_score, sum / 3, 1e-6);
  }
  // mae: lower is better; the smallest learning rate barely moves from zero weights.
  int best = 0;
  for (int i = 1; i < 3; ++i)
    if (res[static_cast<size_t>(i)].mean_score < res[static_cast<size_t>(best)].mean_score) best = i;
  EXPECT_EQ(search.best_index(), best);
  EXPECT_EQ(res[static_cast<size_t>(best)].rank, 1);
  EXPECT_NE(search.best_params().at("lr").get<double>(), 0.001);
  EXPECT_DOUBLE_EQ(search.best_score(), res[static_cast<size_t>(best)].mean_score);
  std::set<int> ranks;
  for (const auto& r : res) ranks.insert(r.rank);
  EXPECT_EQ(ranks, (std::set<int>{1, 2, 3}));
  // The refit is the best candidate trained on all 30 rows.
  auto by_hand = build_with(search.best_params().at("lr").get<double>());
  by_hand->fit(x, y, fit);
  auto a = search.best_estimator()->evaluate(x, y, {.verbose = 0});
  auto b = by_hand->evaluate(x, y, {.verbose = 0});
  EXPECT_NEAR(a.at("loss"), b.at("loss"), 1e-6);
}

TEST(RandomizedSearchCV, DrawsNIterDistinctCandidatesFromTheSpace) {
  mf::Generator g(5);
  mf::Tensor x = mf::rand({20, 3}, {}, &g);
  mf::Tensor y = mf::sum(x, {1}, true);
  HyperModel est = [](HyperParameters& hp) {
    double lr = hp.Float("lr", 0.001, 0.3, {.sampling = "log"});
    return build_with(lr);
  };
  RandomizedSearchCV a(est, {.cv = 2, .seed = 11, .refit = false, .n_iter = 4});
  a.fit(x, y, {.epochs = 1, .verbose = 0});
  RandomizedSearchCV b(est, {.cv = 2, .seed = 11, .refit = false, .n_iter = 4});
  b.fit(x, y, {.epochs = 1, .verbose = 0});
  ASSERT_EQ(a.cv_results().size(), 4u);
  std::set<double> lrs;
  for (size_t i = 0; i < 4; ++i) {
    double lr = a.cv_results()[i].params.at("lr").get<double>();
    EXPECT_GE(lr, 0.001);
    EXPECT_LE(lr, 0.3);
    lrs.insert(lr);
    EXPECT_EQ(a.cv_results()[i].params, b.cv_results()[i].params);  // same seed, same draws
  }
  EXPECT_EQ(lrs.size(), 4u);
  EXPECT_MF_ERROR(a.best_estimator(), "refit = true");
}

TEST(SearchCV, ChecksItsInputs) {
  mf::Tensor x = mf::zeros({10, 3}), y = mf::zeros({10, 1});
  EXPECT_MF_ERROR(GridSearchCV(estimator(), {.cv = 1}), "cv must be >= 2");
  EXPECT_MF_ERROR(GridSearchCV(nullptr), "estimator (hypermodel) is empty");
  GridSearchCV s(estimator(), {.scoring = "accuracy", .cv = 2});
  EXPECT_MF_ERROR(s.fit(x, y, {.epochs = 1, .verbose = 0}), "scoring 'accuracy'", "mae", "loss");
  GridSearchCV t(estimator(), {.cv = 2});
  EXPECT_MF_ERROR(t.fit(x, mf::zeros({9, 1}), {.epochs = 1, .verbose = 0}), "y[0] has 9 rows");
  EXPECT_MF_ERROR(t.fit(x, y, {.epochs = 1, .verbose = 0, .validation_split = 0.2}), "the folds are the validation");
  EXPECT_MF_ERROR(t.best_params(), "call fit() first");
}
