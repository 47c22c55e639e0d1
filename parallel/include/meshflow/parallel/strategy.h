// Distribution strategies: where replicas run, how their gradients and metric states are combined.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "meshflow/core/device.h"
#include "meshflow/core/tensor.h"
#include "meshflow/distributed/bucketing.h"
#include "meshflow/distributed/communicator.h"
#include "meshflow/parallel/step.h"

namespace meshflow {

class StrategyScope;

// Where this process's data-parallel train steps spent their time (summed over steps; local
// replica 0's view): forward and backward, waiting for the averaged gradients, and the optimizer.
struct StepTimes {
  int64_t steps = 0;
  double forward_backward_s = 0;
  double gradient_wait_s = 0;
  double update_s = 0;
};

// Note [Replicas]
// A strategy runs num_replicas_in_sync() replicas of one model: num_local_replicas() in this
// process (threads, MirroredStrategy) times the number of processes (MultiWorkerMirroredStrategy).
// Global replica g = process_rank() * num_local_replicas() + local replica. Each replica computes
// gradients on its share of the global batch; gradients are averaged across all replicas (each
// replica scales its loss by its share, so uneven shares still give the full-batch mean); every
// replica then holds the same weights. Metric states are sums, combined across processes with
// reduce_sums(). This layer knows nothing about models: it sees replicas through Replica and a
// step through TrainStep (Note [How a step flows], step.h).
//
// A strategy answers three questions, and a new one (sharded, pipelined) answers them its way:
// where variables and tensors live (local_devices(): replica r on local_devices()[r]); how
// gradients and state are reduced (make_gradient_averager, reduce_sums, broadcast_from_chief,
// end_epoch); and how a step runs (run_step). docs/adding_ops.md says how to add one.
class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  // Replicas across every process.
  int num_replicas_in_sync() const { return num_local_replicas() * num_processes(); }
  virtual int num_local_replicas() const { return 1; }
  int num_processes() const { return process_communicator()->size(); }
  int process_rank() const { return process_communicator()->rank(); }
  // Rank 0 prints progress and writes files (checkpoints, TensorBoard).
  bool is_chief() const { return process_rank() == 0; }
  // The devices of this process's replicas (cpu:0.. for MirroredStrategy).
  virtual std::vector<Device> local_devices() const { return {Device()}; }

  // How the batch is split over the processes: data_shards() parts, this process taking part
  // data_shard() (data parallelism: one per process; a pipeline: one part, every stage sees it).
  virtual int data_shards() const { return num_processes(); }
  virtual int data_shard() const { return process_rank(); }

  // Connects the processes (one rank each); size 1 when there is only one.
  virtual std::shared_ptr<distributed::Communicator> process_communicator() const = 0;
  // Connects every replica: the one local replica `local_replica` uses for its gradients.
  virtual std::shared_ptr<distributed::Communicator> replica_communicator(int local_replica) const = 0;

  // Runs fn(local_replica) for each local replica, each in its own thread when there are
  // several (the calling thread runs replica 0); rethrows the first replica's error, naming it.
  virtual void run_replicas(const std::function<void(int)>& fn);

  // Averages the gradients of `params` over all replicas as backward produces them
  // (Note [Gradient buckets]): make one per local replica, call finish() after its backward.
  std::unique_ptr<distributed::GradBucketer> make_gradient_averager(int local_replica, std::vector<Tensor> params) const;
  // Bucket size and wire compression of the averagers made from now on.
  void set_bucket_options(distributed::BucketOptions options) { bucket_options_ = options; }
  const distributed::BucketOptions& bucket_options() const { return bucket_options_; }
  // Sums each value over the processes, in place (metric states are sums, Metric::state()).
  void reduce_sums(std::vector<double>& values) const;
  // Combines the processes' metric states (sums of Metric::state()) so every process holds the
  // whole batch's: summed over the processes here; a pipeline takes its last stage's.
  virtual void combine_metric_states(std::vector<double>& values) const { reduce_sums(values); }
  // Overwrites each tensor with process 0's value (every process calls it with the same list).
  void broadcast_from_chief(std::vector<Tensor>& tensors) const;

  // Runs one training step of `group` (this process's replicas of one model, replica 0 first):
  // shares the rows over the local replicas, runs their forward/backward (threads), averages the
  // gradients over every replica, calls step.update() once and copies replica 0's trainable
  // weights to the other local replicas. The first step starts every replica from process 0's
  // replica 0. One replica in all: forward/backward on every row, then update.
  virtual void run_step(ReplicaGroup& group, const TrainStep& step);
  // The end of an epoch: replica-local state (non-trainable floating weights such as moving
  // statistics) becomes its mean over every replica (Note [Replica-local statistics]).
  virtual void end_epoch(ReplicaGroup& group);

  // Step timing, filled by Model::fit under this strategy; reset_step_times() starts over.
  const StepTimes& step_times() const { return step_times_; }
  void reset_step_times() { step_times_ = {}; }
  void record_step(double forward_backward_s, double gradient_wait_s, double update_s) {
    step_times_.steps++;
    step_times_.forward_backward_s += forward_backward_s;
    step_times_.gradient_wait_s += gradient_wait_s;
    step_times_.update_s += update_s;
  }

  // Makes this the current strategy of the calling thread until the scope ends.
  StrategyScope scope();

