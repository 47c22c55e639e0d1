// compile(), fit(), evaluate(), predict() and the per-batch steps they run.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>
#include <random>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/shape.h"
#include "meshflow/models/model.h"
#include "meshflow/models/regularizers.h"
#include "progbar.h"
#include "model_state.h"

namespace meshflow {

// Specs -------------------------------------------------------------------------------------------

std::shared_ptr<Loss> LossSpec::for_output(const std::string& output, size_t n_outputs) const {
  if (all_loss_) return all_loss_;
  if (!all_.empty()) return losses::get(all_);
  if (auto it = per_output_loss_.find(output); it != per_output_loss_.end()) return it->second;
  if (auto it = per_output_.find(output); it != per_output_.end()) return losses::get(it->second);
  return nullptr;
}

std::vector<std::string> LossSpec::named_outputs() const {
  std::vector<std::string> n;
  for (const auto& [k, v] : per_output_) n.push_back(k);
  for (const auto& [k, v] : per_output_loss_) n.push_back(k);
  return n;
}

std::vector<std::string> MetricsSpec::for_output(const std::string& output) const {
  if (!all_.empty()) return all_;
  auto it = per_output_.find(output);
  return it == per_output_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string> MetricsSpec::named_outputs() const {
  std::vector<std::string> n;
  for (const auto& [k, v] : per_output_) n.push_back(k);
  return n;
}

std::shared_ptr<Optimizer> OptimizerSpec::resolve() const { return optimizer_ ? optimizer_ : optimizers::get(name_); }

const std::vector<double>& History::operator[](const std::string& key) const {
  auto it = history.find(key);
  if (it == history.end()) {
    std::string keys;
    for (const auto& [k, v] : history) keys += (keys.empty() ? "" : ", ") + k;
    MF_THROW("History has no key '", key, "' (keys: ", keys, ")");
  }
  return it->second;
}

// Compiled state ----------------------------------------------------------------------------------

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

void Model::compile(CompileOptions options) {
  compile_options_ = options;
  auto c = std::make_shared<Compiled>();
  optimizer_ = options.optimizer.resolve();
  c->outputs = output_names();
  const size_t n = c->outputs.size();
  for (const auto& key : options.loss.named_outputs())
    MF_CHECK(std::find(c->outputs.begin(), c->outputs.end(), key) != c->outputs.end(), "compile: a loss is given for '",
             key, "', which is not an output of model '", name(), "' (outputs: ", join(c->outputs), ")");
  for (const auto& key : options.metrics.named_outputs())
    MF_CHECK(std::find(c->outputs.begin(), c->outputs.end(), key) != c->outputs.end(), "compile: metrics are given for '",
             key, "', which is not an output of model '", name(), "' (outputs: ", join(c->outputs), ")");
  for (const auto& [key, w] : options.loss_weights)
    MF_CHECK(std::find(c->outputs.begin(), c->outputs.end(), key) != c->outputs.end(), "compile: a loss weight is given for '",
             key, "', which is not an output of model '", name(), "' (outputs: ", join(c->outputs), ")");
  MF_CHECK(!options.loss.empty(), "compile: no loss given for model '", name(), "'");
  bool any_loss = false;
  for (size_t i = 0; i < n; ++i) {
    const std::string& out = c->outputs[i];
    auto loss = options.loss.for_output(out, n);
    any_loss = any_loss || loss != nullptr;
    c->losses.push_back(loss);
    auto w = options.loss_weights.find(out);
    c->loss_weights.push_back(w == options.loss_weights.end() ? 1.0 : w->second);
    c->output_losses.emplace_back(out + "_loss");
    int64_t dim = -1;
    if (i < output_shapes().size() && !output_shapes()[i].empty()) dim = output_shapes()[i].back();
    std::vector<std::shared_ptr<Metric>> ms;
    for (const auto& mname : options.metrics.for_output(out)) {
      auto m = metrics::get(mname, loss ? loss->name() : "", dim);
      m->set_name(n > 1 ? out + "_" + mname : mname);
      ms.push_back(m);
    }
    c->metrics.push_back(ms);
  }
  MF_CHECK(any_loss, "compile: the loss names none of model '", name(), "''s outputs (", join(c->outputs), ")");
  compiled_state_ = c;
  compiled_ = true;
  // Keras: a model compiled inside a strategy's scope trains under it from then on.
  if (Strategy* s = current_strategy()) strategy_ = s;
  // The trainable list may have changed (Keras: freezing takes effect at compile): the next step
  // makes new gradient averagers.
  if (replication_) replication_->group.release_averagers();
}

std::vector<Tensor> Model::targets_for(const Tensors& y, size_t n_outputs) const {
  const auto& outs = compiled_state_->outputs;
  std::vector<Tensor> t;
  if (y.named()) {
    for (size_t i = 0; i < n_outputs; ++i) {
      const std::string& o = i < outs.size() ? outs[i] : std::to_string(i);
      if (!compiled_state_->losses[i] && !y.has(o)) {
        t.emplace_back();
        continue;
      }
      MF_CHECK(y.has(o), "model '", name(), "': no target given for output '", o, "' (targets: ", join(y.names()), ")");
      t.push_back(y[o]);
    }
    return t;
  }
  MF_CHECK(y.size() == n_outputs, "model '", name(), "' has ", n_outputs, " output(s) (", join(outs), ") but ",
           y.size(), " target(s) were given");
  return y.list();
}

void Model::reset_metrics() {
  auto& c = *compiled_state_;
  c.loss.reset_state();
  for (auto& m : c.output_losses) m.reset_state();
  for (auto& ms : c.metrics)
    for (auto& m : ms) m->reset_state();
}

std::map<std::string, double> Model::collect_logs(const std::string& prefix) const {
  const auto& c = *compiled_state_;
  std::map<std::string, double> logs;
  logs[prefix + "loss"] = c.loss.result();
  if (c.outputs.size() > 1)
    for (size_t i = 0; i < c.outputs.size(); ++i)
      if (c.losses[i]) logs[prefix + c.output_losses[i].name()] = c.output_losses[i].result();
  for (const auto& ms : c.metrics)
    for (const auto& m : ms) logs[prefix + m->name()] = m->result();
  return logs;
}

detail::ReplicaStep Model::forward_backward(Model& model, const Compiled& c, const Tensors& x,
                                           std::vector<Tensor> targets, std::vector<Variable>& trainable,
                                           bool& have_trainable, double loss_scale) {
  detail::ReplicaStep r;
  r.output_losses.assign(c.outputs.size(), 0.0);
  Tensor data_loss, reg_loss;
  {
    TrainingScope training(true);
    model.clear_losses();
    r.pred = model(x);
    MF_CHECK(r.pred.size() == c.outputs.size(), "model '", model.name(), "' returned ", r.pred.size(),
             " outputs but was compiled for ", c.outputs.size());
    r.targets = std::move(targets);
    for (size_t i = 0; i < r.pred.size(); ++i) {
      if (!c.losses[i]) continue;
      Tensor li = (*c.losses[i])(r.targets[i], r.pred[i]);
      r.output_losses[i] = li.item();
      Tensor weighted = c.loss_weights[i] == 1.0 ? li : li * c.loss_weights[i];
      data_loss = data_loss.defined() ? data_loss + weighted : weighted;
    }
    for (const auto& l : model.losses()) data_loss = data_loss + l;
    if (!have_trainable) {  // weights exist once the model has been called
      trainable = model.trainable_weights();
      have_trainable = true;
    }
    for (const auto& v : trainable)
      if (v.regularizer()) reg_loss = reg_loss.defined() ? reg_loss + (*v.regularizer())(v) : (*v.regularizer())(v);
  }
  r.total = data_loss.item() + (reg_loss.defined() ? reg_loss.item() : 0.0);
  Tensor objective = loss_scale == 1.0 ? data_loss : data_loss * loss_scale;
  if (reg_loss.defined()) objective = objective + reg_loss;
  MF_CHECK(objective.requires_grad() || trainable.empty(), "model '", model.name(),
           "': the loss does not depend on any trainable weight");
  if (objective.requires_grad()) objective.backward();
  return r;
}

std::map<std::string, double> Model::run_test_step(const Tensors& x, const Tensors& y) {
  auto& c = *compiled_state_;
  NoGradGuard no_grad;
  TrainingScope inference(false);
  clear_losses();
  Tensors pred = (*this)(x);
  auto targets = targets_for(y, pred.size());
  double total = 0, batch = static_cast<double>(pred[0].size(0));
  for (size_t i = 0; i < pred.size(); ++i) {
    if (!c.losses[i]) continue;
    double li = (*c.losses[i])(targets[i], pred[i]).item();
    c.output_losses[i].update(li, batch);
    total += li * c.loss_weights[i];
  }
  // The weights the train step cached, when it ran; evaluating a model never trained lists them.
  for (const auto& v : c.have_trainable ? c.trainable : trainable_weights())
    if (v.regularizer()) total += (*v.regularizer())(v).item();
  for (const auto& l : losses()) total += l.item();
  c.loss.update(total, batch);
  for (size_t i = 0; i < pred.size(); ++i)
    for (auto& m : c.metrics[i]) m->update_state(targets[i], pred[i]);
  return collect_logs();
}

std::map<std::string, double> Model::train_on_batch(const Tensors& x, const Tensors& y) {
  MF_CHECK(compiled_, "model '", name(), "' must be compiled before training: call compile() first");
  reset_metrics();
  // Under a strategy x is this process's share; the processes' shares are assumed equal.
  MF_CHECK(!x.empty(), "train_on_batch: model '", name(), "' was given no inputs");
  const int64_t n = x[0].size(0);
  return run_train_step(x, y, n * step_strategy().data_shards(), n);
}

std::map<std::string, double> Model::test_on_batch(const Tensors& x, const Tensors& y) {
  MF_CHECK(compiled_, "model '", name(), "' must be compiled before evaluation: call compile() first");
  reset_metrics();
  settle_pipeline();
  return run_test_step(x, y);
}

Tensors Model::predict_on_batch(const Tensors& x) {
  settle_pipeline();
  NoGradGuard no_grad;
  TrainingScope inference(false);
  return (*this)(x);
}

}  // namespace meshflow
