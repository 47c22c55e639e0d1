// The epoch driver of fit(x, y) and fit(Dataset): callbacks and their order, steps, validation,
// metric states over processes, the gradient hook and History.
#include "fit_loop.h"

#include <algorithm>

#include "meshflow/core/error.h"
#include "model_state.h"

namespace meshflow::detail {
namespace {

// Clears what fit() installed on the model when it ends, however it ends: the gradient observer
// (it refers to this fit's callbacks) and the gradient averagers (their hooks go inert).
struct FitCleanup {
  Model& model;
  std::function<void(Model&)> clear;
  ~FitCleanup() { clear(model); }
};

}  // namespace

std::pair<int64_t, int64_t> share_of(int64_t n, int parts, int p) {
  const int64_t base = n / parts, extra = n % parts;
  return {p * base + std::min<int64_t>(p, extra), base + (p < extra ? 1 : 0)};
}

}  // namespace meshflow::detail

namespace meshflow {

using detail::BatchFeed;
using detail::StepBatch;
using detail::TrainPlan;

History Model::run_epochs(const FitOptions& o, BatchFeed& feed, const TrainPlan& plan) {
  Model& model = *this;
  // Note [Progress through ProgbarLogger]: as Keras, fit() prints through a ProgbarLogger it adds
  // when verbose is on and the caller gave none. It hears on_epoch_begin after the caller's
  // callbacks and on_epoch_end before them, so an epoch's last progress line comes before what
  // callbacks print at its end (a ModelCheckpoint message follows its epoch's line). Keras calls
  // it last in both, which prints such messages above the epoch's final line.
  const std::vector<std::shared_ptr<Callback>>& cbs = o.callbacks;
  std::shared_ptr<Callback> progbar;
  const bool caller_has_progbar = std::any_of(cbs.begin(), cbs.end(), [](const std::shared_ptr<Callback>& cb) {
    return dynamic_cast<callbacks::ProgbarLogger*>(cb.get()) != nullptr;
  });
  if (o.verbose != 0 && !caller_has_progbar) progbar = std::make_shared<callbacks::ProgbarLogger>();

  std::map<std::string, double> params{{"epochs", o.epochs},
                                       {"steps", double(plan.steps_shown)},
                                       {"verbose", double(o.verbose)},
                                       {"do_validation", plan.validation ? 1.0 : 0.0},
                                       {"validation_freq", double(std::max(1, o.validation_freq))}};
  for (const auto& cb : cbs) {
    cb->set_model(&model);
    cb->set_params(params);
  }
  if (progbar) {
    progbar->set_model(&model);
    progbar->set_params(params);
  }
  auto each = [&](const std::function<void(Callback&)>& f) {
    for (const auto& cb : cbs) f(*cb);
    if (progbar) f(*progbar);
  };
  auto each_progbar_first = [&](const std::function<void(Callback&)>& f) {
    if (progbar) f(*progbar);
    for (const auto& cb : cbs) f(*cb);
  };

  int64_t step = 0;
  if (!cbs.empty())
    model.gradient_observer_ = [&cbs, &step](const std::vector<Variable>& trainable) {
      for (const auto& cb : cbs) cb->on_train_batch_gradients(step, trainable);
    };
  detail::FitCleanup cleanup{model, [](Model& m) {
                               m.gradient_observer_ = nullptr;
                               m.check_gradients_ = false;
                               if (m.replication_) m.replication_->group.release_averagers();
                             }};

  check_gradients_ = o.check_gradients;
  History history;
  model.stop_training = false;
  Logs logs;
  each([&](Callback& cb) { cb.on_train_begin(logs); });
  // A callback that restored a checkpoint (BackupAndRestore) says where training resumes.
  int first_epoch = o.initial_epoch;
  for (const auto& cb : cbs) first_epoch = std::max(first_epoch, cb->initial_epoch_override());
  feed.skip_epochs(first_epoch, plan.step_limit);
  for (int epoch = first_epoch; epoch < o.epochs; ++epoch) {
    model.reset_metrics();
    Logs epoch_logs;
    each([&](Callback& cb) { cb.on_epoch_begin(epoch, epoch_logs); });
    for (step = 0; plan.step_limit < 0 || step < plan.step_limit;) {
      std::optional<StepBatch> batch = feed.next(step);
      if (!batch) break;
      Logs batch_logs{{"batch", double(step)}, {"size", double(batch->real_rows)}};
      each([&](Callback& cb) { cb.on_train_batch_begin(step, batch_logs); });
      Logs step_logs = run_train_step(batch->x, batch->y, batch->global_rows, batch->real_rows);
      each([&](Callback& cb) { cb.on_train_batch_end(step, step_logs); });
      ++step;
      if (model.stop_training) break;  // a callback stopped mid-epoch (TerminateOnNaN): end the epoch here
    }
    MF_CHECK(step > 0, plan.caller, ": the data yielded no batches in epoch ", epoch + 1);
    model.reduce_metric_states();
    // Replicas' moving statistics -> their mean (Note [Replica-local statistics]).
    if (replication_) step_strategy().end_epoch(replication_->group);
    settle_pipeline();  // a pipeline's stages -> every rank holds the whole model (checkpoints, validation)
    epoch_logs = model.collect_logs();
    if (plan.validation && (epoch + 1) % std::max(1, o.validation_freq) == 0) {
      auto vl = model.evaluate(plan.validation->first, plan.validation->second,
                               {.batch_size = o.batch_size, .verbose = 0, .callbacks = {}});
      for (const auto& [k, v] : vl) epoch_logs["val_" + k] = v;
    }
    each_progbar_first([&](Callback& cb) { cb.on_epoch_end(epoch, epoch_logs); });
    history.epoch.push_back(epoch);
    for (const auto& [k, v] : epoch_logs) history.history[k].push_back(v);
    if (model.stop_training) break;
  }
  each([&](Callback& cb) { cb.on_train_end(logs); });
  return history;
}

}  // namespace meshflow
