// ONNX mappings of the zoo's Transformer layers: TokenAndPositionEmbedding (two Gathers and a Slice
// of the position table to the sequence length) and TransformerEncoder (its MultiHeadAttention
// sub-layer's nodes, ONNX LayerNormalization and the feed-forward MatMuls, post- or pre-norm).
#include "meshflow/models/layers/transformer.h"
#include "onnx_builder.h"

namespace meshflow::onnx_export {
namespace {

std::vector<std::string> token_and_position(LayerCall& c) {
  if (c.inputs.size() != 1 || c.inputs[0].shape.size() != 2) c.fail("expected one input of ids [batch, sequence]");
  std::string ids = c.inputs[0].name;
  if (c.inputs[0].dtype != DType::I64 && c.inputs[0].dtype != DType::I32)
    ids = c.b.node1("Cast", {ids}, c.hint("ids"), {{"to", int64_t{onnx::TensorProto::INT64}}});
  const std::string n = c.layer.name();
  std::string tokens = c.b.node1("Gather", {c.b.weight(n + "/token_embeddings", c.weight("token_embeddings")), ids},
                                 c.hint("tokens"), {{"axis", int64_t{0}}});
  // The first `length` rows of the position table, length read from the ids at run time.
  std::string length = c.b.node1("Slice", {c.b.node1("Shape", {ids}, c.hint("length")), c.b.ints(c.hint("one"), {1}),
                                           c.b.ints(c.hint("two"), {2})},
                                 c.hint("length"));
  std::string positions =
      c.b.node1("Slice", {c.b.weight(n + "/position_embeddings", c.weight("position_embeddings")),
                          c.b.ints(c.hint("zero"), {0}), length, c.b.ints(c.hint("axis"), {0})},
                c.hint("positions"));
  c.output_masks = {c.config.value("mask_zero", false) ? padding_mask(c, ids) : ""};
  return {c.b.node1("Add", {tokens, positions}, c.hint("sum"))};
}

std::string norm(LayerCall& c, const std::string& x, const std::string& which) {
  const std::string n = c.layer.name() + "/" + which;
  return c.b.node1("LayerNormalization",
                   {x, c.b.weight(n + "/gamma", c.weight(which + "/gamma")), c.b.weight(n + "/beta", c.weight(which + "/beta"))},
                   c.hint(which), {{"axis", int64_t{-1}}, {"epsilon", static_cast<float>(c.config.value("layer_norm_epsilon", 1e-5))}});
}

std::string feed_forward(LayerCall& c, const std::string& x) {
  const std::string n = c.layer.name();
  std::string h = c.b.node1("MatMul", {x, c.b.weight(n + "/intermediate/kernel", c.weight("intermediate/kernel"))},
                            c.hint("intermediate"));
  h = c.b.node1("Add", {h, c.b.weight(n + "/intermediate/bias", c.weight("intermediate/bias"))}, c.hint("intermediate"));
  h = activation(c, c.config.value("activation", "relu"), h);
  h = c.b.node1("MatMul", {h, c.b.weight(n + "/output/kernel", c.weight("output/kernel"))}, c.hint("output"));
  return c.b.node1("Add", {h, c.b.weight(n + "/output/bias", c.weight("output/bias"))}, c.hint("output"));
}

std::vector<std::string> transformer_encoder(LayerCall& c) {
  auto* layer = dynamic_cast<const layers::TransformerEncoderLayer*>(&c.layer);
  if (!layer || !layer->attention()) c.fail("it is not built");
  if (c.inputs.empty() || c.inputs[0].shape.size() != 3) c.fail("expected an input [batch, sequence, features]");
  const Value& x = c.inputs[0];
  // Keras's rule for padding [B, T] (the input's Keras mask when none is given): a query attends to
  // a key when both are real tokens. The output carries the padding as its mask.
  std::string padding = x.mask, mask;
  for (size_t i = 1; i < c.inputs.size(); ++i) {
    const Value& m = c.inputs[i];
    if (m.dtype != DType::Bool || (m.shape.size() != 2 && m.shape.size() != 3))
      c.fail("extra inputs must be bool masks [batch, T] or [batch, T, T]");
    if (m.shape.size() == 2) padding = m.name;
    else mask = m.name;
  }
  if (!padding.empty()) {
    auto unsqueeze = [&](int64_t axis) {
      return c.b.node1("Unsqueeze", {padding, c.b.ints(c.hint("axes"), {axis})}, c.hint("padding"));
    };
    std::string pair = c.b.node1("And", {unsqueeze(2), unsqueeze(1)}, c.hint("padding"));
    mask = mask.empty() ? pair : c.b.node1("And", {mask, pair}, c.hint("mask"));
  }
  const layers::MultiHeadAttentionLayer& mha = *layer->attention();
  // x itself carries its Keras mask into the attention layer (post-norm); a normalized x does not.
  auto attend = [&](const std::string& h) {
    const std::string h_mask = h == x.name ? x.mask : "";
    std::vector<Value> ins{{h, x.shape, DType::F32, h_mask}, {h, x.shape, DType::F32, h_mask}};
    if (!mask.empty()) ins.push_back({mask, {-1, x.shape[1], x.shape[1]}, DType::Bool});
    LayerCall sub{mha, mha.get_config(), c.path + "/self_attention", ins, {x.shape}, c.opset, c.b};
    return multi_head_attention(sub)[0];
  };
  std::string out;
  if (c.config.value("normalize_first", false)) {
    std::string y = c.b.node1("Add", {x.name, attend(norm(c, x.name, "attention_norm"))}, c.hint("residual"));
    out = c.b.node1("Add", {y, feed_forward(c, norm(c, y, "feedforward_norm"))}, c.hint("residual"));
  } else {
    std::string y = norm(c, c.b.node1("Add", {x.name, attend(x.name)}, c.hint("residual")), "attention_norm");
    out = norm(c, c.b.node1("Add", {y, feed_forward(c, y)}, c.hint("residual")), "feedforward_norm");
  }
  c.output_masks = {padding};
  return {out};
}

const bool kRegistered = [] {
  register_mapping("TokenAndPositionEmbedding", {13, token_and_position, ""});
  register_mapping("TransformerEncoder", {17, transformer_encoder, "the ONNX LayerNormalization op"});
  return true;
}();

}  // namespace
}  // namespace meshflow::onnx_export
