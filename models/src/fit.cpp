// fit(), evaluate() and predict(): batching, shuffling, validation, callbacks and progress output.
#include <algorithm>
#include <iostream>
#include <numeric>
#include <random>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/shape.h"
#include "meshflow/models/model.h"
#include "progbar.h"
#include "replication.h"

namespace meshflow {
namespace {

int64_t count_samples(const Tensors& t, const char* what) {
  int64_t n = -1;
  std::string first;
  for (size_t i = 0; i < t.size(); ++i) {
    MF_CHECK(t[i].defined() && !t[i].is_symbolic(), what, " ", i, " is undefined or symbolic");
    MF_CHECK(t[i].dim() >= 1, what, " ", i, " is a scalar; data needs a batch dimension");
    std::string name = t.names()[i].empty() ? std::string(what) + "[" + std::to_string(i) + "]" : t.names()[i];
    if (n < 0) {
      n = t[i].size(0);
      first = name;
    } else {
      MF_CHECK(t[i].size(0) == n, "'", name, "' has ", t[i].size(0), " samples but '", first, "' has ", n,
               "; every input and target needs the same first dimension");
    }
  }
  return n;
}

Tensors rows(const Tensors& t, const Tensor& idx, int64_t b, int64_t e) {
  Tensors out;
  for (size_t i = 0; i < t.size(); ++i)
    out.push_back(idx.defined() ? gather(t[i], idx, 0) : t[i].slice(0, b, e), t.names()[i]);
  return out;
}

std::vector<std::pair<std::string, double>> ordered(const Logs& logs) {
  // Keras prints loss first, then the rest in insertion order; we use loss then alphabetical,
  // with per-output losses before metrics.
  std::vector<std::pair<std::string, double>> v;
  if (logs.count("loss")) v.push_back({"loss", logs.at("loss")});
  for (const auto& [k, x] : logs)
    if (k != "loss" && k.size() > 5 && k.rfind("_loss") == k.size() - 5 && k.rfind("val_", 0) != 0) v.push_back({k, x});
  for (const auto& [k, x] : logs)
    if (k != "loss" && !(k.size() > 5 && k.rfind("_loss") == k.size() - 5) && k.rfind("val_", 0) != 0) v.push_back({k, x});
  for (const auto& [k, x] : logs)
    if (k == "val_loss") v.push_back({k, x});
  for (const auto& [k, x] : logs)
    if (k.rfind("val_", 0) == 0 && k != "val_loss") v.push_back({k, x});
  return v;
}

void for_each_cb(const std::vector<std::shared_ptr<Callback>>& cbs, const std::function<void(Callback&)>& f) {
  for (const auto& cb : cbs) f(*cb);
}

// Process p's rows of n split over `parts` like numpy.array_split: [first, first + count).
std::pair<int64_t, int64_t> share_of(int64_t n, int parts, int p) {
  const int64_t base = n / parts, extra = n % parts;
  return {p * base + std::min<int64_t>(p, extra), base + (p < extra ? 1 : 0)};
}

// Destroys the gradient averagers when fit() ends, however it ends, so their hooks go inert.
template <typename F>
struct OnExit {
  F f;
  ~OnExit() { f(); }
};
template <typename F>
OnExit(F) -> OnExit<F>;

}  // namespace

History Model::fit(const Tensors& x, const Tensors& y, FitOptions o) {
  MF_CHECK(compiled_, "model '", name(), "' must be compiled before training: call compile() first");
  MF_CHECK(o.epochs >= 0 && o.batch_size > 0, "fit: epochs must be >= 0 and batch_size > 0 (got ", o.epochs, ", ",
           o.batch_size, ")");
  MF_CHECK(o.validation_split >= 0.0 && o.validation_split < 1.0, "fit: validation_split must be in [0, 1), got ",
           o.validation_split);
  MF_CHECK(!x.empty() && !y.empty(), "fit: x and y must not be empty");
  int64_t nx = count_samples(x, "x"), ny = count_samples(y, "y");
  MF_CHECK(nx == ny, "fit: x has ", nx, " samples but y has ", ny, "; they must match");
  MF_CHECK(nx > 0, "fit: x has no samples");
  // Note [Training under a strategy]: every process passes the whole data set; each global batch
  // is cut into one share per process (array_split), replicas average their gradients, and the
  // metric states are summed over processes at each epoch's end. Only the chief prints.
  const bool distributed = replicated();
  const int processes = distributed ? strategy_->num_processes() : 1;
  const int process = distributed ? strategy_->process_rank() : 0;
  if (!is_chief()) o.verbose = 0;
  OnExit drop_averagers{[this] {
    if (replication_) replication_->averagers.clear();
  }};

  Tensors x_train = x, y_train = y;
  std::optional<std::pair<Tensors, Tensors>> val = o.validation_data;
  if (o.validation_split > 0) {
    MF_CHECK(!val, "fit: give validation_split or validation_data, not both");
    int64_t split_at = static_cast<int64_t>(static_cast<double>(nx) * (1.0 - o.validation_split));
    MF_CHECK(split_at > 0 && split_at < nx, "fit: validation_split ", o.validation_split, " leaves no training or no ",
             "validation samples out of ", nx);
    val = std::make_pair(rows(x, Tensor(), split_at, nx), rows(y, Tensor(), split_at, nx));
    x_train = rows(x, Tensor(), 0, split_at);
    y_train = rows(y, Tensor(), 0, split_at);
  }
  const int64_t n = x_train[0].size(0);
  const int64_t full_steps = (n + o.batch_size - 1) / o.batch_size;
  const int64_t steps = o.steps_per_epoch > 0 ? o.steps_per_epoch : full_steps;

  History history;
  std::vector<std::shared_ptr<Callback>> cbs = o.callbacks;
  std::map<std::string, double> params{{"epochs", o.epochs},
                                       {"steps", double(steps)},
                                       {"verbose", double(o.verbose)},
                                       {"do_validation", val ? 1.0 : 0.0},
                                       {"validation_freq", double(std::max(1, o.validation_freq))}};
  for (auto& cb : cbs) {
    cb->set_model(this);
    cb->set_params(params);
  }
  const bool live = detail::stdout_is_terminal();
  stop_training = false;
  Logs logs;
  for_each_cb(cbs, [&](Callback& cb) { cb.on_train_begin(logs); });
  // A callback that restored a checkpoint (BackupAndRestore) says where training resumes.
  int first_epoch = o.initial_epoch;
  for (const auto& cb : cbs) first_epoch = std::max(first_epoch, cb->initial_epoch_override());
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  int64_t cursor = 0;  // position in `order`, carried across epochs when steps_per_epoch is set
  // The batch order of an epoch depends only on the seed and the epochs before it: replaying the
  // skipped epochs' shuffles makes a resumed run see the batches an uninterrupted run would.
  for (int epoch = 0; epoch < first_epoch; ++epoch)
    for (int64_t step = 0; step < steps; ++step) {
      if (cursor >= n) cursor = 0;
      if (cursor == 0 && o.shuffle) std::shuffle(order.begin(), order.end(), rng);
      cursor = std::min(n, cursor + o.batch_size);
    }
  for (int epoch = first_epoch; epoch < o.epochs; ++epoch) {
    reset_metrics();
    Logs epoch_logs;
    for_each_cb(cbs, [&](Callback& cb) { cb.on_epoch_begin(epoch, epoch_logs); });
    if (o.verbose) std::cout << "Epoch " << epoch + 1 << "/" << o.epochs << "\n";
    detail::Progbar bar(steps, o.verbose, live, std::cout);
    Logs step_logs;
    for (int64_t step = 0; step < steps; ++step) {
      if (cursor >= n) cursor = 0;
      if (cursor == 0 && o.shuffle) std::shuffle(order.begin(), order.end(), rng);
      int64_t b = cursor, e = std::min(n, cursor + o.batch_size);
      cursor = e;
      const int64_t global_batch = e - b;
      auto [first, real_rows] = share_of(global_batch, processes, process);
      // A process with no rows this step still takes part, with one placeholder row weighted 0.
      int64_t pb = b + (real_rows > 0 ? first : 0), pe = pb + std::max<int64_t>(real_rows, 1);
      Tensor idx;
      if (o.shuffle) idx = from_vector(std::vector<int64_t>(order.begin() + pb, order.begin() + pe), {pe - pb});
      Logs batch_logs{{"batch", double(step)}, {"size", double(real_rows)}};
      for_each_cb(cbs, [&](Callback& cb) { cb.on_train_batch_begin(step, batch_logs); });
      step_logs = distributed ? run_replicated_step(rows(x_train, idx, pb, pe), rows(y_train, idx, pb, pe),
                                                    global_batch, real_rows)
                              : run_train_step(rows(x_train, idx, pb, pe), rows(y_train, idx, pb, pe));
      for_each_cb(cbs, [&](Callback& cb) { cb.on_train_batch_end(step, step_logs); });
      if (o.verbose == 1 && step + 1 < steps) bar.update(step + 1, ordered(step_logs));
      if (stop_training && step + 1 < steps) {
        // A callback asked to stop mid-epoch (TerminateOnNaN): end the epoch here.
        break;
      }
    }
    reduce_metric_states();
    average_non_trainable_weights();
    epoch_logs = collect_logs();
    if (val && (epoch + 1) % std::max(1, o.validation_freq) == 0) {
      auto vl = evaluate(val->first, val->second, {.batch_size = o.batch_size, .verbose = 0, .callbacks = {}});
      for (const auto& [k, v] : vl) epoch_logs["val_" + k] = v;
    }
    if (o.verbose) bar.update(steps, ordered(epoch_logs), true);
    for_each_cb(cbs, [&](Callback& cb) { cb.on_epoch_end(epoch, epoch_logs); });
    history.epoch.push_back(epoch);
    for (const auto& [k, v] : epoch_logs) history.history[k].push_back(v);
    if (stop_training) break;
  }
  for_each_cb(cbs, [&](Callback& cb) { cb.on_train_end(logs); });
  return history;
}

std::map<std::string, double> Model::evaluate(const Tensors& x, const Tensors& y, EvaluateOptions o) {
  MF_CHECK(compiled_, "model '", name(), "' must be compiled before evaluate(): call compile() first");
  MF_CHECK(o.batch_size > 0, "evaluate: batch_size must be positive, got ", o.batch_size);
  int64_t nx = count_samples(x, "x"), ny = count_samples(y, "y");
  MF_CHECK(nx == ny, "evaluate: x has ", nx, " samples but y has ", ny, "; they must match");
  reset_metrics();
  if (!is_chief()) o.verbose = 0;
  // Under a strategy each process evaluates its share of the rows; the sums are combined below.
  int64_t offset = 0;
  if (strategy_ && strategy_->num_processes() > 1) {
    auto [first, count] = share_of(nx, strategy_->num_processes(), strategy_->process_rank());
    offset = first;
    nx = count;
  }
  const int64_t steps = (nx + o.batch_size - 1) / o.batch_size;
  for (auto& cb : o.callbacks) cb->set_model(this);
  Logs logs;
  for_each_cb(o.callbacks, [&](Callback& cb) { cb.on_test_begin(logs); });
  detail::Progbar bar(steps, o.verbose, detail::stdout_is_terminal(), std::cout);
  for (int64_t s = 0; s < steps; ++s) {
    int64_t b = s * o.batch_size, e = std::min(nx, b + o.batch_size);
    Logs bl{{"batch", double(s)}, {"size", double(e - b)}};
    for_each_cb(o.callbacks, [&](Callback& cb) { cb.on_test_batch_begin(s, bl); });
    logs = run_test_step(rows(x, Tensor(), offset + b, offset + e), rows(y, Tensor(), offset + b, offset + e));
    for_each_cb(o.callbacks, [&](Callback& cb) { cb.on_test_batch_end(s, logs); });
    if (o.verbose == 1) bar.update(s + 1, ordered(logs));
  }
  if (strategy_ && strategy_->num_processes() > 1) {
    reduce_metric_states();
    logs = collect_logs();
  }
  if (steps == 0) logs = collect_logs();
  for_each_cb(o.callbacks, [&](Callback& cb) { cb.on_test_end(logs); });
  return logs;
}

Tensors Model::predict(const Tensors& x, PredictOptions o) {
  MF_CHECK(o.batch_size > 0, "predict: batch_size must be positive, got ", o.batch_size);
  if (!is_chief()) o.verbose = 0;  // every process predicts all of x itself
  int64_t n = count_samples(x, "x");
  const int64_t steps = (n + o.batch_size - 1) / o.batch_size;
  for (auto& cb : o.callbacks) cb->set_model(this);
  Logs logs;
  for_each_cb(o.callbacks, [&](Callback& cb) { cb.on_predict_begin(logs); });
  detail::Progbar bar(steps, o.verbose, detail::stdout_is_terminal(), std::cout);
  std::vector<std::vector<Tensor>> parts;
  std::vector<std::string> names;
  for (int64_t s = 0; s < steps; ++s) {
    int64_t b = s * o.batch_size, e = std::min(n, b + o.batch_size);
    Logs bl{{"batch", double(s)}, {"size", double(e - b)}};
    for_each_cb(o.callbacks, [&](Callback& cb) { cb.on_predict_batch_begin(s, bl); });
    Tensors out = predict_on_batch(rows(x, Tensor(), b, e));
    if (parts.empty()) {
      parts.resize(out.size());
      names = out.names();
    }
    for (size_t i = 0; i < out.size(); ++i) parts[i].push_back(out[i]);
    for_each_cb(o.callbacks, [&](Callback& cb) { cb.on_predict_batch_end(s, bl); });
    if (o.verbose == 1) bar.update(s + 1, {});
  }
  for_each_cb(o.callbacks, [&](Callback& cb) { cb.on_predict_end(logs); });
  Tensors result;
  for (size_t i = 0; i < parts.size(); ++i)
    result.push_back(parts[i].size() == 1 ? parts[i][0] : concat(parts[i], 0), names[i]);
  return result;
}

}  // namespace meshflow
