// Pipeline parallelism: a model cut into consecutive stages, one stage per rank, each batch cut
// into micro-batches that flow through the stages (GPipe and 1F1B schedules).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "meshflow/parallel/mesh.h"
#include "meshflow/parallel/strategy.h"

namespace meshflow {

// Note [Pipeline stages]
// A PipelineStrategy over P ranks cuts a model's layers into P consecutive stages; rank s runs
// stage s. Every rank passes the whole batch (x and y, as on one device); it is cut into M
// micro-batches of consecutive rows. Stage s runs its layers on micro-batch k's activations,
// received from stage s-1, and sends its output to stage s+1; the last stage computes the loss of
// micro-batch k scaled by its share of the batch's rows, so the gradients that each stage
// accumulates over the M micro-batches are those of the whole batch. Backward sends each
// activation's gradient back the same way. Then every stage updates its own weights with its own
// optimizer state. The order of forward (F) and backward (B) work on a stage is the schedule:
//   GPipe: F0 F1 .. F(M-1), then B0 .. B(M-1): simple, holds M micro-batches' activations;
//   1F1B:  min(P-1-s, M) forwards to fill the pipe, then one F and one B in turn, then the rest of
//          the B's: the same bubble as GPipe, at most P micro-batches' activations held.
// The bubble (time a stage idles) is (P-1)/(M+P-1) of a step in both (benchmarks/bench_pipeline).
// What stays per micro-batch: BatchNormalization normalizes each micro-batch with its own
// statistics, as GPipe does, and its moving averages take M updates per step; dropout draws its
// mask per micro-batch from the layer's own generator. Messages are point-to-point sends of the
// communicator (MPI ranks, or threads of a LocalGroup in tests), each activation preceded by a
// small header with its dtype and shape; a stage that dies or stops makes its neighbours'
// receives fail after the timeout (or at once, by the heartbeat), naming the stage and its rank.
//
// Pipeline x data (a 2-D mesh, Mesh({{"data", D}, {"pipe", P}})): D copies of the pipeline, each
// fed 1/D of every batch; the ranks of one stage average their gradients over the "data" axis once
// all micro-batches are done, then update. Each micro-batch's loss is scaled by its rows over the
// global batch and the gradients are summed, so uneven shares still give the full-batch mean. The
// stages' messages go over the "pipe" axis's communicator, the gradients over the "data" axis's
// (Communicator::split). At the first step every stage takes data replica 0's weights; at each
// settle (epoch ends, evaluate, predict, save) replica-local statistics (BatchNormalization's
// moving averages) become their mean over the data replicas before the stages' weights spread.
enum class PipelineSchedule { GPipe, OneFOneB };

struct PipelineOptions {
  int micro_batches = 1;
  PipelineSchedule schedule = PipelineSchedule::OneFOneB;
  // The names of the layers that start stages 1..P-1, in model order. Empty: the cuts that
  // minimise the slowest stage's forward+backward time, measured in one profiling step on rank 0.
  std::vector<std::string> cuts;
  distributed::CommOptions comm;
};

// One unit of a stage's schedule: forward or backward of one micro-batch.
struct PipelineAction {
  enum class Kind { Forward, Backward };
  Kind kind;
  int micro;
  bool operator==(const PipelineAction&) const = default;
};

// The order in which stage `stage` of `stages` runs the forward and backward of `micro_batches`
// micro-batches (Note [Pipeline stages]).
std::vector<PipelineAction> pipeline_schedule(PipelineSchedule schedule, int stages, int stage, int micro_batches);

// The contiguous split of items with the given costs into `stages` non-empty groups whose largest
// sum is smallest (ties: the earliest cuts). Returns each stage's first item, starting with 0.
std::vector<int> balanced_cuts(const std::vector<double>& costs, int stages);

// What models/ hands the strategy for one pipelined step of this rank's stage.
struct PipelineStep {
  int micro_batches = 1;
  // Forward of micro-batch `micro` through this stage's layers. `input` is the previous stage's
  // output (undefined on the first stage, which reads its rows of x). Returns the activation for
  // the next stage (the last stage computes its loss and returns an undefined tensor).
  std::function<Tensor(int micro, const Tensor& input)> forward;
  // Backward of micro-batch `micro`: `grad_output` is the gradient of this stage's output
  // (undefined on the last stage, which starts from its loss). Returns the gradient of the
  // stage's input (undefined on the first stage). Gradients accumulate in the stage's weights.
  std::function<Tensor(int micro, const Tensor& grad_output)> backward;
  // After every micro-batch: applies this stage's accumulated gradients.
  std::function<void()> update;
};

// What one step did on this stage (filled by run_pipeline, for benchmarks and tests).
struct PipelineStepStats {
  double seconds = 0;          // the whole step, first action to the end of the update
  double busy_seconds = 0;     // in forward, backward and update (the rest is waiting: the bubble)
  int max_live_activations = 0;  // micro-batches forwarded but not yet backwarded, at most
};

class PipelineStrategy : public Strategy {
 public:
  // Over every MPI rank (one stage each); a size-1 stub when not launched by an MPI launcher.
  explicit PipelineStrategy(PipelineOptions options = {});
  // Over a given communicator (tests: ranks of a LocalGroup, one thread per stage).
  PipelineStrategy(std::shared_ptr<distributed::Communicator> comm, PipelineOptions options);
  // The ranks arranged as `mesh`: its "pipe" axis holds the stages, its "data" axis (optional)
  // copies of the pipeline that share each batch and average their gradients. Other axes must have
  // size 1; the mesh's size must be the job's. Over every MPI rank, or over a given communicator.
  PipelineStrategy(Mesh mesh, PipelineOptions options);
  PipelineStrategy(std::shared_ptr<distributed::Communicator> comm, Mesh mesh, PipelineOptions options);
  std::string name() const override { return "PipelineStrategy"; }
  std::shared_ptr<distributed::Communicator> process_communicator() const override { return comm_; }
  std::shared_ptr<distributed::Communicator> replica_communicator(int local_replica) const override;
  // Every stage of a pipeline sees its copy's whole batch: the batch is split over the data axis only.
  int data_shards() const override { return data_comm_->size(); }
  int data_shard() const override { return data_comm_->rank(); }
  // Metric states live on the last stage: summed over the data replicas, then every rank gets them.
  void combine_metric_states(std::vector<double>& values) const override;
  // Only within this rank's pipeline: the last stage's values to every stage (after each step).
  void share_last_stage_states(std::vector<double>& values) const;
  void run_step(ReplicaGroup& group, const TrainStep& step) override;
  void end_epoch(ReplicaGroup&) override {}

