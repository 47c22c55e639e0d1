// The hierarchical backend under mpirun (2, 3, 4 ranks x 2 threads): every collective it has
// against the naive reference over all replicas, and the same sums as the flat MPI communicator.
#include <gtest/gtest.h>

#include "hierarchical_check.h"

namespace {

using namespace mf_test;
using meshflow::DType;
using meshflow::Tensor;

TEST(MpiHierarchical, TwoThreadsPerRankMatchReference) {
  auto process = dist::make_communicator("mpi");
  ASSERT_GE(process->size(), 2) << "run under mpirun -np 2 or more";
  on_replica_threads(process, 2, [&](dist::Communicator& comm) {
    EXPECT_EQ(comm.size(), 2 * process->size());
    EXPECT_EQ(comm.rank() / 2, process->rank());
    check_hierarchical(comm);
  });
}

// Random f64 inputs: the average over ranks x threads equals one computed in a float64 loop here.
TEST(MpiHierarchical, AverageOfRandomValuesEqualsLoop) {
  auto process = dist::make_communicator("mpi");
  const int replicas = 3 * process->size();
  std::vector<Tensor> got(3);
  on_replica_threads(process, 3, [&](dist::Communicator& comm) {
    Tensor t = random_tensor({1001}, 900 + comm.rank());
    comm.all_reduce(t, ReduceOp::Avg);
    got[comm.rank() % 3] = t;
  });
  std::vector<double> want(1001, 0.0);
  for (int g = 0; g < replicas; ++g) {
    auto v = values(random_tensor({1001}, 900 + g));
    for (size_t i = 0; i < want.size(); ++i) want[i] += v[i] / replicas;
  }
  for (int l = 0; l < 3; ++l)
    EXPECT_TRUE(tensors_near(got[l], meshflow::from_vector(want, {1001}, {.dtype = DType::F64}), 1e-14, 1e-12));
}

}  // namespace
