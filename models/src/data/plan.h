// A Dataset's plan: how to make a fresh chain of stages for each pass, and how many elements a
// pass yields. Plans are immutable and shared; the stages they make hold the iteration state.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "meshflow/models/data.h"

namespace meshflow::data {

using Element = Dataset::Element;

struct Plan {
  // `pass` numbers the passes, so shuffles differ between passes but repeat for the same seed.
  std::function<std::unique_ptr<Stage>(uint64_t pass)> make;
  int64_t cardinality = kUnknownCardinality;
  int64_t shards = 1;  // product of the shard() stages' num_shards along the chain
};

// Mixes a pass number into a seed (splitmix64), so nearby passes get unrelated streams.
uint64_t mix_seed(uint64_t seed, uint64_t pass);

}  // namespace meshflow::data
