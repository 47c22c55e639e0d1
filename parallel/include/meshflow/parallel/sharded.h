// ShardedStrategy: training over a device mesh: ZeRO stages 1-3 over its "data" axis, or tensor
// parallelism from layout annotations (parallel/partitioner.h) over any axes.
#pragma once

#include <memory>
#include <string>

#include "meshflow/parallel/mesh.h"
#include "meshflow/parallel/partitioner.h"
#include "meshflow/parallel/strategy.h"

namespace meshflow {

struct ShardedOptions {
  // ZeRO over the mesh's "data" axis (Note [ZeRO] in parallel/src/sharded.cpp):
  // 0: parameters, gradients and optimizer state replicated on every rank (plain data parallel);
  // 1: the optimizer state sharded, each rank updating its 1/N of every weight;
  // 2: also the gradients, reduce-scattered in buckets while backward runs;
  // 3: also the weights between uses: a bucket of weights is all-gathered when an op first reads
  //    one of them and released again once `live_buckets` later buckets have been gathered.
  int zero_stage = 0;
  // Stage 3: how many buckets of weights may be whole at once (an op must not read weights of
  // more buckets than this at once). Bucket size: Strategy::set_bucket_options.
  int live_buckets = 3;
  distributed::CommOptions comm;
};

// One process per rank, as MultiWorkerMirroredStrategy, with the ranks arranged as `mesh`. Under
// stages 1 and 2 every rank holds the whole model between steps (the weights are gathered after
// each update); under stage 3 from each epoch's end to the next step, and between steps of
// train_on_batch a read of a weight gathers its bucket (a collective: every rank must do the same
// reads). fit, evaluate, predict, callbacks and saving work as under the mirrored strategies;
// save on every rank (each writes its slices of the optimizer state).
class ShardedStrategy : public Strategy {
 public:
  // Over the MPI ranks of the job (a size-1 stub without a launcher).
  explicit ShardedStrategy(Mesh mesh, ShardedOptions options = {});
  // Over a given communicator (tests: a LocalGroup rank standing in for a process).
  ShardedStrategy(std::shared_ptr<distributed::Communicator> comm, Mesh mesh, ShardedOptions options = {});
  ~ShardedStrategy() override;

  std::string name() const override { return "ShardedStrategy"; }
  std::shared_ptr<distributed::Communicator> process_communicator() const override { return comm_; }
  std::shared_ptr<distributed::Communicator> replica_communicator(int local_replica) const override;
  const Mesh& mesh() const { return mesh_; }
  int zero_stage() const { return options_.zero_stage; }

  // Tensor parallelism (Note [Partitioned programs]): lays a weight out over the mesh, e.g.
  // annotate(dense->kernel(), {Replicated, "model"}). With annotations, or a mesh axis other than
  // "data" of size > 1, fit traces each training step (model, losses) into an SpmdProgram: each
  // rank keeps its parts of the split weights and of their optimizer state, and every rank sees
  // the whole batch, whose rows the program splits over "data". Weights become whole again at
  // each epoch's end, evaluate, predict and save (gathered), which then run unsplit on every rank.
  // Throws naming the weight, the layout and the mesh for a bad layout.
  void annotate(const Tensor& weight, const Layout& layout);
  void annotate(const Tensor& weight, std::initializer_list<Split> dims) { annotate(weight, meshflow::layout(dims)); }
  const std::vector<std::pair<Tensor, Layout>>& annotations() const { return annotations_; }
  bool partitioned() const;
  // The training step's program once fit has built it (models/ sets it), and what it does.
  void set_program(std::shared_ptr<SpmdProgram> program) { program_ = std::move(program); }
  const std::shared_ptr<SpmdProgram>& program() const { return program_; }
  std::string explain() const;  // program()->explain(this rank); throws before the first step
  // Partitioned: every rank takes the whole batch (the program splits it) and holds the same
  // metric states, so nothing is combined.
  int data_shards() const override { return partitioned() ? 1 : Strategy::data_shards(); }
  int data_shard() const override { return partitioned() ? 0 : Strategy::data_shard(); }
  void combine_metric_states(std::vector<double>& values) const override {
    if (!partitioned()) Strategy::combine_metric_states(values);
  }

  std::vector<Tensor> gather_slices(const std::vector<Tensor>& slices, const std::vector<Shape>& full_shapes,
                                    const std::vector<int64_t>& offsets) const override;

  // This rank's share of a model's weights after its first step: per trainable weight, the
  // elements this rank updates (empty before the first step or without ZeRO).
  struct Share {
    std::string weight;
    int64_t numel = 0, offset = 0, count = 0;
  };
  static std::vector<Share> shares(const ReplicaGroup& group);

 protected:
  void apply_update(ReplicaGroup& group, const TrainStep& step) override;
 public:
  void run_step(ReplicaGroup& group, const TrainStep& step) override;
  void end_epoch(ReplicaGroup& group) override;

 protected:
  distributed::BucketOptions averager_options() const override;

 private:
  void check_mesh() const;

  std::shared_ptr<distributed::Communicator> comm_;
  Mesh mesh_;
  ShardedOptions options_;
  std::vector<std::pair<Tensor, Layout>> annotations_;
  std::shared_ptr<SpmdProgram> program_;
};

}  // namespace meshflow
