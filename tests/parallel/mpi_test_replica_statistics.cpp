// Under mpirun (2 and 3 ranks): BatchNormalization's moving statistics after fit are the mean over
// every replica of every process (1 and 2 local devices per rank), bitwise the same on every rank.
#include <gtest/gtest.h>

#include "bn_reference.h"

namespace {

using namespace dp_test;

void expect_mean_over_replicas(mf::MultiWorkerMirroredStrategy& s) {
  ASSERT_GE(s.num_processes(), 2) << "run under mpirun -np 2 or more";
  auto [x, y] = bn_data(54, 3);  // batches of 14 and a last one of 12: up to 3 x 2 replicas get >= 2 rows each
  auto [mean, variance] = fit_bn(s, x, y, 14, 2);
  BnStatistics want = bn_reference(x, 14, s.num_processes(), s.num_local_replicas(), 2);
  EXPECT_TRUE(statistics_near(mean, want.mean, "moving_mean"));
  EXPECT_TRUE(statistics_near(variance, want.variance, "moving_variance"));
  EXPECT_GT(std::abs(want.replica0_mean[0] - want.mean[0]), 1e-3);  // averaging matters here

  std::vector<Tensor> chief{mf::from_vector(mean, {3}, {.dtype = DType::F64}),
                            mf::from_vector(variance, {3}, {.dtype = DType::F64})};
  s.broadcast_from_chief(chief);
  EXPECT_EQ(chief[0].to_vector<double>(), mean) << "rank " << s.process_rank();
  EXPECT_EQ(chief[1].to_vector<double>(), variance) << "rank " << s.process_rank();
}

TEST(ReplicaStatistics, OneDevicePerRank) {
  static mf::MultiWorkerMirroredStrategy s;
  expect_mean_over_replicas(s);
}

TEST(ReplicaStatistics, TwoDevicesPerRank) {
  static mf::MultiWorkerMirroredStrategy s(std::vector<mf::Device>{"cpu:0", "cpu:1"});
  EXPECT_EQ(s.num_replicas_in_sync(), 2 * s.num_processes());
  expect_mean_over_replicas(s);
}

}  // namespace