  // The whole of each optimizer slot when this strategy keeps only a slice of it per rank
  // (ZeRO): slices[i] is this rank's part of a tensor of full_shapes[i] (elements [offset,
  // offset + numel) of it flattened); returns the whole tensors, the same on every rank. Every
  // rank must call it (it is a collective). Replicating strategies never need it.
  virtual std::vector<Tensor> gather_slices(const std::vector<Tensor>& slices, const std::vector<Shape>& full_shapes,
                                            const std::vector<int64_t>& offsets) const;

 protected:
  // The first step's sync of the replicas and the gradient averagers (made when there are none).
  void sync_replicas(ReplicaGroup& group);
  // After the gradients are averaged: applies them (a replicating strategy: step.update()).
  virtual void apply_update(ReplicaGroup& group, const TrainStep& step) { step.update(); }
  // The options of the gradient averagers this strategy makes.
  virtual distributed::BucketOptions averager_options() const { return bucket_options_; }

 private:
  distributed::BucketOptions bucket_options_;
  StepTimes step_times_;
};

// The current strategy of this thread: the innermost active scope(), or null when none.
Strategy* current_strategy();
// The current strategy, or the process-wide DefaultStrategy when no scope is active.
Strategy& get_strategy();

// RAII: while alive, current_strategy() is its strategy. Scopes nest; movable, not copyable.
class StrategyScope {
 public:
  explicit StrategyScope(Strategy* strategy);
  ~StrategyScope();
  StrategyScope(StrategyScope&& other) noexcept;
  StrategyScope(const StrategyScope&) = delete;
  StrategyScope& operator=(const StrategyScope&) = delete;
  StrategyScope& operator=(StrategyScope&&) = delete;

 private:
  Strategy* strategy_;
  Strategy* previous_;
  bool active_ = true;
};

// One replica on one device, no communication.
class DefaultStrategy : public Strategy {
 public:
  explicit DefaultStrategy(Device device = Device());
  std::string name() const override { return "DefaultStrategy"; }
  std::vector<Device> local_devices() const override { return {device_}; }
  std::shared_ptr<distributed::Communicator> process_communicator() const override { return comm_; }
  std::shared_ptr<distributed::Communicator> replica_communicator(int) const override { return comm_; }
  Device device() const { return device_; }

 private:
  Device device_;
  std::shared_ptr<distributed::Communicator> comm_;
};

// One process per rank (mpirun -np N, srun): the MPI communicator over every process, or a stub
// of size 1 when the process was not launched by an MPI launcher (or the build has no MPI).
// Optionally several local devices per process (cpu:0..N-1 now), one replica thread each as in
// MirroredStrategy; gradients are then averaged over every replica of every process through a
// distributed::HierarchicalGroup (threads first, then one collective across the processes).
class MultiWorkerMirroredStrategy : public Strategy {
 public:
  explicit MultiWorkerMirroredStrategy(distributed::CommOptions options = {});
  explicit MultiWorkerMirroredStrategy(std::vector<Device> devices, distributed::CommOptions options = {});
  // Over a given process communicator (tests: a LocalGroup rank standing in for a process); with
  // several devices the replicas' group shares it (Note [Hierarchical communicator]).
  explicit MultiWorkerMirroredStrategy(std::shared_ptr<distributed::Communicator> comm,
                                       std::vector<Device> devices = {Device()});
  ~MultiWorkerMirroredStrategy() override;
  std::string name() const override { return "MultiWorkerMirroredStrategy"; }
  int num_local_replicas() const override { return static_cast<int>(devices_.size()); }
  std::vector<Device> local_devices() const override { return devices_; }
  std::shared_ptr<distributed::Communicator> process_communicator() const override { return comm_; }
  std::shared_ptr<distributed::Communicator> replica_communicator(int local_replica) const override;

 private:
  void make_replica_group(std::shared_ptr<distributed::Communicator> process, distributed::CommOptions options);

  std::shared_ptr<distributed::Communicator> comm_;
  std::vector<Device> devices_;
  std::unique_ptr<distributed::HierarchicalGroup> group_;
  std::vector<std::shared_ptr<distributed::Communicator>> replica_comms_;
};

// One process, one replica per local device (cpu:0..N-1 now), one thread each, joined by the
// `local` backend. Models need one copy per replica: build them with replicate_model() inside
// the scope (Note [Mirrored replicas] in docs/distributed.md).
class MirroredStrategy : public Strategy {
 public:
  explicit MirroredStrategy(std::vector<Device> devices = {Device()}, distributed::CommOptions options = {});
  ~MirroredStrategy() override;
  std::string name() const override { return "MirroredStrategy"; }
  int num_local_replicas() const override { return static_cast<int>(devices_.size()); }
  std::vector<Device> local_devices() const override { return devices_; }
  std::shared_ptr<distributed::Communicator> process_communicator() const override { return stub_; }
  std::shared_ptr<distributed::Communicator> replica_communicator(int local_replica) const override;

 private:
  std::vector<Device> devices_;
  std::unique_ptr<distributed::LocalGroup> group_;
  std::vector<std::shared_ptr<distributed::Communicator>> comms_;
  std::shared_ptr<distributed::Communicator> stub_;
};

}  // namespace meshflow
