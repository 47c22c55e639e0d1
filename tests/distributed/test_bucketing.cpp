// GradBucketer on the local backend: bucket layout, overlap with backward, averaged gradients.
#include <gtest/gtest.h>
#include <sched.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "bucketing_check.h"
#include "meshflow/core/parallel.h"
#include "meshflow/distributed/communicator.h"

namespace {

using namespace mf_test;
using meshflow::DType;

void on_threads(int n, const std::function<void(std::shared_ptr<dist::Communicator>)>& body) {
  dist::LocalGroup group(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { body(group.communicator(r)); });
  for (auto& t : threads) t.join();
}

TEST(GradBucketer, LayoutIsReverseOrderAndDeterministic) {
  auto comm = dist::make_communicator("stub");
  auto ps = bucket_model_params(DType::F64);
  // Bytes per param (f64): 120, 24, 56, 8, 32, 24. Reverse: p5 24 | p4 32 -> 56 | p3 8 -> 64 |
  // p2 56 would pass 64: new bucket | p1 24 -> 80 would pass 64: new | p0 120 alone.
  dist::GradBucketer b(comm, ps, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Always});
  ASSERT_EQ(b.num_buckets(), 4);
  EXPECT_EQ(b.bucket_params(0), (std::vector<size_t>{5, 4, 3}));
  EXPECT_EQ(b.bucket_params(1), (std::vector<size_t>{2}));
  EXPECT_EQ(b.bucket_params(2), (std::vector<size_t>{1}));
  EXPECT_EQ(b.bucket_params(3), (std::vector<size_t>{0}));
  dist::GradBucketer big(comm, ps);
  EXPECT_EQ(big.num_buckets(), 1);
  EXPECT_MF_ERROR(b.bucket_params(4), "bucket 4 of 4");
}

TEST(GradBucketer, StubGivesOwnGradients) {
  check_bucketed_training(dist::make_communicator("stub"), DType::F64, {.bucket_bytes = 64}, 1e-12);
}

class BucketThreads : public ::testing::TestWithParam<int> {};

TEST_P(BucketThreads, AveragedGradientsEqualReference) {
  on_threads(GetParam(), [](auto comm) {
    check_bucketed_training(comm, DType::F64, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Always}, 1e-12);
    check_bucketed_training(comm, DType::F64, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Never}, 1e-12);
  });
}

TEST_P(BucketThreads, OneDefaultBucketF32) {
  on_threads(GetParam(), [](auto comm) { check_bucketed_training(comm, DType::F32, {}, 1e-6); });
}

TEST_P(BucketThreads, Bf16AndFp16Compression) {
  on_threads(GetParam(), [](auto comm) {
    check_bucketed_training(comm, DType::F32, {.bucket_bytes = 40, .compression = dist::GradCompression::BF16}, 2e-2);
    check_bucketed_training(comm, DType::F32, {.bucket_bytes = 40, .compression = dist::GradCompression::FP16}, 2e-3);
  });
}

TEST_P(BucketThreads, ScatteredBucketsHoldThisRanksRowsOfTheAverage) {
  on_threads(GetParam(), [](auto comm) {
    check_scattered_training(comm, DType::F64, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Always}, 1e-12);
    check_scattered_training(comm, DType::F64, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Never}, 1e-12);
    check_scattered_training(comm, DType::F32, {}, 1e-6);
    check_scattered_training(comm, DType::F32, {.bucket_bytes = 40, .compression = dist::GradCompression::BF16}, 2e-2);
  });
}

TEST_P(BucketThreads, ScatteredBucketsAccumulateTwoBackwards) {
  on_threads(GetParam(), [](auto comm) {
    check_scattered_training(comm, DType::F64, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Never}, 1e-12, 2);
    check_scattered_training(comm, DType::F64, {.bucket_bytes = 1 << 20, .overlap = dist::BucketOverlap::Never},
                             1e-12, 2);
  });
}

