// The ONNX graph builder (nodes, initializers, unique names), the layer mapping registry and the
// Keras activations as ONNX nodes.
#include "onnx_builder.h"

#include <cmath>

#include "meshflow/core/error.h"

namespace meshflow::onnx_export {

int32_t onnx_elem_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return onnx::TensorProto::FLOAT;
    case DType::F64: return onnx::TensorProto::DOUBLE;
    case DType::F16: return onnx::TensorProto::FLOAT16;
    case DType::BF16: return onnx::TensorProto::BFLOAT16;
    case DType::I32: return onnx::TensorProto::INT32;
    case DType::I64: return onnx::TensorProto::INT64;
    case DType::Bool: return onnx::TensorProto::BOOL;
  }
  MF_THROW("ONNX export: no ONNX element type for dtype ", dtype_name(dtype));
}

std::string GraphBuilder::fresh(const std::string& hint) {
  std::string name = hint;
  for (int n = 1; used_.count(name); ++n) name = hint + "_" + std::to_string(n);
  used_.insert(name);
  return name;
}

std::vector<std::string> GraphBuilder::node(const std::string& op_type, const std::vector<std::string>& inputs,
                                            const std::string& hint, const NodeAttrs& attrs, int n_outputs) {
  onnx::NodeProto* n = graph_->add_node();
  n->set_op_type(op_type);
  n->set_name(fresh(hint + "/" + op_type));
  for (const auto& in : inputs) n->add_input(in);
  std::vector<std::string> outs;
  for (int i = 0; i < n_outputs; ++i) {
    std::string out = hint;
    out.append("/").append(op_type);
    if (n_outputs > 1) out.append(":").append(std::to_string(i));
    outs.push_back(fresh(out.append(":out")));
    n->add_output(outs.back());
  }
  for (const auto& [key, value] : attrs) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(key);
    if (auto* i = std::get_if<int64_t>(&value)) {
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(*i);
    } else if (auto* f = std::get_if<float>(&value)) {
      a->set_type(onnx::AttributeProto::FLOAT);
      a->set_f(*f);
    } else if (auto* s = std::get_if<std::string>(&value)) {
      a->set_type(onnx::AttributeProto::STRING);
      a->set_s(*s);
    } else if (auto* is = std::get_if<std::vector<int64_t>>(&value)) {
      a->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : *is) a->add_ints(v);
    } else if (auto* fs = std::get_if<std::vector<float>>(&value)) {
      a->set_type(onnx::AttributeProto::FLOATS);
      for (float v : *fs) a->add_floats(v);
    } else {
      a->set_type(onnx::AttributeProto::STRINGS);
      for (const auto& v : std::get<std::vector<std::string>>(value)) a->add_strings(v);
    }
  }
  return outs;
}

bool GraphBuilder::has_initializer(const std::string& name) {
  if (initializers_.count(name)) return true;
  used_.insert(name);  // reserved: fresh() never hands it out
  initializers_.insert(name);
  return false;
}

std::string GraphBuilder::weight(const std::string& name, const Tensor& value) {
  if (has_initializer(name)) return name;
  Tensor host = value.detach().to(Device()).contiguous();
  onnx::TensorProto* t = graph_->add_initializer();
  t->set_name(name);
  for (int64_t d : host.shape()) t->add_dims(d);
  if (host.dtype() == DType::I64) {
    t->set_data_type(onnx::TensorProto::INT64);
    auto v = host.to_vector<int64_t>();
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(int64_t)));
    return name;
  }
  // Every floating weight is written as float32 (export checks the model computes in float32).
  auto v = host.to(DType::F32).contiguous().to_vector<float>();
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  return name;
}

std::string GraphBuilder::floats(const std::string& name, const std::vector<float>& values, const Shape& shape) {
  if (has_initializer(name)) return name;
  onnx::TensorProto* t = graph_->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : shape) t->add_dims(d);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  return name;
}

std::string GraphBuilder::ints(const std::string& hint, const std::vector<int64_t>& values) {
  std::string name = fresh(hint);
  initializers_.insert(name);
  onnx::TensorProto* t = graph_->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(values.size()));
  t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
  return name;
}

