// save_model/load_model: a folder with config.json (with the compile settings), model.safetensors
// and optimizer.safetensors (slots and step).
#include <filesystem>

#include "meshflow/core/error.h"
#include "meshflow/models/model.h"
#include "meshflow/models/saving.h"
#include "meshflow/models/version.h"  // the version stamped into config.json
#include "saving/files.h"
#include "saving/model_config.h"

namespace meshflow {

void save_model(const Model& model, const std::string& folder, bool include_optimizer) {
  namespace fs = std::filesystem;
  // The config first: it fails for models that cannot be rebuilt, before anything is written.
  Json config = saving::model_to_config(model);
  config["format"] = "meshflow-model";
  config["meshflow_version"] = version();
  if (model.compiled()) config["compile_config"] = model.get_compile_config();
  saving::make_folder(folder);
  write_file_atomic((fs::path(folder) / "config.json").string(), config.dump(2) + "\n");
  save_weights(model, (fs::path(folder) / "model.safetensors").string());
  if (include_optimizer && model.compiled() && model.optimizer()) {
    auto opt = model.optimizer();
    write_safetensors((fs::path(folder) / "optimizer.safetensors").string(), opt->state(),
                      Json{{"optimizer", opt->name()},
                           {"iterations", std::to_string(opt->iterations())},
                           {"config", opt->get_config().dump()}});
  }
}

namespace {

// Compiles a loaded model as it was saved and gives its optimizer the saved slots and step.
void restore_training_state(Model& model, const Json& config, const std::string& folder,
                            const std::string& config_path) {
  namespace fs = std::filesystem;
  try {
    model.compile_from_config(config["compile_config"]);
  } catch (const std::exception& e) {
    MF_THROW("'", config_path, "': cannot compile the model as it was saved: ", e.what(),
             " (load_model(folder, false) loads it uncompiled, to compile yourself)");
  }
  const std::string opt_path = (fs::path(folder) / "optimizer.safetensors").string();
  if (!fs::exists(opt_path)) return;  // saved with include_optimizer = false: a fresh optimizer
  Json meta;
  auto slots = read_safetensors(opt_path, &meta);
  auto opt = model.optimizer();
  MF_CHECK(meta.value("optimizer", "") == opt->name(), "'", opt_path, "' holds the state of optimizer '",
           meta.value("optimizer", ""), "' but config.json compiles the model with '", opt->name(), "'");
  opt->load_state(slots);
  try {
    opt->set_iterations(std::stoll(meta.value("iterations", "0")));
  } catch (const std::exception&) {
    MF_THROW("'", opt_path, "': the iterations entry '", meta.value("iterations", ""), "' is not a number");
  }
}

}  // namespace

std::shared_ptr<Model> load_model(const std::string& folder, bool compile) {
  namespace fs = std::filesystem;
  MF_CHECK(fs::is_directory(folder), "load_model: '", folder, "' is not a folder (save_model writes a folder with ",
           "config.json and model.safetensors)");
  const std::string config_path = (fs::path(folder) / "config.json").string();
  std::string text = saving::read_whole_file(config_path, "model config");
  Json config;
  try {
    config = Json::parse(text);
  } catch (const Json::exception& e) {
    MF_THROW("'", config_path, "': not valid JSON (", e.what(), ")");
  }
  std::shared_ptr<Model> model;
  try {
    model = saving::model_from_config(config, config_path);
  } catch (const Error& e) {
    // Errors from layer factories do not know the file; prefix it once.
    std::string msg = e.what();
    if (msg.find(config_path) == std::string::npos) MF_THROW("'", config_path, "': ", msg);
    throw;
  }
  load_weights(*model, (fs::path(folder) / "model.safetensors").string());
  if (compile && config.contains("compile_config")) restore_training_state(*model, config, folder, config_path);
  return model;
}

}  // namespace meshflow
