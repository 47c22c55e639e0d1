// Seed 000, section 5: Embedding + MultiHeadAttention + GlobalAveragePooling1D + a sigmoid
// classifier. The label says whether token 7 occurs in the sequence.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  const int64_t vocab = 200, seq = 16, n = 1024;
  auto inputs = mf::Input({-1}, {.dtype = mf::DType::I64});  // sequences of any length
  auto x = L::Embedding(vocab, 64)(inputs);
  auto attn = L::MultiHeadAttention(2, 64)(mf::Tensors{x, x})[0];
  auto pooled = L::GlobalAveragePooling1D()(attn);
  auto outputs = L::Dense(1, {.activation = "sigmoid"})(pooled);
  mf::Model model({inputs}, {outputs});
  model.compile({.optimizer = "adam", .loss = "binary_crossentropy", .metrics = {"accuracy"}});
  model.summary();

  mf::Generator g(8);
  mf::Tensor ids = mf::randint(0, vocab / 8, {n, seq}, {.dtype = mf::DType::I64}, &g);
  mf::Tensor y = mf::cast(mf::max(mf::cast(mf::eq(ids, mf::full({}, 7, {.dtype = mf::DType::I64})), mf::DType::F32),
                                  {1}, true),
                          mf::DType::F32);
  auto history = model.fit(ids, y, {.epochs = 8, .batch_size = 32, .verbose = 2});
  return example::report(history);
}
