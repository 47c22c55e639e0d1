// GSPMD-style partitioning: annotate a few tensors with layouts over a Mesh, and the traced
// forward of a function is propagated op by op (each op's sharding rule, core/op.h) and run on
// every device with the collectives its layouts need. See Note [Partitioned programs].
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "meshflow/core/op.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/trace.h"
#include "meshflow/distributed/communicator.h"
#include "meshflow/parallel/mesh.h"

namespace meshflow {

// One dimension of an annotation: `Replicated` (whole on every device), a mesh axis ("model"), or
// several axes, major first (Split({"data", "model"})).
struct ReplicatedTag {};
inline constexpr ReplicatedTag Replicated{};
struct Split {
  std::vector<std::string> axes;
  Split(ReplicatedTag) {}
  Split(const char* axis) : axes{axis} {}
  Split(std::string axis) : axes{std::move(axis)} {}
  explicit Split(std::vector<std::string> several) : axes(std::move(several)) {}
};
// A layout from one Split per dimension: layout({Replicated, "model"}).
Layout layout(std::initializer_list<Split> dims);

// Throws naming `what`, the layout and the mesh when the layout does not fit the tensor (one entry
// per dimension), names an axis the mesh lacks, or uses an axis twice.
void check_layout(const Layout& layout, const TensorMeta& meta, const Mesh& mesh, const std::string& what);
// This device's part of a dimension of `size` split over `axes` (nested numpy.array_split, major
// axis first): {first index, count}.
std::pair<int64_t, int64_t> local_range(int64_t size, const std::vector<std::string>& axes, const Mesh& mesh,
                                        int rank);
// The shape of `rank`'s part of a tensor of `global` shape laid out as `layout`.
Shape local_shape(const Shape& global, const Layout& layout, const Mesh& mesh, int rank);

// A collective the partitioned program runs on one device in one step. `bytes` is this device's
// payload handed to the communicator (all-reduce: the tensor; all-gather: what it receives;
// reduce-scatter: what it sends), which a counting communicator measures the same way.
struct Collective {
  enum class Kind { AllReduce, AllGather, ReduceScatter };
  Kind kind = Kind::AllReduce;
  std::string axis;
  bool backward = false;
  std::string where;  // "dense_2: add, input 0"
  int node = -1;      // the graph node whose input it converts (-1: a program input or output)
  Shape shape;        // the local tensor it moves
  DType dtype = DType::F32;
  int64_t bytes = 0;
  std::string str() const;  // "all_reduce over model of f64[8, 16] (1024 B, forward) at dense_2: add, input 0"
};
const char* collective_name(Collective::Kind kind);

struct SpmdOptions {
  std::vector<Layout> inputs;   // per traced input; default: whole on every device
  std::vector<Layout> outputs;  // per output; default: whole on every device
  // Per input: its gradient is wanted (a block inside a network); empty: no input's is.
  std::vector<bool> input_requires_grad;
  // Each device copies the whole trainable weights too, instead of training them in place: for
  // devices that are threads of one process, whose programs would otherwise share those leaves.
  bool private_weights = false;
};

// Note [Partitioned programs]
// SpmdProgram traces fn once on symbolic inputs of the given (global) shapes, with every layer
// call expanded into its ops (Note [Expanding layer calls]). Layouts start at the annotations
// (weights), the input layouts and whole (replicated) everywhere else, and flow forward: each op's
// rule says what layouts its inputs must have and what its outputs get. Where a value's layout
// differs from what its consumer needs, the program converts it: a pending sum is all-reduced (or
// reduce-scattered into a split), a split is all-gathered, a whole tensor is sliced (no traffic).
//
// Gradients follow the Megatron convention: on every device, the gradient of a whole tensor is
// whole, of a split tensor its part, of a pending sum whole. Each conversion is an autograd op
// whose backward is its transpose (all-reduce: identity; slice: all-gather; all-gather: slice;
// reduce-scatter: all-gather). And where a whole input that needs a gradient meets an op whose
// outputs are split or pending over a mesh axis (x into a column-parallel matmul, a replicated
// weight under data-split rows), each device sees only its part of the gradient: an identity op
// whose backward all-reduces over that axis is inserted (Megatron's f; data parallelism's
// gradient all-reduce). So a Megatron MLP block costs one all-reduce forward and one backward,
// and a 2-D data x model mesh needs nothing more. Every device runs the same program on its local
// parts (SPMD) with the ops' own kernels; mean over a split dimension is rescaled by its local over
// global count, and reshape/expand get their local target shapes.
struct SpmdBinding;

class SpmdProgram {
 public:
  using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

