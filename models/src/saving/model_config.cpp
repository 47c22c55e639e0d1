// Model configs: layers with their connections (Keras's inbound_nodes) to JSON, and the replay
// of those connections on Input()s that rebuilds the model.
#include "saving/model_config.h"

#include <cmath>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "meshflow/core/error.h"

namespace meshflow::saving {
namespace {

Json layer_entry(const Layer& layer) {
  if (auto* m = dynamic_cast<const Model*>(&layer)) return model_to_config(*m);  // nested models
  return Json{{"class_name", layer.class_name()}, {"config", layer.get_config()}};
}

Json batch_shape_json(const Shape& s) {
  Json out = Json::array();
  for (int64_t d : s) out.push_back(d < 0 ? Json(nullptr) : Json(d));
  return out;
}

Shape shape_from_json(const Json& j) {
  Shape s;
  for (const auto& d : j) s.push_back(d.is_null() ? -1 : d.get<int64_t>());
  return s;
}

Json functional_config(const Model& model) {
  const Graph& g = model.graph();
  const auto input_names = model.input_names();
  // Where each graph value comes from: [layer name, node index (the layer's n-th call in this
  // model), output index], as Keras writes inbound nodes.
  std::map<int, Json> origin;
  Json layers = Json::array();
  for (size_t i = 0; i < g.inputs().size(); ++i) {
    const auto& meta = g.values()[g.inputs()[i]].meta;
    origin[g.inputs()[i]] = Json::array({input_names[i], 0, 0});
    layers.push_back({{"class_name", "InputLayer"},
                      {"name", input_names[i]},
                      {"config", {{"name", input_names[i]}, {"dtype", dtype_name(meta.dtype)},
                                  {"batch_input_shape", batch_shape_json(meta.shape)}}},
                      {"inbound_nodes", Json::array()}});
  }
  std::map<const Layer*, Json> inbound;
  std::map<const Layer*, int> calls;
  for (const auto& n : g.nodes()) {
    MF_CHECK(n.composite && n.payload, "cannot save model '", model.name(), "': op '", Graph::node_label(n),
             "' (in '", n.scope, "') is applied to symbolic tensors outside a layer, and only layers can be ",
             "rebuilt from a config; wrap it in a custom layer registered with MF_REGISTER_LAYER");
    const auto* layer = static_cast<const Layer*>(n.payload.get());
    Json node = Json::array();
    for (int in : n.inputs) {
      MF_CHECK(origin.count(in), "cannot save model '", model.name(), "': layer '", layer->name(), "' takes a ",
               "constant tensor as input; only outputs of Input() and of layers can be rebuilt from a config");
      node.push_back(Json::array({origin[in][0], origin[in][1], origin[in][2], Json::object()}));
    }
    int call = calls[layer]++;
    for (size_t k = 0; k < n.outputs.size(); ++k) origin[n.outputs[k]] = Json::array({layer->name(), call, k});
    inbound[layer].push_back(node);
  }
  std::set<std::string> names(input_names.begin(), input_names.end());
  for (const auto& l : model.layers()) {
    MF_CHECK(names.insert(l->name()).second, "cannot save model '", model.name(), "': two layers are named '",
             l->name(), "'; layer names identify the connections and weights, so they must be unique");
    Json entry = layer_entry(*l);
    entry["name"] = l->name();
    entry["inbound_nodes"] = inbound[l.get()];
    layers.push_back(entry);
  }
  Json inputs = Json::array(), outputs = Json::array();
  for (int v : g.inputs()) inputs.push_back(origin[v]);
  for (int v : g.outputs()) outputs.push_back(origin[v]);
  return Json{{"name", model.name()},      {"trainable", model.trainable()}, {"layers", layers},
              {"input_layers", inputs},    {"output_layers", outputs},       {"output_names", model.output_names()}};
}

Json sequential_config(const Sequential& model) {
  Json layers = Json::array();
  const auto& stack = model.stack();
  if (!stack.empty() && stack[0]->built() && !stack[0]->input_shapes().empty()) {
    layers.push_back({{"class_name", "InputLayer"},
                      {"config", {{"name", model.name() + "_input"}, {"dtype", dtype_name(model.dtype())},
                                  {"batch_input_shape", batch_shape_json(stack[0]->input_shapes()[0])}}}});
  }
  for (const auto& l : stack) layers.push_back(layer_entry(*l));
  return Json{{"name", model.name()}, {"trainable", model.trainable()}, {"layers", layers}};
}

// Replays the saved layer calls in dependency order, as Keras's from_config does.
std::shared_ptr<Model> functional_from_config(const Json& c, const std::string& src) {
  std::map<std::string, std::shared_ptr<Layer>> layers;
  std::map<std::pair<std::string, int64_t>, Tensors> produced;
  struct PendingCall {
    std::string layer;
    int64_t node;
    Json inbound;
  };
  std::vector<PendingCall> pending;
  std::map<std::string, int64_t> calls_done;
  for (const auto& entry : c.at("layers")) {
    const std::string cls = entry.at("class_name").get<std::string>();
    const Json& cfg = entry.at("config");
    const std::string name = entry.contains("name") ? entry["name"].get<std::string>() : cfg.at("name").get<std::string>();
    MF_CHECK(!layers.count(name) && !produced.count({name, 0}), "'", src, "': two layers are named '", name, "'");
    if (cls == "InputLayer") {
      Shape full = shape_from_json(cfg.at("batch_input_shape"));
      MF_CHECK(!full.empty(), "'", src, "': input '", name, "' has an empty batch_input_shape");
      Shape shape(full.begin() + 1, full.end());
      produced[{name, 0}] = Tensors(Input(shape, {.dtype = dtype_from_name(cfg.value("dtype", "f32")), .name = name,
                                                  .batch_size = full[0]}));
      continue;
    }
    auto layer = layer_from_config(cls, cls == "Functional" || cls == "Sequential" ? entry : cfg);
    MF_CHECK(layer->name() == name, "'", src, "': layer '", name, "' (", cls, ") came back from from_config named '",
             layer->name(), "'; its from_config must pass config[\"name\"] on to the layer");
    layers[name] = layer;
    int64_t node = 0;
    for (const auto& in : entry.value("inbound_nodes", Json::array())) pending.push_back({name, node++, in});
  }
  while (!pending.empty()) {
    bool progress = false;
    for (auto it = pending.begin(); it != pending.end();) {
      bool ready = calls_done[it->layer] == it->node;
      for (const auto& ref : it->inbound) ready = ready && produced.count({ref.at(0).get<std::string>(), ref.at(1).get<int64_t>()});
      if (!ready) {
        ++it;
        continue;
      }
      Tensors args;
      for (const auto& ref : it->inbound) {
        const Tensors& outs = produced.at({ref.at(0).get<std::string>(), ref.at(1).get<int64_t>()});
        auto k = ref.at(2).get<int64_t>();  // not size_t: a negative float converts with undefined behaviour
        MF_CHECK(k >= 0 && k < std::ssize(outs), "'", src, "': layer '", it->layer, "' takes output ", k, " of '",
                 ref.at(0).get<std::string>(), "', which has ", outs.size(), " outputs");
        args.push_back(outs[static_cast<size_t>(k)]);
      }
      produced[{it->layer, it->node}] = (*layers.at(it->layer))(args);
      ++calls_done[it->layer];
      it = pending.erase(it);
      progress = true;
    }
    if (!progress) {
      std::string stuck;
      for (const auto& p : pending) stuck += (stuck.empty() ? "" : ", ") + p.layer + "[" + std::to_string(p.node) + "]";
      MF_THROW("'", src, "': the connections cannot be replayed: ", stuck, " wait for inputs no layer produces");
    }
  }
  auto tensor_at = [&](const Json& ref) {
    auto key = std::make_pair(ref.at(0).get<std::string>(), ref.at(1).get<int64_t>());
    MF_CHECK(produced.count(key), "'", src, "': the model input/output ", ref.dump(), " is never produced");
    const Tensors& outs = produced.at(key);
    auto k = ref.at(2).get<int64_t>();
    MF_CHECK(k >= 0 && k < std::ssize(outs), "'", src, "': ", ref.dump(), " names output ", k, " of ", outs.size());
    return outs[static_cast<size_t>(k)];
  };
  Tensors inputs, outputs;
  for (const auto& ref : c.at("input_layers")) inputs.push_back(tensor_at(ref));
  const Json names = c.value("output_names", Json::array());
  size_t i = 0;
  for (const auto& ref : c.at("output_layers")) {
    outputs.push_back(tensor_at(ref), i < names.size() ? names[i].get<std::string>() : "");
    ++i;
  }
  return std::make_shared<Model>(inputs, outputs, LayerOptions{.name = c.at("name").get<std::string>(),
                                                               .trainable = c.value("trainable", true)});
}

std::shared_ptr<Model> sequential_from_config(const Json& c, const std::string& src) {
  auto model = std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{},
                                            LayerOptions{.name = c.at("name").get<std::string>(),
                                                         .trainable = c.value("trainable", true)});
  for (const auto& entry : c.at("layers")) {
    const std::string cls = entry.at("class_name").get<std::string>();
    const Json& cfg = entry.at("config");
    if (cls == "InputLayer") {
      Shape full = shape_from_json(cfg.at("batch_input_shape"));
      MF_CHECK(!full.empty(), "'", src, "': the InputLayer has an empty batch_input_shape");
      model->add(make_input_layer(Shape(full.begin() + 1, full.end()),
                                  {.dtype = dtype_from_name(cfg.value("dtype", "f32")), .name = ""}));
      continue;
    }
    model->add(layer_from_config(cls, cls == "Functional" || cls == "Sequential" ? entry : cfg));
  }
  return model;
}

// Nested models come back through the layer registry like any other layer.
const bool kModelsRegistered = [] {
  register_layer("Functional", [](const Json& e) -> std::shared_ptr<Layer> { return model_from_config(e, "config"); });
  register_layer("Sequential", [](const Json& e) -> std::shared_ptr<Layer> { return model_from_config(e, "config"); });
  return true;
}();

}  // namespace

