// Private to models/src: the one epoch driver behind fit(x, y) and fit(Dataset), and the feeds
// that give it each step's rows.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "meshflow/models/model.h"

namespace meshflow::detail {

// Process p's rows of n split over `parts` like numpy.array_split: {first, count}.
std::pair<int64_t, int64_t> share_of(int64_t n, int parts, int p);

// This process's rows of one global batch.
struct StepBatch {
  Tensors x, y;
  int64_t global_rows = 0;  // rows in the global batch, over all processes
  int64_t real_rows = 0;    // rows of it that are this process's (0: x and y hold one placeholder row)
};

// Where the epochs' batches come from.
class BatchFeed {
 public:
  virtual ~BatchFeed() = default;
  // Called once before the first epoch that runs: replays what `epochs` skipped epochs of
  // `steps` steps would have drawn, so a resumed run sees the batches an uninterrupted one would.
  virtual void skip_epochs(int epochs, int64_t steps) {}
  // Step `step` of the current epoch, or nullopt when the data ran out (ending the epoch).
  virtual std::optional<StepBatch> next(int64_t step) = 0;
};

// What the driver (Model::run_epochs, fit_loop.cpp) needs besides the feed.
struct TrainPlan {
  int64_t steps_shown = 0;   // "steps" in the callbacks' params (<= 0: unknown)
  int64_t step_limit = -1;   // steps per epoch; -1: until the feed runs out
  std::optional<std::pair<Tensors, Tensors>> validation;
  const char* caller = "fit";  // names the overload in errors
};

}  // namespace meshflow::detail
