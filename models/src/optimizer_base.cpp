// Optimizer: learning rate and schedule, gradient checks and clipping, the step counter; slot tables.
#include <cmath>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/optim.h"
#include "optimizer_base.h"

namespace meshflow {

Optimizer::Optimizer(std::string name, OptimizerOptions options, double default_lr)
    : options_(std::move(options)), name_(std::move(name)) {
  lr_ = options_.learning_rate < 0 ? default_lr : options_.learning_rate;
  MF_CHECK(options_.clipnorm >= 0 && options_.clipvalue >= 0 && options_.global_clipnorm >= 0, "optimizer '", name_,
           "': clipnorm, clipvalue and global_clipnorm must be >= 0 (0 is off), got ", options_.clipnorm, ", ",
           options_.clipvalue, ", ", options_.global_clipnorm);
  MF_CHECK(options_.gradient_accumulation_steps >= 1, "optimizer '", name_,
           "': gradient_accumulation_steps must be >= 1 (1 is off), got ", options_.gradient_accumulation_steps);
  int set = (options_.clipnorm > 0) + (options_.clipvalue > 0) + (options_.global_clipnorm > 0);
  MF_CHECK(set <= 1, "optimizer '", name_, "': only one of clipnorm, clipvalue and global_clipnorm can be set (as in ",
           "Keras), got clipnorm=", options_.clipnorm, ", clipvalue=", options_.clipvalue,
           ", global_clipnorm=", options_.global_clipnorm);
}

double Optimizer::learning_rate() const { return options_.schedule ? (*options_.schedule)(iterations_) : lr_; }

void Optimizer::set_learning_rate(double lr) {
  MF_CHECK(lr >= 0, "optimizer '", name_, "': the learning rate must be >= 0, got ", lr);
  options_.schedule.reset();
  lr_ = lr;
}

Json Optimizer::get_config() const {
  Json c{{"name", name_}};
  if (options_.schedule) c["learning_rate"] = options_.schedule->get_config();
  else c["learning_rate"] = lr_;
  if (options_.clipnorm > 0) c["clipnorm"] = options_.clipnorm;
  if (options_.clipvalue > 0) c["clipvalue"] = options_.clipvalue;
  if (options_.global_clipnorm > 0) c["global_clipnorm"] = options_.global_clipnorm;
  if (options_.gradient_accumulation_steps > 1) c["gradient_accumulation_steps"] = options_.gradient_accumulation_steps;
  return c;
}

void Optimizer::step(const std::vector<Variable>& variables) {
  std::vector<Tensor> grads;
  grads.reserve(variables.size());
  for (const auto& v : variables) grads.push_back(v.grad());
  apply_gradients(grads, variables);
  for (Tensor v : variables) v.zero_grad();  // a handle copy: the gradient lives in the shared impl
}

void Optimizer::apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable>& variables,
                                const std::vector<double>* squared_norms) {
  MF_CHECK(grads.size() == variables.size(), "optimizer '", name_, "': ", grads.size(), " gradients for ",
           variables.size(), " variables; give one gradient per variable");
  MF_CHECK(!squared_norms || squared_norms->size() == grads.size(), "optimizer '", name_, "': ",
           squared_norms ? squared_norms->size() : 0, " squared norms for ", grads.size(), " gradients");
  auto squared_norm_of = [&](size_t i, const Tensor& gi) {
    return squared_norms ? (*squared_norms)[i] : optim::squared_norm(gi);
  };
  NoGradGuard no_grad;
  const int64_t accumulate = options_.gradient_accumulation_steps;
  std::vector<Tensor> mean;
  if (accumulate > 1) {
    // Note [Gradient accumulation]: the sums live here, per variable of the call; the Nth call
    // applies their mean (clipping and the update see it) and the step counter advances then.
    MF_CHECK(!squared_norms, "optimizer '", name_, "': gradient_accumulation_steps with precomputed gradient norms ",
             "(tensor parallelism, ZeRO) is not supported yet");
    if (accumulated_calls_ == 0) accumulated_.assign(grads.size(), Tensor());
    MF_CHECK(accumulated_.size() == grads.size(), "optimizer '", name_, "': ", grads.size(), " gradients after ",
             accumulated_.size(), " in the calls being accumulated; every call must pass the same variables");
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) continue;
      MF_CHECK(grads[i].shape() == variables[i].shape(), "optimizer '", name_, "': the gradient for '",
               variables[i].name(), "' has shape ", shape_str(grads[i].shape()), " but the variable has shape ",
               shape_str(variables[i].shape()));
      Tensor gi = grads[i].detach().to(variables[i].dtype());
      accumulated_[i] = accumulated_[i].defined() ? accumulated_[i] + gi : gi.clone();
    }
    if (++accumulated_calls_ < accumulate) return;
    mean.resize(accumulated_.size());
    for (size_t i = 0; i < mean.size(); ++i)
      if (accumulated_[i].defined()) mean[i] = accumulated_[i] * (1.0 / static_cast<double>(accumulate));
    accumulated_.clear();
    accumulated_calls_ = 0;
  }
  // From here on: this call's gradients, or the accumulated mean on the Nth call.
  const std::vector<Tensor>& in = accumulate > 1 ? mean : grads;
  const bool clipping = options_.clipnorm > 0 || options_.clipvalue > 0 || options_.global_clipnorm > 0;
  std::vector<Tensor> g(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].defined()) continue;
    const Variable& v = variables[i];
    MF_CHECK(v.defined() && !v.is_symbolic(), "optimizer '", name_, "': variable ", i, " is undefined or symbolic");
    MF_CHECK(in[i].shape() == v.shape(), "optimizer '", name_, "': the gradient for '", v.name(), "' has shape ",
             shape_str(in[i].shape()), " but the variable has shape ", shape_str(v.shape()));
    MF_CHECK(in[i].device() == v.device(), "optimizer '", name_, "': the gradient for '", v.name(), "' is on ",
             in[i].device().str(), " but the variable is on ", v.device().str());
    // Broadcast views (stride 0) and other layouts become dense; clipping never edits the caller's tensor.
    Tensor gi = in[i].detach();
    if (gi.dtype() != v.dtype()) gi = gi.to(v.dtype());
    else if (!gi.is_contiguous()) gi = gi.contiguous();
    else if (clipping) gi = gi.clone();
    g[i] = gi;
  }
  if (options_.global_clipnorm > 0) {
    // tf.clip_by_global_norm: every gradient scaled by clip / max(global norm, clip).
    double total = 0;
    for (size_t i = 0; i < g.size(); ++i)
      if (g[i].defined()) total += squared_norm_of(i, g[i]);
    double norm = std::sqrt(total);
    if (norm > options_.global_clipnorm)
      for (auto& gi : g)
        if (gi.defined()) optim::scale_(gi, options_.global_clipnorm / norm);
  } else if (options_.clipnorm > 0) {
    for (size_t i = 0; i < g.size(); ++i) {
      Tensor& gi = g[i];
      if (!gi.defined()) continue;
      double norm = std::sqrt(squared_norm_of(i, gi));
      if (norm > options_.clipnorm) optim::scale_(gi, options_.clipnorm / norm);
    }
  } else if (options_.clipvalue > 0) {
    for (auto& gi : g)
      if (gi.defined()) optim::clamp_(gi, -options_.clipvalue, options_.clipvalue);
  }
  const double lr = learning_rate();
  // Updates see the 1-based count of this step (Adam's bias correction uses it).
  const int64_t step = iterations_ + 1;
  update_all(variables, g, lr, step);
  ++iterations_;
}

