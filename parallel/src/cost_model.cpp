// The cost model's arithmetic: collective times per algorithm, the hierarchy, bucket overlap, fits.
#include "meshflow/parallel/cost_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "meshflow/core/error.h"
#include "meshflow/distributed/bucket_plan.h"

namespace meshflow::cost {
namespace {

void check_link(const Link& link, const char* where, const char* which = "link") {
  MF_CHECK(std::isfinite(link.alpha_s) && link.alpha_s >= 0, where, ": ", which, ".alpha_s must be >= 0, got ",
           link.alpha_s);
  MF_CHECK(std::isfinite(link.bandwidth_Bps) && link.bandwidth_Bps > 0, where, ": ", which,
           ".bandwidth_Bps must be positive, got ", link.bandwidth_Bps);
}

void check_args(const Link& link, int64_t bytes, int ranks, const char* where) {
  check_link(link, where);
  MF_CHECK(bytes >= 0, where, ": bytes must be >= 0, got ", bytes);
  MF_CHECK(ranks >= 1, where, ": ranks must be >= 1, got ", ranks);
}

// Steps of a tree over p ranks: ceil(log2 p).
double tree_depth(int p) { return std::ceil(std::log2(static_cast<double>(p))); }

// Note [Collective algorithms]
// n bytes, p ranks, L = ceil(log2 p), link (alpha, B):
//   all-reduce, Ring:              2(p-1) alpha + 2(p-1)/p n/B   (reduce-scatter then all-gather)
//   all-reduce, BinomialTree:      2L (alpha + n/B)               (reduce to a root, broadcast back)
//   all-reduce, DoubleBinaryTree:  2L alpha + 2 n/B               (NCCL's two trees, each carrying half,
//                                  pipelined: every rank sends and receives n going up and n going down)
//   reduce-scatter / all-gather, Ring: (p-1) alpha + (p-1)/p n/B
//   reduce-scatter / all-gather, either tree: L alpha + (p-1)/p n/B (recursive halving / doubling,
//                                  the log-depth exchange; NCCL has no tree variant of these)
// Best is the cheaper of Ring and DoubleBinaryTree (or the tree exchange) for the call.
double all_reduce_s(const Link& l, double n, int p, Algorithm a) {
  if (p == 1 || n == 0) return 0;
  const double ring = 2.0 * (p - 1) * l.alpha_s + 2.0 * (p - 1) / p * n / l.bandwidth_Bps;
  const double depth = tree_depth(p);
  const double binomial = 2.0 * depth * (l.alpha_s + n / l.bandwidth_Bps);
  const double double_tree = 2.0 * depth * l.alpha_s + 2.0 * n / l.bandwidth_Bps;
  switch (a) {
    case Algorithm::Ring: return ring;
    case Algorithm::BinomialTree: return binomial;
    case Algorithm::DoubleBinaryTree: return double_tree;
    case Algorithm::Best: return std::min(ring, double_tree);
  }
  return ring;
}

// Reduce-scatter and all-gather cost the same (one is the other run backwards).
double scatter_or_gather_s(const Link& l, double n, int p, Algorithm a) {
  if (p == 1 || n == 0) return 0;
  const double bandwidth_term = double(p - 1) / p * n / l.bandwidth_Bps;
  const double ring = (p - 1) * l.alpha_s + bandwidth_term;
  const double tree = tree_depth(p) * l.alpha_s + bandwidth_term;
  switch (a) {
    case Algorithm::Ring: return ring;
    case Algorithm::BinomialTree:
    case Algorithm::DoubleBinaryTree: return tree;
    case Algorithm::Best: return std::min(ring, tree);
  }
  return ring;
}

}  // namespace

const char* algorithm_name(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::Ring: return "ring";
    case Algorithm::BinomialTree: return "binomial tree";
    case Algorithm::DoubleBinaryTree: return "double binary tree";
    case Algorithm::Best: return "best of ring and tree";
  }
  return "?";
}

double all_reduce_time(const Link& link, int64_t bytes, int ranks, Algorithm algorithm) {
  check_args(link, bytes, ranks, "all_reduce_time");
  return all_reduce_s(link, double(bytes), ranks, algorithm);
}

double reduce_scatter_time(const Link& link, int64_t bytes, int ranks, Algorithm algorithm) {
  check_args(link, bytes, ranks, "reduce_scatter_time");
  return scatter_or_gather_s(link, double(bytes), ranks, algorithm);
}

double all_gather_time(const Link& link, int64_t bytes, int ranks, Algorithm algorithm) {
  check_args(link, bytes, ranks, "all_gather_time");
  return scatter_or_gather_s(link, double(bytes), ranks, algorithm);
}

