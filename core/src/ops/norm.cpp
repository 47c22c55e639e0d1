// layer_norm and batch_norm: definitions, shape checks, running-statistics updates and backward.
#include <algorithm>
#include <string>

#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/norm.h"
#include "meshflow/core/ops/reduce.h"

namespace meshflow {
namespace {

// Where a traced batch_norm in training leaves its pending update (CollectRunningStats).
thread_local std::vector<RunningStatsUpdate>* g_running_stats = nullptr;

// Inputs are x, then gamma and beta when present (attrs has_gamma / has_beta say which).
const TensorMeta* optional_input(const std::vector<TensorMeta>& in, const Attrs& a, const char* which) {
  size_t k = 1;
  if (std::string(which) == "beta" && a.b("has_gamma")) ++k;
  return a.b(std::string("has_") + which) ? &in[k] : nullptr;
}

void check_affine(const std::vector<TensorMeta>& in, const Attrs& a, const Shape& want, const char* op) {
  for (const char* which : {"gamma", "beta"}) {
    const TensorMeta* p = optional_input(in, a, which);
    if (!p) continue;
    MF_CHECK(p->shape == want, op, ": ", which, " has shape ", shape_str(p->shape), " but x ", shape_str(in[0].shape),
             " needs ", shape_str(want), " (the shape of the normalized axes)");
    MF_CHECK(p->dtype == in[0].dtype, op, ": ", which, " is ", dtype_name(p->dtype), " but x is ",
             dtype_name(in[0].dtype));
  }
}

std::vector<TensorMeta> infer_layer_norm(const std::vector<TensorMeta>& in, const Attrs& a) {
  const Shape& s = in[0].shape;
  const int64_t rank = static_cast<int64_t>(s.size()), nd = a.i("normalized_dims");
  MF_CHECK(is_floating(in[0].dtype), "layer_norm: needs a floating x, got ", dtype_name(in[0].dtype));
  MF_CHECK(nd >= 1 && nd <= rank, "layer_norm: normalized_dims ", nd, " is out of range for x of shape ",
           shape_str(s), " (rank ", rank, "; valid: 1 to ", rank, ")");
  check_affine(in, a, Shape(s.end() - nd, s.end()), "layer_norm");
  Shape stat = s;
  for (int64_t i = rank - nd; i < rank; ++i) stat[i] = 1;
  return {in[0], {stat, in[0].dtype, in[0].device}, {stat, in[0].dtype, in[0].device}};
}

// Note [Normalization backward]: the gradient through the statistics over n elements is
//   dx = rstd * (gx - mean(gx) - xhat * mean(gx * xhat)),  gx = g * gamma, xhat = (x - mean) * rstd,
// dgamma = sum(g * xhat), dbeta = sum(g). One fused kernel per op (inputs g, x, mean, rstd, then
// gamma; outputs dx, dgamma, dbeta): composed from ops, layer_norm forward+backward of
// f32[4096, 1024] took 1.8x as long. These backward ops have no backward themselves.
std::vector<TensorMeta> infer_layer_norm_backward(const std::vector<TensorMeta>& in, const Attrs& a) {
  const Shape& s = in[1].shape;
  TensorMeta affine{Shape(s.end() - a.i("normalized_dims"), s.end()), in[1].dtype, in[1].device};
  return {in[1], affine, affine};
}

std::vector<Tensor> layer_norm_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  static const OpDef& op = ops::layer_norm_backward();
  const bool has_gamma = c.attrs.b("has_gamma"), has_beta = c.attrs.b("has_beta");
  std::vector<Tensor> inputs{g[0], c.inputs[0], c.outputs[1], c.outputs[2]};
  if (has_gamma) inputs.push_back(c.inputs[1]);
  auto d = call_op(op, inputs, c.attrs);
  std::vector<Tensor> grads{d[0]};
  if (has_gamma) grads.push_back(d[1]);
  if (has_beta) grads.push_back(d[2]);
  return grads;
}

// batch_norm ops see x as [M, C]; training outputs y, the batch mean, rstd and biased variance.
std::vector<TensorMeta> infer_batch_norm_train(const std::vector<TensorMeta>& in, const Attrs& a) {
  MF_CHECK(is_floating(in[0].dtype), "batch_norm: needs a floating x, got ", dtype_name(in[0].dtype));
  const int64_t c = in[0].shape[1];
  check_affine(in, a, {c}, "batch_norm");
  TensorMeta stat{{c}, in[0].dtype, in[0].device};
  return {in[0], stat, stat, stat};
}

// See Note [Normalization backward]; here over the M rows of each channel.
std::vector<TensorMeta> infer_batch_norm_backward(const std::vector<TensorMeta>& in, const Attrs&) {
  TensorMeta stat{{in[1].shape[1]}, in[1].dtype, in[1].device};
  return {in[1], stat, stat};
}

std::vector<Tensor> batch_norm_train_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  static const OpDef& op = ops::batch_norm_backward();
  const bool has_gamma = c.attrs.b("has_gamma"), has_beta = c.attrs.b("has_beta");
  std::vector<Tensor> inputs{g[0], c.inputs[0], c.outputs[1], c.outputs[2]};
  if (has_gamma) inputs.push_back(c.inputs[1]);
  auto d = call_op(op, inputs, c.attrs);
  std::vector<Tensor> grads{d[0]};
  if (has_gamma) grads.push_back(d[1]);
  if (has_beta) grads.push_back(d[2]);
  return grads;
}