void Optimizer::update_all(const std::vector<Variable>& vars, std::vector<Tensor>& grads, double lr, int64_t step) {
  for (size_t i = 0; i < vars.size(); ++i) {
    if (!grads[i].defined()) continue;
    Variable v = vars[i];
    update(v, grads[i], lr, step);
  }
}

namespace detail {

SlotOptimizer::SlotOptimizer(std::string name, OptimizerOptions options, double default_lr,
                             std::vector<std::string> slot_names)
    : Optimizer(std::move(name), std::move(options), default_lr), slot_names_(std::move(slot_names)) {}

std::vector<Tensor>& SlotOptimizer::slots_for(const Variable& var) {
  auto it = index_.find(var.impl());
  if (it != index_.end()) return entries_[it->second].slots;
  Entry e{var, {}};
  for (size_t s = 0; s < slot_names_.size(); ++s) {
    Tensor t = full(var.shape(), initial_value(s), {.dtype = var.dtype(), .device = var.device()});
    auto p = pending_.find(var.name() + "/" + slot_names_[s]);
    if (p != pending_.end()) {
      t.copy_(fit_slot(var, p->second, p->first));
      pending_.erase(p);
    }
    e.slots.push_back(t);
  }
  index_[var.impl()] = entries_.size();
  entries_.push_back(std::move(e));
  return entries_.back().slots;
}

Tensor SlotOptimizer::fit_slot(const Variable& var, const Tensor& saved, const std::string& key) const {
  if (saved.shape() == var.shape()) return saved;
  // A slot saved for the whole weight, loaded into a slice of it (ZeRO), and the reverse case
  // never happens: saving gathers slices into whole slots first.
  if (var.is_slice() && saved.shape() == var.whole_shape())
    return saved.contiguous().reshape({saved.numel()}).slice(0, var.slice_offset(), var.slice_offset() + var.numel());
  // A slot saved for the whole weight, loaded into this device's part (tensor parallelism).
  if (var.is_part() && saved.shape() == var.whole_shape()) return var.take_part(saved);
  MF_THROW("optimizer '", name(), "': the saved slot '", key, "' has shape ", shape_str(saved.shape()),
           " but the variable has shape ", shape_str(var.is_slice() || var.is_part() ? var.whole_shape() : var.shape()));
}

std::vector<SlotOptimizer::SlotEntry> SlotOptimizer::slot_entries() const {
  std::vector<SlotEntry> out;
  for (const auto& e : entries_)
    for (size_t s = 0; s < slot_names_.size(); ++s) out.push_back({e.var.name() + "/" + slot_names_[s], e.var, e.slots[s]});
  return out;
}

std::vector<std::pair<std::string, Tensor>> SlotOptimizer::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& e : entries_)
    for (size_t s = 0; s < slot_names_.size(); ++s) out.emplace_back(e.var.name() + "/" + slot_names_[s], e.slots[s]);
  return out;
}

void SlotOptimizer::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  for (const auto& [key, value] : state) {
    bool placed = false;
    for (auto& e : entries_)
      for (size_t s = 0; s < slot_names_.size() && !placed; ++s) {
        if (e.var.name() + "/" + slot_names_[s] != key) continue;
        e.slots[s].copy_(fit_slot(e.var, value, key));
        placed = true;
      }
    if (!placed) pending_[key] = value.detach().clone();
  }
}

}  // namespace detail
}  // namespace meshflow
