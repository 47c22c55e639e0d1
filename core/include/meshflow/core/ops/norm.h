// Softmax and normalization layers' ops.
#pragma once

#include <vector>

#include "meshflow/core/tensor.h"

namespace meshflow {

Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

// Normalizes over the last `normalized_dims` axes; gamma and beta have those axes' shape
// (either may be undefined: no scale / no shift).
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t normalized_dims = 1,
                  double epsilon = 1e-5);

// Batch normalization over every axis but the last (channels-last). In training the batch
// statistics are used and running_mean/running_var are updated in place:
//   running = momentum * running + (1 - momentum) * batch   (Keras's convention; var unbiased)
// In inference the running statistics are used.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum = 0.99, double epsilon = 1e-3);

// Traced in training (symbolic x), batch_norm has no values to update the running statistics
// with. A tracer that runs the traced ops later (the tensor-parallel step) collects the pending
// updates while it traces and applies each after every run, with the batch statistics the run
// computed. Without a collector the traced call updates nothing, as before.
struct RunningStatsUpdate {
  Tensor running_mean, running_var;  // the layer's variables (concrete)
  Tensor batch_mean, batch_var;      // symbolic outputs of the traced call (biased variance)
  double momentum = 0.99;
  int64_t count = 0;                 // values per channel, for the unbiased variance
};
class CollectRunningStats {
 public:
  explicit CollectRunningStats(std::vector<RunningStatsUpdate>* into);  // this thread, while alive
  ~CollectRunningStats();
  CollectRunningStats(const CollectRunningStats&) = delete;
  CollectRunningStats& operator=(const CollectRunningStats&) = delete;

 private:
  std::vector<RunningStatsUpdate>* previous_;
};
// running = momentum * running + (1 - momentum) * batch, the variance made unbiased by count / (count - 1).
void apply_running_stats(const RunningStatsUpdate& update, const Tensor& batch_mean, const Tensor& batch_var);

}  // namespace meshflow