// Inference inputs: x [M, C], running mean, running var, then gamma and beta when present.
std::vector<TensorMeta> infer_batch_norm_infer(const std::vector<TensorMeta>& in, const Attrs& a) {
  MF_CHECK(is_floating(in[0].dtype), "batch_norm: needs a floating x, got ", dtype_name(in[0].dtype));
  const int64_t c = in[0].shape[1];
  std::vector<TensorMeta> affine{in[0]};
  affine.insert(affine.end(), in.begin() + 3, in.end());
  check_affine(affine, a, {c}, "batch_norm");
  return {in[0], {{c}, in[0].dtype, in[0].device}};
}

// With fixed statistics the normalization is affine in x: dx = g * gamma * rstd.
std::vector<Tensor> batch_norm_infer_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor &x = c.inputs[0], &running_mean = c.inputs[1];
  const Tensor& rstd = c.outputs[1];
  const bool has_gamma = c.attrs.b("has_gamma"), has_beta = c.attrs.b("has_beta");
  std::vector<Tensor> grads{has_gamma ? g[0] * (c.inputs[3] * rstd) : g[0] * rstd, Tensor(), Tensor()};
  if (has_gamma) grads.push_back(sum(g[0] * ((x - running_mean) * rstd), {0}));
  if (has_beta) grads.push_back(sum(g[0], {0}));
  return grads;
}

// layer_norm: the normalized dimensions whole (the statistics span them), the others may be split
// (sequence-sharded activations); gamma and beta whole; the mean and rstd outputs as x.
ShardingDecision layer_norm_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& a) {
  const int64_t rank = static_cast<int64_t>(in[0].shape.size()), nd = a.i("normalized_dims");
  std::vector<int64_t> dims;
  for (int64_t d = rank - nd; d < rank; ++d) dims.push_back(d);
  Layout x = sharding::replicate_dims(sharding::without_partial(l[0]), dims);
  ShardingDecision r{{x}, {x, x, x}};
  for (size_t k = 1; k < in.size(); ++k) r.inputs.push_back(sharding::replicated(in[k].shape.size()));
  return r;
}

// Batch normalization over x [M, C] (the layer flattens the other dimensions into M): channels
// keep their split, with gamma, beta and the statistics split alike. Training normalizes over all
// M rows, so they are whole (a split would need the statistics summed over it: synchronized batch
// norm); inference is per row and keeps the rows' split. Nothing passes a pending sum.
template <bool Train>
ShardingDecision batch_norm_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs&) {
  Layout x = sharding::without_partial(l[0]);
  if (Train) x.dims[0].axes.clear();
  std::erase_if(x.dims[0].axes, [&](const std::string& a) {
    return std::find(x.dims[1].axes.begin(), x.dims[1].axes.end(), a) != x.dims[1].axes.end();
  });
  Layout channel = sharding::replicated(1);
  channel.dims[0] = x.dims[1];
  ShardingDecision r{{x}, {x}};
  for (size_t k = 1; k < in.size(); ++k) r.inputs.push_back(channel);
  for (int k = 0; k < (Train ? 3 : 1); ++k) r.outputs.push_back(channel);
  return r;
}

MF_STATIC_INIT {
  OpDef& l = define_op("layer_norm");
  l.infer = infer_layer_norm;
  l.sharding = layer_norm_sharding;
  l.backward = layer_norm_backward;
  l.save_outputs = true;
  define_op("layer_norm_backward").infer = infer_layer_norm_backward;
  OpDef& t = define_op("batch_norm_train");
  t.infer = infer_batch_norm_train;
  t.sharding = batch_norm_sharding<true>;
  t.backward = batch_norm_train_backward;
  t.save_outputs = true;
  define_op("batch_norm_backward").infer = infer_batch_norm_backward;
  OpDef& i = define_op("batch_norm_infer");
  i.infer = infer_batch_norm_infer;
  i.sharding = batch_norm_sharding<false>;
  i.backward = batch_norm_infer_backward;
  i.save_outputs = true;
}

