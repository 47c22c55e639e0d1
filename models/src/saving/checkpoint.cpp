// Training checkpoints: weights, optimizer slots, the optimizer step and user metadata in one file.
#include <string>

#include "meshflow/core/error.h"
#include "meshflow/models/model.h"
#include "meshflow/models/saving.h"
#include "saving/weights_match.h"

namespace meshflow {
namespace {

// Optimizer slots are stored next to the weights under this prefix ("optimizer/dense/kernel/m").
const std::string kSlotPrefix = "optimizer/";

bool is_slot(const std::string& name) { return name.rfind(kSlotPrefix, 0) == 0; }

}  // namespace

void save_checkpoint(const Model& model, const std::string& path, const Json& metadata) {
  MF_CHECK(metadata.is_object(), "save_checkpoint '", path, "': metadata must be a JSON object, got ",
           metadata.dump());
  auto tensors = saving::named_weights(model);
  for (const auto& [name, t] : tensors)
    MF_CHECK(!is_slot(name), "save_checkpoint '", path, "': the weight '", name, "' starts with '", kSlotPrefix,
             "', which checkpoints reserve for optimizer slots; rename the layer");
  Json meta{{"format", "meshflow-checkpoint"}, {"user", metadata.dump()}};
  if (auto opt = model.optimizer()) {
    for (const auto& [slot, t] : saving::optimizer_state(model, *opt)) tensors.emplace_back(kSlotPrefix + slot, t);
    meta["optimizer"] = opt->name();
    meta["iterations"] = std::to_string(opt->iterations());
  }
  write_safetensors(path, tensors, meta);
}

Json load_checkpoint(Model& model, const std::string& path) {
  Json meta;
  auto saved = read_safetensors(path, &meta);
  MF_CHECK(meta.value("format", "") == "meshflow-checkpoint", "'", path, "' is not a Meshflow checkpoint (its ",
           "metadata has no format 'meshflow-checkpoint'); weights files load with load_weights()");
  std::vector<std::pair<std::string, Tensor>> weights, slots;
  for (auto& [name, t] : saved) {
    if (is_slot(name)) slots.emplace_back(name.substr(kSlotPrefix.size()), t);
    else weights.emplace_back(name, t);
  }
  saving::assign_by_name(model, weights, path);
  if (auto opt = model.optimizer(); opt && meta.contains("iterations")) {
    MF_CHECK(meta.value("optimizer", "") == opt->name(), "'", path, "' holds the state of optimizer '",
             meta.value("optimizer", ""), "' but the model is compiled with '", opt->name(), "'");
    opt->load_state(slots);
    try {
      opt->set_iterations(std::stoll(meta["iterations"].get<std::string>()));
    } catch (const std::exception&) {
      MF_THROW("'", path, "': the iterations entry '", meta["iterations"].get<std::string>(), "' is not a number");
    }
  }
  try {
    return Json::parse(meta.value("user", "{}"));
  } catch (const Json::exception& e) {
    MF_THROW("'", path, "': the user metadata is not valid JSON (", e.what(), ")");
  }
}

}  // namespace meshflow