Json model_to_config(const Model& model) {
  if (model.is_functional()) return Json{{"class_name", "Functional"}, {"config", functional_config(model)}};
  if (auto* seq = dynamic_cast<const Sequential*>(&model))
    return Json{{"class_name", "Sequential"}, {"config", sequential_config(*seq)}};
  MF_THROW("cannot save the config of model '", model.name(), "' (", model.class_name(), "): a subclassed model's ",
           "call() is C++ code, not a config; save its weights with save_weights() and rebuild it in code");
}

std::shared_ptr<Model> model_from_config(const Json& config, const std::string& src) {
  std::shared_ptr<Model> model;
  try {
    const std::string cls = config.at("class_name").get<std::string>();
    if (cls == "Functional") model = functional_from_config(config.at("config"), src);
    else if (cls == "Sequential") model = sequential_from_config(config.at("config"), src);
    else MF_THROW("'", src, "': the model class '", cls, "' is neither Functional nor Sequential");
  } catch (const Json::exception& e) {
    MF_THROW("'", src, "': the model config is malformed (", e.what(), ")");
  }
  // Weights are matched to the file by name, so two layers of one name (in a Sequential stack, or
  // a nested model's layer and an outer one) would both take one saved tensor, and the model could
  // not be saved again.
  std::set<std::string> names;
  for (const auto& w : model->weights())
    MF_CHECK(names.insert(w.name()).second, "'", src, "': two weights are named '", w.name(),
             "'; the layers that make them need distinct names");
  return model;
}

