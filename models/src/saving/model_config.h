// Model configs: functional graphs and Sequential stacks to JSON (Keras's layout) and back.
#pragma once

#include <memory>

#include "meshflow/models/model.h"

namespace meshflow::saving {

// {"class_name": "Functional" | "Sequential", "config": {name, layers (each with class_name,
// config and, for functional models, inbound_nodes), input_layers, output_layers}}.
Json model_to_config(const Model& model);
// Rebuilds the model; `source` names the file in errors.
std::shared_ptr<Model> model_from_config(const Json& config, const std::string& source);
// config.json's text to its model, as load_model reads it; `config` (when given) receives the parsed
// JSON. Every error is a meshflow::Error naming `source` (tests/fuzz/fuzz_model_config.cpp holds it to that).
std::shared_ptr<Model> model_from_config_text(const std::string& text, const std::string& source, Json* config);

}  // namespace meshflow::saving
