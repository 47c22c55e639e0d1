// The local backend (threads of one process) and the stub backend against naive references.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "collective_check.h"

namespace {

using namespace mf_test;
using meshflow::DType;
using meshflow::Tensor;
using Clock = std::chrono::steady_clock;

// Runs body(comm) on `n` threads, one per rank of a fresh LocalGroup.
void on_threads(int n, const std::function<void(dist::Communicator&)>& body, dist::CommOptions options = {}) {
  dist::LocalGroup group(n, options);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      auto comm = dist::make_communicator("local", options, &group, r);
      body(*comm);
    });
  for (auto& t : threads) t.join();
}

class LocalCollectives : public ::testing::TestWithParam<int> {};

TEST_P(LocalCollectives, EverySizeAndDtypeMatchesReference) {
  on_threads(GetParam(), [](dist::Communicator& comm) {
    for (DType dtype : {DType::F32, DType::F64, DType::I32, DType::I64, DType::BF16, DType::F16})
      for (int64_t n : {0, 1, 7, 1000}) check_collectives(comm, n, dtype);
  });
}

TEST_P(LocalCollectives, LargeSize) {
  on_threads(GetParam(), [](dist::Communicator& comm) {
    for (DType dtype : {DType::F32, DType::BF16}) check_collectives(comm, (1 << 20) + 3, dtype);
  });
}

TEST_P(LocalCollectives, ShapesAndAsync) {
  on_threads(GetParam(), [](dist::Communicator& comm) { check_shapes_and_async(comm); });
}

// The documented order: sum over ranks 0..N-1 in f32, the same bits on every run.
TEST_P(LocalCollectives, SumIsInRankOrderAndReproducible) {
  const int n = GetParam();
  std::vector<Tensor> inputs;
  for (int r = 0; r < n; ++r) inputs.push_back(random_tensor({4099}, 100 + r, -1e3, 1e3, DType::F32));
  std::vector<float> want(4099);
  for (size_t i = 0; i < want.size(); ++i) {
    float acc = inputs[0].data<float>()[i];
    for (int r = 1; r < n; ++r) acc += inputs[r].data<float>()[i];
    want[i] = acc;
  }
  for (int run = 0; run < 3; ++run)
    on_threads(n, [&](dist::Communicator& comm) {
      Tensor t = inputs[comm.rank()].clone();
      comm.all_reduce(t, ReduceOp::Sum);
      EXPECT_EQ(t.to_vector<float>(), want);
    });
}

INSTANTIATE_TEST_SUITE_P(Threads, LocalCollectives, ::testing::Values(2, 3, 4));

TEST_P(LocalCollectives, SplitMakesSubGroups) {
  on_threads(GetParam(), [](dist::Communicator& comm) { check_split(comm); });
}

TEST(StubBackend, SplitsIntoItself) {
  auto stub = dist::make_communicator("stub");
  auto sub = stub->split(3, 0);
  EXPECT_EQ(sub->size(), 1);
  EXPECT_EQ(sub->backend(), "stub");
}

TEST(LocalBackend, MissingRankTimesOutNamingIt) {
  std::atomic<int> errors{0};
  on_threads(3, [&](dist::Communicator& comm) {
    if (comm.rank() == 2) return;  // never arrives
    Tensor t = meshflow::ones({8});
    const std::string who = "rank " + std::to_string(comm.rank()) + " of 3";
    auto start = Clock::now();
    EXPECT_MF_ERROR(comm.all_reduce(t), "all_reduce(sum)", "f32[8]", "missing rank(s) 2", "timed out", who.c_str());
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    EXPECT_GE(ms, 300);
    EXPECT_LT(ms, 3000);
    errors++;
  }, {.timeout = std::chrono::milliseconds(300)});
  EXPECT_EQ(errors, 2);
}

