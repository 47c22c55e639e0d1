// Tracing: ops called on symbolic tensors (shape and dtype, no data) record a graph; Graph holds
// the op-level IR, prints it, and runs it again on real tensors.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "meshflow/core/op.h"
#include "meshflow/core/tensor.h"

namespace meshflow {

// Replays a composite node (a layer call) on real tensors.
using CompositeFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

struct SymNode {
  const OpDef* op = nullptr;           // null for a composite node
  CompositeFn composite;               // set for a composite node
  std::string composite_kind;          // e.g. "Dense" (printed in the graph)
  std::shared_ptr<void> payload;       // what a higher layer attached (the Layer object)
  Attrs attrs;
  std::vector<Tensor> inputs;          // symbolic values, or concrete tensors (weights, constants)
  std::vector<TensorMeta> outputs;
  std::string scope;                   // the layer that called it, from NameScope
  // A composite's outputs as the ops it called while traced computed them (symbolic tensors over
  // the same inputs), one per output; empty when not known. Graph::from(..., expand) follows them.
  std::vector<Tensor> expansion;
};

struct SymValue {
  std::shared_ptr<SymNode> producer;   // null: a placeholder (an Input)
  int output_index = 0;
};

// A symbolic placeholder: unknown dims are -1.
Tensor symbolic(const Shape& shape, DType dtype = DType::F32, const std::string& name = "");

// Records a composite node: new symbolic outputs with the given metas, computed from `inputs` by
// calling fn when the graph runs. The functional API records each layer call this way, so a
// layer's runtime behaviour (training flag, state) is decided when the model runs. `expansion`
// (optional) holds the same outputs as traced ops computed them (Note [Expanding layer calls]).
std::vector<Tensor> record_composite(const std::string& kind, CompositeFn fn, const std::vector<Tensor>& inputs,
                                     const std::vector<TensorMeta>& outputs, std::shared_ptr<void> payload = nullptr,
                                     Attrs attrs = {}, std::vector<Tensor> expansion = {});

// While alive on this thread, an op whose inputs are concrete but include a tensor that requires
// grad (a weight) is recorded as if an input were symbolic, so a trace sees what a layer does to
// its weights (MultiHeadAttention reshaping its kernels) instead of a constant computed from them.
// The partitioner traces under it (parallel/partitioner.h); scopes nest.
class TraceWeightsScope {
 public:
  TraceWeightsScope();
  ~TraceWeightsScope();
  TraceWeightsScope(const TraceWeightsScope&) = delete;
  TraceWeightsScope& operator=(const TraceWeightsScope&) = delete;
  // Whether a scope is open on this thread. call_op asks on every op, so the common case (no scope
  // open anywhere) is one relaxed load of a process-wide count, without a thread-local look-up.
  static bool active() { return open_scopes_.load(std::memory_order_relaxed) > 0 && active_here(); }

 private:
  static bool active_here();
  static std::atomic<int> open_scopes_;
  bool previous_;
};

// Labels the graph nodes recorded inside it (layers push their names).
class NameScope {
 public:
  explicit NameScope(const std::string& name);
  ~NameScope();
  NameScope(const NameScope&) = delete;
  NameScope& operator=(const NameScope&) = delete;
  static std::string current();
};

class Graph {
 public:
  struct Value {
    enum class Kind { Input, Constant, OpResult };
    Kind kind = Kind::OpResult;
    TensorMeta meta;
    std::string name;
    Tensor constant;        // for constants: the live tensor (weights keep updating)
    int producer = -1;      // node index for OpResult
    int output_index = 0;
  };
  struct Node {
    const OpDef* op = nullptr;   // null for composite nodes
    CompositeFn composite;
    std::string composite_kind;
    std::shared_ptr<void> payload;
    Attrs attrs;
    std::vector<int> inputs;
    std::vector<int> outputs;
    std::string scope;
  };

  // The graph from `inputs` (placeholders) to `outputs`. Throws "Graph disconnected" naming the
  // placeholder that is not among inputs and the op that needs it.
  //
  // Note [Expanding layer calls]
  // By default a layer call is one composite node, replayed by calling the layer, so its
  // behaviour (training flag, state updates) is decided when the graph runs. With
  // expand_composites, every composite that recorded an expansion is replaced by the ops the
  // layer called while it was traced, recursively (a model inside a model too): a graph of ops
  // only, each labelled with its layer's scope, that a partitioner can read op by op. That graph
  // is a snapshot: the ops the layer ran in the mode of its trace; composites without an
  // expansion stay composite.
  static Graph from(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
                    bool expand_composites = false);

  // Runs the recorded ops on real tensors (through call_op, so autograd records as usual).
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const;
  // Runs nodes [first, end) over `env`, one tensor per value id: the values those nodes read must
  // be set (inputs, constants, earlier results); their results are set here. A pipeline runs a
  // graph one stage's range of nodes at a time.
  void run_nodes(std::vector<Tensor>& env, size_t first, size_t end) const;
  std::string str() const;

  const std::vector<Value>& values() const { return values_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<int>& outputs() const { return outputs_; }
  // The op's name, or the composite's kind.
  static std::string node_label(const Node& n) { return n.op ? n.op->name : n.composite_kind; }

 private:
  std::vector<Value> values_;
  std::vector<Node> nodes_;
  std::vector<int> inputs_;
  std::vector<int> outputs_;
};

// Runs fn on symbolic placeholders with the given metas and returns the graph it recorded.
Graph trace(const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& fn,
            const std::vector<TensorMeta>& input_specs);

}  // namespace meshflow
