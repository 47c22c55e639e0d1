// GradBucketer: fuses gradients into flat buckets all-reduced (averaged) while backward still runs.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/distributed/communicator.h"

namespace meshflow::distributed {

enum class GradCompression { None, BF16, FP16 };

// When full buckets are sent: during backward (Always), at finish() (Never), or during backward
// only when this process has a core its compute threads leave free (Auto; Note [Bucket overlap]).
enum class BucketOverlap { Auto, Always, Never };

struct BucketOptions {
  size_t bucket_bytes = 25u << 20;  // a bucket closes before it would pass this (one big param may exceed it)
  GradCompression compression = GradCompression::None;  // halves the bytes on the wire; summed via f32
  BucketOverlap overlap = BucketOverlap::Auto;
  // ZeRO-2 (Note [Scattered buckets]): each bucket is reduce-scattered instead of all-reduced, the
  // parameters' gradients are dropped once packed, and finish() leaves each rank only its slice.
  bool scatter = false;
};

// Note [Gradient buckets]
// Parameters are assigned to buckets in reverse order (the order backward usually produces their
// gradients), a new bucket starting when the next parameter would pass bucket_bytes or has another
// dtype; the assignment depends only on the parameter list, so every rank agrees. A gradient-ready
// hook copies each gradient into its bucket; when a bucket is full it is all-reduced (avg) at once,
// and buckets are launched strictly in index order so every rank issues the same collectives in the
// same order. finish() launches what is left (parameters that got no gradient count as zero),
// waits, and sets each parameter's .grad to a view of its averaged slice of the bucket: valid
// until the next step's gradients arrive (the optimizer consumes and clears it before then). A parameter with no gradient in one
// step is assumed unused in the next (its zeros are packed up front so its bucket is not held
// back); if it gets a gradient after its bucket was sent, the hook throws. One backward per
// finish(), with gradients zeroed before it (hooks see the accumulated .grad).
//
// Note [Scattered buckets]
// With BucketOptions::scatter (ZeRO stage 2) a bucket exists only while it fills: the hook packs
// a gradient and drops the parameter's .grad (the one whose hook is running is dropped at the
// next hook or at finish(), never under the autograd engine's reference); a full bucket is
// reduce-scattered (avg) and its buffer freed once sent, so a rank holds its 1/N of every
// bucket plus the buckets in flight, not the whole gradient. Parameters keep no .grad.
class GradBucketer {
 public:
  GradBucketer(std::shared_ptr<Communicator> comm, std::vector<Tensor> params, BucketOptions options = {});
  ~GradBucketer();
  GradBucketer(const GradBucketer&) = delete;
  GradBucketer& operator=(const GradBucketer&) = delete;

  // Waits for every bucket and sets each parameter's .grad to the average over ranks.
  void finish();
  // Whether full buckets go out during backward (BucketOverlap resolved for this process).
  bool overlaps() const;

  int num_buckets() const;
  // Indices into params of the parameters in bucket b, in packing order.
  std::vector<size_t> bucket_params(int b) const;
  // Elements of bucket b (its parameters' sizes summed).
  int64_t bucket_numel(int b) const;
  // With BucketOptions::scatter, after finish(): this rank's rows of bucket b averaged over every
  // rank (numpy.array_split of bucket_numel(b) over the ranks), in the parameters' dtype; valid
  // until the next finish().
  Tensor scattered(int b) const;
  // How many buckets were launched before finish() was called in the last step (overlap proof).
  int launched_before_finish() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace meshflow::distributed
