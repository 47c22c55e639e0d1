// gpt(): a GPT-2-style decoder from Keras layers (see gpt.h).
#include "meshflow/zoo/gpt.h"

#include "meshflow/core/error.h"
#include "meshflow/models/layers/core.h"
#include "meshflow/models/layers/normalization.h"
#include "meshflow/models/layers/transformer.h"
#include "meshflow/zoo/reversible_embedding.h"

namespace meshflow::zoo {

GptConfig GptConfig::tiny() {
  GptConfig c;
  c.vocab_size = 256;
  c.context = 64;
  c.layers = 2;
  c.heads = 2;
  c.width = 32;
  c.name = "gpt_tiny";
  return c;
}

GptConfig GptConfig::small() {
  GptConfig c;
  c.name = "gpt2_small";
  return c;
}

void GptConfig::check() const {
  MF_CHECK(vocab_size > 0, "GptConfig '", name, "': vocab_size must be positive, got ", vocab_size);
  MF_CHECK(context > 0, "GptConfig '", name, "': context must be positive, got ", context);
  MF_CHECK(layers >= 0, "GptConfig '", name, "': layers must be >= 0, got ", layers);
  MF_CHECK(heads > 0 && width > 0 && width % heads == 0, "GptConfig '", name, "': width ", width,
           " must be a positive multiple of heads ", heads);
  MF_CHECK(dropout >= 0 && dropout < 1, "GptConfig '", name, "': dropout must be in [0, 1), got ", dropout);
  MF_CHECK(layer_norm_epsilon >= 0, "GptConfig '", name, "': layer_norm_epsilon must be >= 0, got ", layer_norm_epsilon);
  MF_CHECK(dtype == DType::F32 || dtype == DType::F64 || dtype == DType::BF16 || dtype == DType::F16, "GptConfig '",
           name, "': dtype must be floating, got ", dtype_name(dtype));
}

std::shared_ptr<Model> gpt(const GptConfig& c) {
  c.check();
  namespace L = layers;
  Tensor ids = Input({c.context}, {.dtype = DType::I64, .name = "token_ids"});
  auto tokens = ReversibleEmbedding(c.vocab_size, c.context, c.width, {.name = "embeddings", .dtype = c.dtype});
  Tensor h = tokens(ids);
  if (c.dropout > 0) h = L::Dropout(c.dropout, {.dtype = c.dtype})(h);
  for (int64_t i = 0; i < c.layers; ++i)
    h = L::TransformerEncoder(c.heads, 4 * c.width,
                              {.key_dim = c.width / c.heads,
                               .dropout = c.dropout,
                               .activation = "gelu",
                               .layer_norm_epsilon = c.layer_norm_epsilon,
                               .normalize_first = true,
                               .use_causal_mask = true,
                               .kernel_initializer = "glorot_uniform",
                               .name = "block_" + std::to_string(i),
                               .dtype = c.dtype})(h);
  h = L::LayerNormalization({.epsilon = c.layer_norm_epsilon, .name = "final_norm", .dtype = c.dtype})(h);
  Tensor logits = tokens(h);
  return std::make_shared<Model>(Tensors{ids}, Tensors{logits}, LayerOptions{.name = c.name});
}

int64_t gpt_parameter_count(const GptConfig& c) {
  c.check();
  const int64_t C = c.width, ff = 4 * C;
  const int64_t embeddings = (c.vocab_size + c.context) * C;
  const int64_t attention = 4 * (C * C + C);          // q, k, v and output projections with biases
  const int64_t mlp = C * ff + ff + ff * C + C;
  const int64_t norms = 2 * 2 * C;
  return embeddings + c.layers * (attention + mlp + norms) + 2 * C;
}

}  // namespace meshflow::zoo
