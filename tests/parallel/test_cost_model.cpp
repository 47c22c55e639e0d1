// The cost model (parallel/cost_model.h) against closed forms worked by hand: collective times per
// algorithm, the hierarchy's composition, bucket assignment as GradBucketer makes it, the overlap
// of buckets with backward, the bucket-size suggestion and the least-squares calibration.
#include <gtest/gtest.h>

#include <cmath>

#include "meshflow/core/core.h"
#include "meshflow/distributed/bucketing.h"
#include "meshflow/distributed/communicator.h"
#include "meshflow/parallel/cost_model.h"
#include "test_util.h"

namespace cost = meshflow::cost;
using cost::Algorithm;
using cost::Link;

namespace {

// Relative closeness for values computed two ways.
void expect_rel(double got, double want, double tol = 1e-12) {
  EXPECT_NEAR(got, want, tol * std::max(1e-30, std::abs(want))) << "got " << got << ", want " << want;
}

const Link kLink{.alpha_s = 1e-5, .bandwidth_Bps = 1e9};

}  // namespace

TEST(CostModel, RingAllReduceIsTheClosedForm) {
  // p = 4, n = 4 MB: 2*3/4 * 4e6/1e9 + 2*3*1e-5 = 6e-3 + 6e-5.
  expect_rel(cost::all_reduce_time(kLink, 4'000'000, 4), 6.06e-3);
  const Link fast{.alpha_s = 3e-6, .bandwidth_Bps = 12.5e9};
  for (int p : {2, 3, 5, 8, 64}) {
    const double n = 1 << 20;
    expect_rel(cost::all_reduce_time(fast, 1 << 20, p, Algorithm::Ring),
               2.0 * (p - 1) / p * n / fast.bandwidth_Bps + 2.0 * (p - 1) * fast.alpha_s);
  }
}