double all_reduce_time(const Cluster& c, int64_t bytes) {
  MF_CHECK(bytes >= 0, "all_reduce_time(Cluster): bytes must be >= 0, got ", bytes);
  MF_CHECK(c.ranks >= 1, "all_reduce_time(Cluster): ranks must be >= 1, got ", c.ranks);
  MF_CHECK(c.ranks_per_node >= 1, "all_reduce_time(Cluster): ranks_per_node must be >= 1, got ", c.ranks_per_node);
  check_link(c.intra, "all_reduce_time(Cluster)", "intra");
  if (c.ranks <= c.ranks_per_node) return all_reduce_s(c.intra, double(bytes), c.ranks, c.intra_algorithm);
  check_link(c.inter, "all_reduce_time(Cluster)", "inter");
  MF_CHECK(c.ranks % c.ranks_per_node == 0, "all_reduce_time(Cluster): ranks ", c.ranks,
           " span several nodes but are not a multiple of ranks_per_node ", c.ranks_per_node);
  const int g = c.ranks_per_node, nodes = c.ranks / g;
  const double n = double(bytes);
  return scatter_or_gather_s(c.intra, n, g, c.intra_algorithm) + all_reduce_s(c.inter, n / g, nodes, c.inter_algorithm) +
         scatter_or_gather_s(c.intra, n, g, c.intra_algorithm);
}

std::vector<LayerCost> spread_compute(const std::vector<LayerSpec>& layers, double forward_backward_s,
                                      double backward_share) {
  MF_CHECK(std::isfinite(forward_backward_s) && forward_backward_s >= 0,
           "spread_compute: forward_backward_s must be >= 0, got ", forward_backward_s);
  MF_CHECK(backward_share >= 0 && backward_share <= 1, "spread_compute: backward_share must be in [0, 1], got ",
           backward_share);
  double total = 0;
  for (const auto& l : layers) {
    MF_CHECK(std::isfinite(l.forward_flops) && l.forward_flops >= 0, "spread_compute: layer '", l.name,
             "' has forward_flops ", l.forward_flops, "; they must be >= 0");
    total += l.forward_flops;
  }
  MF_CHECK(total > 0, "spread_compute: the ", layers.size(), " layers have no forward FLOPs to spread ",
           forward_backward_s, " s over");
  std::vector<LayerCost> out;
  for (const auto& l : layers) {
    const double share = l.forward_flops / total * forward_backward_s;
    out.push_back({.name = l.name,
                   .param_bytes = l.param_bytes,
                   .forward_s = share * (1 - backward_share),
                   .backward_s = share * backward_share});
  }
  return out;
}

std::vector<std::vector<size_t>> assign_buckets(const std::vector<int64_t>& param_bytes, size_t bucket_bytes) {
  MF_CHECK(bucket_bytes > 0, "assign_buckets: bucket_bytes must be positive, got 0");
  return distributed::assign_buckets(param_bytes, bucket_bytes);  // GradBucketer's own rule
}

StepPrediction predict_step(const std::vector<LayerCost>& layers, const AllReduceTime& all_reduce,
                            const StepOptions& options) {
  MF_CHECK(all_reduce != nullptr, "predict_step: the all-reduce time function is empty");
  MF_CHECK(options.update_s >= 0, "predict_step: options.update_s must be >= 0, got ", options.update_s);
  MF_CHECK(options.other_s >= 0, "predict_step: options.other_s must be >= 0, got ", options.other_s);
  MF_CHECK(options.pack_s >= 0, "predict_step: options.pack_s must be >= 0, got ", options.pack_s);
  StepPrediction p;
  p.update_s = options.update_s;
  p.other_s = options.other_s;
  std::vector<int64_t> param_bytes;
  std::vector<size_t> layer_of;  // parameter -> its layer
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerCost& l = layers[i];
    MF_CHECK(l.forward_s >= 0 && l.backward_s >= 0, "predict_step: layer ", i, " '", l.name,
             "' has forward_s ", l.forward_s, " and backward_s ", l.backward_s, "; both must be >= 0");
    p.forward_s += l.forward_s;
    for (int64_t b : l.param_bytes) {
      MF_CHECK(b >= 0, "predict_step: layer ", i, " '", l.name, "' has a parameter of ", b, " bytes");
      param_bytes.push_back(b);
      layer_of.push_back(i);
    }
  }
  // Backward runs the layers last to first: layer i's gradients are ready when its backward, and
  // the packing of its share of the bytes, end.
  double total_bytes = 0;
  for (int64_t b : param_bytes) total_bytes += double(b);
  std::vector<double> ready_at(layers.size(), 0.0);
  for (size_t i = layers.size(); i-- > 0;) {
    double bytes = 0;
    for (int64_t b : layers[i].param_bytes) bytes += double(b);
    p.backward_s += layers[i].backward_s + (total_bytes > 0 ? options.pack_s * bytes / total_bytes : 0.0);
    ready_at[i] = p.backward_s;
  }
  double previous_end = 0;
  for (const auto& bucket : assign_buckets(param_bytes, options.bucket_bytes)) {
    BucketTiming t;
    for (size_t k : bucket) {
      t.bytes += param_bytes[k];
      t.ready_s = std::max(t.ready_s, ready_at[layer_of[k]]);
    }
    const double duration = all_reduce(t.bytes);
    MF_CHECK(std::isfinite(duration) && duration >= 0, "predict_step: the all-reduce of ", t.bytes,
             " bytes was given ", duration, " s");
    t.start_s = std::max(options.overlap ? t.ready_s : p.backward_s, previous_end);
    t.end_s = t.start_s + duration;
    t.exposed_s = std::max(0.0, t.end_s - std::max(p.backward_s, previous_end));
    previous_end = t.end_s;
    p.communication_s += duration;
    p.exposed_s += t.exposed_s;
    p.buckets.push_back(t);
  }
  p.step_s = p.forward_s + p.backward_s + p.exposed_s + p.update_s + p.other_s;
  return p;
}

