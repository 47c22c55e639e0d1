// fit(Dataset) under MirroredStrategy on cpu:0..1 equals fit on one device, and the one epoch
// driver behind both fit() overloads: progress through ProgbarLogger, the gradient hook.
#include <gtest/gtest.h>

#include <sstream>

#include "../parallel/dp_models.h"
#include "test_util.h"

namespace {

using namespace dp_test;

std::shared_ptr<mf::Model> mirrored_mlp(mf::MirroredStrategy& s) {
  std::shared_ptr<mf::Model> model;
  {
    auto scope = s.scope();
    model = mf::replicate_model(mlp);
    compile(*model);
  }
  return model;
}

}  // namespace

TEST(FitDatasetMirrored, TwoDevicesEqualOneOnTheSamePipeline) {
  mf::MirroredStrategy s({"cpu:0", "cpu:1"});
  // 49 shuffled rows in batches of 8: the last batch has one row, so replica 1 gets none.
  auto [x, y] = data(49, {6}, 31);
  auto [xv, yv] = data(9, {6}, 32);
  auto pipeline = [&] { return mf::Dataset::from_tensors({x}, {y}).shuffle(49, 5).batch(8); };
  auto mirrored = mirrored_mlp(s);
  set_known_weights(*mirrored, x, 0.0);
  auto reference = mlp();
  compile(*reference);
  set_known_weights(*reference, x, 0.0);
  mf::Dataset dm = pipeline(), dr = pipeline();
  mf::FitOptions fo{.epochs = 3, .verbose = 0};
  fo.validation_data = std::make_pair(mf::Tensors{xv}, mf::Tensors{yv});
  mf::History hm = mirrored->fit(dm, fo);
  mf::History hr = reference->fit(dr, fo);
  EXPECT_TRUE(histories_near(hm, hr, 1e-10));
  EXPECT_TRUE(weights_near(*mirrored, *reference, 1e-10));
  EXPECT_EQ(hm.history.count("val_accuracy"), 1u);
  // Epochs of steps_per_epoch batches from a pipeline that repeats forever agree too.
  mf::Dataset rm = pipeline().repeat(), rr = pipeline().repeat();
  hm = mirrored->fit(rm, {.epochs = 2, .verbose = 0, .steps_per_epoch = 10});
  hr = reference->fit(rr, {.epochs = 2, .verbose = 0, .steps_per_epoch = 10});
  EXPECT_TRUE(histories_near(hm, hr, 1e-10));
  EXPECT_TRUE(weights_near(*mirrored, *reference, 1e-10));
}

TEST(FitDatasetMirrored, TheSameDataAsArraysOrAsADatasetTrainsTheSame) {
  // One epoch driver: fit(x, y) without shuffling and fit(Dataset) of the same batches agree
  // bit for bit, mirrored or not.
  mf::MirroredStrategy s({"cpu:0", "cpu:1"});
  auto [x, y] = data(30, {6}, 41);
  auto a = mirrored_mlp(s), b = mirrored_mlp(s);
  set_known_weights(*a, x, 0.0);
  set_known_weights(*b, x, 0.0);
  mf::History ha = a->fit({x}, {y}, {.epochs = 2, .batch_size = 7, .verbose = 0, .shuffle = false});
  mf::Dataset d = mf::Dataset::from_tensors({x}, {y}).batch(7);
  mf::History hb = b->fit(d, {.epochs = 2, .verbose = 0});
  EXPECT_TRUE(histories_near(ha, hb, 0.0));
  EXPECT_TRUE(weights_near(*a, *b, 0.0));
}

TEST(FitLoop, VerboseFitPrintsThroughProgbarLoggerAndAGivenOneReplacesIt) {
  auto [x, y] = data(16, {6}, 51);
  auto model = mlp();
  compile(*model);
  // Verbose fit prints what a ProgbarLogger prints, once.
  testing::internal::CaptureStdout();
  model->fit({x}, {y}, {.epochs = 2, .batch_size = 8, .verbose = 2});
  std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_EQ(printed.find("Epoch 1/2\n"), 0u) << printed;
  EXPECT_EQ(printed.find("Epoch 1/2", 1), std::string::npos) << printed;
  // A ProgbarLogger among the callbacks is the only one: nothing goes to stdout.
  std::ostringstream mine;
  testing::internal::CaptureStdout();
  model->fit({x}, {y}, {.epochs = 2, .batch_size = 8, .verbose = 2,
                        .callbacks = {std::make_shared<mf::callbacks::ProgbarLogger>(&mine)}});
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
  EXPECT_EQ(mine.str().find("Epoch 1/2\n"), 0u) << mine.str();
  EXPECT_NE(mine.str().find("Epoch 2/2\n2/2 - "), std::string::npos) << mine.str();
}

namespace {

// Copies the first variable's gradient at each step fit() shows it.
class GradientSpy : public mf::Callback {
 public:
  std::vector<int64_t> batches;
  std::vector<std::vector<double>> first_grad;
  void on_train_batch_gradients(int64_t batch, const std::vector<mf::Variable>& vars) override {
    batches.push_back(batch);
    first_grad.push_back(vars[0].grad().to_vector<double>());
  }
};

}  // namespace

TEST(FitLoop, GradientHookSeesTheAveragedGradientOfEachBatch) {
  // Two replicas and one device see the same gradients at each step (the averaged one).
  mf::MirroredStrategy s({"cpu:0", "cpu:1"});
  auto [x, y] = data(20, {6}, 61);
  auto mirrored = mirrored_mlp(s);
  set_known_weights(*mirrored, x, 0.0);
  auto reference = mlp();
  compile(*reference);
  set_known_weights(*reference, x, 0.0);
  auto spy_m = std::make_shared<GradientSpy>(), spy_r = std::make_shared<GradientSpy>();
  mirrored->fit({x}, {y}, {.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = false, .callbacks = {spy_m}});
  reference->fit({x}, {y}, {.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = false, .callbacks = {spy_r}});
  EXPECT_EQ(spy_r->batches, (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(spy_m->batches, spy_r->batches);
  ASSERT_EQ(spy_m->first_grad.size(), spy_r->first_grad.size());
  for (size_t i = 0; i < spy_r->first_grad.size(); ++i) {
    ASSERT_EQ(spy_m->first_grad[i].size(), spy_r->first_grad[i].size());
    double diff = 0, norm = 0;
    for (size_t j = 0; j < spy_r->first_grad[i].size(); ++j) {
      diff = std::max(diff, std::abs(spy_m->first_grad[i][j] - spy_r->first_grad[i][j]));
      norm = std::max(norm, std::abs(spy_r->first_grad[i][j]));
    }
    EXPECT_GT(norm, 0.0) << "step " << i;
    EXPECT_LT(diff, 1e-12) << "step " << i;
  }
  // The hook is gone after fit: train_on_batch calls nothing.
  size_t seen = spy_r->batches.size();
  reference->train_on_batch({x}, {y});
  EXPECT_EQ(spy_r->batches.size(), seen);
}
