// The hierarchical backend in one process: 2 "processes" (LocalGroup ranks on threads) x 2 local
// replicas each, against the naive reference; mismatches and missing replicas are named.
#include <gtest/gtest.h>

#include <chrono>

#include "hierarchical_check.h"

namespace {

using namespace mf_test;
using meshflow::DType;
using meshflow::Tensor;
using Clock = std::chrono::steady_clock;

// P process threads, each running a HierarchicalGroup of L replica threads over its LocalGroup rank.
void on_grid(int processes, int local, const std::function<void(dist::Communicator&)>& body,
             dist::CommOptions options = {}) {
  dist::LocalGroup world(processes, options);
  std::vector<std::thread> threads;
  for (int p = 0; p < processes; ++p)
    threads.emplace_back([&, p] { on_replica_threads(world.communicator(p), local, body, options); });
  for (auto& t : threads) t.join();
}

TEST(Hierarchical, RanksAreProcessMajor) {
  std::vector<int> seen(6, 0);
  std::mutex mu;
  on_grid(3, 2, [&](dist::Communicator& comm) {
    EXPECT_EQ(comm.size(), 6);
    EXPECT_EQ(comm.backend(), "hierarchical");
    std::lock_guard<std::mutex> lock(mu);
    seen[comm.rank()]++;
  });
  EXPECT_EQ(seen, std::vector<int>(6, 1));
}

TEST(Hierarchical, TwoProcessesTimesTwoThreadsMatchReference) { on_grid(2, 2, check_hierarchical); }
TEST(Hierarchical, ThreeProcessesTimesTwoThreadsMatchReference) { on_grid(3, 2, check_hierarchical); }
TEST(Hierarchical, OneProcessTimesThreeThreadsMatchReference) { on_grid(1, 3, check_hierarchical); }

TEST(Hierarchical, LocalMismatchIsNamedOnEveryReplica) {
  on_grid(2, 2, [](dist::Communicator& comm) {
    Tensor t = meshflow::full({5}, 1.0);
    if (comm.rank() == 3) {
      EXPECT_MF_ERROR(comm.broadcast(t, 0), "replica 3 (process 1, local replica 1) of 4", "collective mismatch",
                      "all_reduce(sum)", "broadcast(root 0)");
    } else if (comm.rank() == 2) {
      EXPECT_MF_ERROR(comm.all_reduce(t), "replica 2 (process 1, local replica 0) of 4", "collective mismatch",
                      "local replica 0 called all_reduce(sum)", "local replica 1 called broadcast(root 0)");
    } else {
      // Process 0 agrees with itself, but process 1's leader never posts the process all-reduce:
      // the process group (here a LocalGroup) names process 1 as missing.
      const std::string who = "replica " + std::to_string(comm.rank()) + " (process 0, local replica " +
                              std::to_string(comm.rank()) + ") of 4";
      EXPECT_MF_ERROR(comm.all_reduce(t), who.c_str(), "timed out on rank 0 of 2", "missing rank(s) 1 never joined");
    }
  }, {.timeout = std::chrono::milliseconds(600)});
}

TEST(Hierarchical, MissingLocalReplicaIsNamedWithinTheTimeout) {
  on_grid(2, 2, [](dist::Communicator& comm) {
    if (comm.rank() == 3) return;  // process 1's local replica 1 never calls
    Tensor t = meshflow::full({5}, 1.0);
    auto start = Clock::now();
    if (comm.rank() == 2) {
      // The local group's verdict ("missing rank(s) 1 never joined"), or after the grace this
      // thread's own ("missing local replica(s) 1 of process 1 never joined").
      EXPECT_MF_ERROR(comm.all_reduce(t, ReduceOp::Avg), "replica 2 (process 1, local replica 0) of 4", "missing ",
                      " 1 never joined");
    } else {
      EXPECT_MF_ERROR(comm.all_reduce(t, ReduceOp::Avg), "all_reduce(avg)", "timed out on rank");
    }
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 3.0);
  }, {.timeout = std::chrono::milliseconds(500)});
}

TEST(Hierarchical, AllGatherAndSendAreRefused) {
  on_grid(1, 2, [](dist::Communicator& comm) {
    Tensor t = meshflow::full({2}, 1.0), out;
    EXPECT_MF_ERROR(comm.all_gather(t, out), "all_gather", "hierarchical backend", "process communicator");
    EXPECT_MF_ERROR(comm.send(t, 0), "send", "hierarchical backend");
  });
}

TEST(Hierarchical, BadArgumentsAreRefused) {
  auto stub = dist::make_communicator("stub");
  EXPECT_MF_ERROR(dist::HierarchicalGroup(stub, 0), "local_size 0");
  EXPECT_MF_ERROR(dist::HierarchicalGroup(nullptr, 2), "process communicator is null");
  dist::HierarchicalGroup g(stub, 2);
  EXPECT_MF_ERROR(g.communicator(2), "local rank 2");
}

}  // namespace
