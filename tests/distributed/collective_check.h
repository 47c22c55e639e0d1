// Every collective of a Communicator checked against a naive reference built from all ranks' known inputs.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "meshflow/core/core.h"
#include "meshflow/distributed/communicator.h"
#include "test_util.h"

namespace mf_test {

namespace dist = meshflow::distributed;
using dist::ReduceOp;

// Rank r's value at element i: half-integers in [-5.5, 5.5] (integers in [-11, 11] for integer
// dtypes), exact in every dtype, so sums, max and min over up to 4 ranks are exact and only avg rounds.
inline double rank_value(int r, int64_t i, int salt, DType dtype = DType::F64) {
  double v = static_cast<double>(((r + 1) * 131 + i * 7 + salt * 13) % 23) - 11.0;
  return meshflow::is_floating(dtype) ? 0.5 * v : v;
}

inline Tensor rank_tensor(int r, int64_t start, int64_t rows, DType dtype, int salt) {
  std::vector<double> v(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) v[i] = rank_value(r, start + i, salt, dtype);
  return meshflow::from_vector(v, {rows}, {.dtype = dtype});
}

inline double combine(ReduceOp op, int n, int64_t i, int salt, DType dtype = DType::F64) {
  double acc = rank_value(0, i, salt, dtype);
  for (int r = 1; r < n; ++r) {
    double x = rank_value(r, i, salt, dtype);
    acc = op == ReduceOp::Max ? std::max(acc, x) : op == ReduceOp::Min ? std::min(acc, x) : acc + x;
  }
  return op == ReduceOp::Avg ? acc / n : acc;
}

// Sum, max and min are exact; avg is compared within the dtype's rounding.
inline double tolerance(DType dtype, ReduceOp op) {
  if (op != ReduceOp::Avg) return 0.0;
  return dtype == DType::BF16 ? 8e-3 : dtype == DType::F16 ? 1e-3 : dtype == DType::F32 ? 1e-6 : 1e-12;
}

inline ::testing::AssertionResult matches(const Tensor& got, const std::vector<double>& want, double rtol,
                                          const std::string& what) {
  std::vector<double> g = values(got);
  if (g.size() != want.size())
    return ::testing::AssertionFailure() << what << ": " << g.size() << " elements, expected " << want.size();
  for (size_t i = 0; i < g.size(); ++i)
    if (!(std::fabs(g[i] - want[i]) <= rtol * std::fabs(want[i])))
      return ::testing::AssertionFailure() << what << ": element " << i << " is " << g[i] << ", expected " << want[i];
  return ::testing::AssertionSuccess();
}

inline std::string label(const char* what, DType dtype, int64_t n, dist::Communicator& comm) {
  return std::string(what) + " " + meshflow::dtype_name(dtype) + "[" + std::to_string(n) + "] rank " +
         std::to_string(comm.rank()) + "/" + std::to_string(comm.size());
}

// Runs all_reduce (4 ops), broadcast, all_gather, reduce_scatter (4 ops) and a send/recv ring for
// one size and dtype, comparing each result with the reference.
inline void check_collectives(dist::Communicator& comm, int64_t n, DType dtype) {
  const int r = comm.rank(), size = comm.size();
  const bool floating = meshflow::is_floating(dtype);
  int salt = 0;
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
    if (op == ReduceOp::Avg && !floating) continue;
    ++salt;
    Tensor t = rank_tensor(r, 0, n, dtype, salt);
    comm.all_reduce(t, op);
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) want[i] = combine(op, size, i, salt, dtype);
    EXPECT_TRUE(matches(t, want, tolerance(dtype, op), label("all_reduce", dtype, n, comm)));

    // reduce_scatter: rank r gets its numpy.array_split rows of the reduced input.
    Tensor full = rank_tensor(r, 0, n, dtype, salt);
    Tensor part;
    comm.reduce_scatter(full, part, op);
    int64_t start = n / size * r + std::min<int64_t>(r, n % size);
    std::vector<double> mine(want.begin() + start, want.begin() + start + part.numel());
    EXPECT_EQ(part.numel(), n / size + (r < n % size ? 1 : 0));
    EXPECT_TRUE(matches(part, mine, tolerance(dtype, op), label("reduce_scatter", dtype, n, comm)));
  }
  // broadcast from the last rank (not 0, so a root mix-up shows).
  const int root = size - 1;
  Tensor b = rank_tensor(r, 0, n, dtype, 7);
  comm.broadcast(b, root);
  std::vector<double> want_b(n);
  for (int64_t i = 0; i < n; ++i) want_b[i] = rank_value(root, i, 7, dtype);
  EXPECT_TRUE(matches(b, want_b, 0.0, label("broadcast", dtype, n, comm)));

  // all_gather with uneven rows: rank r holds its array_split share of n rows.
  int64_t start = n / size * r + std::min<int64_t>(r, n % size);
  int64_t rows = n / size + (r < n % size ? 1 : 0);
  Tensor in = rank_tensor(r, start, rows, dtype, 9);
  Tensor out = meshflow::empty({n}, {.dtype = dtype});
  comm.all_gather(in, out);
  std::vector<double> want_g(n);
  for (int q = 0; q < size; ++q)
    for (int64_t i = n / size * q + std::min<int64_t>(q, n % size), k = 0; k < n / size + (q < n % size ? 1 : 0); ++k)
      want_g[i + k] = rank_value(q, i + k, 9, dtype);
  EXPECT_TRUE(matches(out, want_g, 0.0, label("all_gather", dtype, n, comm)));

  // send/recv around a ring, both posted before either is waited on.
  Tensor msg = rank_tensor(r, 0, n, dtype, 11);
  Tensor got = meshflow::empty({n}, {.dtype = dtype});
  int from = (r + size - 1) % size;
  auto recv = comm.recv_async(got, from, 3);
  auto send = comm.send_async(msg, (r + 1) % size, 3);
  send->wait();
  recv->wait();
  std::vector<double> want_m(n);
  for (int64_t i = 0; i < n; ++i) want_m[i] = rank_value(from, i, 11, dtype);
  EXPECT_TRUE(matches(got, want_m, 0.0, label("send/recv", dtype, n, comm)));
  comm.barrier();
}

