// MirroredStrategy on cpu:0..3 (threads, local backend) equals training on one device.
#include <gtest/gtest.h>

#include "bn_reference.h"
#include "dp_models.h"
#include "test_util.h"

namespace {

using namespace dp_test;

void expect_equivalent(const std::function<std::shared_ptr<mf::Model>()>& build, const Shape& shape, bool shuffle) {
  mf::MirroredStrategy s({"cpu:0", "cpu:1", "cpu:2", "cpu:3"});
  EXPECT_EQ(s.num_replicas_in_sync(), 4);
  auto [x, y] = data(50, shape, 21);  // batches of 8 and a last one of 2: replicas 2 and 3 get none
  mf::FitOptions fo{.epochs = 3, .batch_size = 8, .verbose = 0, .shuffle = shuffle, .seed = 9};
  std::shared_ptr<mf::Model> mirrored;
  {
    auto scope = s.scope();
    mirrored = mf::replicate_model(build);
    compile(*mirrored);
  }
  set_known_weights(*mirrored, x, 0.0);  // replicas 1..3 keep their own random values until fit
  auto reference = build();
  compile(*reference);
  set_known_weights(*reference, x, 0.0);
  mf::History hm = mirrored->fit({x}, {y}, fo);
  mf::History hr = reference->fit({x}, {y}, fo);
  EXPECT_TRUE(histories_near(hm, hr, 1e-10));
  EXPECT_TRUE(weights_near(*mirrored, *reference, 1e-10));
  // A second fit continues from the same state on both.
  hm = mirrored->fit({x}, {y}, fo);
  hr = reference->fit({x}, {y}, fo);
  EXPECT_TRUE(histories_near(hm, hr, 1e-10));
  EXPECT_TRUE(weights_near(*mirrored, *reference, 1e-10));
}

TEST(MirroredStrategy, MlpOnFourDevicesEqualsOne) { expect_equivalent(mlp, {6}, false); }
TEST(MirroredStrategy, MlpOnFourDevicesEqualsOneShuffled) { expect_equivalent(mlp, {6}, true); }
TEST(MirroredStrategy, CnnOnFourDevicesEqualsOneShuffled) { expect_equivalent(cnn, {6, 6, 2}, true); }

// BatchNormalization's moving statistics: each replica updates its own from its rows during an
// epoch, and at the epoch's end both take the mean; bn_reference's float64 loop says what it is.
TEST(MirroredStrategy, MovingStatisticsAreTheMeanOverReplicas) {
  for (int devices : {2, 3}) {
    std::vector<mf::Device> list;
    for (int d = 0; d < devices; ++d) list.emplace_back("cpu:" + std::to_string(d));
    mf::MirroredStrategy s(list);
    auto [x, y] = bn_data(54, 3);  // batches of 14 and a last one of 12: every replica gets >= 2 rows
    auto [mean, variance] = fit_bn(s, x, y, 14, 2);
    BnStatistics want = bn_reference(x, 14, 1, devices, 2);
    EXPECT_TRUE(statistics_near(mean, want.mean, "moving_mean"));
    EXPECT_TRUE(statistics_near(variance, want.variance, "moving_variance"));
    // Replica 0 alone holds something else, so no averaging (or copying replica 0's) would fail.
    EXPECT_GT(std::abs(want.replica0_mean[0] - want.mean[0]), 1e-3);
  }
}

TEST(MirroredStrategy, ModelWithOneCopyIsRefused) {
  mf::MirroredStrategy s({"cpu:0", "cpu:1"});
  auto [x, y] = data(8, {6}, 1);
  std::shared_ptr<mf::Model> model;
  {
    auto scope = s.scope();
    model = mlp();
    compile(*model);
  }
  EXPECT_MF_ERROR(model->fit({x}, {y}, {.verbose = 0}), "MirroredStrategy", "2 local replicas",
                  "replicate_model(build)");
}

TEST(MirroredStrategy, BadDevicesAreRefused) {
  EXPECT_MF_ERROR(mf::MirroredStrategy({"cpu:0", "cpu:0"}), "device 1 repeats device 0");
  EXPECT_MF_ERROR(mf::MirroredStrategy(std::vector<mf::Device>{}), "at least one device");
}

TEST(MirroredStrategy, ReplicaErrorsNameTheReplica) {
  mf::MirroredStrategy s({"cpu:0", "cpu:1"});
  EXPECT_MF_ERROR(s.run_replicas([](int r) {
                    if (r == 1) throw meshflow::Error("boom");
                  }),
                  "replica 1 on cpu:1 failed", "boom");
}

}  // namespace