void append_affine(std::vector<Tensor>& inputs, Attrs& attrs, const Tensor& gamma, const Tensor& beta) {
  attrs.set("has_gamma", gamma.defined()).set("has_beta", beta.defined());
  if (gamma.defined()) inputs.push_back(gamma);
  if (beta.defined()) inputs.push_back(beta);
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t normalized_dims, double epsilon) {
  static const OpDef& op = ops::layer_norm();
  MF_CHECK(x.defined(), "layer_norm: x is an undefined tensor");
  MF_CHECK(epsilon >= 0, "layer_norm: epsilon must be >= 0, got ", epsilon);
  std::vector<Tensor> inputs{x};
  Attrs attrs{{"normalized_dims", normalized_dims}, {"epsilon", epsilon}};
  append_affine(inputs, attrs, gamma, beta);
  return call_op1(op, inputs, attrs);
}

// Note [Batch norm running variance]: the running variance is updated with the UNBIASED batch
// variance (times M / (M - 1)), as PyTorch does and as tf.keras does on its fused path (TF's
// FusedBatchNorm CPU kernel scales the batch variance it returns for the moving average by
// rest_size / (rest_size - 1), "Bessel's correction", checked in its source). tf.keras's
// non-fused path (e.g. 2-D inputs) feeds the biased tf.nn.moments variance instead; we pick one
// rule for every rank. Normalization itself always uses the biased batch variance.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  bool training, double momentum, double epsilon) {
  MF_CHECK(x.defined(), "batch_norm: x is an undefined tensor");
  MF_CHECK(x.dim() >= 2, "batch_norm: x needs a batch axis and a channel axis (rank >= 2), got shape ",
           shape_str(x.shape()));
  MF_CHECK(epsilon >= 0, "batch_norm: epsilon must be >= 0, got ", epsilon);
  const int64_t c = x.shape().back(), m = c == 0 ? 0 : x.numel() / c;
  for (auto [name, t] : {std::pair<const char*, const Tensor*>{"running_mean", &running_mean}, {"running_var", &running_var}})
    MF_CHECK(t->defined() && t->shape() == Shape{c}, "batch_norm: ", name, " must have shape [", c, "] (the channels of x ",
             shape_str(x.shape()), "), got ", t->defined() ? shape_str(t->shape()) : std::string("an undefined tensor"));
  Tensor x2 = x.reshape({m, c});
  Attrs attrs{{"epsilon", epsilon}};
  if (!training) {
    static const OpDef& op = ops::batch_norm_infer();
    std::vector<Tensor> inputs{x2, running_mean.detach(), running_var.detach()};
    append_affine(inputs, attrs, gamma, beta);
    return call_op1(op, inputs, attrs).reshape(x.shape());
  }
  MF_CHECK(m > 1, "batch_norm: training needs more than one value per channel, got x ", shape_str(x.shape()),
           "; use a larger batch or inference mode");
  static const OpDef& op = ops::batch_norm_train();
  std::vector<Tensor> inputs{x2};
  append_affine(inputs, attrs, gamma, beta);
  auto outs = call_op(op, inputs, attrs);
  RunningStatsUpdate update{running_mean, running_var, outs[1], outs[3], momentum, m};
  if (!x.is_symbolic()) {
    apply_running_stats(update, outs[1], outs[3]);
  } else if (g_running_stats) {
    g_running_stats->push_back(std::move(update));
  }
  return outs[0].reshape(x.shape());
}

CollectRunningStats::CollectRunningStats(std::vector<RunningStatsUpdate>* into) : previous_(g_running_stats) {
  g_running_stats = into;
}
CollectRunningStats::~CollectRunningStats() { g_running_stats = previous_; }

void apply_running_stats(const RunningStatsUpdate& u, const Tensor& mean, const Tensor& var) {
  MF_CHECK(!mean.is_symbolic() && !var.is_symbolic() && mean.shape() == u.running_mean.shape() &&
               var.shape() == u.running_var.shape(),
           "apply_running_stats: expected concrete batch statistics of shape ", shape_str(u.running_mean.shape()),
           ", got ", shape_str(mean.shape()), " and ", shape_str(var.shape()));
  NoGradGuard no_grad;
  const double m = static_cast<double>(u.count);
  Tensor batch_mean = cast(mean.detach(), u.running_mean.dtype());
  Tensor batch_var = cast(var.detach(), u.running_var.dtype()) * (m / (m - 1));
  Tensor running_mean = u.running_mean, running_var = u.running_var;
  running_mean.copy_(running_mean * u.momentum + batch_mean * (1.0 - u.momentum));
  running_var.copy_(running_var * u.momentum + batch_var * (1.0 - u.momentum));
}

}  // namespace meshflow