TEST(CostModel, TreeAllReduces) {
  // p = 8 (3 levels), n = 1 MB: binomial 2*3*(1e-5 + 1e-3); double binary tree 2*3*1e-5 + 2*1e-3.
  expect_rel(cost::all_reduce_time(kLink, 1'000'000, 8, Algorithm::BinomialTree), 6.06e-3);
  expect_rel(cost::all_reduce_time(kLink, 1'000'000, 8, Algorithm::DoubleBinaryTree), 2.06e-3);
  // 5 ranks take ceil(log2 5) = 3 levels, as 8 do.
  expect_rel(cost::all_reduce_time(kLink, 1'000'000, 5, Algorithm::DoubleBinaryTree), 2.06e-3);
  // Best: the tree where latency dominates (1 KB over 64 ranks), the ring where bandwidth does.
  const double small_tree = 2 * 6 * 1e-5 + 2 * 1e3 / 1e9, small_ring = 2 * 63 * 1e-5 + 2.0 * 63 / 64 * 1e3 / 1e9;
  expect_rel(cost::all_reduce_time(kLink, 1000, 64, Algorithm::Best), small_tree);
  EXPECT_LT(small_tree, small_ring);
  const double big_ring = 2 * 63 * 1e-5 + 2.0 * 63 / 64 * 1e9 / 1e9;
  expect_rel(cost::all_reduce_time(kLink, 1'000'000'000, 64, Algorithm::Best), big_ring);
  EXPECT_LT(big_ring, cost::all_reduce_time(kLink, 1'000'000'000, 64, Algorithm::DoubleBinaryTree));
}

TEST(CostModel, ReduceScatterAndAllGather) {
  // p = 4, n = 4 MB: ring 3*1e-5 + 3/4 * 4e-3; recursive halving/doubling 2*1e-5 + 3/4 * 4e-3.
  expect_rel(cost::reduce_scatter_time(kLink, 4'000'000, 4), 3.03e-3);
  expect_rel(cost::all_gather_time(kLink, 4'000'000, 4), 3.03e-3);
  expect_rel(cost::reduce_scatter_time(kLink, 4'000'000, 4, Algorithm::DoubleBinaryTree), 3.02e-3);
  expect_rel(cost::all_gather_time(kLink, 4'000'000, 4, Algorithm::BinomialTree), 3.02e-3);
  // A ring all-reduce is a ring reduce-scatter followed by a ring all-gather.
  for (int p : {2, 3, 7, 16})
    expect_rel(cost::all_reduce_time(kLink, 12345678, p),
               cost::reduce_scatter_time(kLink, 12345678, p) + cost::all_gather_time(kLink, 12345678, p));
}

TEST(CostModel, OneRankCostsNothing) {
  for (Algorithm a : {Algorithm::Ring, Algorithm::BinomialTree, Algorithm::DoubleBinaryTree, Algorithm::Best}) {
    EXPECT_EQ(cost::all_reduce_time(kLink, 1 << 30, 1, a), 0.0);
    EXPECT_EQ(cost::reduce_scatter_time(kLink, 1 << 30, 1, a), 0.0);
    EXPECT_EQ(cost::all_gather_time(kLink, 1 << 30, 1, a), 0.0);
  }
  EXPECT_EQ(cost::all_reduce_time(cost::Cluster{.ranks = 1, .ranks_per_node = 8, .intra = kLink}, 1 << 30), 0.0);
  // A step on one rank is its compute, update and the rest, whatever the buckets.
  std::vector<cost::LayerCost> layers{{"a", {4000, 40}, 0.001, 0.002}, {"b", {8000}, 0.003, 0.004}};
  auto p = cost::predict_step(layers, cost::Cluster{.ranks = 1, .intra = kLink},
                              {.bucket_bytes = 100, .update_s = 0.0005, .other_s = 0.0001});
  EXPECT_EQ(p.exposed_s, 0.0);
  EXPECT_EQ(p.communication_s, 0.0);
  expect_rel(p.step_s, 0.001 + 0.002 + 0.003 + 0.004 + 0.0005 + 0.0001);
}

TEST(CostModel, HierarchyComposesReduceScatterAllReduceAllGather) {
  const Link nvlink{.alpha_s = 1e-6, .bandwidth_Bps = 450e9}, ib{.alpha_s = 5e-6, .bandwidth_Bps = 50e9};
  const cost::Cluster c{.ranks = 32, .ranks_per_node = 8, .intra = nvlink, .inter = ib,
                        .intra_algorithm = Algorithm::Ring, .inter_algorithm = Algorithm::Ring};
  // n = 100 MB: reduce-scatter over 8 (7 alpha + 7/8 n/B), ring all-reduce of n/8 = 12.5 MB over the
  // 4 nodes (6 alpha + 2*3/4 * 12.5e6/B), all-gather over 8 (as the reduce-scatter).
  const double inside = 7 * 1e-6 + 7.0 / 8 * 100e6 / 450e9;
  const double across = 6 * 5e-6 + 2.0 * 3 / 4 * 12.5e6 / 50e9;
  expect_rel(cost::all_reduce_time(c, 100'000'000), inside + across + inside);
  // One node: the flat all-reduce inside it. One rank per node: the flat one across.
  cost::Cluster one_node = c;
  one_node.ranks = 8;
  expect_rel(cost::all_reduce_time(one_node, 100'000'000), cost::all_reduce_time(nvlink, 100'000'000, 8));
  cost::Cluster one_per_node = c;
  one_per_node.ranks_per_node = 1;
  expect_rel(cost::all_reduce_time(one_per_node, 100'000'000), cost::all_reduce_time(ib, 100'000'000, 32));
  cost::Cluster ragged = c;
  ragged.ranks = 20;
  EXPECT_MF_ERROR(cost::all_reduce_time(ragged, 1000), "ranks 20", "ranks_per_node 8");
}

TEST(CostModel, BucketsAreAssignedAsGradBucketerAssignsThem) {
  // From the last parameter back: 40 | 30+20 (= 50, not past it) | 10.
  EXPECT_EQ(cost::assign_buckets({10, 20, 30, 40}, 50), (std::vector<std::vector<size_t>>{{3}, {2, 1}, {0}}));
  EXPECT_EQ(cost::assign_buckets({100, 5}, 50), (std::vector<std::vector<size_t>>{{1}, {0}}));  // too big: alone
  // The runtime's own bucketer over f32 parameters of these sizes agrees, for several caps.
  const std::vector<meshflow::Shape> shapes{{784, 512}, {512}, {512, 512}, {512}, {512, 10}, {10}, {7}, {3, 3}};
  std::vector<meshflow::Tensor> params;
  std::vector<int64_t> bytes;
  for (const auto& s : shapes) {
    params.push_back(meshflow::zeros(s));
    params.back().set_requires_grad(true);
    bytes.push_back(params.back().numel() * 4);
  }
  auto comm = meshflow::distributed::make_communicator("stub");
  for (size_t cap : {size_t(40), size_t(2048), size_t(1) << 20, size_t(25) << 20}) {
    meshflow::distributed::GradBucketer runtime(comm, params, {.bucket_bytes = cap});
    auto model = cost::assign_buckets(bytes, cap);
    ASSERT_EQ(static_cast<int>(model.size()), runtime.num_buckets()) << "cap " << cap;
    for (int b = 0; b < runtime.num_buckets(); ++b) EXPECT_EQ(model[b], runtime.bucket_params(b)) << "cap " << cap;
  }
  EXPECT_EQ(meshflow::distributed::BucketOptions{}.bucket_bytes, cost::StepOptions{}.bucket_bytes);
}

TEST(CostModel, OverlapHidesWhatBackwardCovers) {
  // Three layers of one parameter each (100, 200, 300 bytes), backward 1 s each, one bucket per
  // parameter (a cap of 250 bytes: 200 + 100 would pass it). Backward runs layer 2, 1, 0: bucket 0 (layer 2's 300 bytes) is ready at 1 s, bucket 1
  // (200) at 2 s, bucket 2 (100) at 3 s, when backward ends.
  std::vector<cost::LayerCost> layers{{"l0", {100}, 0.5, 1.0}, {"l1", {200}, 0.5, 1.0}, {"l2", {300}, 0.5, 1.0}};
  auto all_reduce = [](int64_t bytes) { return bytes == 300 ? 0.5 : bytes == 200 ? 1.5 : 0.7; };
  auto p = cost::predict_step(layers, all_reduce, {.bucket_bytes = 250, .update_s = 0.25});
  ASSERT_EQ(p.buckets.size(), 3u);
  // Bucket 0: 1.0-1.5, hidden. Bucket 1: 2.0-3.5, 0.5 s past backward. Bucket 2 waits for bucket 1:
  // 3.5-4.2, all 0.7 s exposed. Exposed 1.2 s; step 1.5 + 3 + 1.2 + 0.25.
  EXPECT_DOUBLE_EQ(p.buckets[0].start_s, 1.0);
  EXPECT_DOUBLE_EQ(p.buckets[0].exposed_s, 0.0);
  EXPECT_DOUBLE_EQ(p.buckets[1].end_s, 3.5);
  EXPECT_DOUBLE_EQ(p.buckets[1].exposed_s, 0.5);
  EXPECT_DOUBLE_EQ(p.buckets[2].start_s, 3.5);
  EXPECT_DOUBLE_EQ(p.buckets[2].exposed_s, 0.7);
  EXPECT_DOUBLE_EQ(p.exposed_s, 1.2);
  EXPECT_DOUBLE_EQ(p.communication_s, 2.7);
  EXPECT_DOUBLE_EQ(p.step_s, 1.5 + 3.0 + 1.2 + 0.25);
  // Short all-reduces are hidden whole except the last bucket's, which only starts when backward ends.
  auto quick = cost::predict_step(layers, [](int64_t) { return 0.25; }, {.bucket_bytes = 250});
  EXPECT_DOUBLE_EQ(quick.buckets[0].exposed_s, 0.0);
  EXPECT_DOUBLE_EQ(quick.buckets[1].exposed_s, 0.0);
  EXPECT_DOUBLE_EQ(quick.exposed_s, 0.25);
  // Without overlap everything waits for the end of backward: all 2.7 s exposed.
  auto serial = cost::predict_step(layers, all_reduce, {.bucket_bytes = 250, .overlap = false});
  EXPECT_DOUBLE_EQ(serial.exposed_s, 2.7);
  EXPECT_DOUBLE_EQ(serial.buckets[0].start_s, 3.0);
  // Packing 0.6 s of gradients, by bytes: layer 2's backward takes 1.3 s, layer 1's 1.2, layer 0's
  // 1.1. Bucket 0: 1.3-1.8 hidden; bucket 1: 2.5-4.0, 0.4 s past 3.6; bucket 2: 4.0-4.7, 0.7 s.
  auto packed = cost::predict_step(layers, all_reduce, {.bucket_bytes = 250, .update_s = 0.25, .pack_s = 0.6});
  EXPECT_DOUBLE_EQ(packed.backward_s, 3.6);
  EXPECT_DOUBLE_EQ(packed.buckets[0].ready_s, 1.3);
  EXPECT_DOUBLE_EQ(packed.buckets[1].ready_s, 2.5);
  EXPECT_NEAR(packed.exposed_s, 1.1, 1e-12);
  EXPECT_NEAR(packed.step_s, 1.5 + 3.6 + 1.1 + 0.25, 1e-12);
  // One bucket of 600 bytes: ready at 3 s, nothing to overlap with.
  auto whole = cost::predict_step(layers, [](int64_t b) { return b * 1e-3; }, {.bucket_bytes = 1000});
  ASSERT_EQ(whole.buckets.size(), 1u);
  EXPECT_EQ(whole.buckets[0].bytes, 600);
  EXPECT_DOUBLE_EQ(whole.exposed_s, 0.6);
}

TEST(CostModel, SpreadComputeFollowsFlops) {
  auto layers = cost::spread_compute({{"a", {8}, 1.0}, {"pool", {}, 0.0}, {"b", {16}, 3.0}}, 0.6, 2.0 / 3.0);
  ASSERT_EQ(layers.size(), 3u);
  expect_rel(layers[0].forward_s, 0.05);
  expect_rel(layers[0].backward_s, 0.1);
  EXPECT_EQ(layers[1].forward_s + layers[1].backward_s, 0.0);
  expect_rel(layers[2].forward_s, 0.15);
  expect_rel(layers[2].backward_s, 0.3);
  EXPECT_EQ(layers[2].param_bytes, std::vector<int64_t>{16});
}

TEST(CostModel, SuggestedBucketSize) {
  // Four layers of 1 MiB, backward 1 ms each; all-reduce 1 us + 0.5 ms per MiB. 1 MiB buckets hide
  // all but the last (exposed 0.501 ms); one 4 MiB bucket exposes 2.001 ms.
  const int64_t mib = 1 << 20;
  std::vector<cost::LayerCost> layers(4, cost::LayerCost{"dense", {mib}, 0.0005, 0.001});
  auto all_reduce = [mib](int64_t b) { return 1e-6 + 0.5e-3 * double(b) / double(mib); };
  expect_rel(cost::predict_step(layers, all_reduce, {.bucket_bytes = size_t(mib)}).exposed_s, 0.501e-3, 1e-9);
  expect_rel(cost::predict_step(layers, all_reduce, {.bucket_bytes = size_t(4 * mib)}).exposed_s, 2.001e-3, 1e-9);
  EXPECT_EQ(cost::suggest_bucket_bytes(layers, all_reduce, {}, {size_t(mib), size_t(4 * mib)}), size_t(mib));
  // Without overlap every bucket pays its latency after backward: one bucket, the smallest that holds all.
  EXPECT_EQ(cost::suggest_bucket_bytes(layers, all_reduce, {.overlap = false}), size_t(4 * mib));
}

TEST(CostModel, StragglersAreTheExpectedMaximum) {
  // Two draws from {1, 2}: the maximum is 1 only when both are 1 (1/4), else 2: 1.75.
  EXPECT_DOUBLE_EQ(cost::expected_maximum({2.0, 1.0}, 2), 1.75);
  // Three draws from {1, 2, 3, 4}: P(max = k) = (k^3 - (k-1)^3) / 64 -> (1 + 2*7 + 3*19 + 4*37) / 64.
  EXPECT_DOUBLE_EQ(cost::expected_maximum({4.0, 1.0, 3.0, 2.0}, 3), 220.0 / 64.0);
  EXPECT_DOUBLE_EQ(cost::expected_maximum({1.0, 2.0, 6.0}, 1), 3.0);  // one draw: the mean
  EXPECT_DOUBLE_EQ(cost::expected_maximum({5.0, 5.0}, 1000), 5.0);    // no spread, no straggler
  EXPECT_NEAR(cost::expected_maximum({1.0, 2.0}, 60), 2.0, 1e-15);    // many ranks: the slowest sample
  EXPECT_MF_ERROR(cost::expected_maximum({}, 2), "expected_maximum: no samples");
  EXPECT_MF_ERROR(cost::expected_maximum({1.0}, 0), "draws must be >= 1, got 0");
}

TEST(CostModel, LeastSquaresRecoversTheLink) {
  for (int p : {2, 3, 8}) {
    const Link truth{.alpha_s = 7e-6, .bandwidth_Bps = 3e9};
    for (Algorithm a : {Algorithm::Ring, Algorithm::BinomialTree, Algorithm::DoubleBinaryTree}) {
      std::vector<cost::TimingSample> samples;
      for (int64_t b = 4 << 10; b <= (64 << 20); b *= 4) samples.push_back({b, cost::all_reduce_time(truth, b, p, a)});
      Link fit = cost::fit_link(samples, p, a);
      expect_rel(fit.alpha_s, truth.alpha_s, 1e-9);
      expect_rel(fit.bandwidth_Bps, truth.bandwidth_Bps, 1e-9);
    }
  }
  // A line: 2 s + 3 s/byte, exactly.
  auto line = cost::fit_line({{1, 5.0}, {2, 8.0}, {10, 32.0}});
  expect_rel(line.intercept_s, 2.0, 1e-12);
  expect_rel(line.seconds_per_byte, 3.0, 1e-12);
  // Points under a line through the origin with a negative intercept: refitted through 0.
  auto origin = cost::fit_line({{1000, 0.5e-6}, {2000, 1.6e-6}});
  EXPECT_EQ(origin.intercept_s, 0.0);
  EXPECT_GT(origin.seconds_per_byte, 0.0);
}

TEST(CostModel, BadInputIsNamed) {
  EXPECT_MF_ERROR(cost::all_reduce_time(kLink, -1, 2), "all_reduce_time", "bytes must be >= 0, got -1");
  EXPECT_MF_ERROR(cost::reduce_scatter_time(Link{.alpha_s = 1e-6, .bandwidth_Bps = 0}, 10, 2),
                  "reduce_scatter_time", "bandwidth_Bps must be positive, got 0");
  EXPECT_MF_ERROR(cost::all_gather_time(Link{.alpha_s = -1, .bandwidth_Bps = 1}, 10, 2), "alpha_s must be >= 0");
  EXPECT_MF_ERROR(cost::all_reduce_time(kLink, 10, 0), "ranks must be >= 1, got 0");
  EXPECT_MF_ERROR(cost::all_reduce_time(cost::Cluster{.ranks = 0, .intra = kLink}, 10), "ranks must be >= 1, got 0");
  EXPECT_MF_ERROR(cost::all_reduce_time(cost::Cluster{.ranks = 16, .ranks_per_node = 8, .intra = kLink}, 10),
                  "inter.bandwidth_Bps must be positive");
  EXPECT_MF_ERROR(cost::all_reduce_time(cost::Cluster{.ranks = 2, .ranks_per_node = 0, .intra = kLink}, 10),
                  "ranks_per_node must be >= 1, got 0");
  EXPECT_MF_ERROR(cost::assign_buckets({10, -3}, 100), "param_bytes[1] must be >= 0, got -3");
  EXPECT_MF_ERROR(cost::assign_buckets({10}, 0), "bucket_bytes must be positive");
  EXPECT_MF_ERROR(cost::predict_step({{"dense", {4}, -1.0, 0.0}}, [](int64_t) { return 0.0; }),
                  "layer 0 'dense'", "forward_s -1");
  EXPECT_MF_ERROR(cost::predict_step({}, cost::AllReduceTime{}), "all-reduce time function is empty");
  EXPECT_MF_ERROR(cost::predict_step({}, [](int64_t) { return 0.0; }, {.update_s = -2}), "update_s must be >= 0");
  EXPECT_MF_ERROR(cost::predict_step({}, [](int64_t) { return 0.0; }, {.pack_s = -1}), "pack_s must be >= 0, got -1");
  EXPECT_MF_ERROR(cost::spread_compute({{"a", {}, 0.0}}, 1.0), "no forward FLOPs");
  EXPECT_MF_ERROR(cost::spread_compute({{"a", {}, 1.0}}, -1.0), "forward_backward_s must be >= 0, got -1");
  EXPECT_MF_ERROR(cost::spread_compute({{"a", {}, 1.0}}, 1.0, 1.5), "backward_share must be in [0, 1], got 1.5");
  EXPECT_MF_ERROR(cost::fit_link({{10, 1.0}, {20, 2.0}}, 1), "fit_link", "ranks must be >= 2", "got 1");
  EXPECT_MF_ERROR(cost::fit_link({{10, 1.0}, {20, 2.0}}, 2, Algorithm::Best), "fit_link", "best");
  EXPECT_MF_ERROR(cost::fit_line({{10, 1.0}}), "at least 2 samples, got 1");
  EXPECT_MF_ERROR(cost::fit_line({{10, 1.0}, {10, 2.0}}), "same bytes");
  EXPECT_MF_ERROR(cost::fit_line({{10, 1.0}, {-20, 2.0}}), "samples[1].bytes must be >= 0, got -20");
  EXPECT_MF_ERROR(cost::fit_line({{10, 1.0}, {20, 0.0}}), "samples[1].seconds must be positive");
  EXPECT_MF_ERROR(cost::fit_line({{10, 2.0}, {20, 1.0}}), "do not grow with the bytes");
}
