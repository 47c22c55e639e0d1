// fit() and evaluate() on a Dataset of (x, y) batches: the epoch driver of fit_loop.cpp fed from
// the pipeline, each batch a global batch split over the processes.
#include <iostream>

#include "meshflow/core/error.h"
#include "meshflow/models/data.h"
#include "meshflow/models/model.h"
#include "fit_loop.h"
#include "progbar.h"

namespace meshflow {
namespace {

int64_t batch_size_of(const Tensors& x) { return x.empty() || x[0].dim() == 0 ? 0 : x[0].size(0); }

Tensors row_slice(const Tensors& t, int64_t begin, int64_t end) {
  Tensors out;
  for (size_t i = 0; i < t.size(); ++i) out.push_back(t[i].slice(0, begin, end), t.names()[i]);
  return out;
}

// fit(Dataset)'s batches: each element of the pipeline is one global batch, of which this process
// takes its array_split share (Note [Training under a strategy]). With steps_per_epoch, an epoch
// that reaches the end of a pass goes on with the next pass (Keras).
class DatasetFeed : public detail::BatchFeed {
 public:
  DatasetFeed(Dataset& data, bool wrap, int processes, int process)
      : data_(data), wrap_(wrap), processes_(processes), process_(process) {}
  // One pass per epoch: skip the passes (each pass's shuffle depends only on its number). With
  // steps_per_epoch, epochs cut passes anywhere: draw the skipped batches.
  void skip_epochs(int epochs, int64_t steps) override {
    if (!wrap_) {
      data_.skip_passes(static_cast<uint64_t>(epochs));
      return;
    }
    for (int64_t k = 0; k < int64_t(epochs) * steps; ++k)
      if (!data_.next()) data_.next();
  }
  std::optional<detail::StepBatch> next(int64_t step) override {
    auto batch = data_.next();
    if (!batch && wrap_ && step > 0) batch = data_.next();
    if (!batch) return std::nullopt;
    const int64_t rows = batch_size_of(batch->first);
    if (processes_ == 1) return detail::StepBatch{std::move(batch->first), std::move(batch->second), rows, rows};
    MF_CHECK(rows > 0, "fit(Dataset): a batch has no rows; under ", processes_, " processes each batch is split ",
             "over them, so it needs a batch dimension");
    auto [first, real_rows] = detail::share_of(rows, processes_, process_);
    // A process with no rows of a short batch still takes part, with one placeholder row weighted 0.
    const int64_t b = real_rows > 0 ? first : 0, e = b + std::max<int64_t>(real_rows, 1);
    return detail::StepBatch{row_slice(batch->first, b, e), row_slice(batch->second, b, e), rows, real_rows};
  }

 private:
  Dataset& data_;
  bool wrap_;
  int processes_, process_;
};

}  // namespace

History Model::fit(Dataset& data, FitOptions o) {
  MF_CHECK(compiled_, "model '", name(), "' must be compiled before training: call compile() first");
  MF_CHECK(o.epochs >= 0, "fit: epochs must be >= 0, got ", o.epochs);
  MF_CHECK(o.validation_split == 0.0, "fit(Dataset): validation_split cannot split a pipeline; pass ",
           "validation_data or split the data before building the Dataset");
  if (!is_chief()) o.verbose = 0;
  const int64_t card = data.cardinality();
  MF_CHECK(o.steps_per_epoch > 0 || card != kInfiniteCardinality, "fit(Dataset): the dataset repeats forever; set ",
           "steps_per_epoch so epochs end");
  // Under a strategy every process iterates the same pipeline and takes its share of each batch,
  // so all must run the same number of steps: a rank whose data ended early would leave the
  // others waiting in a gradient all-reduce. Checked once, here, where it is cheap.
  const bool distributed = replicated();
  const int processes = distributed ? strategy_->data_shards() : 1;
  // Agreed in one sum, so every rank fails together, before any step:
  // - a per-rank shard (TF's habit) would be split over the ranks again, and each rank would train
  //   on 1/P of its own batches: refused rather than dropping data silently;
  // - without steps_per_epoch, every rank's pipeline must have the same, known length.
  if (processes > 1) {
    const bool count = o.steps_per_epoch <= 0;
    std::vector<double> sums{data.num_shards() > 1 ? 1.0 : 0.0, count && card < 0 ? 1.0 : 0.0,
                             count ? double(card) : 0.0, count ? double(card) * double(card) : 0.0};
    strategy_->reduce_sums(sums);
    MF_CHECK(sums[0] == 0, "fit(Dataset) under ", processes, " processes: ", sums[0], " rank(s) pass a sharded ",
             "pipeline (this rank's keeps 1 of ", data.num_shards(), "), but fit already splits every batch over the ",
             "processes, so each rank would train on a fraction of its own batches; give every rank the same, ",
             "unsharded pipeline");
    MF_CHECK(sums[1] == 0, "fit(Dataset) under ", processes, " processes: the dataset's length is unknown on ", sums[1],
             " rank(s), so the processes cannot be sure to take the same number of steps; set steps_per_epoch");
    MF_CHECK(sums[2] * sums[2] == sums[3] * processes, "fit(Dataset) under ", processes, " processes: the ranks' ",
             "datasets have different numbers of batches (this rank's: ", card, "); every process must iterate the ",
             "same pipeline (each batch is split over the processes)");
  }
  const int64_t steps = o.steps_per_epoch > 0 ? o.steps_per_epoch : card;  // may be unknown (-1)
  data.reset();
  DatasetFeed feed(data, o.steps_per_epoch > 0, processes, distributed ? strategy_->data_shard() : 0);
  return run_epochs(o, feed,
                    {.steps_shown = steps,
                     .step_limit = o.steps_per_epoch > 0 ? o.steps_per_epoch : -1,
                     .validation = o.validation_data,
                     .caller = "fit(Dataset)"});
}

std::map<std::string, double> Model::evaluate(Dataset& data, EvaluateOptions o) {
  MF_CHECK(compiled_, "model '", name(), "' must be compiled before evaluate(): call compile() first");
  MF_CHECK(data.cardinality() != kInfiniteCardinality, "evaluate(Dataset): the dataset repeats forever; take a ",
           "finite one (no repeat())");
  reset_metrics();
  if (!is_chief()) o.verbose = 0;
  for (auto& cb : o.callbacks) cb->set_model(this);
  Logs logs;
  for (const auto& cb : o.callbacks) cb->on_test_begin(logs);
  const int64_t steps = data.cardinality();
  detail::Progbar bar(std::max<int64_t>(steps, 0), o.verbose, detail::stdout_is_terminal(), std::cout);
  data.reset();
  int64_t s = 0;
  while (auto batch = data.next()) {
    Logs bl{{"batch", double(s)}, {"size", double(batch_size_of(batch->first))}};
    for (const auto& cb : o.callbacks) cb->on_test_batch_begin(s, bl);
    logs = run_test_step(batch->first, batch->second);
    for (const auto& cb : o.callbacks) cb->on_test_batch_end(s, logs);
    ++s;
    if (o.verbose == 1 && steps > 0) bar.update(s, callbacks::ordered_logs(logs));
  }
  // Several processes each evaluate their own pipeline (a shard, or all of it: the means agree).
  if (strategy_ && strategy_->num_processes() > 1) {
    reduce_metric_states();
    logs = collect_logs();
  }
  if (s == 0) logs = collect_logs();
  for (const auto& cb : o.callbacks) cb->on_test_end(logs);
  return logs;
}

}  // namespace meshflow
