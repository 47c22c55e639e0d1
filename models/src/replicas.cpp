// A model's training step as it hands it to its strategy (Note [How a step flows],
// parallel/step.h): the local copies of the model, the per-replica forward/backward closure, the
// update, and the metrics of the step's replicas. Where rows go and how gradients are reduced is
// the strategy's (parallel/src/data_parallel.cpp).

#include <cmath>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/optim.h"
#include "meshflow/parallel/pipeline.h"
#include "meshflow/parallel/sharded.h"
#include "model_state.h"

namespace meshflow {
namespace {

// Rows [begin, begin + count) of every tensor.
Tensors row_range(const Tensors& t, int64_t begin, int64_t count) {
  Tensors out;
  for (size_t i = 0; i < t.size(); ++i) out.push_back(t[i].slice(0, begin, begin + count), t.names()[i]);
  return out;
}

std::vector<Tensor> row_range(const std::vector<Tensor>& t, int64_t begin, int64_t count) {
  std::vector<Tensor> out;
  for (const auto& x : t)
    out.push_back(x.defined() ? x.slice(0, begin, begin + count) : x);
  return out;
}

std::vector<Tensor> as_tensors(const std::vector<Variable>& vars) { return {vars.begin(), vars.end()}; }

// FitOptions::check_gradients: the first weight, in the model's order, whose gradient holds a NaN
// or an infinity stops training, naming its layer (the part of its name before the last '/').
void check_finite_gradients(const std::vector<Variable>& trainable) {
  for (const auto& v : trainable) {
    if (!v.grad().defined()) continue;
    Tensor g = v.grad().contiguous();
    if (g.dtype() != DType::F32 && g.dtype() != DType::F64) g = g.to(DType::F32);
    const double norm = optim::squared_norm(g);
    if (std::isfinite(norm)) continue;
    const std::string& name = v.name();
    const size_t slash = name.rfind('/');
    MF_THROW("fit(check_gradients): the gradient of '", name, "' is not finite (it holds a NaN or an infinity): layer '",
             slash == std::string::npos ? name : name.substr(0, slash),
             "' is the first layer whose gradient went non-finite; look at its inputs and at the loss");
  }
}

// One copy of a model as a strategy sees it; `trainable` gives the list the step caches.
class ModelReplica final : public Replica {
 public:
  ModelReplica(Model& model, std::function<const std::vector<Variable>&()> trainable)
      : model_(model), trainable_(std::move(trainable)) {}
  std::vector<Tensor> weights() override { return as_tensors(model_.weights()); }
  std::vector<Tensor> trainable_weights() override { return as_tensors(trainable_()); }
  std::vector<Tensor> non_trainable_weights() override { return as_tensors(model_.non_trainable_weights()); }

