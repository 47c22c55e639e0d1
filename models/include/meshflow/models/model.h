// Model: a functional graph of layers (Model(inputs, outputs)), a Sequential stack, or a
// subclass overriding call(); compile() then fit(), evaluate(), predict(), summary().
#pragma once

#include <iostream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshflow/core/trace.h"
#include "meshflow/models/callbacks.h"
#include "meshflow/models/layer.h"
#include "meshflow/models/losses.h"
#include "meshflow/models/metrics.h"
#include "meshflow/models/optimizers.h"
#include "meshflow/parallel/strategy.h"

namespace meshflow {

// One loss for every output, or one per output name.
class LossSpec {
 public:
  LossSpec() = default;
  LossSpec(const char* name) : all_(name) {}                             // NOLINT
  LossSpec(std::string name) : all_(std::move(name)) {}                  // NOLINT
  LossSpec(std::shared_ptr<Loss> loss) : all_loss_(std::move(loss)) {}   // NOLINT
  LossSpec(std::initializer_list<std::pair<const std::string, std::string>> per_output)  // NOLINT
      : per_output_(per_output) {}
  LossSpec(std::map<std::string, std::shared_ptr<Loss>> per_output) : per_output_loss_(std::move(per_output)) {}  // NOLINT
  // The loss for an output (throws naming the output when none was given for it).
  std::shared_ptr<Loss> for_output(const std::string& output, size_t n_outputs) const;
  bool empty() const { return all_.empty() && !all_loss_ && per_output_.empty() && per_output_loss_.empty(); }
  std::vector<std::string> named_outputs() const;

 private:
  std::string all_;
  std::shared_ptr<Loss> all_loss_;
  std::map<std::string, std::string> per_output_;
  std::map<std::string, std::shared_ptr<Loss>> per_output_loss_;
};

// Metric names for every output, or per output name.
class MetricsSpec {
 public:
  MetricsSpec() = default;
  MetricsSpec(std::initializer_list<const char*> names) : all_(names.begin(), names.end()) {}  // NOLINT
  MetricsSpec(std::vector<std::string> names) : all_(std::move(names)) {}                      // NOLINT
  MetricsSpec(std::initializer_list<std::pair<const std::string, std::vector<std::string>>> per_output)  // NOLINT
      : per_output_(per_output) {}
  MetricsSpec(std::map<std::string, std::vector<std::string>> per_output) : per_output_(std::move(per_output)) {}  // NOLINT
  std::vector<std::string> for_output(const std::string& output) const;
  std::vector<std::string> named_outputs() const;

 private:
  std::vector<std::string> all_;
  std::map<std::string, std::vector<std::string>> per_output_;
};

class OptimizerSpec {
 public:
  OptimizerSpec(const char* name) : name_(name) {}                                  // NOLINT
  OptimizerSpec(std::string name) : name_(std::move(name)) {}                       // NOLINT
  OptimizerSpec(std::shared_ptr<Optimizer> opt) : optimizer_(std::move(opt)) {}     // NOLINT
  std::shared_ptr<Optimizer> resolve() const;

 private:
  std::string name_;
  std::shared_ptr<Optimizer> optimizer_;
};

struct CompileOptions {
  OptimizerSpec optimizer = "rmsprop";
  LossSpec loss;
  MetricsSpec metrics;
  std::map<std::string, double> loss_weights;  // by output name; 1 where absent
};

struct FitOptions {
  int epochs = 1;
  int64_t batch_size = 32;
  int verbose = 1;                 // 0 silent, 1 progress bar (one line per epoch off a terminal), 2 one line
  double validation_split = 0.0;  // the last fraction of x/y, taken before shuffling (as Keras)
  std::optional<std::pair<Tensors, Tensors>> validation_data;
  bool shuffle = true;
  uint64_t seed = 0;               // shuffling order
  int initial_epoch = 0;
  std::vector<std::shared_ptr<Callback>> callbacks;
  int64_t steps_per_epoch = 0;     // 0: the whole data set
  int validation_freq = 1;
  // Checks every gradient before each update and stops with an error naming the first layer
  // (in the model's weight order) whose gradient holds a NaN or an infinity. Off by default: it
  // reads every gradient once more per step.
  bool check_gradients = false;
};

struct EvaluateOptions {
  int64_t batch_size = 32;
  int verbose = 1;
  std::vector<std::shared_ptr<Callback>> callbacks;
};

struct PredictOptions {
  int64_t batch_size = 32;
  int verbose = 0;
  std::vector<std::shared_ptr<Callback>> callbacks;
};

namespace detail {
struct ReplicaStep;  // models/src/model_state.h: what one replica's forward/backward produced
class BatchFeed;     // models/src/fit_loop.h: where fit()'s batches come from
struct TrainPlan;
}  // namespace detail
class Dataset;

class PipelineStrategy;
class ShardedStrategy;

class Model : public Layer {
 public:
  // Functional: the graph from `inputs` (made with Input()) to `outputs`. Throws "Graph
  // disconnected" naming the missing input and the layer that needs it.
  Model(const Tensors& inputs, const Tensors& outputs, LayerOptions options = {});
  // Subclassed models: override call(); layers used in call() are tracked automatically.
  explicit Model(LayerOptions options = {});

