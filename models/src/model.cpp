// Model: functional graphs of layers, Sequential stacks, Input, and the Keras summary table.
#include "meshflow/models/model.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "meshflow/core/error.h"
#include "model_state.h"

namespace meshflow {

namespace {
using detail::node_layer;

LayerOptions functional_options(LayerOptions o) {
  if (o.name.empty()) o.name = unique_layer_name("model");
  return o;
}
}  // namespace

// Input -----------------------------------------------------------------------------------------

Tensor Input(const Shape& shape, InputOptions options) {
  for (int64_t d : shape)
    MF_CHECK(d >= -1, "Input: invalid dimension ", d, " in shape ", shape_str(shape), " (use -1 for unknown)");
  Shape full{options.batch_size};
  full.insert(full.end(), shape.begin(), shape.end());
  std::string name = options.name.empty() ? unique_layer_name("input") : options.name;
  // Keras 2 numbers inputs from 1: input_1, input_2, ...
  if (options.name.empty()) {
    if (name == "input") name = "input_0";
    auto pos = name.rfind('_');
    name = "input_" + std::to_string(std::stoi(name.substr(pos + 1)) + 1);
  }
  return symbolic(full, options.dtype, name);
}

InputLayer::InputLayer(Shape shape, InputOptions options)
    : Layer(LayerOptions{.name = options.name, .dtype = options.dtype}, "InputLayer"), shape_(std::move(shape)) {}

Tensor InputLayer::call(const Tensor& x) {
  bool ok = x.dim() == static_cast<int64_t>(shape_.size()) + 1;
  for (size_t i = 0; ok && i < shape_.size(); ++i) ok = shape_[i] < 0 || x.shape()[i + 1] < 0 || shape_[i] == x.shape()[i + 1];
  Shape full{-1};
  full.insert(full.end(), shape_.begin(), shape_.end());
  MF_CHECK(ok, "layer '", name(), "' (InputLayer) expects inputs of shape ", shape_str(full), " but got ",
           shape_str(x.shape()));
  return x;
}

Json InputLayer::get_config() const {
  Json c = Layer::get_config();
  c["batch_input_shape"] = Json::array();
  c["batch_input_shape"].push_back(nullptr);
  for (int64_t d : shape_) c["batch_input_shape"].push_back(d < 0 ? Json(nullptr) : Json(d));
  return c;
}

std::shared_ptr<InputLayer> make_input_layer(Shape shape, InputOptions options) {
  return std::make_shared<InputLayer>(std::move(shape), options);
}

// Model -----------------------------------------------------------------------------------------

Model::Model(LayerOptions options) : Layer(functional_options(options), "Model") {}

Model::Model(const Tensors& inputs, const Tensors& outputs, LayerOptions options)
    : Layer(functional_options(options), "Functional"), functional_(true) {
  MF_CHECK(!inputs.empty(), "Model: no inputs given");
  MF_CHECK(!outputs.empty(), "Model: no outputs given");
  for (size_t i = 0; i < inputs.size(); ++i)
    MF_CHECK(inputs[i].defined() && inputs[i].is_symbolic(), "Model: input ", i,
             " is not a symbolic tensor; create model inputs with Input()");
  for (size_t i = 0; i < outputs.size(); ++i)
    MF_CHECK(outputs[i].defined() && outputs[i].is_symbolic(), "Model: output ", i,
             " is not a symbolic tensor computed from the inputs (call layers on Input() tensors)");
  graph_ = std::make_shared<Graph>(Graph::from(inputs.list(), outputs.list()));
  for (const auto& t : inputs) input_names_.push_back(t.name());
  std::map<std::string, int> seen;
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::string n = outputs.names()[i];
    if (n.empty()) {
      const auto& v = graph_->values()[graph_->outputs()[i]];
      if (v.producer >= 0) {
        const auto& node = graph_->nodes()[v.producer];
        n = node.scope.empty() ? Graph::node_label(node) : node.scope;
      } else {
        n = v.name.empty() ? "output_" + std::to_string(i) : v.name;
      }
    }
    if (seen[n]++ > 0) n += "_" + std::to_string(seen[n] - 1);
    output_names_.push_back(n);
  }
  std::set<Layer*> have;
  for (const auto& node : graph_->nodes())
    if (auto l = node_layer(node); l && have.insert(l.get()).second) {
      graph_layers_.push_back(l);
      track_layer(l);
    }
  maybe_build(Tensors(inputs.list()));
}

