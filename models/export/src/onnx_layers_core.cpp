// ONNX mappings of the core layers: Dense, Activation, Dropout (the identity at inference),
// Flatten, Reshape, Embedding (with mask_zero's Keras mask) and the merges (Add, Subtract, Multiply,
// Average, Maximum, Concatenate), which combine their inputs' masks.
#include "onnx_builder.h"

namespace meshflow::onnx_export {

std::string padding_mask(LayerCall& c, const std::string& ids) {
  return c.b.node1("Not", {c.b.node1("Equal", {ids, c.b.ints(c.hint("zero"), {0})}, c.hint("mask"))}, c.hint("mask"));
}

namespace {

std::string first_input(LayerCall& c) {
  if (c.inputs.size() != 1) c.fail("expected one input, got " + std::to_string(c.inputs.size()));
  return c.inputs[0].name;
}

std::vector<std::string> dense(LayerCall& c) {
  std::string x = first_input(c);
  std::string y = c.b.node1("MatMul", {x, c.b.weight(c.layer.name() + "/kernel", c.weight("kernel"))}, c.hint("dense"));
  Tensor bias = c.weight("bias", true);
  if (bias.defined()) y = c.b.node1("Add", {y, c.b.weight(c.layer.name() + "/bias", bias)}, c.hint("dense"));
  return {activation(c, c.config.value("activation", "linear"), y)};
}

std::vector<std::string> activation_layer(LayerCall& c) {
  std::string y = activation(c, c.config.value("activation", "linear"), first_input(c));
  if (y == c.inputs[0].name) y = c.b.node1("Identity", {y}, c.hint("linear"));
  return {y};
}

std::vector<std::string> identity(LayerCall& c) { return {c.b.node1("Identity", {first_input(c)}, c.hint("identity"))}; }

std::vector<std::string> flatten(LayerCall& c) {
  return {c.b.node1("Flatten", {first_input(c)}, c.hint("flatten"), {{"axis", int64_t{1}}})};
}

std::vector<std::string> reshape(LayerCall& c) {
  std::vector<int64_t> target{0};  // 0: keep the batch dimension as it is
  for (const auto& d : c.config.at("target_shape")) target.push_back(d.get<int64_t>());
  return {c.b.node1("Reshape", {first_input(c), c.b.ints(c.hint("shape"), target)}, c.hint("reshape"))};
}

std::vector<std::string> embedding(LayerCall& c) {
  std::string ids = first_input(c);
  if (c.inputs[0].dtype != DType::I64 && c.inputs[0].dtype != DType::I32)
    ids = c.b.node1("Cast", {ids}, c.hint("ids"), {{"to", int64_t{onnx::TensorProto::INT64}}});
  std::string table = c.b.weight(c.layer.name() + "/embeddings", c.weight("embeddings"));
  std::string out = c.b.node1("Gather", {table, ids}, c.hint("lookup"), {{"axis", int64_t{0}}});
  c.output_masks = {c.config.value("mask_zero", false) ? padding_mask(c, ids) : ""};
  return {out};
}

// A merge's output mask: where every masked input keeps the step (MergeLayer::compute_mask).
void merge_masks(LayerCall& c) {
  std::string combined;
  for (const auto& v : c.inputs)
    if (!v.mask.empty()) combined = combined.empty() ? v.mask : c.b.node1("And", {combined, v.mask}, c.hint("mask"));
  c.output_masks = {combined};
}

// Elementwise merges fold left in input order, as the layers compute them.
LayerMapper fold(const char* op_type) {
  return [op_type](LayerCall& c) -> std::vector<std::string> {
    if (c.inputs.size() < 2) c.fail("a merge needs at least two inputs");
    std::string y = c.inputs[0].name;
    for (size_t i = 1; i < c.inputs.size(); ++i) y = c.b.node1(op_type, {y, c.inputs[i].name}, c.hint("merge"));
    merge_masks(c);
    return {y};
  };
}

std::vector<std::string> average(LayerCall& c) {
  std::string sum = fold("Add")(c)[0];
  float n = static_cast<float>(c.inputs.size());
  return {c.b.node1("Div", {sum, c.b.scalar(c.hint("count"), n)}, c.hint("average"))};
}

std::vector<std::string> concatenate(LayerCall& c) {
  std::vector<std::string> names;
  for (const auto& v : c.inputs) names.push_back(v.name);
  const int64_t axis = c.config.value("axis", int64_t{-1}), rank = static_cast<int64_t>(c.inputs[0].shape.size());
  if (axis != -1 && axis != rank - 1) c.refuse_masks("joining masks along the steps is not exported");
  merge_masks(c);
  return {c.b.node1("Concat", names, c.hint("concat"), {{"axis", c.config.value("axis", int64_t{-1})}})};
}

const bool kRegistered = [] {
  register_mapping("Dense", {13, dense, ""});
  register_mapping("Activation", {13, activation_layer, ""});
  register_mapping("Dropout", {13, identity, ""});
  register_mapping("Flatten", {13, flatten, ""});
  register_mapping("Reshape", {13, reshape, ""});
  register_mapping("Embedding", {13, embedding, ""});
  register_mapping("Add", {13, fold("Add"), ""});
  register_mapping("Subtract", {13, fold("Sub"), ""});
  register_mapping("Multiply", {13, fold("Mul"), ""});
  register_mapping("Maximum", {13, fold("Max"), ""});
  register_mapping("Average", {13, average, ""});
  register_mapping("Concatenate", {13, concatenate, ""});
  return true;
}();

}  // namespace
}  // namespace meshflow::onnx_export
