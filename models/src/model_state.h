// Private to models/src: the compiled state of a model, its local replicas, and what one
// replica's forward/backward produced.
#pragma once

#include <memory>
#include <vector>

#include "meshflow/models/model.h"
#include "meshflow/parallel/step.h"

namespace meshflow {

struct Model::Compiled {
  std::vector<std::string> outputs;
  std::vector<std::shared_ptr<Loss>> losses;  // per output; null: the output has no loss
  std::vector<double> loss_weights;
  std::vector<std::vector<std::shared_ptr<Metric>>> metrics;
  metrics::Mean loss{"loss"};
  std::vector<metrics::Mean> output_losses;
  std::vector<Variable> trainable;  // cached after the first step (weights exist from then on)
  bool have_trainable = false;
  // ZeRO: the slices of `trainable` this rank updates, as the optimizer's variables (the same
  // objects every step, so its slots persist); remade when the partition changes.
  std::vector<Variable> slices;
};

// This process's copies of the model under a strategy: replica 0 is the model itself, the others
// were built by replicate() (MirroredStrategy). The strategy keeps its per-step state in `group`.
struct Model::Replication {
  std::vector<std::shared_ptr<Model>> others;  // local replicas 1..N-1
  struct Trainable {
    std::vector<Variable> weights;
    bool known = false;  // filled after the replica's first call
  };
  std::vector<Trainable> trainable;  // local replicas 1..N-1 (replica 0's list is in Compiled)
  ReplicaGroup group;
  bool built = false;  // every copy has been called once
};

namespace detail {

// The layer a functional graph's node calls (null for a plain op node).
inline std::shared_ptr<Layer> node_layer(const Graph::Node& n) {
  return n.composite ? std::static_pointer_cast<Layer>(n.payload) : nullptr;
}

struct ReplicaStep {
  Tensors pred;
  std::vector<Tensor> targets;
  std::vector<double> output_losses;  // unweighted, per output (0 where none)
  double total = 0;                   // the loss as reported: weighted outputs + layer losses + regularizers
  int64_t rows = 0;                   // rows that count in metrics (0: a placeholder share)
};

}  // namespace detail
}  // namespace meshflow
