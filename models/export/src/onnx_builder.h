// The ONNX graph under construction and the per-layer mapping registry (internal to meshflow_export).
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/models/layer.h"

namespace meshflow::onnx_export {

// A tensor of the ONNX graph: its name there, its shape (-1: the batch or unknown) and dtype.
struct Value {
  std::string name;
  Shape shape;
  DType dtype = DType::F32;
  std::string mask = {};  // its Keras mask: a bool [batch, steps] tensor of the graph; empty: none
};

using AttrData = std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>,
                              std::vector<std::string>>;
using NodeAttrs = std::vector<std::pair<std::string, AttrData>>;

int32_t onnx_elem_type(DType dtype);

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  // A name not used yet, from a readable hint ("dense/MatMul" -> "dense/MatMul_1" the second time).
  std::string fresh(const std::string& hint);
  // Adds a node; returns its output names (fresh, from `hint`).
  std::vector<std::string> node(const std::string& op_type, const std::vector<std::string>& inputs,
                                const std::string& hint, const NodeAttrs& attrs = {}, int n_outputs = 1);
  std::string node1(const std::string& op_type, const std::vector<std::string>& inputs, const std::string& hint,
                    const NodeAttrs& attrs = {}) {
    return node(op_type, inputs, hint, attrs, 1)[0];
  }
  // Initializers. `name` is kept as given (weights keep their Meshflow names, "dense/kernel"); the
  // same name twice (a shared layer called again) adds it once.
  std::string weight(const std::string& name, const Tensor& value);
  std::string floats(const std::string& name, const std::vector<float>& values, const Shape& shape);
  std::string ints(const std::string& hint, const std::vector<int64_t>& values);  // 1-D int64 constant
  std::string scalar(const std::string& hint, float value);                       // 0-D float constant

 private:
  bool has_initializer(const std::string& name);
  onnx::GraphProto* graph_;
  std::set<std::string> used_;
  std::set<std::string> initializers_;
};

// What a layer's mapping receives: the layer, where it sits in the model, its inputs in the ONNX
// graph and the shapes of its outputs (from the trace; -1 where unknown).
struct LayerCall {
  const Layer& layer;
  Json config;
  std::string path;  // "model/block/dense": the layer's path from the exported model
  std::vector<Value> inputs;
  std::vector<Shape> output_shapes;
  int64_t opset;
  GraphBuilder& b;
  // The Keras masks of the outputs, where the mapping decides them (Note [Keras masks in ONNX]);
  // left empty, a layer that supports masking passes its first input's mask on, others drop it.
  std::vector<std::string> output_masks = {};

  // The weight "<layer name>/<suffix>" (throws naming the layer when absent); `optional` gives an
  // undefined tensor instead.
  Tensor weight(const std::string& suffix, bool optional = false) const;
  // A name hint for this layer's nodes: "<layer name>/<what>".
  std::string hint(const std::string& what) const { return layer.name() + "/" + what; }
  [[noreturn]] void fail(const std::string& why) const;
  // Fails when an input carries a Keras mask the mapping does not apply.
  void refuse_masks(const std::string& why) const;
};

// A layer mapping: emits the nodes for one call and returns the names of its outputs, in order.
using LayerMapper = std::function<std::vector<std::string>(LayerCall&)>;
struct Mapping {
  int64_t min_opset = 13;
  LayerMapper map;
  std::string why_opset;  // what needs min_opset (named in the error)
};
void register_mapping(const std::string& class_name, Mapping mapping);
const Mapping* find_mapping(const std::string& class_name);
std::vector<std::string> mapped_layers();  // the class names that have a mapping, sorted

// Appends the nodes of a Keras activation by name ("relu", "softmax", "linear", ...) to x.
std::string activation(LayerCall& c, const std::string& name, const std::string& x);

// Embedding's mask_zero: ids != 0, a bool [batch, steps] (ids as int64).
std::string padding_mask(LayerCall& c, const std::string& ids);

// MultiHeadAttention's nodes for a call (onnx_layers_seq.cpp); TransformerEncoder reuses them.
std::vector<std::string> multi_head_attention(LayerCall& c);

}  // namespace meshflow::onnx_export
