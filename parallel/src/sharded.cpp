// ShardedStrategy: the mesh bound to the process communicator, and ZeRO stages 1, 2 and 3.
#include "meshflow/parallel/sharded.h"

#include <cstdlib>
#include <algorithm>
#include <deque>

#include "local_devices.h"
#include "meshflow/core/allocator.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"

namespace meshflow {

// Note [ZeRO]
// ZeRO (Rajbhandari et al., 2020) removes the copies data parallelism keeps on every rank. Here
// the partition follows the gradient buckets (Note [Gradient buckets]): bucket b's elements, its
// parameters' flattened values in packing order, are split over the N ranks like
// numpy.array_split, and rank r owns its rows of every bucket. A parameter's owned part is thus
// one contiguous run of its flattened values (possibly empty, possibly the whole parameter).
// - Stage 1: gradients are all-reduced as in data parallelism; each rank hands the optimizer only
//   its runs (views into the weights), so Adam's moments exist for 1/N of the elements.
// - Stage 2: each bucket is reduce-scattered instead (Note [Scattered buckets]): a rank receives
//   only its runs' averaged gradients, and the whole gradients are dropped as they are packed.
// - Stage 3: also the weights, between uses: each rank keeps its rows of every bucket (the
//   shards the optimizer updates), the weights' memory is released, and a read of a weight
//   gathers its bucket (see release_bucket / gather_bucket below).
// After the update (stages 1, 2) every bucket's runs are all-gathered into the weights, so every rank holds
// the whole model between steps: evaluate, predict, callbacks and checkpoints need nothing new,
// except that the optimizer state is whole only after gather_slices (saving calls it). Clipping
// by norm and the finite-gradient check sum squared norms over the ranks first (ShardUpdate).
// Following the buckets, not an even split of all parameters, lets stage 2 reduce a bucket as
// soon as backward fills it; the cost is that a rank's share may differ from 1/N by up to one
// bucket row per bucket, which is nothing.
namespace {

struct Run {
  size_t param = 0;       // index into the trainable weights
  int64_t offset = 0;     // first owned element of the flattened parameter
  int64_t count = 0;      // owned elements
  int64_t at = 0;         // where they sit in this rank's rows of the bucket
  int64_t in_bucket = 0;  // where the parameter starts in its bucket
};

struct ZeroState {
  std::vector<TensorImpl*> params;  // identity of the weights the partition was made for
  int ranks = 0, rank = 0;
  std::vector<int64_t> bucket_numel, bucket_rows;  // per bucket: elements, this rank's rows
  std::vector<std::vector<Run>> runs;              // per bucket, in packing order
  std::vector<int64_t> offset, count;              // per parameter
  // Stage 3: this rank's rows of each bucket (the weights' values between uses), the weights
  // themselves, the buckets whose weights are whole now (least recently gathered first), and
  // whether every bucket is held whole (from an epoch's end to the next step).
  std::vector<Tensor> shards;
  std::vector<Tensor> weights;
  std::deque<int> live;
  bool pinned = false;
  // Prefetch (Note [ZeRO-3 prefetch]): the order the first step gathered buckets in, how far this
  // step has followed it, and the one bucket whose all-gather is in flight.
  std::vector<int> order;
  size_t next = 0;
  bool recording = true;  // the first step with shards records the order
  bool ordered = true;    // false once a step strays from it: no more prefetching
  int pending_bucket = -1;
  Tensor pending_whole;
  distributed::WorkPtr pending_work;
};

std::shared_ptr<ZeroState> partition(const std::vector<Tensor>& params, const distributed::GradBucketer& buckets,
                                     int ranks, int rank) {
  auto z = std::make_shared<ZeroState>();
  z->ranks = ranks;
  z->rank = rank;
  for (const auto& p : params) z->params.push_back(p.impl());
  z->offset.assign(params.size(), 0);
  z->count.assign(params.size(), 0);
  for (int b = 0; b < buckets.num_buckets(); ++b) {
    const int64_t numel = buckets.bucket_numel(b);
    const int64_t start = numel / ranks * rank + std::min<int64_t>(rank, numel % ranks);
    const int64_t rows = numel / ranks + (rank < numel % ranks ? 1 : 0);
    z->bucket_numel.push_back(numel);
    z->bucket_rows.push_back(rows);
    std::vector<Run> runs;
    int64_t at = 0;
    for (size_t k : buckets.bucket_params(b)) {
      const int64_t n = params[k].numel();
      const int64_t lo = std::max(at, start), hi = std::min(at + n, start + rows);
      Run r{.param = k, .offset = std::clamp<int64_t>(start - at, 0, n), .count = 0, .at = 0, .in_bucket = at};
      if (hi > lo) {
        r.offset = lo - at;
        r.count = hi - lo;
        r.at = lo - start;
      }
      z->offset[k] = r.offset;
      z->count[k] = r.count;
      runs.push_back(r);
      at += n;
    }
    z->runs.push_back(std::move(runs));
  }
  return z;
}

bool same_params(const ZeroState& z, const std::vector<Tensor>& params) {
  if (z.params.size() != params.size()) return false;
  for (size_t i = 0; i < params.size(); ++i)
    if (z.params[i] != params[i].impl()) return false;
  return true;
}

// Elements [offset, offset + count) of t flattened (a view when t is contiguous).
Tensor run_of(const Tensor& t, int64_t offset, int64_t count) {
  return t.detach().reshape({t.numel()}).slice(0, offset, offset + count);
}

// Stage 3 (Note [ZeRO]): a bucket's weights are whole only while they are used. A weight's memory
// is released between uses (Storage::release); the first read brings the whole bucket back with
// one all-gather of the ranks' shards, and the least recently gathered bucket is released when
// more than `live_buckets` are whole. Every rank touches the weights in the same order (the same
// model and step), so the gathers line up.
void release_bucket(ZeroState& z, int b) {
  for (const Run& r : z.runs[static_cast<size_t>(b)]) z.weights[r.param].impl()->storage->release();
}

// Note [ZeRO-3 prefetch]
// Every step touches the weights in the same order, so the order of the first step's gathers is
// the order of every later one. After gathering bucket b, the next bucket of that order is posted
// as an asynchronous all-gather (the communicator's progress thread runs it while this thread
// computes with b); its first read then only waits for it. Every rank posts the same collectives
// at the same points, so the order of collectives stays the same on all ranks. A step that strays
// from the recorded order (a different batch shape, a model change) finishes the gather in flight,
// stops prefetching, and gathers on demand from then on, as before.
void settle_pending(ZeroState& z) {
  if (z.pending_bucket < 0) return;
  z.pending_work->wait();
  z.pending_bucket = -1;
  z.pending_work.reset();
  z.pending_whole = Tensor();
}

// A step's end (or an epoch end's pinning): the next step follows the recorded order from its start.
void end_of_sequence(ZeroState& z) {
  settle_pending(z);
  if (!z.order.empty()) z.recording = false;
  z.next = 0;
}

void release_all(ZeroState& z) {
  end_of_sequence(z);
  for (size_t b = 0; b < z.runs.size(); ++b) release_bucket(z, static_cast<int>(b));
  z.live.clear();
  z.pinned = false;
}

void gather_bucket(ZeroState& z, distributed::Communicator& comm, int b, int live_buckets) {
  if (std::find(z.live.begin(), z.live.end(), b) != z.live.end()) return;
  while (!z.pinned && static_cast<int>(z.live.size()) >= live_buckets) {
    release_bucket(z, z.live.front());
    z.live.pop_front();
  }
  const auto& runs = z.runs[static_cast<size_t>(b)];
  const Tensor& shard = z.shards[static_cast<size_t>(b)];
  Tensor whole;
  if (z.pending_bucket == b) {
    z.pending_work->wait();
    whole = z.pending_whole;
    z.pending_bucket = -1;
    z.pending_work.reset();
    z.pending_whole = Tensor();
  } else {
    settle_pending(z);
    whole = empty({z.bucket_numel[static_cast<size_t>(b)]}, {.dtype = shard.dtype(), .device = shard.device()});
    comm.all_gather(shard, whole);
  }
  const size_t es = dtype_size(shard.dtype());
  for (const Run& r : runs) {
    TensorImpl& w = *z.weights[r.param].impl();
    w.storage->restore();
    const int64_t n = shape_numel(w.shape);
    copy_bytes(static_cast<char*>(w.storage->data) + w.offset * static_cast<int64_t>(es), w.device,
               static_cast<const char*>(whole.raw_data()) + r.in_bucket * static_cast<int64_t>(es), whole.device(),
               static_cast<size_t>(n) * es);
  }
  z.live.push_back(b);
  if (z.pinned) return;  // an epoch end gathering everything: not part of a step's order
  if (z.recording) {
    z.order.push_back(b);
    return;
  }
  if (!z.ordered) return;
  if (z.next < z.order.size() && z.order[z.next] == b) {
    ++z.next;
  } else {
    z.ordered = false;
    return;
  }
  if (z.next < z.order.size()) {
    const int c = z.order[z.next];
    if (std::find(z.live.begin(), z.live.end(), c) != z.live.end()) return;
    const Tensor& next_shard = z.shards[static_cast<size_t>(c)];
    z.pending_whole =
        empty({z.bucket_numel[static_cast<size_t>(c)]}, {.dtype = next_shard.dtype(), .device = next_shard.device()});
    z.pending_work = comm.all_gather_async(next_shard, z.pending_whole);
    z.pending_bucket = c;
  }
}

// The first ZeRO-3 step: each rank keeps its rows of every bucket, and the weights learn to
// gather themselves (their values are the same on every rank here: the step has just synced them).
void make_shards(const std::shared_ptr<ZeroState>& z, const std::vector<Tensor>& params,
                 const std::shared_ptr<distributed::Communicator>& comm, int live_buckets) {
  NoGradGuard no_grad;
  z->weights = params;
  for (size_t b = 0; b < z->runs.size(); ++b) {
    const auto& runs = z->runs[b];
    Tensor shard;
    if (runs.empty()) {
      z->shards.push_back(empty({0}));
      continue;
    }
    const Tensor& first = params[runs.front().param];
    shard = empty({z->bucket_rows[b]}, {.dtype = first.dtype(), .device = first.device()});
    for (const Run& r : runs) {
      const Tensor& p = params[r.param];
      MF_CHECK(p.is_contiguous() && p.impl()->storage && p.impl()->storage->allocator,
               "ShardedStrategy: ZeRO stage 3 needs weights that own contiguous memory; '", p.name(), "' does not");
      if (r.count) shard.slice(0, r.at, r.at + r.count).copy_(run_of(p, r.offset, r.count));
    }
    z->shards.push_back(shard);
  }
  std::weak_ptr<ZeroState> weak = z;
  for (size_t b = 0; b < z->runs.size(); ++b)
    for (const Run& r : z->runs[b]) {
      const std::string name = params[r.param].name();
      params[r.param].impl()->storage->refill = [weak, comm, b, live_buckets, name](Storage&) {
        auto state = weak.lock();
        MF_CHECK(state != nullptr, "weight '", name, "' is sharded between uses (ZeRO stage 3) and the ",
                 "ShardedStrategy that holds its shards is gone; keep the strategy alive while the model is used");
        gather_bucket(*state, *comm, static_cast<int>(b), live_buckets);
      };
    }
}

}  // namespace

ShardedStrategy::ShardedStrategy(Mesh mesh, ShardedOptions options)
    : mesh_(std::move(mesh)), options_(options) {
  comm_ = detail::process_communicator_for("ShardedStrategy", options.comm);
  check_mesh();
}

ShardedStrategy::ShardedStrategy(std::shared_ptr<distributed::Communicator> comm, Mesh mesh, ShardedOptions options)
    : comm_(std::move(comm)), mesh_(std::move(mesh)), options_(options) {
  MF_CHECK(comm_ != nullptr, "ShardedStrategy: the communicator is null");
  check_mesh();
}

ShardedStrategy::~ShardedStrategy() = default;

void ShardedStrategy::check_mesh() const {
  MF_CHECK(options_.zero_stage >= 0 && options_.zero_stage <= 3, "ShardedStrategy: zero_stage ", options_.zero_stage,
           " is not a ZeRO stage (0, 1, 2 or 3)");
  MF_CHECK(options_.live_buckets >= 2, "ShardedStrategy: live_buckets ", options_.live_buckets,
           " must be at least 2 (the bucket in use and the one before it)");
  MF_CHECK(mesh_.size() == comm_->size(), "ShardedStrategy: ", mesh_.str(), " has ", mesh_.size(),
           " devices but the job has ", comm_->size(), " rank", comm_->size() == 1 ? "" : "s",
           " (one device per rank); make the axis sizes multiply to the number of ranks");
  if (partitioned()) {
    MF_CHECK(options_.zero_stage == 0, "ShardedStrategy: zero_stage ", options_.zero_stage, " with ", mesh_.str(),
             ": ZeRO shards over a 'data'-only mesh; tensor parallelism over other axes keeps each rank's parts ",
             "of the split weights and their optimizer state already (use zero_stage 0)");
    return;
  }
  MF_CHECK(options_.zero_stage == 0 || mesh_.has_axis("data") || mesh_.size() == 1, "ShardedStrategy: ", mesh_.str(),
           " has no 'data' axis, which ZeRO shards over");
}

bool ShardedStrategy::partitioned() const {
  if (!annotations_.empty()) return true;
  for (const auto& a : mesh_.axes())
    if (a.name != "data" && a.size > 1) return true;
  return false;
}

void ShardedStrategy::annotate(const Tensor& weight, const Layout& l) {
  MF_CHECK(weight.defined(), "ShardedStrategy::annotate: the weight is undefined");
  const std::string what = "'" + weight.name() + "'";
  check_layout(l, {weight.shape(), weight.dtype(), weight.device()}, mesh_, what);
  MF_CHECK(!sharding::has_partial(l), "ShardedStrategy::annotate: weight ", what, " cannot be a pending sum (",
           sharding::str(l), ")");
  MF_CHECK(program_ == nullptr, "ShardedStrategy::annotate: weight ", what, " annotated after training started; ",
           "annotate before the first fit");
  MF_CHECK(options_.zero_stage == 0, "ShardedStrategy::annotate: weight ", what, " (layout ", sharding::str(l),
           ") under zero_stage ", options_.zero_stage, ": ZeRO and tensor parallelism do not combine yet; use ",
           "zero_stage 0");
  for (auto& [w, existing] : annotations_)
    if (w.is_same(weight)) {
      existing = l;
      return;
    }
  annotations_.emplace_back(weight, l);
}

std::string ShardedStrategy::explain() const {
  MF_CHECK(program_ != nullptr, "ShardedStrategy::explain: no training step has been partitioned yet (",
           partitioned() ? "call fit or train_on_batch first" : "the strategy has no annotations and no model axis",
           ")");
  return program_->explain(process_rank());
}

std::shared_ptr<distributed::Communicator> ShardedStrategy::replica_communicator(int local_replica) const {
  MF_CHECK(local_replica == 0, "ShardedStrategy: local replica ", local_replica, " of 1");
  return comm_;
}

distributed::BucketOptions ShardedStrategy::averager_options() const {
  distributed::BucketOptions o = bucket_options();
  o.scatter = options_.zero_stage >= 2;
  // Stages 2 and 3 exist to hold less: each bucket is reduce-scattered (and its buffer freed) as
  // soon as it fills, even where Auto would wait for finish() to save time on a CPU with no core
  // to spare (Note [Bucket overlap]); waiting keeps every bucket alive at once, a whole gradient's
  // worth (bench_zero, 2 ranks, 50.4M parameters: peak 803 -> 608 MiB at stage 2, 777 -> 577 at 3).
  if (o.scatter && o.overlap == distributed::BucketOverlap::Auto) o.overlap = distributed::BucketOverlap::Always;
  return o;
}

void ShardedStrategy::apply_update(ReplicaGroup& group, const TrainStep& step) {
  if (options_.zero_stage == 0) return step.update();
  MF_CHECK(step.update_shard, "ShardedStrategy: the step has no update_shard, which ZeRO stage ",
           options_.zero_stage, " needs (the optimizer must update slices of the weights)");
  auto& params = group.trainable[0];
  auto& averager = *group.averagers[0];
  auto z = std::static_pointer_cast<ZeroState>(group.strategy_state);
  if (!z || !same_params(*z, params) || z->ranks != comm_->size()) {
    z = partition(params, averager, comm_->size(), comm_->rank());
    group.strategy_state = z;
  }
  const bool stage3 = options_.zero_stage >= 3;
  if (stage3 && z->shards.empty()) make_shards(z, params, comm_, options_.live_buckets);
  ShardUpdate u;
  u.offset = z->offset;
  u.count = z->count;
  u.grads.resize(params.size());
  if (stage3) {
    u.values.resize(params.size());
    for (size_t b = 0; b < z->runs.size(); ++b)
      for (const Run& r : z->runs[b]) u.values[r.param] = z->shards[b].slice(0, r.at, r.at + r.count);
  }
  for (size_t b = 0; b < z->runs.size(); ++b) {
    Tensor mine = options_.zero_stage >= 2 ? averager.scattered(static_cast<int>(b)) : Tensor();
    for (const Run& r : z->runs[b]) {
      Tensor g;
      if (options_.zero_stage >= 2) {
        g = mine.slice(0, r.at, r.at + r.count);
      } else {
        Tensor whole = params[r.param].grad();
        MF_CHECK(whole.defined(), "ShardedStrategy: weight ", r.param, " has no averaged gradient");
        g = run_of(whole, r.offset, r.count);
      }
      u.grads[r.param] = g.is_contiguous() ? g : g.contiguous();
    }
  }
  u.sum_over_ranks = [this](std::vector<double>& v) { reduce_sums(v); };
  step.update_shard(u);
  u.grads.clear();
  for (auto& p : params) p.zero_grad();
  if (stage3) return release_all(*z);  // the shards hold the new values; weights gather on use

  // Every rank's updated runs, all-gathered bucket by bucket into the whole weights.
  NoGradGuard no_grad;
  for (size_t b = 0; b < z->runs.size(); ++b) {
    if (z->runs[b].empty()) continue;
    const DType dt = params[z->runs[b].front().param].dtype();
    Tensor mine = empty({z->bucket_rows[b]}, {.dtype = dt, .device = params[z->runs[b].front().param].device()});
    for (const Run& r : z->runs[b])
      if (r.count) mine.slice(0, r.at, r.at + r.count).copy_(run_of(params[r.param], r.offset, r.count));
    // Ranks may hold different row counts (array_split), so `whole` is sized: see Note [Collective rules].
    Tensor whole = empty({z->bucket_numel[b]}, {.dtype = dt, .device = mine.device()});
    comm_->all_gather(mine, whole);
    for (const Run& r : z->runs[b]) {
      Tensor& p = params[r.param];
      p.copy_(whole.slice(0, r.in_bucket, r.in_bucket + p.numel()).reshape(p.shape()));
    }
  }
}

void ShardedStrategy::run_step(ReplicaGroup& group, const TrainStep& step) {
  MF_CHECK(!partitioned(), "ShardedStrategy: ", mesh_.str(), " splits tensors (tensor parallelism), which needs the ",
           "model's step traced into an SpmdProgram; this step came as replicas (a model trained outside fit or ",
           "train_on_batch?)");
  // Stage 3 holds every weight whole from an epoch's end (evaluation, callbacks, checkpoints) to
  // the next step, which gives the memory back: the shards hold the same values.
  if (options_.zero_stage >= 3)
    if (auto z = std::static_pointer_cast<ZeroState>(group.strategy_state); z && z->pinned) release_all(*z);
  Strategy::run_step(group, step);
}

void ShardedStrategy::end_epoch(ReplicaGroup& group) {
  Strategy::end_epoch(group);
  if (options_.zero_stage < 3) return;
  auto z = std::static_pointer_cast<ZeroState>(group.strategy_state);
  if (!z || z->shards.empty()) return;
  z->pinned = true;
  for (size_t b = 0; b < z->runs.size(); ++b) gather_bucket(*z, *comm_, static_cast<int>(b), options_.live_buckets);
}

std::vector<ShardedStrategy::Share> ShardedStrategy::shares(const ReplicaGroup& group) {
  std::vector<Share> out;
  auto z = std::static_pointer_cast<ZeroState>(group.strategy_state);
  if (!z || group.trainable.empty()) return out;
  const auto& params = group.trainable[0];
  for (size_t i = 0; i < params.size() && i < z->count.size(); ++i)
    out.push_back({params[i].name(), params[i].numel(), z->offset[i], z->count[i]});
  return out;
}

std::vector<Tensor> ShardedStrategy::gather_slices(const std::vector<Tensor>& slices,
                                                   const std::vector<Shape>& full_shapes,
                                                   const std::vector<int64_t>& offsets) const {
  MF_CHECK(slices.size() == full_shapes.size() && slices.size() == offsets.size(), "ShardedStrategy::gather_slices: ",
           slices.size(), " slices, ", full_shapes.size(), " shapes and ", offsets.size(), " offsets");
  // Each rank's slice, written into zeros and summed over the ranks: the slices tile each tensor,
  // so the sum is exact. One collective per tensor, at save time only.
  NoGradGuard no_grad;
  std::vector<Tensor> out;
  for (size_t i = 0; i < slices.size(); ++i) {
    const int64_t numel = shape_numel(full_shapes[i]);
    const int64_t n = slices[i].numel();
    MF_CHECK(offsets[i] >= 0 && offsets[i] + n <= numel, "ShardedStrategy::gather_slices: slice ", i, " holds elements [",
             offsets[i], ", ", offsets[i] + n, ") of a tensor of shape ", shape_str(full_shapes[i]));
    Tensor whole = zeros({numel}, {.dtype = slices[i].dtype(), .device = slices[i].device()});
    if (n) whole.slice(0, offsets[i], offsets[i] + n).copy_(slices[i].reshape({n}));
    comm_->all_reduce(whole, distributed::ReduceOp::Sum);
    out.push_back(whole.reshape(full_shapes[i]));
  }
  return out;
}

}  // namespace meshflow
