// fit(x, y), evaluate() and predict() on tensors: batching, shuffling, validation splits, process shares.
#include <algorithm>
#include <iostream>
#include <numeric>
#include <random>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/shape.h"
#include "meshflow/models/model.h"
#include "fit_loop.h"
#include "progbar.h"

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

void for_each_cb(const std::vector<std::shared_ptr<Callback>>& cbs, const std::function<void(Callback&)>& f) {
  for (const auto& cb : cbs) f(*cb);
}

// fit(x, y)'s batches: shuffled (or not) index order over the rows, one global batch of
// batch_size rows per step (the last may be short), this process's array_split share of it.
class ArrayFeed : public detail::BatchFeed {
 public:
  ArrayFeed(Tensors x, Tensors y, const FitOptions& o, int processes, int process)
      : x_(std::move(x)), y_(std::move(y)), n_(x_[0].size(0)), batch_size_(o.batch_size), shuffle_(o.shuffle),
        processes_(processes), process_(process), rng_(o.seed), order_(static_cast<size_t>(n_)) {
    std::iota(order_.begin(), order_.end(), 0);
  }
  // The batch order of an epoch depends only on the seed and the epochs before it: replaying the
  // skipped epochs' shuffles makes a resumed run see the batches an uninterrupted run would.
  void skip_epochs(int epochs, int64_t steps) override {
    for (int epoch = 0; epoch < epochs; ++epoch)
      for (int64_t step = 0; step < steps; ++step) advance();
  }
  std::optional<detail::StepBatch> next(int64_t) override {
    auto [b, e] = advance();
    const int64_t global_batch = e - b;
    auto [first, real_rows] = detail::share_of(global_batch, processes_, process_);
    // A process with no rows this step still takes part, with one placeholder row weighted 0.
    int64_t pb = b + (real_rows > 0 ? first : 0), pe = pb + std::max<int64_t>(real_rows, 1);
    Tensor idx;
    if (shuffle_) idx = from_vector(std::vector<int64_t>(order_.begin() + pb, order_.begin() + pe), {pe - pb});
    return detail::StepBatch{rows(x_, idx, pb, pe), rows(y_, idx, pb, pe), global_batch, real_rows};
  }

 private:
  // The next global batch's [begin, end) in order_; the cursor carries across epochs when
  // steps_per_epoch is set, and each pass over the rows starts with a shuffle.
  std::pair<int64_t, int64_t> advance() {
    if (cursor_ >= n_) cursor_ = 0;
    if (cursor_ == 0 && shuffle_) std::shuffle(order_.begin(), order_.end(), rng_);
    int64_t b = cursor_, e = std::min(n_, cursor_ + batch_size_);
    cursor_ = e;
    return {b, e};
  }
  Tensors x_, y_;
  int64_t n_, batch_size_;
  bool shuffle_;
  int processes_, process_;
  std::mt19937_64 rng_;
  std::vector<int64_t> order_;
  int64_t cursor_ = 0;
};

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
  const int processes = distributed ? strategy_->data_shards() : 1;
  const int process = distributed ? strategy_->data_shard() : 0;
  if (!is_chief()) o.verbose = 0;

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
  ArrayFeed feed(x_train, y_train, o, processes, process);
  return run_epochs(o, feed, {.steps_shown = steps, .step_limit = steps, .validation = val});
}

std::map<std::string, double> Model::evaluate(const Tensors& x, const Tensors& y, EvaluateOptions o) {
  MF_CHECK(compiled_, "model '", name(), "' must be compiled before evaluate(): call compile() first");
  MF_CHECK(o.batch_size > 0, "evaluate: batch_size must be positive, got ", o.batch_size);
  int64_t nx = count_samples(x, "x"), ny = count_samples(y, "y");
  MF_CHECK(nx == ny, "evaluate: x has ", nx, " samples but y has ", ny, "; they must match");
  reset_metrics();
  settle_pipeline();
  if (!is_chief()) o.verbose = 0;
  // Under a strategy each process evaluates its share of the rows; the sums are combined below.
  int64_t offset = 0;
  if (strategy_ && strategy_->data_shards() > 1) {
    auto [first, count] = detail::share_of(nx, strategy_->data_shards(), strategy_->data_shard());
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
    if (o.verbose == 1) bar.update(s + 1, callbacks::ordered_logs(logs));
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
  settle_pipeline();
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