Tensor Model::call(const Tensor& x) {
  MF_CHECK(functional_, "model '", name(), "' (", class_name(), ") has no graph: a subclassed model must ",
           "override call()");
  Tensors out = call(Tensors(x));
  MF_CHECK(out.size() == 1, "model '", name(), "' has ", out.size(), " outputs; call it with Tensors to get them all");
  return out[0];
}

Tensors Model::call(const Tensors& inputs) {
  if (!functional_) return Layer::call(inputs);  // a subclass's call(const Tensor&)
  MF_CHECK(inputs.size() == input_names_.size(), "model '", name(), "' expects ", input_names_.size(),
           " input(s) (", [&] {
             std::string s;
             for (const auto& n : input_names_) s += (s.empty() ? "" : ", ") + n;
             return s;
           }(), ") but got ", inputs.size());
  std::vector<Tensor> ordered = inputs.list();
  if (inputs.named()) {
    for (size_t i = 0; i < input_names_.size(); ++i)
      if (inputs.has(input_names_[i])) ordered[i] = inputs[input_names_[i]];
  }
  for (size_t i = 0; i < ordered.size(); ++i) {
    const auto& meta = graph_->values()[graph_->inputs()[i]].meta;
    MF_CHECK(ordered[i].dtype() == meta.dtype || is_floating(ordered[i].dtype()) == is_floating(meta.dtype),
             "model '", name(), "': input '", input_names_[i], "' expects ", dtype_name(meta.dtype), " but got ",
             dtype_name(ordered[i].dtype()));
    if (ordered[i].dtype() != meta.dtype) ordered[i] = ordered[i].to(meta.dtype);
  }
  std::vector<Tensor> outs = graph_->run(ordered);
  Tensors result;
  for (size_t i = 0; i < outs.size(); ++i) result.push_back(outs[i], output_names_[i]);
  return result;
}

const Graph& Model::graph() const {
  MF_CHECK(graph_ != nullptr, "model '", name(), "' has no graph (it is not a functional model)");
  return *graph_;
}

Graph Model::op_graph(std::vector<TensorMeta> input_specs, bool training) {
  std::vector<std::string> names;
  if (input_specs.empty() && graph_) {
    for (int v : graph_->inputs()) {
      input_specs.push_back(graph_->values()[v].meta);
      names.push_back(graph_->values()[v].name);
    }
  }
  if (input_specs.empty())
    for (const auto& shape : declared_input_shapes_) input_specs.push_back({shape, dtype(), Device()});
  MF_CHECK(!input_specs.empty(), "op_graph: model '", name(), "' does not know its input shapes; pass input_specs ",
           "(one TensorMeta per input, -1 for the batch dimension)");
  std::vector<Tensor> placeholders;
  for (size_t i = 0; i < input_specs.size(); ++i)
    placeholders.push_back(symbolic(input_specs[i].shape, input_specs[i].dtype, i < names.size() ? names[i] : ""));
  // The model's own call() on placeholders: each layer it calls records itself with its ops.
  TrainingScope mode(training);
  const Tensors in(placeholders);
  maybe_build(in);
  NameScope scope(name());
  Tensors outputs = call(in);
  return Graph::from(placeholders, outputs.list(), /*expand_composites=*/true);
}

std::vector<std::string> Model::output_names() const {
  if (!output_names_.empty()) return output_names_;
  // Subclassed and Sequential models: one output, named after the model's last layer or "output_i".
  std::vector<std::string> names;
  for (size_t i = 0; i < std::max<size_t>(output_shapes().size(), 1); ++i)
    names.push_back(output_shapes().size() <= 1 ? "output_1" : "output_" + std::to_string(i + 1));
  return names;
}

std::vector<std::string> Model::input_names() const { return input_names_; }

