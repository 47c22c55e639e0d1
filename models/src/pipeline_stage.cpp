// A model's side of pipeline parallelism (Note [Pipeline stages], parallel/pipeline.h): which
// layers are this rank's stage, the stage's forward and backward of one micro-batch, and bringing
// every stage's weights to every rank when a whole model is needed.
#include <algorithm>
#include <chrono>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/models/regularizers.h"
#include "meshflow/parallel/pipeline.h"
#include "model_state.h"

namespace meshflow {

struct Model::Pipeline {
  PipelineStrategy* strategy = nullptr;
  std::vector<std::shared_ptr<Layer>> layers;  // the Sequential's stack
  std::vector<int> starts;                     // each stage's first layer; starts[0] == 0
  int first = 0, end = 0;                      // this stage's layers [first, end)
  std::vector<Variable> trainable;             // this stage's trainable weights
  std::vector<std::vector<Tensor>> weights;    // every stage's weights, for settle_pipeline()
  mutable bool dirty = false;                  // this stage's weights changed since the last settle
};

namespace {

std::string layer_names(const std::vector<std::shared_ptr<Layer>>& layers) {
  std::string s;
  for (const auto& l : layers) s += (s.empty() ? "" : ", ") + l->name();
  return s;
}

// Forward+backward seconds of each layer alone on `x` (fastest of three), for automatic cuts.
// Every layer's input is the previous layer's output, detached. Layers run in inference mode, so
// profiling draws no dropout mask (every rank's generators stay in step) and moves no statistics;
// the gradients it leaves are cleared.
std::vector<double> profile_layers(const std::vector<std::shared_ptr<Layer>>& layers, Tensor x) {
  std::vector<double> costs;
  TrainingScope inference(false);
  for (const auto& l : layers) {
    double best = 1e300;
    Tensor out;
    for (int r = 0; r < 3; ++r) {
      Tensor in = x.detach();
      if (is_floating(in.dtype())) in.set_requires_grad(true);
      const auto t0 = std::chrono::steady_clock::now();
      out = (*l)(in);
      if (out.requires_grad()) out.backward(ones_like(out));
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    costs.push_back(best);
    x = out.detach();
  }
  for (const auto& l : layers)
    for (Tensor v : l->trainable_weights()) v.zero_grad();
  return costs;
}

}  // namespace

Model::Pipeline& Model::pipeline_stage(const Tensors& x, PipelineStrategy& strategy) {
  if (pipeline_ && pipeline_->strategy == &strategy) return *pipeline_;
  auto* seq = dynamic_cast<Sequential*>(this);
  MF_CHECK(seq != nullptr, "PipelineStrategy: model '", name(), "' is ", is_functional() ? "functional" : "subclassed",
           "; pipeline stages are cut from a Sequential model's layers");
  auto pl = std::make_shared<Pipeline>();
  pl->strategy = &strategy;
  pl->layers = seq->stack();
  const int p = strategy.num_stages(), n = static_cast<int>(pl->layers.size());
  MF_CHECK(p <= n, "PipelineStrategy: ", p, " stages but model '", name(), "' has ", n, " layer(s) (",
           layer_names(pl->layers), "); each stage needs at least one");
  // Every layer exists with its weights before any is cut away (one row, inference mode).
  if (!built()) predict_on_batch(Tensors(x[0].slice(0, 0, 1)));
  const auto& cuts = strategy.options().cuts;
  if (!cuts.empty()) {
    MF_CHECK(static_cast<int>(cuts.size()) == p - 1, "PipelineStrategy: ", p, " stages need ", p - 1,
             " cut point(s), got ", cuts.size());
    pl->starts.push_back(0);
    for (const auto& cut : cuts) {
      auto it = std::find_if(pl->layers.begin(), pl->layers.end(), [&](const auto& l) { return l->name() == cut; });
      MF_CHECK(it != pl->layers.end(), "PipelineStrategy: cut point '", cut, "' is not a layer of model '", name(),
               "' (layers: ", layer_names(pl->layers), ")");
      const int at = static_cast<int>(it - pl->layers.begin());
      MF_CHECK(at > pl->starts.back(), "PipelineStrategy: cut point '", cut, "' (layer ", at, ") must come after ",
               pl->starts.size() == 1 ? "the first layer" : "the previous cut point",
               "; cut points name the first layer of stages 1..", p - 1, " in model order");
      pl->starts.push_back(at);
    }
  } else {
    // Rank 0 measures and decides; every stage takes its cuts, so all agree.
    Tensor starts = zeros({p}, {.dtype = DType::I64});
    if (strategy.stage() == 0) {
      const int64_t rows = std::max<int64_t>(1, x[0].size(0) / strategy.options().micro_batches);
      auto best = balanced_cuts(profile_layers(pl->layers, x[0].slice(0, 0, rows)), p);
      starts = from_vector(std::vector<int64_t>(best.begin(), best.end()), {p}, {.dtype = DType::I64});
    }
    strategy.process_communicator()->broadcast(starts, 0);
    for (int64_t s : starts.to_vector<int64_t>()) pl->starts.push_back(static_cast<int>(s));
  }
  const int s = strategy.stage();
  pl->first = pl->starts[static_cast<size_t>(s)];
  pl->end = s + 1 < p ? pl->starts[static_cast<size_t>(s) + 1] : n;
  for (int i = pl->first; i < pl->end; ++i)
    for (const auto& v : pl->layers[static_cast<size_t>(i)]->trainable_weights()) pl->trainable.push_back(v);
  for (int st = 0; st < p; ++st) {
    std::vector<Tensor> w;
    const int b = pl->starts[static_cast<size_t>(st)], e = st + 1 < p ? pl->starts[static_cast<size_t>(st) + 1] : n;
    for (int i = b; i < e; ++i)
      for (const auto& v : pl->layers[static_cast<size_t>(i)]->weights()) w.push_back(v);
    pl->weights.push_back(std::move(w));
  }
  pipeline_ = pl;
  return *pl;
}

std::map<std::string, double> Model::run_pipeline_step(const Tensors& x, const Tensors& y, PipelineStrategy& strategy) {
  auto& c = *compiled_state_;
  MF_CHECK(x.size() == 1, "PipelineStrategy: model '", name(), "' takes one input, got ", x.size());
  Pipeline& pl = pipeline_stage(x, strategy);
  const int m = strategy.options().micro_batches, p = strategy.num_stages(), s = strategy.stage();
  const bool first = s == 0, last = s == p - 1;
  const int64_t n = x[0].size(0);
  MF_CHECK(n % m == 0, "PipelineStrategy: a batch of ", n, " rows does not divide into ", m,
           " micro-batches; make the batch size a multiple of micro_batches");
  const int64_t rows = n / m;
  const double share = 1.0 / m;  // each micro-batch's part of the batch's mean loss
  std::vector<Tensor> targets = targets_for(y, c.outputs.size());

  struct Micro {
    Tensor input;      // the received activation (a leaf whose gradient goes back)
    Tensor output;     // this stage's output (not on the last stage)
    Tensor objective;  // what backward starts from besides the output: share * (loss + layer losses)
  };
  std::vector<Micro> micro(static_cast<size_t>(m));
  double data_loss = 0;  // the last stage's sum of share * loss
  double extra = 0;      // this stage's layer losses (share-weighted) and weight regularizers

  PipelineStep step;
  step.micro_batches = m;
  step.forward = [&](int k, const Tensor& received) -> Tensor {
    Micro& mb = micro[static_cast<size_t>(k)];
    TrainingScope training(true);
    clear_losses();
    Tensor h = first ? x[0].slice(0, k * rows, (k + 1) * rows) : received;
    if (!first && is_floating(h.dtype())) h.set_requires_grad(true);
    mb.input = h;
    for (int i = pl.first; i < pl.end; ++i) h = (*pl.layers[static_cast<size_t>(i)])(h);
    Tensor objective;
    for (const auto& l : losses()) objective = objective.defined() ? objective + l : l;
    if (objective.defined()) extra += share * objective.item();
    if (last) {
      Tensor t = targets[0].slice(0, k * rows, (k + 1) * rows);
      Tensor li = (*c.losses[0])(t, h);
      if (c.loss_weights[0] != 1.0) li = li * c.loss_weights[0];
      data_loss += share * li.item();
      objective = objective.defined() ? li + objective : li;
      NoGradGuard no_grad;
      for (auto& metric : c.metrics[0]) metric->update_state(t, h.detach());
    }
    if (objective.defined()) mb.objective = objective * share;
    if (last) return Tensor();
    mb.output = h;
    return h;
  };
  step.backward = [&](int k, const Tensor& grad_output) -> Tensor {
    Micro& mb = micro[static_cast<size_t>(k)];
    std::vector<Tensor> roots, grads;
    if (!last && mb.output.requires_grad()) {
      roots.push_back(mb.output);
      grads.push_back(grad_output);
    }
    if (mb.objective.defined() && mb.objective.requires_grad()) {
      roots.push_back(mb.objective);
      grads.push_back(Tensor());
    }
    if (!roots.empty()) backward(roots, grads);
    Tensor grad_input = first ? Tensor() : mb.input.grad();
    if (!first && !grad_input.defined()) grad_input = zeros_like(mb.input);  // the input did not matter
    mb = {};
    return grad_input;
  };
  step.update = [&] {
    Tensor reg;
    for (const auto& v : pl.trainable)
      if (v.regularizer()) reg = reg.defined() ? reg + (*v.regularizer())(v) : (*v.regularizer())(v);
    if (reg.defined()) {
      extra += reg.item();
      reg.backward();
    }
    observe_gradients(pl.trainable);
    optimizer_->step(pl.trainable);
  };
  strategy.run_pipeline(step);
  pl.dirty = true;

  // The reported loss: the last stage's data loss plus every stage's layer losses and regularizers.
  Tensor extras = from_vector(std::vector<double>{extra}, {1}, {.dtype = DType::F64});
  strategy.process_communicator()->all_reduce(extras, distributed::ReduceOp::Sum);
  if (last) c.loss.update(data_loss + extras.to_vector<double>()[0], static_cast<double>(n));
  reduce_metric_states();
  return collect_logs();
}

void Model::settle_pipeline() const {
  if (!pipeline_) return;
  // Every rank calls this at the same points (epoch ends, evaluate, predict, save) after the same
  // steps, so all agree on whether weights changed: each stage's go from it to every rank.
  if (!pipeline_->dirty) return;
  for (int st = 0; st < static_cast<int>(pipeline_->weights.size()); ++st)
    pipeline_->strategy->broadcast_from_stage(pipeline_->weights[static_cast<size_t>(st)], st);
  pipeline_->dirty = false;
}

}  // namespace meshflow