  Tensors call(const Tensors& inputs) override;
  Tensor call(const Tensor& x) override;

  void compile(CompileOptions options);
  // As Keras 3: the compile settings as JSON, for save_model: {"optimizer": its get_config() (the
  // learning rate as it is now), "loss": {output: loss config}, "metrics": {output: [names]},
  // "loss_weights": {output: weight}}; an empty object when the model is not compiled.
  Json get_compile_config() const;
  // compile() with the settings get_compile_config() wrote; unknown optimizers, schedules and
  // losses (custom ones included) throw naming them.
  void compile_from_config(const Json& config);
  History fit(const Tensors& x, const Tensors& y, FitOptions options = {});
  std::map<std::string, double> evaluate(const Tensors& x, const Tensors& y, EvaluateOptions options = {});
  // Training and evaluation on a Dataset of (x, y) batches (see data.h); options.batch_size,
  // shuffle and validation_split do not apply (the pipeline decides them).
  History fit(Dataset& data, FitOptions options = {});
  std::map<std::string, double> evaluate(Dataset& data, EvaluateOptions options = {});
  Tensors predict(const Tensors& x, PredictOptions options = {});
  // Moves every weight to `device` in place (like PyTorch's module.to()); batches on the host are
  // then copied to it by the ops that meet the weights, and results come back with .to(cpu()).
  // Optimizer slots are made where their weight lives, so call it before the first training step.
  Model& to(Device device);
  // Builds a model for data-parallel training (replicate_model() below says how).
  static std::shared_ptr<Model> replicate(const std::function<std::shared_ptr<Model>()>& build);
  std::map<std::string, double> train_on_batch(const Tensors& x, const Tensors& y);
  std::map<std::string, double> test_on_batch(const Tensors& x, const Tensors& y);
  Tensors predict_on_batch(const Tensors& x);

  // The Keras 2 summary table (with "Connected to" for functional models) and the totals.
  void summary(std::ostream& os = std::cout) const;
  std::string summary_string() const;

  std::vector<std::shared_ptr<Layer>> layers() const;
  std::shared_ptr<Layer> get_layer(const std::string& name) const;
  std::vector<std::string> output_names() const;
  std::vector<std::string> input_names() const;
  bool is_functional() const { return functional_; }
  const Graph& graph() const;
  // The model as a graph of ops only: every layer call expanded into the ops it runs (Note
  // [Expanding layer calls], core/trace.h), traced with `training` as the training flag, weights
  // as live constants. input_specs default to the functional inputs (or a Sequential's
  // InputLayer); batch dimensions are -1. For partitioners and for reading what a model runs.
  Graph op_graph(std::vector<TensorMeta> input_specs = {}, bool training = false);
  std::shared_ptr<Optimizer> optimizer() const { return optimizer_; }
  bool compiled() const { return compiled_; }
  bool stop_training = false;  // callbacks set it to end fit() after the current epoch
  // The strategy current when the model was compiled (or replicated); null: none. It must
  // outlive the model's fit/evaluate calls (Note [Training under a strategy], docs/distributed.md).
  Strategy* strategy() const { return strategy_; }
  // False on every rank but 0 of the model's strategy: callbacks write files only on the chief.
  bool is_chief() const { return strategy_ == nullptr || strategy_->is_chief(); }

  Json get_config() const override;

  // Saving (saving.h): the whole model in a folder, or its weights in one safetensors file.
  void save(const std::string& folder, bool include_optimizer = true) const;
  void save_weights(const std::string& path) const;
  void load_weights(const std::string& path);

 protected:
  // Resolves outputs to names and y to per-output targets (dict by name or list in order).
  std::vector<Tensor> targets_for(const Tensors& y, size_t n_outputs) const;
  std::vector<Shape> declared_input_shapes_;  // Sequential with an InputLayer