std::string GraphBuilder::scalar(const std::string& hint, float value) {
  std::string name = fresh(hint);
  initializers_.insert(name);
  onnx::TensorProto* t = graph_->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_float_data(value);
  return name;
}

Tensor LayerCall::weight(const std::string& suffix, bool optional) const {
  const std::string want = layer.name() + "/" + suffix;
  for (const auto& w : layer.weights()) {
    if (w.name() != want) continue;
    // Under ZeRO-3 or tensor parallelism a variable holds this device's part only; writing it would
    // give a model of the wrong size (or, worse, of the right size with the wrong values).
    if (w.is_slice() || w.is_part())
      fail("its weight '" + want + "' is split across devices (ZeRO or tensor parallelism); save the model " +
           "(Model::save gathers split weights) and export the folder with meshflow-export");
    return w;
  }
  if (optional) return Tensor();
  fail("it has no weight '" + want + "' (is it built?)");
}

void LayerCall::refuse_masks(const std::string& why) const {
  for (const auto& v : inputs)
    if (!v.mask.empty()) fail("a Keras mask reaches it (from Embedding's mask_zero or a padding mask), and " + why);
}

void LayerCall::fail(const std::string& why) const {
  MF_THROW("ONNX export: layer '", path, "' (", layer.class_name(), ") cannot be exported: ", why);
}

namespace {
std::map<std::string, Mapping>& registry() {
  static std::map<std::string, Mapping> r;
  return r;
}
}  // namespace

void register_mapping(const std::string& class_name, Mapping mapping) { registry()[class_name] = std::move(mapping); }

std::vector<std::string> mapped_layers() {
  std::vector<std::string> names;
  for (const auto& [name, mapping] : registry()) names.push_back(name);
  return names;  // std::map keeps them sorted
}

const Mapping* find_mapping(const std::string& class_name) {
  auto it = registry().find(class_name);
  return it == registry().end() ? nullptr : &it->second;
}

std::string activation(LayerCall& c, const std::string& name, const std::string& x) {
  auto& b = c.b;
  const std::string h = c.hint(name.empty() ? "linear" : name);
  if (name.empty() || name == "linear") return x;
  if (name == "relu") return b.node1("Relu", {x}, h);
  if (name == "sigmoid") return b.node1("Sigmoid", {x}, h);
  if (name == "tanh") return b.node1("Tanh", {x}, h);
  if (name == "softmax") return b.node1("Softmax", {x}, h, {{"axis", int64_t{-1}}});
  if (name == "log_softmax") return b.node1("LogSoftmax", {x}, h, {{"axis", int64_t{-1}}});
  if (name == "elu") return b.node1("Elu", {x}, h, {{"alpha", 1.0f}});
  if (name == "selu")
    return b.node1("Selu", {x}, h, {{"alpha", 1.6732632423543772f}, {"gamma", 1.0507009873554805f}});
  if (name == "softplus") return b.node1("Softplus", {x}, h);
  if (name == "softsign") return b.node1("Softsign", {x}, h);
  if (name == "exponential") return b.node1("Exp", {x}, h);
  if (name == "leaky_relu") return b.node1("LeakyRelu", {x}, h, {{"alpha", 0.2f}});
  if (name == "hard_sigmoid") return b.node1("HardSigmoid", {x}, h, {{"alpha", 0.2f}, {"beta", 0.5f}});
  if (name == "relu6") return b.node1("Clip", {x, b.scalar(h + "/min", 0.0f), b.scalar(h + "/max", 6.0f)}, h);
  if (name == "silu" || name == "swish") return b.node1("Mul", {x, b.node1("Sigmoid", {x}, h)}, h);
  if (name == "gelu") {  // the erf form: 0.5 x (1 + erf(x / sqrt 2)); ONNX's Gelu op needs opset 20
    std::string e = b.node1("Erf", {b.node1("Div", {x, b.scalar(h + "/sqrt2", std::sqrt(2.0f))}, h)}, h);
    std::string one_plus = b.node1("Add", {e, b.scalar(h + "/one", 1.0f)}, h);
    return b.node1("Mul", {b.node1("Mul", {x, b.scalar(h + "/half", 0.5f)}, h), one_plus}, h);
  }
  c.fail("the activation '" + name + "' has no ONNX mapping");
}

}  // namespace meshflow::onnx_export