TEST(GradBucketer, ScatteredNeedsScatterAndFinish) {
  auto ps = bucket_model_params(DType::F64);
  dist::GradBucketer plain(dist::make_communicator("stub"), ps, {.bucket_bytes = 64});
  EXPECT_MF_ERROR(plain.scattered(0), "without BucketOptions::scatter");
  dist::GradBucketer scatter(dist::make_communicator("stub"), ps, {.bucket_bytes = 64, .scatter = true});
  EXPECT_MF_ERROR(scatter.scattered(0), "bucket 0 has not been reduced; call finish() first");
  EXPECT_MF_ERROR(scatter.scattered(9), "bucket 9 of 4");
}

INSTANTIATE_TEST_SUITE_P(Threads, BucketThreads, ::testing::Values(2, 3, 4));

TEST(GradBucketer, SecondBackwardBeforeFinishIsNamed) {
  auto comm = dist::make_communicator("stub");
  auto ps = bucket_model_params(DType::F64);
  dist::GradBucketer b(comm, ps, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Always});
  bucket_model_loss(ps, 0, 0).backward();
  b.finish();  // learns that parameter 5 is unused, so every bucket can now go during backward
  for (auto& p : ps) p.zero_grad();
  bucket_model_loss(ps, 0, 1).backward();
  EXPECT_EQ(b.launched_before_finish(), 0);  // step 0: bucket 0 waited for the unused p5, the rest behind it
  EXPECT_MF_ERROR(bucket_model_loss(ps, 0, 1).backward(), "GradBucketer", "arrived after its bucket",
                  "call finish() after each backward");
}

// Auto overlaps only when this process may run on more cores than it has compute threads.
TEST(GradBucketer, AutoOverlapFollowsFreeCores) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const int cores = CPU_COUNT(&set), threads = meshflow::num_threads();
  auto comm = dist::make_communicator("stub");
  auto ps = bucket_model_params(DType::F64);
  meshflow::set_num_threads(cores);
  EXPECT_FALSE(dist::GradBucketer(comm, ps).overlaps()) << cores << " cores, " << cores << " threads";
  if (cores > 1) {
    meshflow::set_num_threads(cores - 1);
    EXPECT_TRUE(dist::GradBucketer(comm, ps).overlaps()) << cores << " cores, " << cores - 1 << " threads";
  }
  EXPECT_TRUE(dist::GradBucketer(comm, ps, {.overlap = dist::BucketOverlap::Always}).overlaps());
  // Unbound ranks share the host's cores: with as many ranks here as cores, one thread each
  // leaves nothing free (what `mpirun --bind-to none -np <cores>` looks like to each rank).
  const int online = static_cast<int>(std::thread::hardware_concurrency());
  if (cores == online && online > 1) {
    meshflow::set_num_threads(1);
    const std::string n = std::to_string(online);
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    setenv("OMPI_COMM_WORLD_SIZE", n.c_str(), 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", n.c_str(), 1);
    EXPECT_FALSE(dist::GradBucketer(comm, ps).overlaps()) << online << " unbound ranks on " << online << " cores";
    for (const char* v : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                          "OMPI_COMM_WORLD_LOCAL_SIZE"})
      unsetenv(v);
    EXPECT_TRUE(dist::GradBucketer(comm, ps).overlaps()) << "one rank, 1 thread, " << online << " cores";
  }
  meshflow::set_num_threads(threads);
}

TEST(GradBucketer, BadParametersAreNamed) {
  auto comm = dist::make_communicator("stub");
  auto ps = bucket_model_params(DType::F32);
  ps.push_back(meshflow::zeros({2}));
  EXPECT_MF_ERROR(dist::GradBucketer(comm, ps), "parameter 6", "f32[2]", "requires grad");
  EXPECT_MF_ERROR(dist::GradBucketer(nullptr, {}), "communicator is null");
}

}  // namespace