 private:
  Model& model_;
  std::function<const std::vector<Variable>&()> trainable_;
};

}  // namespace

std::shared_ptr<Model> replicate_model(const std::function<std::shared_ptr<Model>()>& build) {
  return Model::replicate(build);
}

std::shared_ptr<Model> Model::replicate(const std::function<std::shared_ptr<Model>()>& build) {
  Strategy* s = current_strategy();
  auto first = build();
  MF_CHECK(first != nullptr, "replicate_model: build() returned null");
  if (!s || s->num_local_replicas() == 1) return first;
  MF_CHECK(!first->replication_, "replicate_model: build() returned a model that already has replicas");
  first->strategy_ = s;
  first->replication_ = std::make_shared<Replication>();
  for (int r = 1; r < s->num_local_replicas(); ++r) {
    auto other = build();
    MF_CHECK(other != nullptr && other.get() != first.get(), "replicate_model: build() must return a new model ",
             "each time (replica ", r, " got ", other ? "the same one" : "null", ")");
    first->replication_->others.push_back(other);
  }
  first->replication_->trainable.resize(first->replication_->others.size());
  return first;
}

bool Model::replicated() const { return strategy_ != nullptr && strategy_->num_replicas_in_sync() > 1; }

Strategy& Model::step_strategy() const {
  static DefaultStrategy none;
  return strategy_ ? *strategy_ : none;
}

Model::Replication& Model::replication() {
  if (!replication_) replication_ = std::make_shared<Replication>();
  auto& rep = *replication_;
  if (rep.group.replicas.empty()) {
    rep.group.replicas.push_back(std::make_shared<ModelReplica>(*this, [this]() -> const std::vector<Variable>& {
      auto& c = *compiled_state_;
      if (!c.have_trainable) {
        c.trainable = trainable_weights();
        c.have_trainable = true;
      }
      return c.trainable;
    }));
    for (size_t r = 0; r < rep.others.size(); ++r)
      rep.group.replicas.push_back(
          std::make_shared<ModelReplica>(*rep.others[r], [&rep, r]() -> const std::vector<Variable>& {
            auto& t = rep.trainable[r];
            if (!t.known) t = {rep.others[r]->trainable_weights(), true};
            return t.weights;
          }));
  }
  return rep;
}

void Model::build_replicas(const Tensors& sample_x) {
  auto& rep = replication();
  if (rep.built) return;
  Tensors one = row_range(sample_x, 0, 1);
  predict_on_batch(one);
  for (auto& m : rep.others) m->predict_on_batch(one);
  rep.built = true;
}

std::map<std::string, double> Model::run_train_step(const Tensors& x, const Tensors& y, int64_t global_rows,
                                                    int64_t local_rows) {
  auto& c = *compiled_state_;
  Strategy& s = step_strategy();
  if (auto* pipeline = dynamic_cast<PipelineStrategy*>(&s)) return run_pipeline_step(x, y, *pipeline);
  if (auto* sharded = dynamic_cast<ShardedStrategy*>(&s); sharded && sharded->partitioned())
    return run_spmd_step(x, y, *sharded);
  const int local = s.num_local_replicas();
  MF_CHECK(local == 1 || (replication_ && !replication_->others.empty()), "model '", name(), "' trains under ",
           s.name(), " with ", local, " local replicas but has one copy: build it with replicate_model(build) ",
           "inside the strategy's scope");
  auto& rep = replication();
  if (s.num_replicas_in_sync() > 1) build_replicas(x);
  std::vector<Tensor> targets = targets_for(y, c.outputs.size());

  std::vector<detail::ReplicaStep> steps(static_cast<size_t>(rep.group.size()));
  TrainStep step;
  step.global_rows = global_rows;
  step.local_rows = local_rows;
  step.forward_backward = [&](const ReplicaShare& share) {
    const int r = share.replica;
    Model& m = r == 0 ? *this : *rep.others[static_cast<size_t>(r) - 1];
    auto& trainable = r == 0 ? c.trainable : rep.trainable[static_cast<size_t>(r) - 1].weights;
    bool& known = r == 0 ? c.have_trainable : rep.trainable[static_cast<size_t>(r) - 1].known;
    auto& out = steps[static_cast<size_t>(r)];
    if (rep.group.size() == 1 && share.begin == 0 && !x.empty() && share.count == x[0].size(0)) {
      // One replica on every row (the common case): no copies of the batch's lists.
      out = forward_backward(m, c, x, std::move(targets), trainable, known, share.loss_scale);
    } else {
      out = forward_backward(m, c, row_range(x, share.begin, share.count),
                             row_range(targets, share.begin, share.count), trainable, known, share.loss_scale);
    }
    out.rows = share.placeholder ? 0 : share.count;
  };
  step.update = [&] {
    if (check_gradients_) check_finite_gradients(c.trainable);
    observe_gradients(c.trainable);
    optimizer_->step(c.trainable);
  };
  step.update_shard = [&](const ShardUpdate& u) { update_slices(c, u); };
  s.run_step(rep.group, step);

  NoGradGuard no_grad;
  for (const auto& st : steps) {
    if (st.rows == 0) continue;
    const double batch = double(st.rows);
    c.loss.update(st.total, batch);
    for (size_t i = 0; i < st.pred.size(); ++i) {
      if (c.losses[i]) c.output_losses[i].update(st.output_losses[i], batch);
      for (auto& m : c.metrics[i]) m->update_state(st.targets[i], st.pred[i]);
    }
  }
  return collect_logs();
}

// The ZeRO update (Note [ZeRO] in parallel/src/sharded.cpp): the optimizer sees this rank's
// slice of each weight as a variable of its own (a view into the weight, named as it), so its
// slots hold 1/N of the elements; norms for clipping and the finite check are summed over ranks.
void Model::update_slices(Compiled& c, const ShardUpdate& u) {
  MF_CHECK(u.offset.size() == c.trainable.size() && u.count.size() == c.trainable.size() &&
               u.grads.size() == c.trainable.size(),
           "model '", name(), "': the strategy sharded ", u.count.size(), " weights but the model trains ",
           c.trainable.size());
  const bool shards = !u.values.empty();
  MF_CHECK(!shards || u.values.size() == c.trainable.size(), "model '", name(), "': the strategy gave ",
           u.values.size(), " shards for ", c.trainable.size(), " weights");
  bool fresh = c.slices.size() != c.trainable.size();
  for (size_t i = 0; i < c.slices.size() && !fresh; ++i)
    fresh = c.slices[i].slice_offset() != u.offset[i] || c.slices[i].numel() != u.count[i] ||
            (shards && c.slices[i].impl()->storage != u.values[i].impl()->storage);
  if (fresh) {
    NoGradGuard no_grad;
    c.slices.clear();
    for (const auto& w : c.trainable) {
      const size_t i = c.slices.size();
      Tensor view;
      if (shards) {
        view = u.values[i];
      } else {
        MF_CHECK(w.is_contiguous(), "model '", name(), "': weight '", w.name(), "' is not contiguous; ZeRO updates ",
                 "slices of it in place");
        view = w.detach().reshape({w.numel()}).slice(0, u.offset[i], u.offset[i] + u.count[i]);
      }
      Variable v(view, w.name(), true);
      v.set_slice_of(w.shape(), u.offset[i]);
      c.slices.push_back(v);
    }
  }
  std::vector<double> squared(u.grads.size(), 0.0);
  for (size_t i = 0; i < u.grads.size(); ++i) {
    Tensor g = u.grads[i];
    if (g.numel() == 0) continue;
    if (g.dtype() != DType::F32 && g.dtype() != DType::F64) g = g.to(DType::F32);
    squared[i] = optim::squared_norm(g);
  }
  u.sum_over_ranks(squared);
  if (check_gradients_)
    for (size_t i = 0; i < squared.size(); ++i) {
      if (std::isfinite(squared[i])) continue;
      const std::string& wname = c.trainable[i].name();
      const size_t slash = wname.rfind('/');
      MF_THROW("fit(check_gradients): the gradient of '", wname, "' is not finite (it holds a NaN or an infinity): ",
               "layer '", slash == std::string::npos ? wname : wname.substr(0, slash),
               "' is the first layer whose gradient went non-finite; look at its inputs and at the loss");
    }
  optimizer_->apply_gradients(u.grads, c.slices, &squared);
}

void Model::reduce_metric_states(const std::function<void(std::vector<double>&)>& combine) {
  if (!strategy_ || strategy_->num_processes() == 1) return;
  auto& c = *compiled_state_;
  std::vector<Metric*> all{&c.loss};
  for (auto& m : c.output_losses) all.push_back(&m);
  for (auto& ms : c.metrics)
    for (auto& m : ms) all.push_back(m.get());
  std::vector<double> flat;
  std::vector<size_t> sizes;
  for (Metric* m : all) {
    auto st = m->state();
    sizes.push_back(st.size());
    flat.insert(flat.end(), st.begin(), st.end());
  }
  if (combine) combine(flat);
  else strategy_->combine_metric_states(flat);
  size_t at = 0;
  for (size_t k = 0; k < all.size(); ++k) {
    all[k]->set_state(std::vector<double>(flat.begin() + at, flat.begin() + at + sizes[k]));
    at += sizes[k];
  }
}

}  // namespace meshflow