// 2-D tensors, an all_gather with out left undefined, several async all-reduces waited out of order.
inline void check_shapes_and_async(dist::Communicator& comm) {
  const int r = comm.rank(), size = comm.size();
  Tensor x = rank_tensor(r, 0, 21, DType::F64, 5).reshape({7, 3});
  Tensor part;
  comm.reduce_scatter(x, part, ReduceOp::Sum);
  int64_t start = 7 / size * r + std::min(r, 7 % size);
  ASSERT_EQ(part.shape(), (Shape{7 / size + (r < 7 % size ? 1 : 0), 3}));
  for (int64_t i = 0; i < part.size(0); ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(part.at({i, j}), combine(ReduceOp::Sum, size, (start + i) * 3 + j, 5));

  Tensor mine = rank_tensor(r, 0, 6, DType::I32, 4).reshape({2, 3});
  Tensor all;
  comm.all_gather(mine, all);
  ASSERT_EQ(all.shape(), (Shape{2 * size, 3}));
  for (int q = 0; q < size; ++q)
    for (int64_t k = 0; k < 6; ++k) EXPECT_EQ(all.at({q * 2 + k / 3, k % 3}), rank_value(q, k, 4, DType::I32));

  std::vector<Tensor> ts;
  std::vector<dist::WorkPtr> works;
  for (int k = 0; k < 4; ++k) {
    ts.push_back(rank_tensor(r, 0, 100 + k, DType::F32, 20 + k));
    works.push_back(comm.all_reduce_async(ts.back(), ReduceOp::Max));
  }
  for (int k = 3; k >= 0; --k) {
    works[k]->wait();
    EXPECT_TRUE(works[k]->is_completed());
    std::vector<double> want(100 + k);
    for (int64_t i = 0; i < 100 + k; ++i) want[i] = combine(ReduceOp::Max, size, i, 20 + k);
    EXPECT_TRUE(matches(ts[k], want, 0.0, "async all_reduce " + std::to_string(k)));
  }
}


// split(): ranks of one parity form a communicator, ranked by descending parent rank (key = -rank);
// its collectives and point-to-point messages stay inside it; a split into one color is the whole
// group again, ranked by key; and the parent keeps working. Every rank of `comm` calls it.
inline void check_split(dist::Communicator& comm) {
  const int n = comm.size(), r = comm.rank();
  auto half = comm.split(r % 2, -r);
  std::vector<int> same;  // my parity's parent ranks, by descending rank
  for (int q = n - 1; q >= 0; --q)
    if (q % 2 == r % 2) same.push_back(q);
  ASSERT_EQ(half->size(), static_cast<int>(same.size()));
  const int mine = static_cast<int>(std::find(same.begin(), same.end(), r) - same.begin());
  EXPECT_EQ(half->rank(), mine);
  Tensor t = meshflow::from_vector(std::vector<double>{double(r + 1)}, {1}, {.dtype = DType::F64});
  half->all_reduce(t, ReduceOp::Sum);
  double want = 0;
  for (int q : same) want += q + 1;
  EXPECT_EQ(t.item(), want) << "rank " << r;
  if (half->size() > 1) {  // a ring inside the half: each member hears from the one before it
    Tensor got = meshflow::zeros({1}, {.dtype = DType::F64});
    const int next = (half->rank() + 1) % half->size(), prev = (half->rank() + half->size() - 1) % half->size();
    auto sent = half->send_async(meshflow::from_vector(std::vector<double>{double(r)}, {1}, {.dtype = DType::F64}), next, 5);
    half->recv(got, prev, 5);
    sent->wait();
    EXPECT_EQ(got.item(), double(same[static_cast<size_t>(prev)]));
  }
  auto all = comm.split(0, r);
  EXPECT_EQ(all->size(), n);
  EXPECT_EQ(all->rank(), r);
  Tensor u = meshflow::from_vector(std::vector<double>{1.0}, {1}, {.dtype = DType::F64});
  comm.all_reduce(u, ReduceOp::Sum);
  EXPECT_EQ(u.item(), double(n));
  EXPECT_MF_ERROR(comm.split(-1, 0), "color -1");
}

}  // namespace mf_test
