// A small model whose per-rank gradients are known, to check GradBucketer's averaged gradients.
#pragma once

#include <gtest/gtest.h>

#include "meshflow/core/core.h"
#include "meshflow/distributed/bucketing.h"
#include "test_util.h"

namespace mf_test {

namespace dist = meshflow::distributed;

inline const std::vector<Shape>& bucket_model_shapes() {
  static const std::vector<Shape> shapes{{5, 3}, {3}, {7}, {}, {2, 2}, {3}};  // the last one is unused
  return shapes;
}

// The same initial values on every rank.
inline std::vector<Tensor> bucket_model_params(DType dtype) {
  std::vector<Tensor> ps;
  for (size_t k = 0; k < bucket_model_shapes().size(); ++k) {
    Tensor p = random_tensor(bucket_model_shapes()[k], 10 + k, -1.0, 1.0, dtype);
    p.set_requires_grad(true);
    ps.push_back(p);
  }
  return ps;
}

// loss = sum(p0^2 x0) + sum(p1^3 x1) + sum(p2 x2) + sum(p3^2 x3) + sum(p4^2 x4), data from rank r.
inline Tensor bucket_model_loss(const std::vector<Tensor>& p, int r, int step) {
  auto x = [&](size_t k) {
    return random_tensor(bucket_model_shapes()[k], 1000 + 100 * r + 10 * step + k, -2.0, 2.0, p[k].dtype());
  };
  using meshflow::sum;
  return sum(p[0] * p[0] * x(0)) + sum(p[1] * p[1] * p[1] * x(1)) + sum(p[2] * x(2)) + sum(p[3] * p[3] * x(3)) +
         sum(p[4] * p[4] * x(4));
}

// The average over ranks of each parameter's gradient, each rank's computed on its own with autograd.
inline std::vector<std::vector<double>> reference_average_grads(int ranks, int step, DType dtype) {
  std::vector<std::vector<double>> avg(bucket_model_shapes().size());
  for (int r = 0; r < ranks; ++r) {
    auto ps = bucket_model_params(dtype);
    bucket_model_loss(ps, r, step).backward();
    for (size_t k = 0; k < ps.size(); ++k) {
      std::vector<double> g = ps[k].grad().defined() ? values(ps[k].grad())
                                                     : std::vector<double>(ps[k].numel(), 0.0);
      if (avg[k].empty()) avg[k].assign(g.size(), 0.0);
      for (size_t i = 0; i < g.size(); ++i) avg[k][i] += g[i];
    }
  }
  for (auto& v : avg)
    for (auto& e : v) e /= ranks;
  return avg;
}

// Two steps of backward + finish through a GradBucketer on comm; grads compared with the reference.
inline void check_bucketed_training(const std::shared_ptr<dist::Communicator>& comm, DType dtype,
                                    dist::BucketOptions options, double tol) {
  auto ps = bucket_model_params(dtype);
  dist::GradBucketer bucketer(comm, ps, options);
  for (int step = 0; step < 2; ++step) {
    for (auto& p : ps) p.zero_grad();
    bucket_model_loss(ps, comm->rank(), step).backward();
    bucketer.finish();
    if (options.bucket_bytes < 100 && step > 0) {  // step 0 waits for the unused param's bucket
      if (bucketer.overlaps()) {
        EXPECT_GE(bucketer.launched_before_finish(), 1) << "no bucket was sent while backward ran";
      } else {
        EXPECT_EQ(bucketer.launched_before_finish(), 0) << "a bucket was sent during backward without overlap";
      }
    }
    auto want = reference_average_grads(comm->size(), step, dtype);
    for (size_t k = 0; k < ps.size(); ++k) {
      ASSERT_TRUE(ps[k].grad().defined()) << "param " << k;
      EXPECT_EQ(ps[k].grad().dtype(), dtype);
      EXPECT_TRUE(tensors_near(ps[k].grad(), from_values(want[k], ps[k].shape()), tol, tol))
          << "param " << k << " step " << step << " rank " << comm->rank();
    }
  }
}


// ZeRO-2 (BucketOptions::scatter): after finish() each rank holds only its rows (numpy.array_split)
// of every bucket's averaged gradients, and no parameter keeps a .grad. `backwards` backward passes
// per step accumulate before finish() (needs overlap Never: an overlapped bucket would be sent).
inline void check_scattered_training(const std::shared_ptr<dist::Communicator>& comm, DType dtype,
                                     dist::BucketOptions options, double tol, int backwards = 1) {
  options.scatter = true;
  auto ps = bucket_model_params(dtype);
  dist::GradBucketer bucketer(comm, ps, options);
  const int n = comm->size(), r = comm->rank();
  for (int step = 0; step < 2; ++step) {
    std::vector<std::vector<double>> want(ps.size());
    for (int k = 0; k < backwards; ++k) {
      bucket_model_loss(ps, r, 2 * step + k).backward();
      auto avg = reference_average_grads(n, 2 * step + k, dtype);
      for (size_t i = 0; i < ps.size(); ++i) {
        if (want[i].empty()) want[i].assign(avg[i].size(), 0.0);
        for (size_t j = 0; j < avg[i].size(); ++j) want[i][j] += avg[i][j];
      }
    }
    bucketer.finish();
    for (size_t k = 0; k < ps.size(); ++k)
      EXPECT_FALSE(ps[k].grad().defined()) << "param " << k << " kept its .grad after it was packed";
    for (int b = 0; b < bucketer.num_buckets(); ++b) {
      std::vector<double> whole;
      for (size_t k : bucketer.bucket_params(b)) whole.insert(whole.end(), want[k].begin(), want[k].end());
      const int64_t numel = static_cast<int64_t>(whole.size());
      ASSERT_EQ(bucketer.bucket_numel(b), numel);
      const int64_t start = numel / n * r + std::min<int64_t>(r, numel % n);
      const int64_t rows = numel / n + (r < numel % n ? 1 : 0);
      Tensor mine = bucketer.scattered(b);
      EXPECT_EQ(mine.dtype(), dtype);
      ASSERT_EQ(mine.shape(), (Shape{rows})) << "bucket " << b << " rank " << r;
      std::vector<double> expect(whole.begin() + start, whole.begin() + start + rows);
      EXPECT_TRUE(tensors_near(mine, from_values(expect, {rows}), tol, tol))
          << "bucket " << b << " step " << step << " rank " << r;
    }
  }
}

}  // namespace mf_test
