// The MPI backend under mpirun (2, 3, 4 ranks): every collective against the naive reference, and timeouts.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "collective_check.h"

namespace {

using namespace mf_test;
using meshflow::DType;
using meshflow::Tensor;
using Clock = std::chrono::steady_clock;

std::shared_ptr<dist::Communicator> world() {
  static auto comm = dist::make_communicator("mpi");
  return comm;
}

TEST(MpiCollectives, EverySizeAndDtypeMatchesReference) {
  auto comm = world();
  ASSERT_GE(comm->size(), 2) << "run under mpirun -np 2 or more";
  for (DType dtype : {DType::F32, DType::F64, DType::I32, DType::I64, DType::BF16, DType::F16})
    for (int64_t n : {0, 1, 7, 1000, (1 << 20) + 3}) check_collectives(*comm, n, dtype);
}

TEST(MpiCollectives, ShapesAndAsync) { check_shapes_and_async(*world()); }

// The MPI result equals the local backend's for the same inputs (a second implementation).
TEST(MpiCollectives, AgreesWithLocalBackendOnRandomFloats) {
  auto comm = world();
  const int n = comm->size();
  std::vector<Tensor> inputs;
  for (int r = 0; r < n; ++r) inputs.push_back(random_tensor({1237}, 500 + r, -1.0, 1.0, DType::F64));
  Tensor mine = inputs[comm->rank()].clone();
  comm->all_reduce(mine, dist::ReduceOp::Avg);
  dist::LocalGroup group(n);
  std::vector<Tensor> local(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      local[r] = inputs[r].clone();
      group.communicator(r)->all_reduce(local[r], dist::ReduceOp::Avg);
    });
  for (auto& t : threads) t.join();
  EXPECT_TRUE(tensors_near(mine, local[comm->rank()], 1e-15, 1e-13));
}

// Rank 1 arrives late: the others fail within the timeout naming the collective, and the late
// arrival still completes the collective they abandoned, so the job can go on (or shut down cleanly).
TEST(MpiCollectives, SplitMakesSubCommunicators) { check_split(*world()); }

TEST(MpiCollectives, LateRankTimesOutOthersNamingTheCollective) {
  auto comm = dist::make_communicator("mpi", {.timeout = std::chrono::milliseconds(2000)});
  Tensor t = meshflow::full({1000}, 1.0);
  if (comm->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    comm->all_reduce(t);
  } else {
    const std::string who = "timed out on rank " + std::to_string(comm->rank());
    auto start = Clock::now();
    EXPECT_MF_ERROR(comm->all_reduce(t), "all_reduce(sum)", "f32[1000]", who.c_str(), "after 2", "timeout 2000 ms",
                    "rank 1 (host ", "has not reached it", "this is number 1");
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    EXPECT_GE(ms, 2000);
    EXPECT_LT(ms, 2900);
  }
  comm->barrier();
}

// A wait that times out does not cancel: the receive completes once the sender sends.
TEST(MpiCollectives, AsyncWaitTimeoutDoesNotCancel) {
  auto comm = world();
  Tensor buf = meshflow::zeros({5}, {.dtype = DType::I64});
  if (comm->rank() == 0) {
    auto w = comm->recv_async(buf, 1, 42);
    EXPECT_MF_ERROR(w->wait(std::chrono::milliseconds(100)), "recv(from rank 1, tag 42)", "i64[5]", "rank 0");
    comm->barrier();
    w->wait();
    EXPECT_EQ(buf.at({4}), 7.0);
  } else {
    comm->barrier();
    if (comm->rank() == 1) comm->send(meshflow::full({5}, 7.0, {.dtype = DType::I64}), 0, 42);
  }
  comm->barrier();
}

// With verify_calls (the default), a shape or op mismatch throws on every rank, naming each rank's call.
TEST(MpiCollectives, MismatchIsCaughtBeforeDataMoves) {
  auto comm = dist::make_communicator("mpi", {.timeout = std::chrono::milliseconds(10000)});  // verify_calls is on by default
  const int r = comm->rank();
  Tensor t = meshflow::full({r == 0 ? 4 : 5}, 1.0);
  EXPECT_MF_ERROR(comm->all_reduce(t), "collective mismatch", "rank 0 called all_reduce(sum) f32[4]",
                  "rank 1 called all_reduce(sum) f32[5]");
  EXPECT_EQ(t.at({0}), 1.0);  // untouched
  Tensor u = meshflow::zeros({2, 3}, {.dtype = DType::F64});
  if (r == 0) {
    EXPECT_MF_ERROR(comm->broadcast(u, 0), "rank 0 called broadcast(root 0) f64[2, 3]", "rank 1 called barrier");
  } else {
    EXPECT_MF_ERROR(comm->barrier(), "collective mismatch", "rank 1 called barrier");
  }
  Tensor ok = meshflow::full({3}, 2.0);  // matching calls still work afterwards
  comm->all_reduce(ok, dist::ReduceOp::Max);
  EXPECT_EQ(ok.at({2}), 2.0);
}

TEST(MpiCollectives, BadArgumentsAreNamed) {
  auto comm = world();
  Tensor t = meshflow::zeros({4}, {.dtype = DType::I32});
  EXPECT_MF_ERROR(comm->all_reduce(t, dist::ReduceOp::Avg), "all_reduce(avg)", "i32[4]", "truncate");
  EXPECT_MF_ERROR(comm->broadcast(t, comm->size()), "broadcast", "root rank", "MPI world");
  EXPECT_MF_ERROR(comm->send(t, 0, -1), "send", "tag -1");
  EXPECT_EQ(comm->backend(), "mpi");
  EXPECT_TRUE(dist::mpi_available());
}

}  // namespace
