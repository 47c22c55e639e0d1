// ReversibleEmbedding: token + position embeddings on ids, the tied output head on hidden states.
#include "meshflow/zoo/reversible_embedding.h"

#include "meshflow/core/error.h"
#include "meshflow/core/init.h"
#include "meshflow/core/ops/linalg.h"
#include "meshflow/core/ops/nn.h"
#include "meshflow/core/ops/elementwise.h"

namespace meshflow::zoo {

ReversibleEmbeddingLayer::ReversibleEmbeddingLayer(int64_t vocabulary_size, int64_t max_length, int64_t dim,
                                                   ReversibleEmbeddingOptions o)
    : Layer({.name = o.name, .trainable = o.trainable, .dtype = o.dtype}, "ReversibleEmbedding"),
      vocabulary_size_(vocabulary_size),
      max_length_(max_length),
      dim_(dim),
      options_(std::move(o)) {
  MF_CHECK(vocabulary_size > 0 && max_length > 0 && dim > 0, "ReversibleEmbedding '", name(),
           "': vocabulary_size, max_length and dim must be positive, got ", vocabulary_size, ", ", max_length, ", ", dim);
  MF_CHECK(options_.initializer_stddev > 0, "ReversibleEmbedding '", name(), "': initializer_stddev must be positive, got ",
           options_.initializer_stddev);
}

void ReversibleEmbeddingLayer::build(const Shape&) {
  const double sd = options_.initializer_stddev;
  token_embeddings_ = add_weight("token_embeddings", init::normal({vocabulary_size_, dim_}, 0.0, sd, nullptr, dtype_));
  position_embeddings_ = add_weight("position_embeddings", init::normal({max_length_, dim_}, 0.0, sd, nullptr, dtype_));
}

Tensor ReversibleEmbeddingLayer::call(const Tensor& x) {
  if (is_integral(x.dtype())) {
    MF_CHECK(x.dim() == 2, "ReversibleEmbedding '", name(), "': expected integer ids [batch, sequence], got ",
             dtype_name(x.dtype()), shape_str(x.shape()));
    const int64_t len = x.size(1);
    MF_CHECK(len >= 1 && len <= max_length_, "ReversibleEmbedding '", name(), "': sequences of length ", len,
             " (ids shape ", shape_str(x.shape()), ") must be between 1 and max_length ", max_length_);
    return embedding(x, token_embeddings_) + position_embeddings_.slice(0, 0, len);
  }
  MF_CHECK(x.dim() >= 2 && x.size(-1) == dim_, "ReversibleEmbedding '", name(), "': expected ids or hidden states [..., ",
           dim_, "] to map back to the vocabulary, got ", dtype_name(x.dtype()), shape_str(x.shape()));
  return matmul(x, token_embeddings_, false, true);
}

Json ReversibleEmbeddingLayer::get_config() const {
  Json c = Layer::get_config();
  c["vocabulary_size"] = vocabulary_size_;
  c["max_length"] = max_length_;
  c["dim"] = dim_;
  c["initializer_stddev"] = options_.initializer_stddev;
  return c;
}

std::shared_ptr<ReversibleEmbeddingLayer> ReversibleEmbeddingLayer::from_config(const Json& c) {
  ReversibleEmbeddingOptions o;
  o.name = c.value("name", "");
  o.trainable = c.value("trainable", true);
  o.dtype = dtype_from_name(c.value("dtype", std::string(dtype_name(DType::F32))));
  o.initializer_stddev = c.value("initializer_stddev", 0.02);
  return std::make_shared<ReversibleEmbeddingLayer>(c.at("vocabulary_size").get<int64_t>(),
                                                    c.at("max_length").get<int64_t>(), c.at("dim").get<int64_t>(), o);
}

LayerRef<ReversibleEmbeddingLayer> ReversibleEmbedding(int64_t vocabulary_size, int64_t max_length, int64_t dim,
                                                       ReversibleEmbeddingOptions o) {
  return make_layer<ReversibleEmbeddingLayer>(vocabulary_size, max_length, dim, std::move(o));
}

MF_REGISTER_LAYER(ReversibleEmbeddingLayer, "ReversibleEmbedding");

}  // namespace meshflow::zoo