  int num_stages() const { return stage_comm_->size(); }
  int stage() const { return stage_comm_->rank(); }
  // Copies of the pipeline (the mesh's "data" axis) and which one this rank belongs to.
  int num_data_replicas() const { return data_comm_->size(); }
  int data_replica() const { return data_comm_->rank(); }
  const Mesh& mesh() const { return mesh_; }
  const PipelineOptions& options() const { return options_; }
  // The ranks of this rank's pipeline (stage order) and of this rank's stage (data order).
  std::shared_ptr<distributed::Communicator> stage_communicator() const { return stage_comm_; }
  std::shared_ptr<distributed::Communicator> data_communicator() const { return data_comm_; }
  // The rows of a batch over every data replica, given this replica's.
  int64_t global_rows(int64_t local_rows) const;
  // Over this stage's data replicas: sums each tensor's gradient (in place; missing gradients count
  // as zeros), gives every tensor replica 0's value, or averages floating tensors (statistics).
  void sum_gradients_over_data(const std::vector<Tensor>& weights) const;
  void broadcast_over_data(std::vector<Tensor>& tensors) const;
  void average_over_data(std::vector<Tensor>& tensors) const;

  // Runs one step of this rank's stage: the schedule's forwards and backwards with the messages
  // between neighbouring stages, then step.update(). Throws naming the stage on any failure.
  void run_pipeline(const PipelineStep& step);
  const PipelineStepStats& last_step_stats() const { return stats_; }

  // Stage `owner`'s tensors, overwritten on every rank with its values (every rank calls it with
  // the same lists, in the same order).
  void broadcast_from_stage(std::vector<Tensor>& tensors, int owner) const;

 private:
  void make_axes();
  // The job's rank of stage `stage` in this rank's pipeline (error messages).
  int rank_of_stage(int stage) const;

  std::shared_ptr<distributed::Communicator> comm_;
  Mesh mesh_ = Mesh({{"pipe", 1}});
  PipelineOptions options_;
  std::shared_ptr<distributed::Communicator> stage_comm_, data_comm_;
  PipelineStepStats stats_;
};

}  // namespace meshflow
