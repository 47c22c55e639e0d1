// A cost model of data-parallel training: alpha-beta links, ring and tree collectives, a two-level
// (intra-node, inter-node) hierarchy, and a step time with gradient buckets overlapping backward.
// Plain arithmetic: no communicator, no MPI (docs/cost_model.md states its assumptions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace meshflow::cost {

// Note [Alpha-beta links]
// A message of n bytes over a link takes alpha + n / bandwidth seconds (Hockney). Collectives are
// sums of such steps: a ring all-reduce of n bytes over p ranks is 2(p-1) steps of n/p bytes, so
// 2(p-1) alpha + 2(p-1)/p n/B. Links are full duplex (a rank sends and receives at once) and never
// shared with another collective: no contention, no congestion, no stragglers.
struct Link {
  double alpha_s = 0;        // latency of one message, seconds (>= 0)
  double bandwidth_Bps = 0;  // bytes per second (> 0)
};

// How a collective is carried out (Note [Collective algorithms] in cost_model.cpp has the formulas).
// Best takes the cheaper of Ring and DoubleBinaryTree for each call, as NCCL picks by size.
enum class Algorithm { Ring, BinomialTree, DoubleBinaryTree, Best };
const char* algorithm_name(Algorithm algorithm);

// Seconds for one collective over `ranks` ranks joined by `link`; `bytes` is the whole buffer
// (the input of all-reduce and reduce-scatter, the output of all-gather). 0 for one rank.
double all_reduce_time(const Link& link, int64_t bytes, int ranks, Algorithm algorithm = Algorithm::Ring);
double reduce_scatter_time(const Link& link, int64_t bytes, int ranks, Algorithm algorithm = Algorithm::Ring);
double all_gather_time(const Link& link, int64_t bytes, int ranks, Algorithm algorithm = Algorithm::Ring);

// Ranks on nodes: `ranks_per_node` ranks share a node joined by `intra`; nodes are joined by
// `inter`, whose bandwidth is what each rank gets across (one NIC per GPU, as DGX-class nodes have;
// divide by the ranks sharing a NIC otherwise).
struct Cluster {
  int ranks = 1;
  int ranks_per_node = 1;  // ranks must be a multiple of it when they span several nodes
  Link intra;
  Link inter;
  Algorithm intra_algorithm = Algorithm::Ring;
  Algorithm inter_algorithm = Algorithm::Best;
};

// Note [Hierarchical all-reduce]
// On one node: a flat all-reduce over `intra`. Across nodes (ranks_per_node g, nodes m = ranks/g):
// reduce-scatter inside each node (n bytes over g ranks), then each rank all-reduces its n/g
// shard with its peers of the other nodes (m ranks over `inter`, all g shards at once), then
// all-gather inside the node. Horovod's and NCCL's hierarchical all-reduce have this shape.
double all_reduce_time(const Cluster& cluster, int64_t bytes);

// One layer of a model for the step model, in forward order.
struct LayerCost {
  std::string name;
  std::vector<int64_t> param_bytes;  // gradient bytes of its trainable weights, in the model's weight order
  double forward_s = 0;
  double backward_s = 0;
};

// One layer before its compute is known: its parameters and forward FLOPs (any unit, relative).
struct LayerSpec {
  std::string name;
  std::vector<int64_t> param_bytes;
  double forward_flops = 0;
};

// Spreads a measured forward+backward time over the layers in proportion to their forward FLOPs:
// backward takes `backward_share` of it (2/3: a matmul's backward is two matmuls of its forward's size).
std::vector<LayerCost> spread_compute(const std::vector<LayerSpec>& layers, double forward_backward_s,
                                      double backward_share = 2.0 / 3.0);

// The buckets GradBucketer (distributed/bucketing.h, Note [Gradient buckets]) makes of these
// parameter sizes: from the last parameter backwards, a bucket closing before it would pass
// bucket_bytes (a parameter larger than that gets a bucket of its own). Each bucket lists indices
// into param_bytes.
std::vector<std::vector<size_t>> assign_buckets(const std::vector<int64_t>& param_bytes, size_t bucket_bytes);

