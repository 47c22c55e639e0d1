// The bucket assignment of Note [Gradient buckets] as a pure function, shared by GradBucketer and
// the cost model (parallel/cost_model.h), so the model predicts the buckets the runtime makes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace meshflow::distributed {

// Parameters k = n-1 down to 0 (backward's usual order) go into buckets in turn; a new bucket starts
// when the next parameter would take a non-empty bucket past `bucket_bytes`, or when its group
// differs from the bucket's (GradBucketer's group is the dtype; empty `groups`: one group). A
// parameter larger than `bucket_bytes` gets a bucket of its own. Returns each bucket's parameter
// indices in packing order (bucket_bytes 0: one bucket per parameter). Throws for a negative size or
// groups of another length.
std::vector<std::vector<size_t>> assign_buckets(const std::vector<int64_t>& param_bytes, size_t bucket_bytes,
                                                const std::vector<int>& groups = {});

}  // namespace meshflow::distributed
