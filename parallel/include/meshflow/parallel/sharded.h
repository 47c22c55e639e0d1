// ShardedStrategy: training over a device mesh; today ZeRO stages 1 and 2 over its "data" axis.
#pragma once

#include <memory>
#include <string>

#include "meshflow/parallel/mesh.h"
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
};

}  // namespace meshflow