std::vector<std::shared_ptr<Layer>> Model::layers() const {
  if (!functional_) return sublayers();
  // Keras's order: by depth from the outputs, deepest first, then in creation order.
  const auto& nodes = graph_->nodes();
  std::vector<int> depth(nodes.size(), 0);
  std::vector<int> value_depth(graph_->values().size(), 0);
  for (int i = static_cast<int>(nodes.size()) - 1; i >= 0; --i) {
    int d = 0;
    for (int o : nodes[i].outputs) d = std::max(d, value_depth[o]);
    depth[i] = d;
    for (int in : nodes[i].inputs) value_depth[in] = std::max(value_depth[in], d + 1);
  }
  std::vector<std::pair<int, std::shared_ptr<Layer>>> order;
  std::map<Layer*, size_t> index;
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto l = node_layer(nodes[i]);
    if (!l) continue;
    auto it = index.find(l.get());
    if (it == index.end()) {
      index[l.get()] = order.size();
      order.push_back({depth[i], l});
    } else {
      order[it->second].first = std::max(order[it->second].first, depth[i]);
    }
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::shared_ptr<Layer>> out;
  for (auto& [d, l] : order) out.push_back(l);
  return out;
}

std::shared_ptr<Layer> Model::get_layer(const std::string& lname) const {
  std::string names;
  for (const auto& l : layers()) {
    if (l->name() == lname) return l;
    names += (names.empty() ? "" : ", ") + l->name();
  }
  MF_THROW("model '", name(), "' has no layer named '", lname, "' (layers: ", names, ")");
}

Json Model::get_config() const {
  Json c = Layer::get_config();
  if (!functional_) return c;
  c["layers"] = Json::array();
  for (const auto& l : layers()) c["layers"].push_back(Json{{"class_name", l->class_name()}, {"config", l->get_config()}});
  c["input_layers"] = input_names_;
  c["output_names"] = output_names_;
  return c;
}

// Sequential ------------------------------------------------------------------------------------

Sequential::Sequential(std::vector<std::shared_ptr<Layer>> layers, LayerOptions options)
    : Model([&] {
        if (options.name.empty()) options.name = unique_layer_name("sequential");
        return options;
      }()) {
  for (auto& l : layers) add(std::move(l));
}

void Sequential::add(std::shared_ptr<Layer> layer) {
  MF_CHECK(layer != nullptr, "Sequential '", name(), "': cannot add a null layer");
  for (const auto& l : stack_)
    MF_CHECK(l.get() != layer.get(), "Sequential '", name(), "': layer '", layer->name(), "' is already in the model");
  if (auto in = std::dynamic_pointer_cast<InputLayer>(layer)) {
    MF_CHECK(stack_.empty(), "Sequential '", name(), "': an InputLayer must come first");
    declared_input_shapes_ = {in->shape()};
    declared_input_shapes_[0].insert(declared_input_shapes_[0].begin(), -1);
    return;
  }
  stack_.push_back(layer);
  track_layer(layer);
  if (!declared_input_shapes_.empty()) {
    // The input shape is known: build the new layer now by tracing it (Keras does the same).
    Tensor x = symbolic(declared_input_shapes_[0], dtype());
    for (auto& l : stack_) x = (*l)(x);
  }
}

void Sequential::pop() {
  MF_CHECK(!stack_.empty(), "Sequential '", name(), "': pop() on an empty model");
  stack_.pop_back();
}

Tensor Sequential::call(const Tensor& x) {
  MF_CHECK(!stack_.empty(), "Sequential '", name(), "' has no layers; add() some first");
  Tensor h = x;
  for (auto& l : stack_) h = (*l)(h);
  return h;
}

Tensors Sequential::call(const Tensors& inputs) {
  MF_CHECK(inputs.size() == 1, "Sequential '", name(), "' takes one input, got ", inputs.size());
  return Tensors(call(inputs[0]));
}

Model& Model::to(Device device) {
  for (Variable& v : weights()) v.to_(device);
  // The model and every layer in it now run there (Note [Layer placement]).
  std::set<Layer*> seen;
  std::function<void(Layer&)> place = [&](Layer& l) {
    if (!seen.insert(&l).second) return;
    l.set_device(device);
    for (const auto& sub : l.sublayers()) place(*sub);
  };
  place(*this);
  for (const auto& l : layers()) place(*l);
  return *this;
}

}  // namespace meshflow