TEST(LocalBackend, MismatchNamesEachRanksCall) {
  on_threads(2, [](dist::Communicator& comm) {
    Tensor t = meshflow::ones({comm.rank() == 0 ? 4 : 5});
    EXPECT_MF_ERROR(comm.all_reduce(t), "collective mismatch", "rank 0 called all_reduce(sum) f32[4]",
                    "rank 1 called all_reduce(sum) f32[5]");
  });
  on_threads(2, [](dist::Communicator& comm) {
    Tensor t = meshflow::ones({4});
    if (comm.rank() == 0) EXPECT_MF_ERROR(comm.broadcast(t, 0), "rank 0 called broadcast", "rank 1 called barrier");
    else EXPECT_MF_ERROR(comm.barrier(), "collective mismatch");
  });
}

TEST(LocalBackend, AsyncWaitTimeoutDoesNotCancel) {
  on_threads(2, [](dist::Communicator& comm) {
    Tensor t = meshflow::full({3}, comm.rank() + 1.0);
    if (comm.rank() == 0) {
      auto w = comm.all_reduce_async(t);
      EXPECT_FALSE(w->is_completed());
      EXPECT_MF_ERROR(w->wait(std::chrono::milliseconds(50)), "all_reduce(sum)", "missing rank(s) 1");
      Tensor go = meshflow::zeros({1});
      comm.send(go, 1, 9);  // let rank 1 join now
      w->wait();
      EXPECT_EQ(t.at({0}), 3.0);
    } else {
      Tensor go = meshflow::zeros({1});
      comm.recv(go, 0, 9);
      comm.all_reduce(t);
      EXPECT_EQ(t.at({2}), 3.0);
    }
  });
}

TEST(LocalBackend, BadArgumentsAreNamed) {
  on_threads(2, [](dist::Communicator& comm) {
    Tensor i = meshflow::zeros({4}, {.dtype = DType::I32});
    EXPECT_MF_ERROR(comm.all_reduce(i, ReduceOp::Avg), "all_reduce(avg)", "i32[4]", "truncate");
    Tensor nc = meshflow::zeros({3, 4}).t();
    EXPECT_MF_ERROR(comm.all_reduce(nc), "all_reduce(sum)", "contiguous");
    EXPECT_MF_ERROR(comm.broadcast(nc, 5), "broadcast");
    Tensor t = meshflow::zeros({4});
    EXPECT_MF_ERROR(comm.broadcast(t, 2), "root rank 2", "size 2");
    Tensor out = meshflow::zeros({5});
    EXPECT_MF_ERROR(comm.all_gather(t, out), "all_gather", "holds 4 rows", "gives it");
    Tensor bad = meshflow::zeros({3});
    EXPECT_MF_ERROR(comm.reduce_scatter(t, bad), "reduce_scatter(sum)", "should be f32[2]");
    EXPECT_MF_ERROR(comm.send(t, 7), "send", "destination rank 7");
  });
  EXPECT_MF_ERROR(dist::LocalGroup(0), "LocalGroup", "size 0");
  EXPECT_MF_ERROR(dist::make_communicator("local"), "LocalGroup");
  EXPECT_MF_ERROR(dist::make_communicator("nccl2"), "unknown backend 'nccl2'");
}

TEST(StubBackend, SizeOneIsIdentity) {
  auto comm = dist::make_communicator("stub");
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->backend(), "stub");
  check_collectives(*comm, 7, DType::F32);
  check_collectives(*comm, 0, DType::I64);
  check_shapes_and_async(*comm);
  Tensor t = meshflow::zeros({2});
  EXPECT_MF_ERROR(comm->recv(t, 0, 4), "recv", "tag 4", "never arrive");
}

TEST(MpiBackend, AbsentBuildExplainsItself) {
  if (dist::mpi_available()) GTEST_SKIP() << "this build has MPI; the MPI tests run under mpirun";
  EXPECT_MF_ERROR(dist::make_communicator("mpi"), "built without MPI", "local");
}

}  // namespace
