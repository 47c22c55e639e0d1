// Data-parallel steps: replicas, the first sync of their weights, the split of a batch over local
// replicas, gradient averaging and the sums of metric states across processes.

#include <chrono>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/shape.h"
#include "replication.h"

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
  for (const auto& x : t) out.push_back(x.defined() ? x.slice(0, begin, begin + count) : x);
  return out;
}

std::vector<Tensor> as_tensors(const std::vector<Variable>& vars) { return {vars.begin(), vars.end()}; }

}  // namespace

std::shared_ptr<Model> replicate_model(const std::function<std::shared_ptr<Model>()>& build) {
  Strategy* s = current_strategy();
  auto first = build();
  MF_CHECK(first != nullptr, "replicate_model: build() returned null");
  if (!s || s->num_local_replicas() == 1) return first;
  first->strategy_ = s;
  first->replication_ = std::make_shared<Model::Replication>();
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

void Model::sync_replicas(const Tensors& sample_x) {
  Strategy& s = *strategy_;
  const int local = s.num_local_replicas();
  if (!replication_) {
    MF_CHECK(local == 1, "model '", name(), "' trains under ", s.name(), " with ", local, " local replicas but has ",
             "one copy: build it with replicate_model(build) inside the strategy's scope");
    replication_ = std::make_shared<Replication>();
  }
  auto& rep = *replication_;
  if (!rep.synced) {
    // Build every replica (weights are created on the first call), then start all from rank 0's
    // replica 0: processes by broadcast, local replicas by copy.
    Tensors one = row_range(sample_x, 0, 1);
    predict_on_batch(one);
    for (auto& m : rep.others) m->predict_on_batch(one);
    std::vector<Tensor> mine = as_tensors(weights());
    s.broadcast_from_chief(mine);
    s.sync_mirrored();
    for (size_t r = 0; r < rep.others.size(); ++r) {
      auto theirs = rep.others[r]->weights();
      MF_CHECK(theirs.size() == mine.size(), "replica ", r + 1, " of model '", name(), "' has ", theirs.size(),
               " weights but replica 0 has ", mine.size(), ": build() must make the same model each time");
      for (size_t i = 0; i < mine.size(); ++i) theirs[i].assign(mine[i]);
    }
    rep.synced = true;
  }
  if (rep.averagers.empty()) {
    auto& c = *compiled_state_;
    if (!c.have_trainable) {
      c.trainable = trainable_weights();
      c.have_trainable = true;
    }
    rep.averagers.push_back(s.make_gradient_averager(0, as_tensors(c.trainable)));
    for (size_t r = 0; r < rep.others.size(); ++r) {
      rep.trainable[r] = {rep.others[r]->trainable_weights(), true};
      rep.averagers.push_back(s.make_gradient_averager(static_cast<int>(r) + 1, as_tensors(rep.trainable[r].weights)));
    }
  }
}

std::map<std::string, double> Model::run_replicated_step(const Tensors& x, const Tensors& y, int64_t global_batch,
                                                         int64_t real_rows) {
  auto& c = *compiled_state_;
  Strategy& s = *strategy_;
  sync_replicas(x);
  auto& rep = *replication_;
  const int local = s.num_local_replicas();
  const double replicas = s.num_replicas_in_sync();
  std::vector<Tensor> targets = targets_for(y, c.outputs.size());

  // Local replica r takes rows [begin[r], begin[r] + count[r]) of this process's share (array_split);
  // one with none runs a placeholder row scaled by 0 so its backward still feeds the averager.
  std::vector<int64_t> begin(local), count(local);
  for (int r = 0, at = 0; r < local; ++r) {
    count[r] = real_rows / local + (r < real_rows % local ? 1 : 0);
    begin[r] = at;
    at += static_cast<int>(count[r]);
  }
  std::vector<detail::ReplicaStep> steps(local);
  using Clock = std::chrono::steady_clock;
  Clock::time_point started = Clock::now(), computed, averaged;
  s.run_replicas([&](int r) {
    Model& m = r == 0 ? *this : *rep.others[r - 1];
    auto& trainable = r == 0 ? c.trainable : rep.trainable[r - 1].weights;
    bool& known = r == 0 ? c.have_trainable : rep.trainable[r - 1].known;
    const bool empty = count[r] == 0;
    const double scale = empty ? 0.0 : double(count[r]) * replicas / double(global_batch);
    // The placeholder row must leave no trace: keep the replica's non-trainable state as it was.
    std::vector<Tensor> kept;
    if (empty)
      for (auto& v : m.non_trainable_weights()) kept.push_back(v.clone());
    const int64_t b = empty ? 0 : begin[r], n = empty ? 1 : count[r];
    steps[r] = detail::ModelInternals::forward_backward(m, c, row_range(x, b, n), row_range(targets, b, n), trainable,
                                                        known, scale);
    if (empty) {
      NoGradGuard no_grad;
      auto now = m.non_trainable_weights();
      for (size_t i = 0; i < kept.size() && i < now.size(); ++i) now[i].assign(kept[i]);
    }
    if (r == 0) computed = Clock::now();
    rep.averagers[r]->finish();
    if (r == 0) averaged = Clock::now();
  });
  observe_gradients(c.trainable);
  optimizer_->step(c.trainable);
  auto seconds = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  s.record_step(seconds(started, computed), seconds(computed, averaged), seconds(averaged, Clock::now()));
  // Trainable weights only: each replica keeps its own moving statistics until the epoch ends
  // (Note [Replica-local statistics]); the other non-trainable weights never change in a step.
  for (size_t r = 0; r < rep.others.size(); ++r) {
    auto& theirs = rep.trainable[r].weights;
    for (size_t i = 0; i < theirs.size(); ++i) {
      theirs[i].zero_grad();
      theirs[i].assign(c.trainable[i]);
    }
  }

  NoGradGuard no_grad;
  for (int r = 0; r < local; ++r) {
    if (count[r] == 0) continue;
    const auto& st = steps[r];
    const double batch = double(count[r]);
    c.loss.update(st.total, batch);
    for (size_t i = 0; i < st.pred.size(); ++i) {
      if (c.losses[i]) c.output_losses[i].update(st.output_losses[i], batch);
      for (auto& m : c.metrics[i]) m->update_state(st.targets[i], st.pred[i]);
    }
  }
  return collect_logs();
}

// Note [Replica-local statistics]
// Non-trainable floating weights that the forward pass updates (BatchNormalization's moving mean
// and variance) are per replica during an epoch, like TF's ON_READ variables: each replica's
// forward updates its own copy from its own rows. At the end of each epoch of fit, before
// validation, callbacks and checkpoints, every replica's copy is replaced by the mean over all
// replicas of all processes (TF's MEAN aggregation), so every rank holds the same model. The mean
// is computed as replica 0's value plus the mean of each replica's difference from it, in f64:
// replica 0's value is broadcast first, so every rank computes the same bits, and a weight no
// replica changed (a frozen layer's) keeps its exact value.
void Model::average_non_trainable_weights() {
  if (!replicated() || !replication_ || !replication_->synced) return;
  Strategy& s = *strategy_;
  auto floating = [](const Model& m) {
    std::vector<Variable> out;
    for (auto& v : m.non_trainable_weights())
      if (is_floating(v.dtype())) out.push_back(v);
    return out;
  };
  std::vector<std::vector<Variable>> replicas{floating(*this)};
  for (auto& m : replication_->others) replicas.push_back(floating(*m));
  auto flat = [](const std::vector<Variable>& vars) {
    std::vector<double> out;
    for (const auto& v : vars) {
      auto x = v.to(DType::F64).contiguous().to_vector<double>();
      out.insert(out.end(), x.begin(), x.end());
    }
    return out;
  };
  const std::vector<double> first = flat(replicas[0]);
  if (first.empty()) return;
  const int64_t n = static_cast<int64_t>(first.size());
  std::vector<Tensor> base{from_vector(first, {n}, {.dtype = DType::F64})};
  s.broadcast_from_chief(base);
  const std::vector<double> b = base[0].to_vector<double>();
  std::vector<double> delta(first.size(), 0.0);
  for (const auto& vars : replicas) {
    const std::vector<double> x = flat(vars);
    for (size_t i = 0; i < x.size(); ++i) delta[i] += x[i] - b[i];
  }
  if (s.num_processes() > 1) {
    Tensor t = from_vector(delta, {n}, {.dtype = DType::F64});
    s.process_communicator()->all_reduce(t, distributed::ReduceOp::Sum);
    delta = t.to_vector<double>();
  }
  const double count = s.num_replicas_in_sync();
  std::vector<double> mean(first.size());
  for (size_t i = 0; i < mean.size(); ++i) mean[i] = b[i] + delta[i] / count;
  NoGradGuard no_grad;
  for (auto& vars : replicas) {
    int64_t at = 0;
    for (auto& v : vars) {
      std::vector<double> part(mean.begin() + at, mean.begin() + at + v.numel());
      v.assign(from_vector(part, v.shape(), {.dtype = DType::F64}).to(v.dtype()));
      at += v.numel();
    }
  }
}

void Model::reduce_metric_states() {
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
  strategy_->reduce_sums(flat);
  size_t at = 0;
  for (size_t k = 0; k < all.size(); ++k) {
    all[k]->set_state(std::vector<double>(flat.begin() + at, flat.begin() + at + sizes[k]));
    at += sizes[k];
  }
}

}  // namespace meshflow
