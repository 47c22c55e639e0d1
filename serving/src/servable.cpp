// Loading one version folder: the model, its signature (from config.json) and a warm-up run.
#include "meshflow/serving/servable.h"

#include <filesystem>

#include "meshflow/models/model.h"
#include "meshflow/models/saving.h"
#include "meshflow/serving/config.h"

namespace meshflow::serving {

namespace {

Shape batch_shape(const Json& j) {
  Shape s;
  for (const auto& d : j) s.push_back(d.is_null() ? -1 : d.get<int64_t>());
  if (!s.empty()) s[0] = -1;
  return s;
}

// The activation that makes an output's last layer a classifier ("" when none is named).
std::string output_activation(const Json& layer_entry) {
  const Json& cfg = layer_entry.value("config", Json::object());
  if (cfg.contains("activation") && cfg["activation"].is_string()) return cfg["activation"].get<std::string>();
  return "";
}

// Inputs (names, dtypes, shapes) and each output's last-layer activation, from config.json.
void read_config(const std::string& folder, Signature& sig, std::vector<std::string>& activations,
                 const std::vector<std::string>& input_names) {
  const std::string path = folder + "/config.json";
  Json top = Json::parse(read_text_file(path, "loading a model version"));
  const Json& c = top.at("config");
  const Json& layers = c.at("layers");
  MF_CHECK(layers.is_array() && !layers.empty(), path, ": no layers");
  if (top.value("class_name", "") == "Sequential") {
    const Json& first = layers.front();
    MF_CHECK(first.value("class_name", "") == "InputLayer", path,
             ": a Sequential model saved without an input shape cannot be served; build it with an Input first");
    const Json& ic = first.at("config");
    sig.inputs.push_back({input_names.empty() ? ic.value("name", "input") : input_names[0],
                          dtype_from_name(ic.value("dtype", "f32")), batch_shape(ic.at("batch_input_shape"))});
    activations.push_back(output_activation(layers.back()));
    return;
  }
  std::map<std::string, const Json*> by_name;
  for (const auto& l : layers) {
    std::string name = l.contains("name") ? l["name"].get<std::string>() : l.at("config").value("name", "");
    by_name[name] = &l;
  }
  for (const auto& name : input_names) {
    auto it = by_name.find(name);
    MF_CHECK(it != by_name.end(), path, ": input '", name, "' has no InputLayer");
    const Json& ic = it->second->at("config");
    sig.inputs.push_back({name, dtype_from_name(ic.value("dtype", "f32")), batch_shape(ic.at("batch_input_shape"))});
  }
  for (const auto& ref : c.at("output_layers")) {
    auto it = by_name.find(ref.at(0).get<std::string>());
    activations.push_back(it == by_name.end() ? "" : output_activation(*it->second));
  }
}

}  // namespace

std::shared_ptr<Servable> Servable::load(const std::string& model_name, int64_t version, const std::string& folder) {
  MF_CHECK(std::filesystem::is_directory(folder), "model '", model_name, "' version ", version, ": '", folder,
           "' is not a folder");
  std::shared_ptr<Servable> s(new Servable());
  s->model_name_ = model_name;
  s->version_ = version;
  try {
    s->model_ = load_model(folder, /*compile=*/false);
    std::vector<std::string> activations;
    read_config(folder, s->signature_, activations, s->model_->input_names());
    // Warm-up: one row of zeros gives every output's dtype and shape.
    std::vector<Tensor> zeros_in;
    for (const auto& in : s->signature_.inputs) {
      Shape shape = in.shape;
      for (auto& d : shape) d = d < 0 ? 1 : d;
      zeros_in.push_back(zeros(shape, {.dtype = in.dtype}));
    }
    std::vector<Tensor> outs = s->run(zeros_in);
    std::vector<std::string> names = s->model_->output_names();
    for (size_t i = 0; i < outs.size(); ++i) {
      Shape shape = outs[i].shape();
      if (!shape.empty()) shape[0] = -1;
      s->signature_.outputs.push_back(
          {i < names.size() && !names[i].empty() ? names[i] : "output_" + std::to_string(i), outs[i].dtype(), shape});
    }
    Signature& sig = s->signature_;
    if (sig.outputs.size() != 1) {
      sig.classify_reason = "the model has " + std::to_string(sig.outputs.size()) + " outputs; :classify needs one";
      sig.regress_reason = "the model has " + std::to_string(sig.outputs.size()) + " outputs; :regress needs one";
    } else {
      const Shape& os = sig.outputs[0].shape;
      std::string act = activations.empty() ? "" : activations[0];
      if (os.size() != 2) {
        sig.classify_reason = "its output has shape " + shape_str(os) + "; :classify needs [batch, classes]";
      } else if (act != "softmax" && act != "sigmoid") {
        sig.classify_reason = "its output layer's activation is '" + (act.empty() ? "none" : act) +
                              "'; :classify needs a softmax or sigmoid output";
      } else {
        sig.can_classify = true;
        sig.sigmoid = act == "sigmoid";
      }
      int64_t per_row = 1;
      for (size_t d = 1; d < os.size(); ++d) per_row *= os[d];
      if (per_row == 1 && is_floating(sig.outputs[0].dtype)) {
        sig.can_regress = true;
      } else {
        sig.regress_reason = "its output has shape " + shape_str(os) + "; :regress needs one number per row";
      }
    }
  } catch (const Error& e) {
    MF_THROW("model '", model_name, "' version ", version, " ('", folder, "') failed to load: ", e.what());
  } catch (const std::exception& e) {
    MF_THROW("model '", model_name, "' version ", version, " ('", folder, "') failed to load: ", e.what());
  }
  return s;
}

std::vector<Tensor> Servable::run(const std::vector<Tensor>& inputs) {
  MF_CHECK(inputs.size() == signature_.inputs.size(), "model '", model_name_, "' takes ", signature_.inputs.size(),
           " inputs, got ", inputs.size());
  int64_t rows = -1;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorSpec& spec = signature_.inputs[i];
    const Tensor& t = inputs[i];
    MF_CHECK(t.defined() && !t.is_symbolic(), "model '", model_name_, "': input '", spec.name, "' has no data");
    MF_CHECK(t.dtype() == spec.dtype, "model '", model_name_, "': input '", spec.name, "' is ", dtype_name(t.dtype()),
             ", the model takes ", dtype_name(spec.dtype));
    bool fits = t.dim() == static_cast<int64_t>(spec.shape.size()) && t.dim() >= 1;
    for (size_t d = 1; fits && d < spec.shape.size(); ++d) fits = spec.shape[d] < 0 || spec.shape[d] == t.shape()[d];
    MF_CHECK(fits, "model '", model_name_, "': input '", spec.name, "' has shape ", shape_str(t.shape()),
             ", the model takes ", shape_str(spec.shape));
    MF_CHECK(rows < 0 || t.size(0) == rows, "model '", model_name_, "': input '", spec.name, "' has ", t.size(0),
             " rows, the inputs before it ", rows);
    rows = t.size(0);
  }
  Tensors outs;
  {
    std::lock_guard<std::mutex> lock(run_mutex_);
    outs = model_->predict(Tensors(inputs), {.batch_size = std::max<int64_t>(rows, 1), .verbose = 0, .callbacks = {}});
  }
  std::vector<Tensor> result;
  for (const auto& t : outs) result.push_back(t.to(cpu()).contiguous());
  return result;
}

}  // namespace meshflow::serving
