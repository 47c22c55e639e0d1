// A model's training step under a ShardedStrategy that splits tensors (tensor parallelism): the
// model's forward and its compiled losses are traced into an SpmdProgram (one per batch size, all
// sharing this rank's parts of the split weights), run on this rank's device, differentiated,
// and the optimizer updates this rank's parts. See Note [Partitioned programs] in
// parallel/partitioner.h and docs/sharding.md.
#include <cmath>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/nn.h"
#include "meshflow/core/ops/norm.h"
#include "meshflow/core/optim.h"
#include "meshflow/models/regularizers.h"
#include "meshflow/parallel/sharded.h"
#include "model_state.h"

namespace meshflow {

struct Model::Spmd {
  std::map<int64_t, std::shared_ptr<SpmdProgram>> programs;  // by the batch's rows
  std::shared_ptr<SpmdProgram> first;                         // the one the others bind like
  std::vector<Variable> trainable;  // the model's, in order
  std::vector<Tensor> locals;       // what autograd fills for each: its part, or the weight itself
  std::vector<Variable> vars;       // the optimizer's variables over `locals` (same objects every step)
  std::vector<double> copies;       // per weight: how many ranks hold each of its parts
  std::shared_ptr<distributed::Communicator> comm;
  // Per program: the moving-statistics updates of the BatchNormalization calls it traced, whose
  // batch statistics it returns after the model's outputs (Note [Moving statistics in the split step]).
  std::map<int64_t, std::shared_ptr<std::vector<RunningStatsUpdate>>> running_stats;
  // Per program: the dropout calls it traced, and how many times it has run (Note [Masks per step]).
  std::map<int64_t, std::shared_ptr<std::vector<TracedDraw>>> draws;
  std::map<int64_t, int64_t> runs;
  bool dirty = false;
};

std::map<std::string, double> Model::run_spmd_step(const Tensors& x, const Tensors& y, ShardedStrategy& s) {
  auto& c = *compiled_state_;
  MF_CHECK(!x.empty(), "ShardedStrategy: model '", name(), "' was given no inputs");
  if (!spmd_) spmd_ = std::make_shared<Spmd>();
  Spmd& st = *spmd_;
  const int64_t n = x[0].size(0);
  const size_t nx = x.size(), no = c.outputs.size();
  std::vector<Tensor> targets = targets_for(y, no);
  std::vector<size_t> with_loss;  // outputs that have a loss, in order; their targets follow x
  for (size_t i = 0; i < no; ++i)
    if (c.losses[i]) with_loss.push_back(i);

  auto& program = st.programs[n];
  if (!program) {
    if (!st.first) {
      // Every rank starts from rank 0's weights, as under the mirrored strategies.
      const auto ws = weights();
      std::vector<Tensor> all(ws.begin(), ws.end());
      s.broadcast_from_chief(all);
      st.trainable = trainable_weights();
      // Keras's L1, L2 and L1L2 penalties are sums over elements, so each rank adds its part's
      // (Note [Penalties on parts] below); a penalty that is not such a sum cannot be split.
      for (const auto& v : st.trainable) {
        if (!v.regularizer()) continue;
        const std::string kind = v.regularizer()->get_config().value("class_name", "");
        MF_CHECK(kind == "L1" || kind == "L2" || kind == "L1L2", "ShardedStrategy: weight '", v.name(), "' of model '",
                 name(), "' has a regularizer of class '", kind, "'; tensor-parallel training splits only penalties ",
                 "that are sums over elements (L1, L2, L1L2)");
      }
    }
    const std::vector<std::string> names = x.names();
    // Note [Moving statistics in the split step]: BatchNormalization updates its moving mean and
    // variance outside the ops, from the batch's statistics, which a traced call does not have. The
    // trace collects each pending update, the program returns the batch statistics (whole: batch
    // norm's rule keeps the rows of a training batch together, so they are the global batch's),
    // and every rank applies the same update after each run, as one device does.
    auto stats = std::make_shared<std::vector<RunningStatsUpdate>>();
    st.running_stats[n] = stats;
    auto draws = std::make_shared<std::vector<TracedDraw>>();
    st.draws[n] = draws;
    SpmdProgram::Fn fn = [this, &c, nx, no, with_loss, names, stats, draws](const std::vector<Tensor>& ins) {
      TrainingScope training(true);
      clear_losses();
      stats->clear();
      draws->clear();
      CollectRunningStats collect(stats.get());
      CollectDraws collect_draws(draws.get());
      Tensors xs;
      for (size_t i = 0; i < nx; ++i) xs.push_back(ins[i], names[i]);
      Tensors out = (*this)(xs);
      // Layer losses (add_loss) are ops of the traced step like the rest: a sum over split rows or
      // features comes out as a pending sum and is reduced where the loss is, so it equals one
      // device's. They join the objective and the reported loss, as in the unsplit step.
      const std::vector<Tensor> layer_losses = losses();
      MF_CHECK(out.size() == no, "model '", name(), "' returned ", out.size(), " outputs but was compiled for ", no);
      Tensor total;
      std::vector<Tensor> result(1);
      for (size_t k = 0; k < with_loss.size(); ++k) {
        const size_t i = with_loss[k];
        Tensor li = (*c.losses[i])(ins[nx + k], out[i]);
        result.push_back(li);
        Tensor weighted = c.loss_weights[i] == 1.0 ? li : li * c.loss_weights[i];
        total = total.defined() ? total + weighted : weighted;
      }
      for (const Tensor& l : layer_losses) total = total.defined() ? total + l : l;
      MF_CHECK(total.defined(), "model '", name(), "' has no loss to train");
      result[0] = total;
      for (size_t i = 0; i < no; ++i) result.push_back(out[i]);
      for (const RunningStatsUpdate& u : *stats) {
        result.push_back(u.batch_mean);
        result.push_back(u.batch_var);
      }
      return result;
    };
    std::vector<TensorMeta> specs;
    std::vector<Layout> layouts;
    const Mesh& mesh = s.mesh();
    const bool rows_split = mesh.has_axis("data") && mesh.axis_size("data") > 1;
    auto add_spec = [&](const Tensor& t) {
      specs.push_back({t.shape(), t.dtype(), t.device()});
      Layout l = sharding::replicated(t.shape().size());
      if (rows_split && !l.dims.empty()) l.dims[0].axes = {"data"};
      layouts.push_back(l);
    };
    for (const auto& t : x.list()) add_spec(t);
    for (size_t i : with_loss) {
      MF_CHECK(targets[i].defined(), "model '", name(), "': output ", i, " has a loss but no target");
      add_spec(targets[i]);
    }
    SpmdOptions options;
    options.inputs = layouts;
    // The strategy's annotations, then layouts the layers were given (Dense's kernel_layout).
    auto annotations = s.annotations();
    for (const auto& v : weights()) {
      if (!v.layout()) continue;
      bool annotated = false;
      for (const auto& [w, l] : annotations) annotated = annotated || w.is_same(v);
      if (!annotated) annotations.emplace_back(v, *v.layout());
    }
    auto made = std::make_shared<SpmdProgram>(fn, specs, mesh, annotations, options);
    program = made;
    if (!st.first) {
      program->bind(s.process_communicator());
      st.first = program;
      s.set_program(program);
      st.comm = s.process_communicator();
      for (const auto& v : st.trainable) {
        Tensor local = program->local(v);
        st.locals.push_back(local);
        if (local.is_same(v)) {
          st.vars.push_back(v);
        } else {
          Variable part(local, v.name(), true);
          std::shared_ptr<SpmdProgram> p = program;
          Tensor whole = v;
          part.set_part_of(v.shape(), [p, whole](const Tensor& t) { return p->part_of(t, whole); },
                           [p, whole](const Tensor& t) { return p->gather(t, whole); });
          st.vars.push_back(part);
        }
        // Ranks holding the same part: the mesh axes the weight's layout does not split it over.
        double copies = 1;
        const Layout l = program->layout_of(v);
        for (const auto& a : mesh.axes())
          if (!sharding::mentions(l, a.name)) copies *= a.size;
        st.copies.push_back(copies);
      }
    } else {
      program->bind_like(*st.first);
      for (size_t i = 0; i < st.trainable.size(); ++i)
        MF_CHECK(program->local(st.trainable[i]).is_same(st.locals[i]), "ShardedStrategy: weight '",
                 st.trainable[i].name(), "' is laid out differently for a batch of ", n, " rows");
    }
  }

  // The losses' checks of the targets' values (class ids in range) on this batch, which the traced
  // step cannot make: the loss of zero predictions, before any rank starts the step.
  {
    NoGradGuard no_grad;
    const auto& outputs = program->graph().outputs();
    for (size_t k = 0; k < with_loss.size(); ++k) {
      const auto& meta = program->graph().values()[static_cast<size_t>(outputs[1 + with_loss.size() + with_loss[k]])].meta;
      (*c.losses[with_loss[k]])(targets[with_loss[k]], zeros(meta.shape, {.dtype = meta.dtype}));
    }
  }
  std::vector<Tensor> ins = x.list();
  for (size_t i : with_loss) ins.push_back(targets[i]);
  // Note [Masks per step]: the trace reserved its dropout counters as the first step's eager calls
  // would, so the first run replays them. Each later run reserves the same number again from each
  // generator, in the traced order, as one device's next step does, so every step draws new masks
  // and the split run drops what one device drops.
  if (st.runs[n]++ > 0 && !st.draws.at(n)->empty()) {
    std::map<Generator*, std::pair<uint64_t, uint64_t>> span;  // generator -> (first traced counter, total)
    for (const TracedDraw& d : *st.draws.at(n)) {
      auto it = span.try_emplace(d.generator, d.counter, 0).first;
      it->second.first = std::min(it->second.first, d.counter);
      it->second.second += d.blocks;
    }
    std::map<Generator*, uint64_t> base;
    for (const auto& [g, s] : span) base[g] = g->reserve(s.second);
    std::map<std::pair<uint64_t, uint64_t>, uint64_t> counters;
    for (const TracedDraw& d : *st.draws.at(n))
      counters[{d.seed, d.counter}] = base.at(d.generator) + (d.counter - span.at(d.generator).first);
    program->set_counters(std::move(counters));
  }
  std::vector<Tensor> outs = program->run(ins);
  {
    const auto& updates = *st.running_stats.at(n);
    const size_t first_stat = 1 + with_loss.size() + no;
    MF_CHECK(outs.size() == first_stat + 2 * updates.size(), "ShardedStrategy: the split step returned ", outs.size(),
             " values, expected ", first_stat + 2 * updates.size());
    for (size_t k = 0; k < updates.size(); ++k)
      apply_running_stats(updates[k], outs[first_stat + 2 * k], outs[first_stat + 2 * k + 1]);
  }
  // Note [Penalties on parts]: an elementwise-sum penalty of a weight is the sum of its parts'
  // penalties, and its gradient on a part is the part's own. So every rank adds the penalties of
  // the parts it holds to the loss it differentiates (each copy of a replicated weight gets the
  // whole penalty gradient, as it gets the whole data gradient), and the reported loss adds each
  // part's penalty once: divided by the ranks holding that part, then summed over the ranks with
  // the gradient norms below.
  Tensor objective = outs[0];
  double penalty = 0;
  for (size_t i = 0; i < st.trainable.size(); ++i) {
    const auto& reg = st.trainable[i].regularizer();
    if (!reg) continue;
    Tensor r = (*reg)(st.locals[i]);
    objective = objective + r;
    penalty += r.item() / st.copies[i];
  }
  objective.backward();

  // Norms over whole weights for clipping and the finite check: each part's squared norm, summed
  // over the ranks, each part counted once.
  std::vector<Tensor> grads;
  std::vector<double> local(st.locals.size(), 0.0);
  for (size_t i = 0; i < st.locals.size(); ++i) {
    Tensor g = st.locals[i].grad();
    grads.push_back(g);
    if (!g.defined() || g.numel() == 0) continue;
    Tensor gc = g.contiguous();
    if (gc.dtype() != DType::F32 && gc.dtype() != DType::F64) gc = gc.to(DType::F32);
    local[i] = optim::squared_norm(gc) / st.copies[i];
  }
  local.push_back(penalty);  // summed over the ranks with the norms: one collective
  Tensor sq = from_vector(local, {static_cast<int64_t>(local.size())}, {.dtype = DType::F64});
  if (st.comm->size() > 1) st.comm->all_reduce(sq);
  std::vector<double> squared = sq.to_vector<double>();
  const double penalties = squared.back();
  squared.pop_back();
  for (size_t i = 0; i < squared.size(); ++i)
    MF_CHECK(!check_gradients_ || std::isfinite(squared[i]), "fit(check_gradients): the gradient of '",
             st.trainable[i].name(), "' is not finite (it holds a NaN or an infinity)");
  optimizer_->apply_gradients(grads, st.vars, &squared);
  for (Tensor& t : st.locals) t.zero_grad();
  st.dirty = true;

  NoGradGuard no_grad;
  const double rows = static_cast<double>(n);
  c.loss.update(outs[0].item() + penalties, rows);
  for (size_t k = 0; k < with_loss.size(); ++k) c.output_losses[with_loss[k]].update(outs[1 + k].item(), rows);
  for (size_t i = 0; i < no; ++i)
    for (auto& m : c.metrics[i]) m->update_state(targets[i], outs[1 + with_loss.size() + i]);
  return collect_logs();
}

void Model::settle_spmd() const {
  if (!spmd_ || !spmd_->dirty) return;
  // Every rank calls this at the same points after the same steps (a collective).
  spmd_->first->gather_weights();
  spmd_->dirty = false;
}

}  // namespace meshflow
