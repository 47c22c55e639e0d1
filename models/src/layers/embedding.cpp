// Embedding: a table lookup with the core embedding op, and the mask_zero mask.
#include "meshflow/models/layers/embedding.h"

#include "common.h"
#include "config_fields.h"
#include "meshflow/core/ops/nn.h"

namespace meshflow::layers {

// The options an Embedding config holds (Note [One field list per options struct]).
template <typename F>
void fields(EmbeddingOptions& o, F&& f) {
  f("embeddings_initializer", o.embeddings_initializer);
  f("embeddings_regularizer", o.embeddings_regularizer);
  f("mask_zero", o.mask_zero);
  f("input_length", detail::NullIfNegative{o.input_length});
}

EmbeddingLayer::EmbeddingLayer(int64_t input_dim, int64_t output_dim, EmbeddingOptions options)
    : Layer(detail::common_options(options), "Embedding"), input_dim_(input_dim), output_dim_(output_dim),
      options_(std::move(options)) {
  MF_CHECK(input_dim > 0 && output_dim > 0, "Embedding: input_dim and output_dim must be positive, got ", input_dim,
           " and ", output_dim);
}

void EmbeddingLayer::build(const Shape&) {
  embeddings_ = add_weight("embeddings", {input_dim_, output_dim_},
                           detail::canonical_initializer(options_.embeddings_initializer), true,
                           options_.embeddings_regularizer);
}

Tensor EmbeddingLayer::call(const Tensor& ids) {
  // Keras casts float ids to int; the lookup itself checks each id is in [0, input_dim).
  Tensor i = is_integral(ids.dtype()) ? ids : cast(ids, DType::I64);
  return embedding(i, embeddings_);
}

Tensors EmbeddingLayer::compute_mask(const Tensors& inputs, const Tensors& outputs) {
  if (!options_.mask_zero) return Tensors(std::vector<Tensor>(outputs.size()));
  const Tensor& ids = inputs[0];
  return Tensors(ne(ids, scalar_like(0.0, ids)));
}

Json EmbeddingLayer::get_config() const {
  Json c = Layer::get_config();
  c["input_dim"] = input_dim_;
  c["output_dim"] = output_dim_;
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<EmbeddingLayer> EmbeddingLayer::from_config(const Json& c) {
  EmbeddingOptions o;
  detail::read_common(c, o);
  detail::read_fields(c, o);
  return std::make_shared<EmbeddingLayer>(detail::required_field(c, "input_dim", "Embedding").get<int64_t>(),
                                          detail::required_field(c, "output_dim", "Embedding").get<int64_t>(), o);
}

LayerRef<EmbeddingLayer> Embedding(int64_t input_dim, int64_t output_dim, EmbeddingOptions options) {
  return make_layer<EmbeddingLayer>(input_dim, output_dim, std::move(options));
}

MF_REGISTER_LAYER(EmbeddingLayer, "Embedding");

}  // namespace meshflow::layers