namespace {

// Note [Numbers in configs]: layer factories read fields with nlohmann's get<int64_t>() and the
// like, which convert a JSON float with a static_cast: undefined behaviour past the integer's range
// (found by fuzz_model_config: "axis": -2e102). No config number needs that range, so a float of
// magnitude 2^63 or more (or infinite, as 1e400 parses) is refused once, here, for every field.
void check_numbers(const Json& root, const std::string& src) {
  std::vector<std::pair<const Json*, std::string>> todo = {{&root, ""}};
  while (!todo.empty()) {
    auto [j, path] = todo.back();
    todo.pop_back();
    if (j->is_number_float()) {
      const double v = j->get<double>();
      MF_CHECK(std::fabs(v) < 9.2233720368547758e18, "'", src, "': the number ", v, " at '", path,
               "' is out of range for a config (its magnitude must be below 2^63)");
    } else if (j->is_object()) {
      for (auto it = j->begin(); it != j->end(); ++it) todo.push_back({&it.value(), path + "/" + it.key()});
    } else if (j->is_array()) {
      for (size_t i = 0; i < j->size(); ++i) todo.push_back({&(*j)[i], path + "/" + std::to_string(i)});
    }
  }
}

}  // namespace

std::shared_ptr<Model> model_from_config_text(const std::string& text, const std::string& src, Json* config) {
  Json parsed;
  try {
    parsed = Json::parse(text);
  } catch (const Json::exception& e) {
    MF_THROW("'", src, "': not valid JSON (", e.what(), ")");
  }
  check_numbers(parsed, src);
  std::shared_ptr<Model> model;
  try {
    model = model_from_config(parsed, src);
  } catch (const Error& e) {
    // Errors from layer factories do not know the file; prefix it once.
    std::string msg = e.what();
    if (msg.find(src) == std::string::npos) MF_THROW("'", src, "': ", msg);
    throw;
  }
  if (config) *config = std::move(parsed);
  return model;
}

}  // namespace meshflow::saving
