// The data-parallel step of every replicating strategy: the first sync of the replicas' weights,
// the split of a batch over local replicas, gradient averaging, the update and its copy to the
// other local replicas, and the end-of-epoch mean of replica-local statistics.
#include <chrono>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/parallel/strategy.h"

namespace meshflow {

void Strategy::sync_replicas(ReplicaGroup& group) {
  if (!group.synced) {
    // Every replica was built by the caller (weights exist after its first call); all start from
    // process 0's replica 0: processes by broadcast, local replicas by copy.
    std::vector<Tensor> mine = group.replicas[0]->weights();
    broadcast_from_chief(mine);
    for (int r = 1; r < group.size(); ++r) {
      auto theirs = group.replicas[static_cast<size_t>(r)]->weights();
      MF_CHECK(theirs.size() == mine.size(), name(), ": replica ", r, " has ", theirs.size(),
               " weights but replica 0 has ", mine.size(), ": build() must make the same model each time");
      NoGradGuard no_grad;
      for (size_t i = 0; i < mine.size(); ++i) theirs[i].copy_(mine[i]);
    }
    group.synced = true;
  }
  if (group.averagers.empty()) {
    group.trainable.clear();
    for (int r = 0; r < group.size(); ++r) {
      group.trainable.push_back(group.replicas[static_cast<size_t>(r)]->trainable_weights());
      group.averagers.push_back(make_gradient_averager(r, group.trainable.back()));
    }
  }
}

void Strategy::run_step(ReplicaGroup& group, const TrainStep& step) {
  MF_CHECK(step.forward_backward && step.update, name(), "::run_step: the step needs forward_backward and update");
  MF_CHECK(group.size() == num_local_replicas(), name(), "::run_step: ", num_local_replicas(),
           " local replicas but the model has ", group.size(), " copies");
  MF_CHECK(step.local_rows >= 0 && step.global_rows >= step.local_rows, name(), "::run_step: ", step.local_rows,
           " local rows of a global batch of ", step.global_rows);
  if (num_replicas_in_sync() == 1) {
    step.forward_backward({.replica = 0, .begin = 0, .count = step.local_rows, .loss_scale = 1.0});
    step.update();
    return;
  }
  sync_replicas(group);
  const int local = num_local_replicas();
  const double replicas = num_replicas_in_sync();
  // Local replica r takes rows [begin[r], begin[r] + count[r]) of this process's share (array_split).
  std::vector<ReplicaShare> shares(static_cast<size_t>(local));
  for (int r = 0, at = 0; r < local; ++r) {
    ReplicaShare& s = shares[static_cast<size_t>(r)];
    const int64_t count = step.local_rows / local + (r < step.local_rows % local ? 1 : 0);
    s.replica = r;
    s.placeholder = count == 0;
    s.begin = s.placeholder ? 0 : at;
    s.count = s.placeholder ? 1 : count;
    s.loss_scale = s.placeholder ? 0.0 : double(count) * replicas / double(step.global_rows);
    at += static_cast<int>(count);
  }
  using Clock = std::chrono::steady_clock;
  Clock::time_point started = Clock::now(), computed, averaged;
  run_replicas([&](int r) {
    const ReplicaShare& share = shares[static_cast<size_t>(r)];
    Replica& replica = *group.replicas[static_cast<size_t>(r)];
    // The placeholder row must leave no trace: keep the replica's non-trainable state as it was.
    std::vector<Tensor> kept;
    if (share.placeholder)
      for (auto& v : replica.non_trainable_weights()) kept.push_back(v.clone());
    step.forward_backward(share);
    if (share.placeholder) {
      NoGradGuard no_grad;
      auto now = replica.non_trainable_weights();
      for (size_t i = 0; i < kept.size() && i < now.size(); ++i) now[i].copy_(kept[i]);
    }
    if (r == 0) computed = Clock::now();
    group.averagers[static_cast<size_t>(r)]->finish();
    if (r == 0) averaged = Clock::now();
  });
  apply_update(group, step);
  auto seconds = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  record_step(seconds(started, computed), seconds(computed, averaged), seconds(averaged, Clock::now()));
  // Trainable weights only: each replica keeps its own moving statistics until the epoch ends
  // (Note [Replica-local statistics]); the other non-trainable weights never change in a step.
  NoGradGuard no_grad;
  const auto& updated = group.trainable[0];
  for (int r = 1; r < local; ++r) {
    auto& theirs = group.trainable[static_cast<size_t>(r)];
    for (size_t i = 0; i < theirs.size(); ++i) {
      theirs[i].zero_grad();
      theirs[i].copy_(updated[i]);
    }
  }
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
void Strategy::end_epoch(ReplicaGroup& group) {
  if (num_replicas_in_sync() == 1 || !group.synced) return;
  auto floating = [](Replica& m) {
    std::vector<Tensor> out;
    for (auto& v : m.non_trainable_weights())
      if (is_floating(v.dtype())) out.push_back(v);
    return out;
  };
  std::vector<std::vector<Tensor>> replicas;
  for (auto& m : group.replicas) replicas.push_back(floating(*m));
  auto flat = [](const std::vector<Tensor>& vars) {
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
  broadcast_from_chief(base);
  const std::vector<double> b = base[0].to_vector<double>();
  std::vector<double> delta(first.size(), 0.0);
  for (const auto& vars : replicas) {
    const std::vector<double> x = flat(vars);
    for (size_t i = 0; i < x.size(); ++i) delta[i] += x[i] - b[i];
  }
  reduce_sums(delta);
  const double count = num_replicas_in_sync();
  std::vector<double> mean(first.size());
  for (size_t i = 0; i < mean.size(); ++i) mean[i] = b[i] + delta[i] / count;
  NoGradGuard no_grad;
  for (auto& vars : replicas) {
    int64_t at = 0;
    for (auto& v : vars) {
      std::vector<double> part(mean.begin() + at, mean.begin() + at + v.numel());
      v.copy_(from_vector(part, v.shape(), {.dtype = DType::F64}).to(v.dtype()));
      at += v.numel();
    }
  }
}

}  // namespace meshflow
