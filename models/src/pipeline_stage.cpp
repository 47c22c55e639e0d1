// A model's side of pipeline parallelism (Note [Pipeline stages], parallel/pipeline.h): which
// layers are this rank's stage, the stage's forward and backward of one micro-batch, and bringing
// every stage's weights to every rank when a whole model is needed.
#include <algorithm>
#include <chrono>
#include <map>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/models/regularizers.h"
#include "meshflow/parallel/pipeline.h"
#include "model_state.h"

namespace meshflow {

// The model as a chain of segments: segment i runs from boundary i to boundary i + 1, and exactly
// one tensor crosses each boundary between them. A Sequential's segments are its layers; a
// functional model's are the runs of graph nodes between the points where one value is live (a
// residual block is one segment). Stages are consecutive segments.
struct Model::Pipeline {
  PipelineStrategy* strategy = nullptr;
  int segments = 0;
  std::vector<std::vector<std::shared_ptr<Layer>>> layers;  // per segment, the layers it calls
  // Sequential: the stack. Functional: the node index where each segment starts (and the end),
  // and the value crossing each boundary (-1 at the ends).
  std::vector<std::shared_ptr<Layer>> stack;
  std::vector<size_t> node_at;
  std::vector<int> crossing;
  std::vector<int> starts;                   // each stage's first segment; starts[0] == 0
  int first = 0, end = 0;                    // this stage's segments [first, end)
  std::vector<Variable> trainable;           // this stage's trainable weights
  std::vector<Tensor> statistics;            // this stage's non-trainable weights (moving averages)
  std::vector<std::vector<Tensor>> weights;  // every stage's weights, for settle_pipeline()
  mutable bool dirty = false;                // this stage's weights changed since the last settle
};

namespace {

using detail::node_layer;

std::string segment_names(const std::vector<std::vector<std::shared_ptr<Layer>>>& layers) {
  std::string s;
  for (const auto& seg : layers)
    if (!seg.empty()) s += (s.empty() ? "" : ", ") + seg[0]->name();
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Runs segments [a, b) on `in` (the model's inputs when a == 0, else the one tensor crossing
// boundary a); returns the tensor crossing boundary b, or the model's outputs when b is the end.
std::vector<Tensor> Model::run_segments(const Pipeline& pl, int a, int b, const std::vector<Tensor>& in) {
  if (!functional_) {
    Tensor h = in.at(0);
    for (int i = a; i < b; ++i) h = (*pl.stack[static_cast<size_t>(i)])(h);
    return {h};
  }
  std::vector<Tensor> env(graph_->values().size());
  for (size_t i = 0; i < env.size(); ++i)
    if (graph_->values()[i].kind == Graph::Value::Kind::Constant) env[i] = graph_->values()[i].constant;
  if (a == 0) {
    for (size_t i = 0; i < graph_->inputs().size(); ++i) {
      Tensor t = in.at(i);
      const DType want = graph_->values()[static_cast<size_t>(graph_->inputs()[i])].meta.dtype;
      env[static_cast<size_t>(graph_->inputs()[i])] = t.dtype() == want || !is_floating(t.dtype()) ? t : t.to(want);
    }
  } else {
    env[static_cast<size_t>(pl.crossing[static_cast<size_t>(a)])] = in.at(0);
  }
  graph_->run_nodes(env, pl.node_at[static_cast<size_t>(a)], pl.node_at[static_cast<size_t>(b)]);
  if (b < pl.segments) return {env[static_cast<size_t>(pl.crossing[static_cast<size_t>(b)])]};
  std::vector<Tensor> out;
  for (int id : graph_->outputs()) out.push_back(env[static_cast<size_t>(id)]);
  return out;
}

namespace {

// The model's inputs in graph order (a dict of named inputs is reordered), rows [b, e).
std::vector<Tensor> input_rows(const Tensors& x, const std::vector<std::string>& names, int64_t b, int64_t e) {
  std::vector<Tensor> ordered = x.list();
  if (x.named())
    for (size_t i = 0; i < names.size() && i < ordered.size(); ++i)
      if (x.has(names[i])) ordered[i] = x[names[i]];
  for (auto& t : ordered) t = t.slice(0, b, e);
  return ordered;
}

}  // namespace

Model::Pipeline& Model::pipeline_stage(const Tensors& x, PipelineStrategy& strategy) {
  if (pipeline_ && pipeline_->strategy == &strategy) return *pipeline_;
  auto* seq = dynamic_cast<Sequential*>(this);
  MF_CHECK(seq != nullptr || functional_, "PipelineStrategy: model '", name(), "' is subclassed; pipeline stages ",
           "are cut from a Sequential model's layers or a functional model's graph");
  // Every layer exists with its weights before any is cut away (one row, inference mode).
  pipeline_.reset();
  predict_on_batch(Tensors(input_rows(x, input_names_, 0, 1)));
  auto pl = std::make_shared<Pipeline>();
  pl->strategy = &strategy;
  if (seq) {
    pl->stack = seq->stack();
    for (const auto& l : pl->stack) pl->layers.push_back({l});
  } else {
    // Boundaries: node positions where exactly one value made earlier (or a graph input) is still
    // read later (or is an output). Constants do not count: every stage holds them.
    const auto& nodes = graph_->nodes();
    const auto& values = graph_->values();
    std::vector<size_t> last_use(values.size(), 0);
    std::vector<bool> is_output(values.size(), false);
    for (int id : graph_->outputs()) is_output[static_cast<size_t>(id)] = true;
    for (size_t i = 0; i < nodes.size(); ++i)
      for (int id : nodes[i].inputs) last_use[static_cast<size_t>(id)] = std::max(last_use[static_cast<size_t>(id)], i + 1);
    std::vector<size_t> made(values.size(), 0);  // 0: a graph input; i + 1: node i's result
    for (size_t i = 0; i < nodes.size(); ++i)
      for (int id : nodes[i].outputs) made[static_cast<size_t>(id)] = i + 1;
    pl->node_at.push_back(0);
    pl->crossing.push_back(-1);
    for (size_t q = 1; q < nodes.size(); ++q) {
      int live = -1, count = 0;
      for (size_t v = 0; v < values.size(); ++v) {
        if (values[v].kind == Graph::Value::Kind::Constant || made[v] > q) continue;
        if (last_use[v] > q || (is_output[v] && made[v] <= q)) {
          live = static_cast<int>(v);
          ++count;
        }
      }
      if (count == 1 && node_layer(nodes[q])) {
        pl->node_at.push_back(q);
        pl->crossing.push_back(live);
      }
    }
    pl->node_at.push_back(nodes.size());
    pl->crossing.push_back(-1);
    pl->layers.resize(pl->node_at.size() - 1);
    for (size_t sgm = 0; sgm + 1 < pl->node_at.size(); ++sgm)
      for (size_t i = pl->node_at[sgm]; i < pl->node_at[sgm + 1]; ++i)
        if (auto l = node_layer(nodes[i]);
            l && std::find(pl->layers[sgm].begin(), pl->layers[sgm].end(), l) == pl->layers[sgm].end())
          pl->layers[sgm].push_back(l);
  }
  pl->segments = static_cast<int>(pl->layers.size());
  const int p = strategy.num_stages(), n = pl->segments;
  MF_CHECK(p <= n, "PipelineStrategy: ", p, " stages but model '", name(), "' has ", n,
           functional_ ? " point(s) to cut at, counting its start (segments starting with: " : " layer(s) (",
           segment_names(pl->layers), "); each stage needs at least one");
  const auto& cuts = strategy.options().cuts;
  if (!cuts.empty()) {
    MF_CHECK(static_cast<int>(cuts.size()) == p - 1, "PipelineStrategy: ", p, " stages need ", p - 1,
             " cut point(s), got ", cuts.size());
    pl->starts.push_back(0);
    for (const auto& cut : cuts) {
      int at = -1;
      for (int sgm = 0; sgm < n && at < 0; ++sgm)
        if (!pl->layers[static_cast<size_t>(sgm)].empty() && pl->layers[static_cast<size_t>(sgm)][0]->name() == cut)
          at = sgm;
      if (at < 0) {
        bool inside = false;
        for (const auto& seg : pl->layers)
          for (const auto& l : seg) inside = inside || l->name() == cut;
        MF_CHECK(!inside, "PipelineStrategy: cut point '", cut, "' is a layer of model '", name(),
                 "' but more than one tensor crosses there (a skip connection); cut at one of: ",
                 segment_names(pl->layers));
        MF_THROW("PipelineStrategy: cut point '", cut, "' is not a layer of model '", name(), "' (",
                 functional_ ? "points to cut at" : "layers", ": ", segment_names(pl->layers), ")");
      }
      MF_CHECK(at > pl->starts.back(), "PipelineStrategy: cut point '", cut, "' (layer ", at, ") must come after ",
               pl->starts.size() == 1 ? "the first layer" : "the previous cut point",
               "; cut points name the first layer of stages 1..", p - 1, " in model order");
      pl->starts.push_back(at);
    }
  } else {
    // Rank 0 measures each segment's forward+backward once (inference mode: no dropout mask is
    // drawn and no statistic moves, so every rank stays in step) and decides; all take its cuts.
    Tensor starts = zeros({p}, {.dtype = DType::I64});
    if (strategy.process_rank() == 0) {
      const int64_t rows = std::max<int64_t>(1, x[0].size(0) / strategy.options().micro_batches);
      std::vector<double> costs;
      TrainingScope inference(false);
      std::vector<Tensor> in = input_rows(x, input_names_, 0, rows);
      for (int sgm = 0; sgm < n; ++sgm) {
        double best = 1e300;
        std::vector<Tensor> out;
        for (int r = 0; r < 3; ++r) {
          std::vector<Tensor> leaf;
          for (const auto& t : in) {
            leaf.push_back(t.detach());
            if (is_floating(leaf.back().dtype())) leaf.back().set_requires_grad(true);
          }
          const auto t0 = std::chrono::steady_clock::now();
          out = run_segments(*pl, sgm, sgm + 1, leaf);
          std::vector<Tensor> roots, grads;
          for (const auto& o : out)
            if (o.requires_grad()) {
              roots.push_back(o);
              grads.push_back(ones_like(o));
            }
          if (!roots.empty()) backward(roots, grads);
          best = std::min(best, seconds_since(t0));
        }
        costs.push_back(best);
        in.clear();
        for (const auto& o : out) in.push_back(o.detach());
      }
      for (const auto& seg : pl->layers)
        for (const auto& l : seg)
          for (Tensor v : l->trainable_weights()) v.zero_grad();
      auto best = balanced_cuts(costs, p);
      starts = from_vector(std::vector<int64_t>(best.begin(), best.end()), {p}, {.dtype = DType::I64});
    }
    strategy.process_communicator()->broadcast(starts, 0);
    for (int64_t st : starts.to_vector<int64_t>()) pl->starts.push_back(static_cast<int>(st));
  }
  const int s = strategy.stage();
  pl->first = pl->starts[static_cast<size_t>(s)];
  pl->end = s + 1 < p ? pl->starts[static_cast<size_t>(s) + 1] : n;
  std::map<Layer*, int> stage_of;
  for (int st = 0; st < p; ++st) {
    std::vector<Tensor> w;
    const int b = pl->starts[static_cast<size_t>(st)], e = st + 1 < p ? pl->starts[static_cast<size_t>(st) + 1] : n;
    for (int i = b; i < e; ++i)
      for (const auto& l : pl->layers[static_cast<size_t>(i)]) {
        auto [it, fresh] = stage_of.emplace(l.get(), st);
        MF_CHECK(fresh || it->second == st, "PipelineStrategy: layer '", l->name(), "' of model '", name(),
                 "' is called in stages ", it->second, " and ", st, "; a shared layer must stay in one stage");
        if (!fresh) continue;
        for (const auto& v : l->weights()) w.push_back(v);
        if (st == s) {
          for (const auto& v : l->trainable_weights()) pl->trainable.push_back(v);
          for (const auto& v : l->non_trainable_weights()) pl->statistics.push_back(v);
        }
      }
    pl->weights.push_back(std::move(w));
  }
  // Pipeline x data: every copy of this stage starts from data replica 0's weights.
  strategy.broadcast_over_data(pl->weights[static_cast<size_t>(s)]);
  pipeline_ = pl;
  return *pl;
}

std::map<std::string, double> Model::run_pipeline_step(const Tensors& x, const Tensors& y, PipelineStrategy& strategy) {
  auto& c = *compiled_state_;
  MF_CHECK(!x.empty(), "PipelineStrategy: model '", name(), "' was given no inputs");
  Pipeline& pl = pipeline_stage(x, strategy);
  const int m = strategy.options().micro_batches, p = strategy.num_stages(), s = strategy.stage();
  const bool first = s == 0, last = s == p - 1;
  const int64_t n = x[0].size(0);
  MF_CHECK(n % m == 0, "PipelineStrategy: a batch of ", n, " rows does not divide into ", m,
           " micro-batches; make the batch size a multiple of micro_batches");
  const int64_t rows = n / m;
  const double share = 1.0 / m;  // each micro-batch's part of this replica's mean loss
  // Pipeline x data: gradients are summed over the data replicas, so each replica's objective is
  // weighted by its part of the global batch (1 without a data axis).
  const double grad_scale = static_cast<double>(n) / static_cast<double>(strategy.global_rows(n));
  std::vector<Tensor> targets = targets_for(y, c.outputs.size());

  struct Micro {
    Tensor input;      // the received activation (a leaf whose gradient goes back)
    Tensor output;     // this stage's output (not on the last stage)
    Tensor objective;  // what backward starts from besides the output: share * (loss + layer losses)
  };
  std::vector<Micro> micro(static_cast<size_t>(m));
  double data_loss = 0;  // the last stage's sum of share * weighted losses
  std::vector<double> output_losses(c.outputs.size(), 0.0);
  double extra = 0;      // this stage's layer losses (share-weighted) and weight regularizers

  PipelineStep step;
  step.micro_batches = m;
  step.forward = [&](int k, const Tensor& received) -> Tensor {
    Micro& mb = micro[static_cast<size_t>(k)];
    TrainingScope training(true);
    clear_losses();
    std::vector<Tensor> in;
    if (first) {
      in = input_rows(x, input_names_, k * rows, (k + 1) * rows);
    } else {
      Tensor leaf = received;
      if (is_floating(leaf.dtype())) leaf.set_requires_grad(true);
      mb.input = leaf;
      in = {leaf};
    }
    std::vector<Tensor> out = run_segments(pl, pl.first, pl.end, in);
    Tensor objective;
    for (const auto& l : losses()) objective = objective.defined() ? objective + l : l;
    if (objective.defined()) extra += share * objective.item();
    if (last) {
      MF_CHECK(out.size() == c.outputs.size(), "model '", name(), "' returned ", out.size(),
               " outputs but was compiled for ", c.outputs.size());
      for (size_t i = 0; i < out.size(); ++i) {
        if (!c.losses[i]) continue;
        Tensor li = (*c.losses[i])(targets[i].slice(0, k * rows, (k + 1) * rows), out[i]);
        const double value = li.item();
        output_losses[i] += share * value;
        data_loss += share * value * c.loss_weights[i];
        if (c.loss_weights[i] != 1.0) li = li * c.loss_weights[i];
        objective = objective.defined() ? objective + li : li;
      }
      NoGradGuard no_grad;
      for (size_t i = 0; i < out.size(); ++i)
        for (auto& metric : c.metrics[i])
          metric->update_state(targets[i].slice(0, k * rows, (k + 1) * rows), out[i].detach());
    }
    if (objective.defined()) mb.objective = objective * (share * grad_scale);
    if (last) return Tensor();
    mb.output = out.at(0);
    return mb.output;
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
      (grad_scale == 1.0 ? reg : reg * grad_scale).backward();
    }
    strategy.sum_gradients_over_data(std::vector<Tensor>(pl.trainable.begin(), pl.trainable.end()));
    observe_gradients(pl.trainable);
    optimizer_->step(pl.trainable);
  };
  strategy.run_pipeline(step);
  pl.dirty = true;

  // The reported loss: the last stage's data loss plus every stage's layer losses and regularizers.
  Tensor extras = from_vector(std::vector<double>{extra}, {1}, {.dtype = DType::F64});
  strategy.stage_communicator()->all_reduce(extras, distributed::ReduceOp::Sum);
  if (last) {
    c.loss.update(data_loss + extras.to_vector<double>()[0], static_cast<double>(n));
    for (size_t i = 0; i < output_losses.size(); ++i)
      if (c.losses[i]) c.output_losses[i].update(output_losses[i], static_cast<double>(n));
  }
  // Every stage shows the last stage's running states after each step; the data replicas' are
  // summed once, at the epoch's end (combine_metric_states), as under data parallelism.
  reduce_metric_states([&](std::vector<double>& v) { strategy.share_last_stage_states(v); });
  return collect_logs();
}

void Model::settle_pipeline() const {
  settle_spmd();
  if (!pipeline_) return;
  // Every rank calls this at the same points (epoch ends, evaluate, predict, save) after the same
  // steps, so all agree on whether weights changed: each stage's go from it to every rank.
  if (!pipeline_->dirty) return;
  pipeline_->strategy->average_over_data(pipeline_->statistics);
  for (int st = 0; st < static_cast<int>(pipeline_->weights.size()); ++st)
    pipeline_->strategy->broadcast_from_stage(pipeline_->weights[static_cast<size_t>(st)], st);
  pipeline_->dirty = false;
}

}  // namespace meshflow
