// GradBucketer on the MPI backend: every rank's averaged gradients equal the reference average.
#include <gtest/gtest.h>

#include "bucketing_check.h"
#include "meshflow/distributed/communicator.h"

namespace {

using namespace mf_test;
using meshflow::DType;

std::shared_ptr<dist::Communicator> world() {
  static auto comm = dist::make_communicator("mpi");
  return comm;
}

TEST(MpiGradBucketer, SmallBucketsF64) {
  check_bucketed_training(world(), DType::F64, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Always}, 1e-12);
  check_bucketed_training(world(), DType::F64, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Never}, 1e-12);
}

TEST(MpiGradBucketer, DefaultBucketF32) { check_bucketed_training(world(), DType::F32, {}, 1e-6); }

TEST(MpiGradBucketer, Bf16Compression) {
  check_bucketed_training(world(), DType::F32, {.bucket_bytes = 40, .compression = dist::GradCompression::BF16}, 2e-2);
}

TEST(MpiGradBucketer, ScatteredF64AndBf16) {
  check_scattered_training(world(), DType::F64, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Always}, 1e-12);
  check_scattered_training(world(), DType::F64, {.bucket_bytes = 64, .overlap = dist::BucketOverlap::Never}, 1e-12, 2);
  check_scattered_training(world(), DType::F32, {.bucket_bytes = 40, .compression = dist::GradCompression::BF16}, 2e-2);
}

}  // namespace
