// Token and position embeddings whose token table also maps hidden states back to the vocabulary
// (GPT-2's tied output head, keras_nlp's ReversibleEmbedding): called on integer ids [B, T] it
// returns token_embeddings[ids] + position_embeddings[0..T); called on floating hidden states
// [B, T, dim] it returns the logits states @ token_embeddings^T [B, T, vocab]. A functional model
// calls the one layer twice, so both uses train the same table.
#pragma once

#include <memory>
#include <string>

#include "meshflow/models/layer.h"

namespace meshflow::zoo {

struct ReversibleEmbeddingOptions {
  double initializer_stddev = 0.02;  // normal(0, stddev) for both tables, as GPT-2
  std::string name;
  bool trainable = true;
  DType dtype = DType::F32;
};

class ReversibleEmbeddingLayer : public Layer {
 public:
  ReversibleEmbeddingLayer(int64_t vocabulary_size, int64_t max_length, int64_t dim,
                           ReversibleEmbeddingOptions options = {});
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x) override;
  Json get_config() const override;
  static std::shared_ptr<ReversibleEmbeddingLayer> from_config(const Json& config);
  const Variable& token_embeddings() const { return token_embeddings_; }
  const Variable& position_embeddings() const { return position_embeddings_; }

 private:
  int64_t vocabulary_size_, max_length_, dim_;
  ReversibleEmbeddingOptions options_;
  Variable token_embeddings_, position_embeddings_;
};

LayerRef<ReversibleEmbeddingLayer> ReversibleEmbedding(int64_t vocabulary_size, int64_t max_length, int64_t dim,
                                                       ReversibleEmbeddingOptions options = {});

}  // namespace meshflow::zoo
