// The compile settings as JSON and back (Keras 3's get_compile_config / compile_from_config).
#include "meshflow/core/error.h"
#include "meshflow/models/model.h"
#include "model_state.h"

namespace meshflow {

Json Model::get_compile_config() const {
  if (!compiled_) return Json::object();
  const auto& c = *compiled_state_;
  Json loss = Json::object(), metrics = Json::object(), weights = Json::object();
  for (size_t i = 0; i < c.outputs.size(); ++i) {
    const std::string& out = c.outputs[i];
    if (c.losses[i]) loss[out] = c.losses[i]->get_config();
    auto names = compile_options_.metrics.for_output(out);
    if (!names.empty()) metrics[out] = names;
    weights[out] = c.loss_weights[i];
  }
  return {{"optimizer", optimizer_->get_config()}, {"loss", loss}, {"metrics", metrics}, {"loss_weights", weights}};
}

void Model::compile_from_config(const Json& config) {
  MF_CHECK(config.is_object() && config.contains("optimizer") && config.contains("loss") &&
               config["loss"].is_object(),
           "compile_from_config: expected an object with \"optimizer\" and \"loss\" (by output), got ", config.dump());
  CompileOptions o;
  o.optimizer = optimizers::from_config(config["optimizer"]);
  std::map<std::string, std::shared_ptr<Loss>> losses;
  for (const auto& [out, loss] : config["loss"].items()) {
    try {
      losses[out] = losses::from_config(loss);
    } catch (const Error& e) {
      MF_THROW("the loss of output '", out, "': ", e.what());
    }
  }
  o.loss = losses;
  std::map<std::string, std::vector<std::string>> metrics;
  if (config.contains("metrics")) {
    MF_CHECK(config["metrics"].is_object(), "compile_from_config: \"metrics\" must map outputs to lists of names, got ",
             config["metrics"].dump());
    for (const auto& [out, names] : config["metrics"].items()) {
      MF_CHECK(names.is_array(), "compile_from_config: the metrics of output '", out, "' must be a list of names, got ",
               names.dump());
      for (const auto& n : names) metrics[out].push_back(n.get<std::string>());
    }
  }
  o.metrics = MetricsSpec(metrics);
  if (config.contains("loss_weights"))
    for (const auto& [out, w] : config["loss_weights"].items()) {
      MF_CHECK(w.is_number(), "compile_from_config: the loss weight of output '", out, "' must be a number, got ",
               w.dump());
      o.loss_weights[out] = w.get<double>();
    }
  compile(std::move(o));
}

}  // namespace meshflow
