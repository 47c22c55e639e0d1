// libFuzzer harness for a saved model's config.json, read as load_model reads it: any bytes either
// throw meshflow::Error or give a model that saves again (its config and named weights) and whose
// saved config rebuilds a model with the same config, weights and, when it was compiled, the same
// compile settings.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "fuzz_allocator.h"
#include "meshflow/core/error.h"
#include "meshflow/core/parallel.h"
#include "meshflow/models/model.h"
#include "saving/model_config.h"
#include "saving/weights_match.h"

namespace {

using meshflow::Json;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Names and shapes of a model's weights, which must match between the two models.
std::string weight_signature(const meshflow::Model& model) {
  std::string s;
  for (const auto& [name, t] : meshflow::saving::named_weights(model)) {
    s += name + "[";
    for (int64_t d : t.shape()) s += std::to_string(d) + ",";
    s += "]";
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  meshflow::set_num_threads(1);
  mf_fuzz::cap_host_memory();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meshflow;
  Json config;
  std::shared_ptr<Model> model;
  try {
    model = saving::model_from_config_text(std::string(reinterpret_cast<const char*>(data), size), "config.json",
                                           &config);
  } catch (const Error&) {
    return 0;
  }
  // load_model compiles the model as it was saved and turns any failure of that into a
  // meshflow::Error (restore_training_state); do the same here.
  bool compiled = false;
  if (config.is_object() && config.contains("compile_config")) {
    try {
      model->compile_from_config(config["compile_config"]);
      compiled = true;
    } catch (const std::exception&) {
    }
  }
  // What load_model gave, save_model takes: the config and the weights by unique names.
  Json saved;
  std::string weights;
  try {
    saved = saving::model_to_config(*model);
    weights = weight_signature(*model);
  } catch (const Error& e) {
    std::fprintf(stderr, "a loaded model cannot be saved: %s\n", e.what());
    check(false);
  }
  auto again = saving::model_from_config(saved, "resaved config.json");
  check(saving::model_to_config(*again) == saved);
  check(weight_signature(*again) == weights);
  if (compiled) {
    Json compile_config = model->get_compile_config();
    again->compile_from_config(compile_config);
    check(again->get_compile_config() == compile_config);
  }
  return 0;
}