StepPrediction predict_step(const std::vector<LayerCost>& layers, const Cluster& cluster, const StepOptions& options) {
  all_reduce_time(cluster, 0);  // checks the cluster once, before any bucket
  return predict_step(layers, [&cluster](int64_t bytes) { return all_reduce_time(cluster, bytes); }, options);
}

size_t suggest_bucket_bytes(const std::vector<LayerCost>& layers, const AllReduceTime& all_reduce,
                            const StepOptions& options, std::vector<size_t> candidates) {
  if (candidates.empty())
    for (size_t b = size_t(64) << 10; b <= (size_t(256) << 20); b *= 2) candidates.push_back(b);
  std::sort(candidates.begin(), candidates.end());
  size_t best = 0;
  double best_s = std::numeric_limits<double>::infinity();
  for (size_t b : candidates) {
    StepOptions o = options;
    o.bucket_bytes = b;
    const double s = predict_step(layers, all_reduce, o).step_s;
    if (s < best_s * (1 - 1e-12)) {
      best_s = s;
      best = b;
    }
  }
  return best;
}

double expected_maximum(std::vector<double> samples, int draws) {
  MF_CHECK(!samples.empty(), "expected_maximum: no samples");
  MF_CHECK(draws >= 1, "expected_maximum: draws must be >= 1, got ", draws);
  for (size_t i = 0; i < samples.size(); ++i)
    MF_CHECK(std::isfinite(samples[i]), "expected_maximum: samples[", i, "] is ", samples[i]);
  std::sort(samples.begin(), samples.end());
  const double n = double(samples.size());
  double sum = 0;
  for (size_t k = 1; k <= samples.size(); ++k)
    sum += samples[k - 1] * (std::pow(double(k) / n, draws) - std::pow(double(k - 1) / n, draws));
  return sum;
}

LineFit fit_line(const std::vector<TimingSample>& samples) {
  MF_CHECK(samples.size() >= 2, "fit_line: needs at least 2 samples, got ", samples.size());
  double w_sum = 0, x_mean = 0, y_mean = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    MF_CHECK(s.bytes >= 0, "fit_line: samples[", i, "].bytes must be >= 0, got ", s.bytes);
    MF_CHECK(std::isfinite(s.seconds) && s.seconds > 0, "fit_line: samples[", i, "].seconds must be positive, got ",
             s.seconds);
    const double w = 1.0 / (s.seconds * s.seconds);
    w_sum += w;
    x_mean += w * double(s.bytes);
    y_mean += w * s.seconds;
  }
  x_mean /= w_sum;
  y_mean /= w_sum;
  double sxx = 0, sxy = 0, sxx0 = 0, sxy0 = 0;
  for (const auto& s : samples) {
    const double w = 1.0 / (s.seconds * s.seconds), x = double(s.bytes);
    sxx += w * (x - x_mean) * (x - x_mean);
    sxy += w * (x - x_mean) * (s.seconds - y_mean);
    sxx0 += w * x * x;
    sxy0 += w * x * s.seconds;
  }
  MF_CHECK(sxx > 0, "fit_line: every sample has the same bytes (", samples.front().bytes,
           "); a line needs at least two sizes");
  LineFit f;
  f.seconds_per_byte = sxy / sxx;
  f.intercept_s = y_mean - f.seconds_per_byte * x_mean;
  if (f.intercept_s < 0) f = {.intercept_s = 0, .seconds_per_byte = sxy0 / sxx0};
  MF_CHECK(f.seconds_per_byte > 0, "fit_line: the times do not grow with the bytes (slope ", f.seconds_per_byte,
           " s/byte); measure larger buffers");
  return f;
}

Link fit_link(const std::vector<TimingSample>& all_reduce_samples, int ranks, Algorithm algorithm) {
  MF_CHECK(ranks >= 2, "fit_link: ranks must be >= 2 (one rank sends nothing), got ", ranks);
  MF_CHECK(algorithm != Algorithm::Best, "fit_link: algorithm 'best' is no single formula; fit ring, binomial tree ",
           "or double binary tree");
  const LineFit f = fit_line(all_reduce_samples);
  const double p = ranks, depth = tree_depth(ranks);
  switch (algorithm) {
    case Algorithm::Ring: return {f.intercept_s / (2 * (p - 1)), 2 * (p - 1) / p / f.seconds_per_byte};
    case Algorithm::BinomialTree: return {f.intercept_s / (2 * depth), 2 * depth / f.seconds_per_byte};
    case Algorithm::DoubleBinaryTree: return {f.intercept_s / (2 * depth), 2 / f.seconds_per_byte};
    case Algorithm::Best: break;
  }
  MF_THROW("fit_link: unknown algorithm");
}

}  // namespace meshflow::cost
