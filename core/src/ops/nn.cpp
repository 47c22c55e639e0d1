// dropout and one_hot: definitions, backward and the public functions. embedding, declared in
// meshflow/core/ops/nn.h too, is a gather of table rows and is defined beside gather in gather.cpp.
#include "meshflow/core/ops/nn.h"

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"

namespace meshflow {
namespace {

// Where traced dropout calls are recorded (CollectDraws).
thread_local std::vector<TracedDraw>* g_draws = nullptr;

// dropout: input x, attrs (rate, seed, counter) ---------------------------------------------------
// Note [Dropout mask from attrs]: the mask is not stored. Element i keeps its value when word
// i % 4 of philox(seed, counter + i / 4) is at least rate * 2^32, so the mask is a pure function
// of (seed, counter, i): independent of the thread split, and recomputable. Dropout is linear
// in x (y = x * mask / (1 - rate)), so its backward is the same op with the same attrs applied
// to the incoming gradient; nothing of the size of x is kept alive between forward and backward.
std::vector<TensorMeta> infer_dropout(const std::vector<TensorMeta>& in, const Attrs& a) {
  MF_CHECK(is_floating(in[0].dtype), "dropout: expects a floating tensor, got ", dtype_name(in[0].dtype), " (shape ",
           shape_str(in[0].shape), ")");
  const double rate = a.f("rate");
  MF_CHECK(rate >= 0.0 && rate < 1.0, "dropout: rate must be in [0, 1), got ", rate);
  return {in[0]};
}

std::vector<Tensor> dropout_backward(const BackwardContext& ctx, const std::vector<Tensor>& g) {
  static const OpDef& op = ops::dropout();
  return {call_op1(op, {g[0]}, ctx.attrs)};
}

// one_hot: ids -> ids.shape + [depth] ---------------------------------------------------------------
std::vector<TensorMeta> infer_one_hot(const std::vector<TensorMeta>& in, const Attrs& a) {
  MF_CHECK(is_integral(in[0].dtype), "one_hot: ids must be i32 or i64, got ", dtype_name(in[0].dtype), " (shape ",
           shape_str(in[0].shape), ")");
  MF_CHECK(a.i("depth") >= 0, "one_hot: depth must be non-negative, got ", a.i("depth"));
  Shape out = in[0].shape;
  out.push_back(a.i("depth"));
  return {{out, static_cast<DType>(a.i("dtype")), in[0].device}};
}

MF_STATIC_INIT {
  OpDef& d = define_op("dropout");
  d.infer = infer_dropout;
  d.backward = dropout_backward;
  // Linear, so a pending sum passes through. A split part draws its elements' mask from their
  // global indices (the attrs global_shape and shard_start, set by the partitioner), so the parts
  // together drop what one device drops (Note [Dropout mask from attrs]).
  d.sharding = sharding::elementwise_rule<sharding::PartialRule::Pass>;
  OpDef& o = define_op("one_hot");
  o.infer = infer_one_hot;  // not differentiable: the ids are integers
  // The ids' splits carry over; the new class axis is whole.
  o.sharding = [](const std::vector<TensorMeta>&, const std::vector<Layout>& l, const Attrs&) {
    Layout need = sharding::without_partial(l[0]), out = need;
    out.dims.push_back({});
    return ShardingDecision{{need}, {out}};
  };
}

}  // namespace

Tensor dropout(const Tensor& x, double rate, bool training, Generator& gen) {
  static const OpDef& op = ops::dropout();
  MF_CHECK(x.defined(), "dropout: the input is an undefined tensor");
  MF_CHECK(rate >= 0.0 && rate < 1.0, "dropout: rate must be in [0, 1), got ", rate,
           " (rate is the fraction of elements dropped)");
  if (!training || rate == 0.0) return x;
  const int64_t n = std::max<int64_t>(shape_numel(x.shape()), 0);
  const uint64_t blocks = static_cast<uint64_t>((n + 3) / 4);
  const uint64_t counter = gen.reserve(blocks);
  if (x.is_symbolic() && g_draws) g_draws->push_back({&gen, gen.seed(), counter, blocks});
  // Seeds travel as int64 attrs; the bits are the same.
  return call_op1(op, {x},
                  {{"rate", rate},
                   {"seed", static_cast<int64_t>(gen.seed())},
                   {"counter", static_cast<int64_t>(counter)}});
}

CollectDraws::CollectDraws(std::vector<TracedDraw>* into) : previous_(g_draws) { g_draws = into; }
CollectDraws::~CollectDraws() { g_draws = previous_; }

Tensor dropout(const Tensor& x, double rate, bool training) {
  return dropout(x, rate, training, default_generator());
}

Tensor one_hot(const Tensor& ids, int64_t depth, DType dtype) {
  static const OpDef& op = ops::one_hot();
  return call_op1(op, {ids}, {{"depth", depth}, {"dtype", static_cast<int64_t>(dtype)}});
}

}  // namespace meshflow