struct StepOptions {
  size_t bucket_bytes = 25u << 20;  // the runtime's default, distributed::BucketOptions::bucket_bytes
  bool overlap = true;              // buckets go out during backward (BucketOptions::overlap resolved)
  double update_s = 0;              // the optimizer's update
  double other_s = 0;               // the rest of a step: batch slicing, metrics, the training loop
  // Copying (and scaling) each gradient into its bucket, which the gradient-ready hooks do during
  // backward: spread over the layers by their bytes, it delays each bucket. A 1-rank run has no
  // bucketer, so its measured compute leaves this out.
  double pack_s = 0;
};

struct BucketTiming {
  int64_t bytes = 0;
  double ready_s = 0;    // from the start of backward: its last gradient is ready
  double start_s = 0;    // its all-reduce starts (after the previous bucket's: one collective at a time)
  double end_s = 0;
  double exposed_s = 0;  // the part of its all-reduce that runs after backward and the bucket before it
};

struct StepPrediction {
  double forward_s = 0;
  double backward_s = 0;       // pack_s included
  double communication_s = 0;  // every bucket's all-reduce, summed
  double exposed_s = 0;        // communication not hidden behind backward
  double update_s = 0;
  double other_s = 0;
  double step_s = 0;           // forward + backward + exposed + update + other
  std::vector<BucketTiming> buckets;
  double compute_s() const { return forward_s + backward_s; }
};

using AllReduceTime = std::function<double(int64_t bytes)>;

// Note [Bucket overlap model]
// Backward runs the layers in reverse order; a parameter's gradient is ready when its layer's
// backward ends, a bucket when its last gradient is. Buckets are all-reduced one at a time in index
// order (the runtime launches them in order), each starting when it is ready and the one before it
// has ended; without overlap they all start when backward ends. What runs past the end of backward
// is exposed: a bucket whose all-reduce ends before the remaining backward does is hidden whole.
StepPrediction predict_step(const std::vector<LayerCost>& layers, const AllReduceTime& all_reduce,
                            const StepOptions& options = {});
StepPrediction predict_step(const std::vector<LayerCost>& layers, const Cluster& cluster,
                            const StepOptions& options = {});

// The bucket size of `candidates` (bytes; default: 64 KiB to 256 MiB by powers of 2) with the
// shortest predicted step; the smallest of equal ones.
size_t suggest_bucket_bytes(const std::vector<LayerCost>& layers, const AllReduceTime& all_reduce,
                            const StepOptions& options = {}, std::vector<size_t> candidates = {});

// Note [Stragglers]
// A synchronous step waits for its slowest rank. When the per-step compute varies (other processes
// on the cores, clock changes), p ranks take the expected maximum of p draws, more than the mean.
// Drawn independently from `samples` (a 1-rank run's per-step times, n of them, sorted x_(1..n)):
// sum over k of x_(k) ((k/n)^p - ((k-1)/n)^p). Correlated slowdowns (a rank always slower) are not
// in it.
double expected_maximum(std::vector<double> samples, int draws);

// Calibration. A measured collective: `seconds` for a buffer of `bytes`.
struct TimingSample {
  int64_t bytes = 0;
  double seconds = 0;
};

// seconds = intercept_s + bytes * seconds_per_byte, fitted by least squares on relative errors
// (each sample weighted by 1/seconds^2, so 4 KiB counts as much as 64 MiB). A negative intercept
// is refitted as zero (a line through the origin).
struct LineFit {
  double intercept_s = 0;
  double seconds_per_byte = 0;
};
LineFit fit_line(const std::vector<TimingSample>& samples);

// The link whose `algorithm` all-reduce over `ranks` ranks best explains the all-reduce samples
// (bench_allreduce's or bench_scaling's sweep): the fitted line's intercept is the algorithm's
// latency term, its slope the bandwidth term.
Link fit_link(const std::vector<TimingSample>& all_reduce_samples, int ranks, Algorithm algorithm = Algorithm::Ring);

}  // namespace meshflow::cost
