// Text generation from a causal language model: greedy or top-k sampling, one token at a time.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/zoo/gpt.h"

namespace meshflow::zoo {

std::vector<int64_t> generate(Model& model, const std::vector<int64_t>& prompt, const GenerateOptions& o) {
  MF_CHECK(!prompt.empty(), "generate: the prompt needs at least one token");
  MF_CHECK(o.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", o.max_new_tokens);
  MF_CHECK(o.top_k >= 0, "generate: top_k must be >= 0 (0: greedy), got ", o.top_k);
  MF_CHECK(o.temperature > 0, "generate: temperature must be positive, got ", o.temperature);
  MF_CHECK(model.is_functional(), "generate: model '", model.name(), "' must be a functional model such as gpt()'s");
  const Graph& graph = model.graph();
  MF_CHECK(graph.inputs().size() == 1, "generate: model '", model.name(), "' must take one input of token ids");
  const Shape& in = graph.values()[static_cast<size_t>(graph.inputs()[0])].meta.shape;
  MF_CHECK(in.size() == 2 && in[1] > 1, "generate: model '", model.name(), "' must take token ids [batch, context], not ",
           shape_str(in));
  const int64_t context = in[1];
  std::vector<int64_t> out = prompt;
  std::mt19937_64 rng(o.seed);
  NoGradGuard no_grad;
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    // The last context tokens, left-aligned and padded with zeros on the right: causal attention
    // keeps the padding out of the position read.
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(out.size()), context);
    std::vector<int64_t> window(static_cast<size_t>(context), 0);
    std::copy(out.end() - n, out.end(), window.begin());
    Tensor logits = model.predict({from_vector(window, {1, context}, {.dtype = DType::I64})}, {.verbose = 0})[0];
    MF_CHECK(logits.dim() == 3 && logits.size(0) == 1 && logits.size(1) == context, "generate: model '", model.name(),
             "' returned ", shape_str(logits.shape()), " for ids [1, ", context, "]; expected logits [1, ", context,
             ", vocabulary]");
    std::vector<double> row = logits.slice(1, n - 1, n).to(DType::F64).contiguous().to_vector<double>();
    for (int64_t id : out)
      MF_CHECK(id >= 0 && id < static_cast<int64_t>(row.size()), "generate: token id ", id, " is outside the model's ",
               row.size(), "-token vocabulary");
    int64_t next;
    if (o.top_k == 0) {
      next = std::max_element(row.begin(), row.end()) - row.begin();
    } else {
      std::vector<int64_t> order(row.size());
      std::iota(order.begin(), order.end(), 0);
      const size_t k = std::min<size_t>(static_cast<size_t>(o.top_k), row.size());
      std::partial_sort(order.begin(), order.begin() + static_cast<int64_t>(k), order.end(),
                        [&](int64_t a, int64_t b) { return row[static_cast<size_t>(a)] > row[static_cast<size_t>(b)]; });
      std::vector<double> weights(k);
      const double top = row[static_cast<size_t>(order[0])];
      for (size_t i = 0; i < k; ++i) weights[i] = std::exp((row[static_cast<size_t>(order[i])] - top) / o.temperature);
      std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
      next = order[pick(rng)];
    }
    out.push_back(next);
  }
  return out;
}

}  // namespace meshflow::zoo
