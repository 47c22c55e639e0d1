// Optimizers: update variables from their gradients, with learning-rate schedules and clipping.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "meshflow/models/layer.h"

namespace meshflow {

// A learning rate as a function of the step (0-based iterations done so far).
class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  virtual double operator()(int64_t step) const = 0;
  virtual Json get_config() const = 0;
};

namespace schedules {
std::shared_ptr<LearningRateSchedule> ExponentialDecay(double initial, int64_t decay_steps, double decay_rate,
                                                       bool staircase = false);
std::shared_ptr<LearningRateSchedule> PiecewiseConstantDecay(std::vector<int64_t> boundaries, std::vector<double> values);
// Keras 3's CosineDecay: with warmup_steps > 0 the rate first climbs linearly from `initial` to
// `warmup_target` (default: initial) over warmup_steps, then decays from warmup_target by a cosine
// over decay_steps to alpha x warmup_target.
std::shared_ptr<LearningRateSchedule> CosineDecay(double initial, int64_t decay_steps, double alpha = 0.0,
                                                  int64_t warmup_steps = 0, double warmup_target = -1);
std::shared_ptr<LearningRateSchedule> InverseTimeDecay(double initial, int64_t decay_steps, double decay_rate,
                                                       bool staircase = false);
// The schedule a get_config() describes ({"class_name": "ExponentialDecay", ...}).
std::shared_ptr<LearningRateSchedule> from_config(const Json& config);
}  // namespace schedules

struct OptimizerOptions {
  double learning_rate = -1;   // -1: the optimizer's Keras default
  std::shared_ptr<LearningRateSchedule> schedule;  // overrides learning_rate when set
  double clipnorm = 0;         // per-variable gradient norm clip (0: off)
  double clipvalue = 0;        // elementwise clip to [-v, v] (0: off)
  double global_clipnorm = 0;  // clip by the norm of all gradients together (0: off)
  // Keras 3's gradient_accumulation_steps: gradients of N calls are averaged and applied once, on
  // every Nth call (clipping sees the average); the step counter and schedules count updates.
  int64_t gradient_accumulation_steps = 1;
};

class Optimizer {
 public:
  Optimizer(std::string name, OptimizerOptions options, double default_lr);
  virtual ~Optimizer() = default;
  // Applies each variable's .grad() (variables without a gradient are skipped), then clears the
  // gradients. Clipping applies first; the step counter advances once per call.
  void step(const std::vector<Variable>& variables);
  // The same with explicit gradients (grads[i] for vars[i]; undefined entries are skipped).
  // `squared_norms`, when given, holds each gradient's squared norm over the whole weight (for
  // gradients of slices, ZeRO: summed over the ranks), which clipnorm and global_clipnorm use.
  void apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable>& variables,
                       const std::vector<double>* squared_norms = nullptr);
  int64_t iterations() const { return iterations_; }
  void set_iterations(int64_t n) { iterations_ = n; }
  double learning_rate() const;          // the value for the current step
  void set_learning_rate(double lr);     // replaces a schedule by a constant
  const std::string& name() const { return name_; }
  // Slot tensors (moments, accumulators) by "<variable name>/<slot>", for checkpoints.
  virtual std::vector<std::pair<std::string, Tensor>> state() const = 0;
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& state) = 0;
  // state() with the variable each slot belongs to (saving gathers the slots of slices, ZeRO).
  struct SlotEntry {
    std::string key;
    Variable var;
    Tensor value;
  };
  virtual std::vector<SlotEntry> slot_entries() const { return {}; }
  virtual Json get_config() const;

 protected:
  // Updates one variable in place (no autograd) with its (clipped) gradient; `slot` is the
  // variable's index in this optimizer's slot table.
  virtual void update(Variable& var, const Tensor& grad, double lr, int64_t step) = 0;
  // Updates every variable of a step with grads[i] for vars[i], skipping those whose gradient is
  // undefined; it may move the gradients out. The default calls update() for each. An optimizer
  // with a multi-parameter fused update overrides it (one op call per step).
  virtual void update_all(const std::vector<Variable>& vars, std::vector<Tensor>& grads, double lr, int64_t step);
  OptimizerOptions options_;

 private:
  std::string name_;
  double lr_;
  int64_t iterations_ = 0;
  // Gradient accumulation: the running sums (one per variable of the last call) and how many
  // calls they hold.
  std::vector<Tensor> accumulated_;
  int64_t accumulated_calls_ = 0;
};

namespace optimizers {
struct SGDOptions : OptimizerOptions { double momentum = 0.0; bool nesterov = false; };
struct AdamOptions : OptimizerOptions { double beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7; bool amsgrad = false; };
struct AdamWOptions : AdamOptions { double weight_decay = 0.004; };
struct RMSpropOptions : OptimizerOptions { double rho = 0.9, momentum = 0.0, epsilon = 1e-7; bool centered = false; };
struct AdagradOptions : OptimizerOptions { double initial_accumulator_value = 0.1, epsilon = 1e-7; };
std::shared_ptr<Optimizer> SGD(SGDOptions options = {});
std::shared_ptr<Optimizer> Adam(AdamOptions options = {});
std::shared_ptr<Optimizer> AdamW(AdamWOptions options = {});
std::shared_ptr<Optimizer> RMSprop(RMSpropOptions options = {});
std::shared_ptr<Optimizer> Adagrad(AdagradOptions options = {});
// By Keras name ("sgd", "adam", "adamw", "rmsprop", "adagrad") with Keras's defaults.
std::shared_ptr<Optimizer> get(const std::string& name);
// The optimizer an Optimizer::get_config() describes: its "name" (as get()) and options, the
// learning rate a number or a schedule's config. Throws naming an unknown optimizer or schedule.
std::shared_ptr<Optimizer> from_config(const Json& config);
}  // namespace optimizers

}  // namespace meshflow
