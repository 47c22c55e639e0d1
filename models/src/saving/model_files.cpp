// save_model/load_model: a folder with config.json (with the compile settings), model.safetensors
// and optimizer.safetensors (slots and step).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "meshflow/core/error.h"
#include "meshflow/models/model.h"
#include "meshflow/models/saving.h"
#include "meshflow/models/version.h"  // the version stamped into config.json
#include "saving/files.h"
#include "saving/model_config.h"
#include "saving/weights_match.h"

namespace meshflow {
namespace {

// 128 random bits as hex: the id of one save_model call.
std::string save_id() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

// A file of a save whose id differs from config.json's: the folder was replaced while it was read.
void check_save_id(const Json& meta, const std::string& want, const std::string& path) {
  if (want.empty()) return;  // saved before save ids existed
  MF_CHECK(meta.value("save_id", "") == want, "'", path, "' belongs to another save than config.json (save id ",
           meta.value("save_id", "none"), " vs ", want, "); the folder was replaced while it was read: load again");
}

}  // namespace

void save_model(const Model& model, const std::string& folder, bool include_optimizer) {
  namespace fs = std::filesystem;
  // The config first: it fails for models that cannot be rebuilt, before anything is written.
  Json config = saving::model_to_config(model);
  config["format"] = "meshflow-model";
  config["meshflow_version"] = version();
  if (model.compiled()) config["compile_config"] = model.get_compile_config();
  // Every file of this save carries its id, so a loader can tell files of two saves apart.
  const std::string id = save_id();
  config["save_id"] = id;
  saving::StagedFolder staged(folder);
  write_file_atomic(staged.file("config.json"), config.dump(2) + "\n");
  write_safetensors(staged.file("model.safetensors"), saving::named_weights(model),
                    Json{{"format", "meshflow-weights"}, {"save_id", id}});
  if (include_optimizer && model.compiled() && model.optimizer()) {
    auto opt = model.optimizer();
    write_safetensors(staged.file("optimizer.safetensors"), saving::optimizer_state(model, *opt),
                      Json{{"optimizer", opt->name()},
                           {"iterations", std::to_string(opt->iterations())},
                           {"config", opt->get_config().dump()},
                           {"save_id", id}});
  }
  staged.publish();
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
  check_save_id(meta, config.value("save_id", ""), opt_path);
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

namespace {

std::shared_ptr<Model> load_once(const std::string& folder, bool compile) {
  namespace fs = std::filesystem;
  MF_CHECK(fs::is_directory(folder), "load_model: '", folder, "' is not a folder (save_model writes a folder with ",
           "config.json and model.safetensors)");
  const std::string config_path = (fs::path(folder) / "config.json").string();
  Json config;
  std::shared_ptr<Model> model = saving::model_from_config_text(
      saving::read_whole_file(config_path, "model config"), config_path, &config);
  const std::string weights_path = (fs::path(folder) / "model.safetensors").string();
  Json meta;
  auto weights = read_safetensors(weights_path, &meta);
  check_save_id(meta, config.value("save_id", ""), weights_path);
  saving::assign_by_name(*model, weights, weights_path);
  if (compile && config.contains("compile_config")) restore_training_state(*model, config, folder, config_path);
  return model;
}

}  // namespace

// A save that replaces the folder while it is read shows as files with different save ids; the
// replacement is one rename, so reading again a moment later sees one whole save.
std::shared_ptr<Model> load_model(const std::string& folder, bool compile, std::optional<Device> device) {
  detail::LoadDevice placement(device);
  std::optional<DeviceScope> on;
  if (device) on.emplace(*device);  // what the loader itself creates (layers without a config device)
  for (int attempt = 1;; ++attempt) {
    try {
      return load_once(folder, compile);
    } catch (const Error& e) {
      if (attempt == 5 || std::string(e.what()).find("belongs to another save") == std::string::npos) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * attempt));
    }
  }
}

}  // namespace meshflow