  // Traces and propagates. Throws naming the tensor, layout and mesh for a bad annotation, "op X
  // has no sharding rule" for an op that cannot be partitioned, and the layer for an unexpanded call.
  SpmdProgram(const Fn& fn, std::vector<TensorMeta> input_specs, Mesh mesh,
              const std::vector<std::pair<Tensor, Layout>>& annotations, SpmdOptions options = {});
  ~SpmdProgram();
  SpmdProgram(const SpmdProgram&) = delete;
  SpmdProgram& operator=(const SpmdProgram&) = delete;

  const Mesh& mesh() const { return mesh_; }
  const Graph& graph() const { return graph_; }
  // The layout of every graph value (graph().values() order).
  const std::vector<Layout>& layouts() const { return layouts_; }
  // A weight's layout (whole when not annotated); throws when fn does not use it.
  Layout layout_of(const Tensor& weight) const;
  // The collectives one step (forward, then backward in reverse op order) runs on mesh device `rank`.
  std::vector<Collective> collectives(int rank) const;
  int64_t bytes_per_step(int rank) const;
  // Each layer's weights and activations with their layouts, and each collective with its bytes.
  std::string explain(int rank = 0) const;

  // Binds this process (or thread) to its device: `comm` joins every device of the mesh (rank r is
  // mesh device r) and is split once per axis (a collective). Makes this rank's parts of the split
  // weights: leaves that require grad as their weights do.
  void bind(std::shared_ptr<distributed::Communicator> comm);
  // Binds as `other` is bound, sharing its axis communicators and its parts of the weights both use
  // (a program per batch size trains one set of parts). Not a collective.
  void bind_like(const SpmdProgram& other);
  int rank() const;
  // Runs the partitioned forward on this device. Every rank passes the whole inputs (global
  // shapes) and takes its part; returns its part of each output, laid out as options.outputs.
  // Autograd records through the collectives: backward() from a whole loss leaves each local
  // weight's gradient (its part, for a split weight).
  std::vector<Tensor> run(const std::vector<Tensor>& inputs);
  // This device's part of a weight: the weight itself when whole, else its part (after bind).
  Tensor local(const Tensor& weight) const;
  // Every weight fn uses, as this device holds it (trainable ones first).
  std::vector<Tensor> local_weights() const;
  // Writes the parts of every split weight back into the whole weight on every device (collective).
  void gather_weights();
  // For a tensor shaped and laid out like `weight` (an optimizer slot): this device's part of a
  // whole one (no traffic), and the whole one from every device's part (a collective).
  Tensor part_of(const Tensor& whole, const Tensor& weight) const;
  Tensor gather(const Tensor& part, const Tensor& weight) const;
  // Every run replays the dropout masks fn was traced with. A caller that wants new masks (a
  // training step) maps each traced call's (seed, counter) to the counter the next runs use,
  // reserved from the same generator (TracedDraw, CollectDraws in core/ops/nn.h).
  void set_counters(std::map<std::pair<uint64_t, uint64_t>, uint64_t> counters) { counters_ = std::move(counters); }

  struct Impl;

 private:
  void attach(const std::shared_ptr<SpmdBinding>& binding);

  Mesh mesh_;
  Graph graph_;
  std::vector<Layout> layouts_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> counters_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshflow
