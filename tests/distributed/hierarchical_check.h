// The hierarchical backend's collectives against the naive reference of collective_check.h, over all P * L ranks.
#pragma once

#include <functional>
#include <thread>

#include "collective_check.h"

namespace mf_test {

// Runs body(comm) on `local` threads, one per local replica of a HierarchicalGroup over `process`.
inline void on_replica_threads(std::shared_ptr<dist::Communicator> process, int local,
                               const std::function<void(dist::Communicator&)>& body, dist::CommOptions options = {}) {
  dist::HierarchicalGroup group(std::move(process), local, options);
  std::vector<std::thread> threads;
  for (int l = 0; l < local; ++l)
    threads.emplace_back([&, l] {
      auto comm = group.communicator(l);
      body(*comm);
    });
  for (auto& t : threads) t.join();
}

// all_reduce (every op) and reduce_scatter for each size and dtype, broadcast from every root,
// async all-reduces waited out of order, and a barrier; each against the reference over all ranks.
inline void check_hierarchical(dist::Communicator& comm) {
  const int r = comm.rank(), size = comm.size();
  int salt = 0;
  for (DType dtype : {DType::F32, DType::F64, DType::I32, DType::BF16})
    for (int64_t n : {0, 1, 7, 1000, 65539}) {
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
        if (op == ReduceOp::Avg && !meshflow::is_floating(dtype)) continue;
        ++salt;
        Tensor t = rank_tensor(r, 0, n, dtype, salt);
        comm.all_reduce(t, op);
        std::vector<double> want(n);
        for (int64_t i = 0; i < n; ++i) want[i] = combine(op, size, i, salt, dtype);
        EXPECT_TRUE(matches(t, want, tolerance(dtype, op), label("all_reduce", dtype, n, comm)));
        EXPECT_EQ(t.dtype(), dtype);

        Tensor part;
        comm.reduce_scatter(rank_tensor(r, 0, n, dtype, salt), part, op);
        int64_t start = n / size * r + std::min<int64_t>(r, n % size);
        EXPECT_EQ(part.numel(), n / size + (r < n % size ? 1 : 0));
        std::vector<double> mine(want.begin() + start, want.begin() + start + part.numel());
        EXPECT_TRUE(matches(part, mine, tolerance(dtype, op), label("reduce_scatter", dtype, n, comm)));
      }
      for (int root = 0; root < size; ++root) {
        Tensor b = rank_tensor(r, 0, n, dtype, 7 + root);
        comm.broadcast(b, root);
        std::vector<double> want(n);
        for (int64_t i = 0; i < n; ++i) want[i] = rank_value(root, i, 7 + root, dtype);
        EXPECT_TRUE(matches(b, want, 0.0, label("broadcast", dtype, n, comm) + " root " + std::to_string(root)));
      }
    }
  std::vector<Tensor> ts;
  std::vector<dist::WorkPtr> works;
  for (int k = 0; k < 4; ++k) {
    ts.push_back(rank_tensor(r, 0, 100 + k, DType::F32, 40 + k));
    works.push_back(comm.all_reduce_async(ts.back(), k % 2 ? ReduceOp::Avg : ReduceOp::Min));
  }
  for (int k = 3; k >= 0; --k) {
    works[k]->wait();
    EXPECT_TRUE(works[k]->is_completed());
    std::vector<double> want(100 + k);
    ReduceOp op = k % 2 ? ReduceOp::Avg : ReduceOp::Min;
    for (int64_t i = 0; i < 100 + k; ++i) want[i] = combine(op, size, i, 40 + k);
    EXPECT_TRUE(matches(ts[k], want, tolerance(DType::F32, op), "async all_reduce " + std::to_string(k)));
  }
  comm.barrier();
}

}  // namespace mf_test
