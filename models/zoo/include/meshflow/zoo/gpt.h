// GPT-2-style decoder-only language models built from Keras layers: token and position embeddings
// (one ReversibleEmbedding, whose transpose is also the output head: tied weights), pre-norm
// Transformer blocks with causal multi-head attention and a GELU MLP, a final LayerNormalization.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "meshflow/models/layer.h"
#include "meshflow/models/model.h"

namespace meshflow::zoo {

struct GptConfig {
  int64_t vocab_size = 50304;  // GPT-2's 50257 rounded up to a multiple of 64, as llm.c does
  int64_t context = 1024;      // positions (the longest sequence)
  int64_t layers = 12;
  int64_t heads = 12;
  int64_t width = 768;         // the model dimension; heads must divide it
  double dropout = 0.0;        // after attention and the MLP, and on attention probabilities
  double layer_norm_epsilon = 1e-5;
  DType dtype = DType::F32;
  std::string name = "gpt";

  // Presets: a test-sized model, and GPT-2 small (124M parameters with vocab_size 50257).
  static GptConfig tiny();   // vocabulary 256 (bytes), context 64, 2 layers, 2 heads, width 32
  static GptConfig small();  // GPT-2 small: 12 layers, 12 heads, width 768, context 1024
  void check() const;        // throws naming the bad field
};

// ids [batch, context] (i64) -> logits [batch, context, vocab_size]. Sequences shorter than the
// context are padded on the right: position t sees only positions <= t (causal), so the padding
// never changes the logits before it.
std::shared_ptr<Model> gpt(const GptConfig& config);

// Parameters of a GPT of this shape (the model's count_params without building it).
int64_t gpt_parameter_count(const GptConfig& config);

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  int64_t top_k = 0;           // 0: greedy (argmax); else sample among the k likeliest
  double temperature = 1.0;    // divides the logits before sampling
  uint64_t seed = 0;           // the sampling is deterministic for a seed
};

// Continues `prompt` (token ids, at least one) with up to max_new_tokens tokens from a model
// built by gpt() (or any model mapping ids [1, T] to logits [1, T, V]): greedy or top-k. The
// prompt is cut to its last context - 1 tokens when longer. Returns prompt + new tokens.
std::vector<int64_t> generate(Model& model, const std::vector<int64_t>& prompt, const GenerateOptions& options = {});

}  // namespace meshflow::zoo
