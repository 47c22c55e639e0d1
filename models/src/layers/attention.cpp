// MultiHeadAttention: Keras's projections and masking, computed with batched matmuls.
#include "meshflow/models/layers/attention.h"

#include <cmath>

#include "layers/config_fields.h"
#include "layers/sequence_ops.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/linalg.h"
#include "meshflow/core/ops/nn.h"
#include "meshflow/core/ops/norm.h"
#include "meshflow/core/ops/shape.h"
#include "meshflow/core/trace.h"
#include "meshflow/models/masking.h"

namespace meshflow::layers {

// The options a MultiHeadAttention config holds (Note [One field list per options struct]).
// value_dim is not listed: the config holds the resolved one (key_dim when unset).
template <typename F>
void fields(MultiHeadAttentionOptions& o, F&& f) {
  f("dropout", o.dropout);
  f("use_bias", o.use_bias);
  f("output_shape", o.output_shape);
  f("kernel_initializer", o.kernel_initializer);
  f("bias_initializer", o.bias_initializer);
  f("use_causal_mask", o.use_causal_mask);
  f("return_attention_scores", o.return_attention_scores);
}

MultiHeadAttentionLayer::MultiHeadAttentionLayer(int64_t num_heads, int64_t key_dim, MultiHeadAttentionOptions o)
    : Layer({.name = o.name, .trainable = o.trainable, .dtype = o.dtype}, "MultiHeadAttention"),
      num_heads_(num_heads),
      key_dim_(key_dim),
      value_dim_(o.value_dim > 0 ? o.value_dim : key_dim),
      options_(std::move(o)) {
  MF_CHECK(num_heads > 0 && key_dim > 0 && options_.value_dim >= 0 && options_.output_shape >= 0,
           "MultiHeadAttention '", name(), "': num_heads, key_dim, value_dim and output_shape must be positive ",
           "(0 for the defaults), got num_heads=", num_heads, ", key_dim=", key_dim, ", value_dim=", options_.value_dim,
           ", output_shape=", options_.output_shape);
  MF_CHECK(options_.dropout >= 0 && options_.dropout < 1, "MultiHeadAttention '", name(),
           "': dropout must be in [0, 1), got ", options_.dropout);
}

Tensors MultiHeadAttentionLayer::operator()(const Tensor& query, const Tensor& value, const Tensor& key,
                                            const Tensor& attention_mask) {
  std::vector<Tensor> ins{query, value};
  if (key.defined()) ins.push_back(key);
  if (attention_mask.defined()) ins.push_back(attention_mask);
  return Layer::operator()(Tensors(ins));
}

void MultiHeadAttentionLayer::build_from_signature(const Shape& q, const Shape& v, const Shape& k) {
  if (projections_built_) return;
  for (const Shape* s : {&q, &v, &k})
    MF_CHECK(s->size() == 3 && s->back() > 0, "MultiHeadAttention '", name(), "': expected 3-D inputs [batch, ",
             "sequence, features] with known features, got query ", shape_str(q), ", value ", shape_str(v), ", key ",
             shape_str(k));
  const std::string& ki = options_.kernel_initializer;
  const std::string& bi = options_.bias_initializer;
  const bool b = options_.use_bias;
  const int64_t out_dim = options_.output_shape > 0 ? options_.output_shape : q.back();
  query_kernel_ = add_weight("query/kernel", {q.back(), num_heads_, key_dim_}, ki);
  if (b) query_bias_ = add_weight("query/bias", {num_heads_, key_dim_}, bi);
  key_kernel_ = add_weight("key/kernel", {k.back(), num_heads_, key_dim_}, ki);
  if (b) key_bias_ = add_weight("key/bias", {num_heads_, key_dim_}, bi);
  value_kernel_ = add_weight("value/kernel", {v.back(), num_heads_, value_dim_}, ki);
  if (b) value_bias_ = add_weight("value/bias", {num_heads_, value_dim_}, bi);
  output_kernel_ = add_weight("attention_output/kernel", {num_heads_, value_dim_, out_dim}, ki);
  if (b) output_bias_ = add_weight("attention_output/bias", {out_dim}, bi);
  projections_built_ = true;
}

void MultiHeadAttentionLayer::check_inputs(const Tensor& query, const Tensor& value, const Tensor& key,
                                           const Tensor& mask) const {
  const std::string who = "MultiHeadAttention '" + name() + "'";
  auto shapes = [&] {
    return ::meshflow::detail::str_cat("query ", shape_str(query.shape()), ", value ", shape_str(value.shape()),
                                       ", key ", shape_str(key.shape()));
  };
  MF_CHECK(query.dim() == 3 && value.dim() == 3 && key.dim() == 3, who,
           ": expected 3-D inputs [batch, sequence, features], got ", shapes());
  auto same = [](int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; };
  MF_CHECK(same(query.size(0), value.size(0)) && same(value.size(0), key.size(0)), who,
           ": the batch sizes differ: ", shapes());
  MF_CHECK(same(key.size(1), value.size(1)), who, ": key and value must have the same sequence length: ", shapes());
  MF_CHECK(query.size(2) == query_kernel_.size(0) && value.size(2) == value_kernel_.size(0) &&
               key.size(2) == key_kernel_.size(0),
           who, ": feature sizes do not match the layer's, built for query ", query_kernel_.size(0), ", value ",
           value_kernel_.size(0), ", key ", key_kernel_.size(0), " features; got ", shapes());
  if (mask.defined()) {
    const Shape want{query.size(0), query.size(1), value.size(1)};
    bool fits = mask.dim() >= 2 && mask.dim() <= 3;
    for (int64_t i = 1; fits && i <= mask.dim(); ++i) {
      int64_t m = mask.size(mask.dim() - i), w = want[3 - i];
      fits = m == 1 || same(m, w);
    }
    MF_CHECK(fits, who, ": the attention mask has shape ", shape_str(mask.shape()),
             " but must broadcast to [batch, T, S] = ", shape_str(want), " (", shapes(), ")");
  }
}

Tensor MultiHeadAttentionLayer::combined_mask(const Tensor& query, const Tensor& value, const Tensor& key,
                                              const Tensor& mask) const {
  // Keras: query mask [B, T, 1] & value mask [B, 1, S] & key mask [B, 1, S] & causal [1, T, S] & mask.
  Tensor combined = mask;
  auto both = [&](const Tensor& m) { combined = combined.defined() ? logical_and(combined, m) : m; };
  Tensor qm = keras_mask(query), vm = keras_mask(value), km = key.is_same(value) ? Tensor() : keras_mask(key);
  if (qm.defined()) both(qm.unsqueeze(2));
  if (vm.defined()) both(vm.unsqueeze(1));
  if (km.defined()) both(km.unsqueeze(1));
  if (options_.use_causal_mask) {
    const int64_t t = query.size(1), s = value.size(1);
    Tensor rows = arange(t, {.dtype = DType::I64}).reshape({t, 1});
    Tensor cols = arange(s, {.dtype = DType::I64}).reshape({1, s});
    both(ge(rows, cols).unsqueeze(0));  // Keras's lower-triangular band
  }
  return combined;
}

Tensor MultiHeadAttentionLayer::project(const Tensor& x, const Tensor& kernel, const Tensor& bias) const {
  const int64_t b = x.size(0), len = x.size(1), dim = x.size(2), width = kernel.size(1) * kernel.size(2);
  Tensor y = matmul(x.reshape({b * len, dim}), kernel.reshape({dim, width}));
  if (bias.defined()) y = y + bias.reshape({width});
  return y.reshape({b, len, kernel.size(1), kernel.size(2)}).permute({0, 2, 1, 3});
}

Tensors MultiHeadAttentionLayer::call(const Tensors& inputs) {
  std::vector<Tensor> features;
  Tensor mask;
  for (const auto& t : inputs) {
    if (t.dtype() == DType::Bool) {
      MF_CHECK(!mask.defined(), "MultiHeadAttention '", name(), "': got two bool attention masks");
      mask = t;
    } else {
      features.push_back(t);
    }
  }
  MF_CHECK(features.size() == 2 || features.size() == 3, "MultiHeadAttention '", name(),
           "': expected inputs {query, value} or {query, value, key} (plus an optional bool attention mask), got ",
           features.size(), " floating tensors");
  const Tensor &query = features[0], &value = features[1];
  const Tensor& key = features.size() == 3 ? features[2] : features[1];
  for (const auto& t : features)
    MF_CHECK(t.dim() == 3, "MultiHeadAttention '", name(), "': expected 3-D inputs [batch, sequence, features], ",
             "got an input of shape ", shape_str(t.shape()));
  build_from_signature(query.shape(), value.shape(), key.shape());
  check_inputs(query, value, key, mask);

  const int64_t batch = query.size(0), t_len = query.size(1), s_len = value.size(1);
  const int64_t out_dim = output_kernel_.size(2);
  // Symbolic inputs of known shapes run the ops below (traced: a partitioner sees them, Note
  // [Expanding layer calls]); an unknown dimension (Input({-1, 16})) gives shapes only.
  auto unknown = [](const Tensor& t) {
    for (int64_t d : t.shape())
      if (d < 0) return true;
    return false;
  };
  if (unknown(query) || unknown(value) || unknown(key)) {  // shapes only
    Tensors out{symbolic({batch, t_len, out_dim}, query.dtype())};
    if (options_.return_attention_scores) out.push_back(symbolic({batch, num_heads_, t_len, s_len}, query.dtype()));
    if (keras_mask(query).defined()) set_keras_mask(out[0], keras_mask(query));
    return out;
  }

  // Keras scales the projected query by 1/sqrt(key_dim) before the dot product.
  Tensor q = project(query, query_kernel_, query_bias_) * (1.0 / std::sqrt(static_cast<double>(key_dim_)));
  Tensor k = project(key, key_kernel_, key_bias_);
  Tensor v = project(value, value_kernel_, value_bias_);
  Tensor logits = matmul(q, k, false, true);  // [B, heads, T, S]
  Tensor attend = combined_mask(query, value, key, mask);
  if (attend.defined()) {
    if (attend.dim() == 3) attend = attend.unsqueeze(1);  // one mask for every head
    Tensor zero = scalar_like(0.0, logits), penalty = scalar_like(detail::large_negative(logits.dtype()), logits);
    logits = logits + where(attend, zero, penalty);
  }
  Tensor probabilities = softmax(logits, -1);
  Tensor dropped = dropout(probabilities, options_.dropout, Layer::training() && options_.dropout > 0);
  Tensor context = matmul(dropped, v).permute({0, 2, 1, 3}).reshape({batch * t_len, num_heads_ * value_dim_});
  Tensor out = matmul(context, output_kernel_.reshape({num_heads_ * value_dim_, out_dim}));
  if (output_bias_.defined()) out = out + output_bias_;
  out = out.reshape({batch, t_len, out_dim});
  Tensor query_mask = keras_mask(query);
  if (query_mask.defined()) set_keras_mask(out, query_mask);
  Tensors result{out};
  if (options_.return_attention_scores) result.push_back(probabilities);
  return result;
}

Json MultiHeadAttentionLayer::get_config() const {
  Json c = Layer::get_config();
  c["num_heads"] = num_heads_;
  c["key_dim"] = key_dim_;
  c["value_dim"] = value_dim_;
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<MultiHeadAttentionLayer> MultiHeadAttentionLayer::from_config(const Json& c) {
  MultiHeadAttentionOptions o;
  o.value_dim = c.value("value_dim", o.value_dim);
  detail::read_fields(c, o);
  detail::read_common_strict(c, o);
  return std::make_shared<MultiHeadAttentionLayer>(c.at("num_heads").get<int64_t>(), c.at("key_dim").get<int64_t>(), o);
}

LayerRef<MultiHeadAttentionLayer> MultiHeadAttention(int64_t num_heads, int64_t key_dim,
                                                     MultiHeadAttentionOptions options) {
  return make_layer<MultiHeadAttentionLayer>(num_heads, key_dim, std::move(options));
}

MF_REGISTER_LAYER(MultiHeadAttentionLayer, "MultiHeadAttention");

}  // namespace meshflow::layers