 private:
  struct Compiled;
  struct Replication;  // the other local replicas and the strategy's ReplicaGroup (models/src/model_state.h)
  // One training step on this process's share x/y of a global batch of `global_rows` rows, of which
  // the first `local_rows` count (0: x holds one placeholder row that contributes nothing): the
  // strategy runs it (Note [How a step flows], parallel/step.h).
  std::map<std::string, double> run_train_step(const Tensors& x, const Tensors& y, int64_t global_rows,
                                               int64_t local_rows);
  // Forward and backward of `replica` (this model or one of its local copies) with the compiled
  // losses of `c`; the gradient is of loss_scale * (weighted output losses + layer losses) + weight
  // regularizers (Note [Uneven shares], docs/distributed.md). `trainable` is filled after the
  // replica's first call when `known` is false.
  static detail::ReplicaStep forward_backward(Model& replica, const Compiled& c, const Tensors& x,
                                              std::vector<Tensor> targets, std::vector<Variable>& trainable,
                                              bool& known, double loss_scale);
  // The epochs of fit() on either overload's batches (models/src/fit_loop.cpp).
  History run_epochs(const FitOptions& o, detail::BatchFeed& feed, const detail::TrainPlan& plan);
  Strategy& step_strategy() const;      // the model's strategy, or a DefaultStrategy when it has none
  Replication& replication();           // made on first use (one replica: this model)
  bool replicated() const;              // a strategy with more than one replica
  void build_replicas(const Tensors& sample_x);  // every local copy called once, so its weights exist
  // Combines metric states over the processes: the strategy's way, or `combine`'s when given.
  void reduce_metric_states(const std::function<void(std::vector<double>&)>& combine = {});
  // Under a PipelineStrategy (models/src/pipeline_stage.cpp, Note [Pipeline stages]): one step of
  // this rank's stage, and bringing every stage's weights to every rank after training changed
  // them (before evaluate, predict, saving and each epoch's end).
  struct Pipeline;
  std::map<std::string, double> run_pipeline_step(const Tensors& x, const Tensors& y, PipelineStrategy& strategy);
  Pipeline& pipeline_stage(const Tensors& x, PipelineStrategy& strategy);
  std::vector<Tensor> run_segments(const Pipeline& pl, int first, int end, const std::vector<Tensor>& in);
  void settle_pipeline() const;
  // Under a ShardedStrategy that splits tensors (models/src/spmd_step.cpp, Note [Partitioned
  // programs]): one step as an SpmdProgram traced from the model and its losses, and the split
  // weights gathered whole again (called by settle_pipeline at the same points).
  struct Spmd;
  std::map<std::string, double> run_spmd_step(const Tensors& x, const Tensors& y, ShardedStrategy& strategy);
  void settle_spmd() const;
  std::map<std::string, double> run_test_step(const Tensors& x, const Tensors& y);
  // Shows a step's final gradients (averaged over replicas, in each variable's grad()) to the
  // observer fit() installs, just before the optimizer applies and clears them.
  void update_slices(Compiled& c, const ShardUpdate& u);
  void observe_gradients(const std::vector<Variable>& trainable) {
    if (gradient_observer_) gradient_observer_(trainable);
  }
  std::map<std::string, double> collect_logs(const std::string& prefix = "") const;
  void reset_metrics();

  bool functional_ = false;
  std::shared_ptr<Graph> graph_;
  std::vector<std::string> input_names_;
  std::vector<std::string> output_names_;
  std::vector<std::shared_ptr<Layer>> graph_layers_;
  bool compiled_ = false;
  std::shared_ptr<Optimizer> optimizer_;
  std::shared_ptr<Compiled> compiled_state_;
  Strategy* strategy_ = nullptr;
  std::shared_ptr<Replication> replication_;
  std::shared_ptr<Pipeline> pipeline_;
  std::shared_ptr<Spmd> spmd_;
  std::function<void(const std::vector<Variable>&)> gradient_observer_;  // set by fit() for its callbacks
  bool check_gradients_ = false;  // FitOptions::check_gradients, for the fit() running now
  CompileOptions compile_options_;  // what compile() was given, for save_model's compile config
};

// Builds a model for data-parallel training: inside a MirroredStrategy scope, build() runs once
// per local replica (it must make the same architecture each time) and replica 0 is returned;
// compile() and fit() on it drive the others. Elsewhere (MultiWorkerMirroredStrategy, no
// strategy) it is build().
std::shared_ptr<Model> replicate_model(const std::function<std::shared_ptr<Model>()>& build);

class Sequential : public Model {
 public:
  explicit Sequential(std::vector<std::shared_ptr<Layer>> layers = {}, LayerOptions options = {});
  void add(std::shared_ptr<Layer> layer);
  void pop();
  Tensors call(const Tensors& inputs) override;
  Tensor call(const Tensor& x) override;
  const std::vector<std::shared_ptr<Layer>>& stack() const { return stack_; }

 private:
  std::vector<std::shared_ptr<Layer>> stack_;
};

struct InputOptions {
  DType dtype = DType::F32;
  std::string name;        // default input_1, input_2, ... (Keras 2)
  int64_t batch_size = -1;
};

// A symbolic input of `shape` (without the batch dim), like keras.Input.
Tensor Input(const Shape& shape, InputOptions options = {});

// A layer that declares a Sequential model's input shape: Sequential({InputLayer({784}), ...}).
class InputLayer : public Layer {
 public:
  explicit InputLayer(Shape shape, InputOptions options = {});
  Tensor call(const Tensor& x) override;
  const Shape& shape() const { return shape_; }
  Json get_config() const override;

 private:
  Shape shape_;
};
std::shared_ptr<InputLayer> make_input_layer(Shape shape, InputOptions options = {});

}  // namespace meshflow
