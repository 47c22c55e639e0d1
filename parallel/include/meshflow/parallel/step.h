// What a strategy is handed to run a training step: the copies of the model (replicas) as
// variables, and closures for one replica's forward/backward and for the optimizer update.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/distributed/bucketing.h"

namespace meshflow {

// Note [How a step flows]
// models/ knows what a step computes (the layers, the losses, the optimizer); parallel/ knows
// where it runs and how results are combined. Model::fit describes one step as a TrainStep (a
// per-replica forward/backward closure and an update closure) and calls
// Strategy::run_step(replicas, step). The strategy decides which rows each local replica takes
// and with what loss weight, runs the replicas (threads), reduces their gradients, calls update
// once on replica 0 and copies the result to the other local replicas. A strategy sees a model
// only through Replica: its variables in a fixed order.

// One copy of a model, as a strategy sees it. Every replica lists the same variables in the
// same order (models/ implements it over a Model).
class Replica {
 public:
  virtual ~Replica() = default;
  virtual std::vector<Tensor> weights() = 0;                // every variable, trainable first
  virtual std::vector<Tensor> trainable_weights() = 0;      // what the optimizer updates
  virtual std::vector<Tensor> non_trainable_weights() = 0;  // e.g. BatchNorm's moving statistics
};

// The work one local replica does in a step: rows [begin, begin + count) of this process's batch,
// its data loss multiplied by loss_scale. A placeholder share (a replica with no rows) runs row 0
// with loss_scale 0 so that its backward still feeds the gradient reduction; it must not count in
// metrics, and the strategy restores the replica's non-trainable state after it.
struct ReplicaShare {
  int replica = 0;
  int64_t begin = 0;
  int64_t count = 0;
  double loss_scale = 1.0;
  bool placeholder = false;
};

// What a sharded strategy (ZeRO, Note [ZeRO] in sharded.cpp) hands the optimizer: this rank's
// slice of every trainable weight and the averaged gradient of that slice. Weight i's slice is
// elements [offset[i], offset[i] + count[i]) of its flattened values (count 0: nothing here, the
// gradient is then an empty tensor, so every rank makes the same optimizer slots in the same order).
struct ShardUpdate {
  std::vector<int64_t> offset, count;
  std::vector<Tensor> grads;  // 1-D, count[i] elements
  // ZeRO-3: the 1-D tensors (this rank's shards) that hold and receive the updated values; empty:
  // the update writes views of the weights themselves.
  std::vector<Tensor> values;
  // Sums a vector over the ranks holding the other slices (squared norms for clipping and the
  // finite-gradient check: every rank must reach the same verdict).
  std::function<void(std::vector<double>&)> sum_over_ranks;
};

// One training step on this process's rows of a global batch.
struct TrainStep {
  int64_t global_rows = 0;  // rows of the global batch, over all processes
  int64_t local_rows = 0;   // rows of it that are this process's (0: the batch holds one placeholder row)
  // Forward and backward of one replica's share; leaves gradients in its trainable weights' grad().
  std::function<void(const ReplicaShare&)> forward_backward;
  // Applies replica 0's gradients (reduced over every replica) to its trainable weights.
  std::function<void()> update;
  // A sharded strategy's update: applies the gradients of this rank's slices to those slices of
  // replica 0's trainable weights (views into them); the strategy then gathers the whole weights.
  std::function<void(const ShardUpdate&)> update_shard;
};

// The local replicas of one model (replica 0 first) and what a strategy keeps for them between
// steps. models/ owns one per model; the strategy fills the rest on the first step.
struct ReplicaGroup {
  std::vector<std::shared_ptr<Replica>> replicas;
  std::vector<std::vector<Tensor>> trainable;  // per replica, listed once weights exist
  std::vector<std::unique_ptr<distributed::GradBucketer>> averagers;  // per replica
  bool synced = false;  // every replica starts from process 0's replica 0
  // What the strategy keeps for this model besides (a sharded strategy's partition); the
  // strategy makes and reads it, models/ only holds it.
  std::shared_ptr<void> strategy_state;

  int size() const { return static_cast<int>(replicas.size()); }
  // Drops the gradient averagers (their hooks go inert); the next step makes new ones.
  void release_averagers() { averagers.clear(); }
};

}  // namespace meshflow
