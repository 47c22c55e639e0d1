// TransformerEncoder (attention + feed-forward, residuals, layer norms) and token + position
// embeddings, composed from core ops and the MultiHeadAttention layer.
#include "meshflow/models/layers/transformer.h"

#include "layers/config_fields.h"
#include "layers/sequence_ops.h"
#include "meshflow/core/error.h"
#include "meshflow/core/init.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/linalg.h"
#include "meshflow/core/ops/nn.h"
#include "meshflow/core/ops/norm.h"
#include "meshflow/core/ops/shape.h"
#include "meshflow/core/trace.h"
#include "meshflow/models/masking.h"

namespace meshflow::layers {

// TransformerEncoder ------------------------------------------------------------------------------

// The options a TransformerEncoder config holds (Note [One field list per options struct]).
template <typename F>
void fields(TransformerEncoderOptions& o, F&& f) {
  f("key_dim", o.key_dim);
  f("dropout", o.dropout);
  f("activation", o.activation);
  f("layer_norm_epsilon", o.layer_norm_epsilon);
  f("normalize_first", o.normalize_first);
  f("use_causal_mask", o.use_causal_mask);
  f("kernel_initializer", o.kernel_initializer);
  f("bias_initializer", o.bias_initializer);
}

TransformerEncoderLayer::TransformerEncoderLayer(int64_t num_heads, int64_t ff_dim, TransformerEncoderOptions o)
    : Layer({.name = o.name, .trainable = o.trainable, .dtype = o.dtype}, "TransformerEncoder"),
      num_heads_(num_heads),
      ff_dim_(ff_dim),
      options_(std::move(o)) {
  MF_CHECK(num_heads > 0 && ff_dim > 0 && options_.key_dim >= 0, "TransformerEncoder '", name(),
           "': num_heads and ff_dim must be positive and key_dim >= 0, got num_heads=", num_heads, ", ff_dim=", ff_dim,
           ", key_dim=", options_.key_dim);
  MF_CHECK(options_.dropout >= 0 && options_.dropout < 1, "TransformerEncoder '", name(),
           "': dropout must be in [0, 1), got ", options_.dropout);
  try {
    ff_activation_ = activations::get(options_.activation);
  } catch (const Error& e) {
    MF_THROW("TransformerEncoder '", name(), "': ", e.what());
  }
}

void TransformerEncoderLayer::build(const std::vector<Shape>& input_shapes) { build(input_shapes.at(0)); }

void TransformerEncoderLayer::build(const Shape& in) {
  MF_CHECK(in.size() == 3 && in[2] > 0, "TransformerEncoder '", name(),
           "': expected a 3-D input [batch, sequence, features] with known features, got shape ", shape_str(in));
  const int64_t dim = in[2];
  int64_t key_dim = options_.key_dim;
  if (key_dim == 0) {
    MF_CHECK(dim % num_heads_ == 0, "TransformerEncoder '", name(), "': the model dimension ", dim, " (input shape ",
             shape_str(in), ") does not divide into ", num_heads_, " heads; set key_dim");
    key_dim = dim / num_heads_;
  }
  attention_ = track(std::make_shared<MultiHeadAttentionLayer>(
      num_heads_, key_dim,
      MultiHeadAttentionOptions{.dropout = options_.dropout,
                                .kernel_initializer = options_.kernel_initializer,
                                .bias_initializer = options_.bias_initializer,
                                .use_causal_mask = options_.use_causal_mask,
                                .name = name() + "/self_attention",
                                .trainable = trainable(),
                                .dtype = dtype_}));
  attention_->build_from_signature(in, in, in);
  attention_norm_gamma_ = add_weight("attention_norm/gamma", {dim}, "ones");
  attention_norm_beta_ = add_weight("attention_norm/beta", {dim}, "zeros");
  inner_kernel_ = add_weight("intermediate/kernel", {dim, ff_dim_}, options_.kernel_initializer);
  inner_bias_ = add_weight("intermediate/bias", {ff_dim_}, options_.bias_initializer);
  outer_kernel_ = add_weight("output/kernel", {ff_dim_, dim}, options_.kernel_initializer);
  outer_bias_ = add_weight("output/bias", {dim}, options_.bias_initializer);
  ff_norm_gamma_ = add_weight("feedforward_norm/gamma", {dim}, "ones");
  ff_norm_beta_ = add_weight("feedforward_norm/beta", {dim}, "zeros");
}

Tensor TransformerEncoderLayer::feed_forward(const Tensor& x) const {
  const int64_t b = x.size(0), t = x.size(1), dim = x.size(2);
  Tensor h = matmul(x.reshape({b * t, dim}), inner_kernel_) + inner_bias_;
  h = ff_activation_(h);
  return (matmul(h, outer_kernel_) + outer_bias_).reshape({b, t, dim});
}

Tensors TransformerEncoderLayer::call(const Tensors& inputs) {
  const Tensor& x = inputs[0];
  MF_CHECK(x.dim() == 3 && x.size(2) == inner_kernel_.size(0), "TransformerEncoder '", name(),
           "': expected an input [batch, sequence, ", inner_kernel_.size(0), "], got shape ", shape_str(x.shape()));
  Tensor padding, attention_mask;
  for (size_t i = 1; i < inputs.size(); ++i) {
    const Tensor& m = inputs[i];
    MF_CHECK(m.dtype() == DType::Bool && (m.dim() == 2 || m.dim() == 3), "TransformerEncoder '", name(),
             "': extra inputs must be bool masks [batch, T] (padding) or [batch, T, T] (attention), got ",
             dtype_name(m.dtype()), shape_str(m.shape()));
    (m.dim() == 2 ? padding : attention_mask) = m;
  }
  if (!padding.defined()) padding = keras_mask(x);
  if (x.is_symbolic()) {  // shapes only
    Tensor out = symbolic(x.shape(), x.dtype());
    if (padding.defined()) set_keras_mask(out, padding);
    return Tensors{out};
  }

  // Keras's rule for a padded sequence: a query attends to a key when both are real tokens.
  Tensor mask = attention_mask;
  if (padding.defined()) {
    Tensor pair = logical_and(padding.unsqueeze(2), padding.unsqueeze(1));
    mask = mask.defined() ? logical_and(mask, pair) : pair;
  }
  auto attend = [&](const Tensor& h) {
    return mask.defined() ? (*attention_)(h, h, Tensor(), mask)[0] : (*attention_)(h, h)[0];
  };
  const bool training = Layer::training() && options_.dropout > 0;
  const double eps = options_.layer_norm_epsilon;
  Tensor out;
  if (options_.normalize_first) {
    Tensor y = x + dropout(attend(layer_norm(x, attention_norm_gamma_, attention_norm_beta_, 1, eps)), options_.dropout,
                           training);
    out = y + dropout(feed_forward(layer_norm(y, ff_norm_gamma_, ff_norm_beta_, 1, eps)), options_.dropout, training);
  } else {
    Tensor y = layer_norm(x + dropout(attend(x), options_.dropout, training), attention_norm_gamma_,
                          attention_norm_beta_, 1, eps);
    out = layer_norm(y + dropout(feed_forward(y), options_.dropout, training), ff_norm_gamma_, ff_norm_beta_, 1, eps);
  }
  if (padding.defined()) set_keras_mask(out, padding);
  return Tensors{out};
}

Json TransformerEncoderLayer::get_config() const {
  Json c = Layer::get_config();
  c["num_heads"] = num_heads_;
  c["ff_dim"] = ff_dim_;
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<TransformerEncoderLayer> TransformerEncoderLayer::from_config(const Json& c) {
  TransformerEncoderOptions o;
  detail::read_fields(c, o);
  detail::read_common_strict(c, o);
  return std::make_shared<TransformerEncoderLayer>(c.at("num_heads").get<int64_t>(), c.at("ff_dim").get<int64_t>(), o);
}

LayerRef<TransformerEncoderLayer> TransformerEncoder(int64_t num_heads, int64_t ff_dim, TransformerEncoderOptions o) {
  return make_layer<TransformerEncoderLayer>(num_heads, ff_dim, std::move(o));
}

// TokenAndPositionEmbedding ----------------------------------------------------------------------

template <typename F>
void fields(TokenAndPositionEmbeddingOptions& o, F&& f) {
  f("mask_zero", o.mask_zero);
  f("embeddings_initializer", o.embeddings_initializer);
}

TokenAndPositionEmbeddingLayer::TokenAndPositionEmbeddingLayer(int64_t vocabulary_size, int64_t max_length, int64_t dim,
                                                               TokenAndPositionEmbeddingOptions o)
    : Layer({.name = o.name, .trainable = o.trainable, .dtype = o.dtype}, "TokenAndPositionEmbedding"),
      vocabulary_size_(vocabulary_size),
      max_length_(max_length),
      dim_(dim),
      options_(std::move(o)) {
  MF_CHECK(vocabulary_size > 0 && max_length > 0 && dim > 0, "TokenAndPositionEmbedding '", name(),
           "': vocabulary_size, max_length and dim must be positive, got ", vocabulary_size, ", ", max_length, ", ",
           dim);
}

void TokenAndPositionEmbeddingLayer::build(const Shape&) {
  token_embeddings_ = add_weight("token_embeddings", {vocabulary_size_, dim_}, options_.embeddings_initializer);
  position_embeddings_ = add_weight("position_embeddings", {max_length_, dim_}, options_.embeddings_initializer);
}

Tensor TokenAndPositionEmbeddingLayer::call(const Tensor& ids) {
  MF_CHECK(ids.dim() == 2 && (ids.dtype() == DType::I32 || ids.dtype() == DType::I64), "TokenAndPositionEmbedding '",
           name(), "': expected integer ids [batch, sequence], got ", dtype_name(ids.dtype()), shape_str(ids.shape()));
  const int64_t len = ids.size(1);
  MF_CHECK(len <= max_length_, "TokenAndPositionEmbedding '", name(), "': sequences of length ", len, " (ids shape ",
           shape_str(ids.shape()), ") exceed max_length ", max_length_);
  Tensor out = ids.is_symbolic() ? symbolic({ids.size(0), len, dim_}, dtype_)
                                 : embedding(ids, token_embeddings_) + position_embeddings_.slice(0, 0, len);
  if (options_.mask_zero) set_keras_mask(out, ne(ids, zeros({}, {.dtype = ids.dtype(), .device = ids.device()})));
  return out;
}

Json TokenAndPositionEmbeddingLayer::get_config() const {
  Json c = Layer::get_config();
  c["vocabulary_size"] = vocabulary_size_;
  c["max_length"] = max_length_;
  c["dim"] = dim_;
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<TokenAndPositionEmbeddingLayer> TokenAndPositionEmbeddingLayer::from_config(const Json& c) {
  TokenAndPositionEmbeddingOptions o;
  detail::read_fields(c, o);
  detail::read_common_strict(c, o);
  return std::make_shared<TokenAndPositionEmbeddingLayer>(
      c.at("vocabulary_size").get<int64_t>(), c.at("max_length").get<int64_t>(), c.at("dim").get<int64_t>(), o);
}

LayerRef<TokenAndPositionEmbeddingLayer> TokenAndPositionEmbedding(int64_t vocabulary_size, int64_t max_length,
                                                                   int64_t dim, TokenAndPositionEmbeddingOptions o) {
  return make_layer<TokenAndPositionEmbeddingLayer>(vocabulary_size, max_length, dim, std::move(o));
}

MF_REGISTER_LAYER(TransformerEncoderLayer, "TransformerEncoder");
MF_REGISTER_LAYER(TokenAndPositionEmbeddingLayer, "TokenAndPositionEmbedding");

}  // namespace meshflow::layers
