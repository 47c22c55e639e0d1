// Saving and loading in open formats: the model config as JSON, weights as safetensors.
// Every file is written to a temporary name in the same folder, flushed, fsynced and renamed, so
// a process killed mid-write leaves the previous file intact.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshflow/models/layer.h"

namespace meshflow {

class Model;

// A whole model in a folder: config.json (Keras-like: class_name + config, layers with their
// connections, and for a compiled model "compile_config": Model::get_compile_config()),
// model.safetensors (weights by variable name), and, when include_optimizer and the model is
// compiled, optimizer.safetensors (slots, the step and the optimizer's config).
void save_model(const Model& model, const std::string& folder, bool include_optimizer = true);
// Rebuilds a functional or Sequential model (built-in and registered custom layers) and loads
// its weights. With `compile` (as Keras) a model saved compiled comes back compiled the same way
// (optimizer with its learning rate, losses, metrics, loss weights) with the optimizer's slots
// and step, so fit() continues where the saved run stopped. Errors name the file and what is
// wrong (missing, truncated, unknown layer class, unknown optimizer or loss).
// Layers placed on devices (Note [Layer placement]) come back on them; `device` loads every layer
// on that one device instead (a model saved over two GPUs, loaded on a CPU-only machine).
std::shared_ptr<Model> load_model(const std::string& folder, bool compile = true,
                                  std::optional<Device> device = std::nullopt);

// Weights only, one safetensors file, tensors named by variable name ("dense/kernel").
void save_weights(const Layer& layer, const std::string& path);
// Loads by name; a file for another architecture is an error listing the missing, unexpected
// and mis-shaped names.
void load_weights(Layer& layer, const std::string& path);

// A training checkpoint: weights, optimizer slots, the optimizer step and user metadata (epoch,
// metrics) in one safetensors file.
void save_checkpoint(const Model& model, const std::string& path, const Json& metadata = Json::object());
Json load_checkpoint(Model& model, const std::string& path);

// Safetensors, for any named tensors: 8-byte little-endian header length, a JSON header padded
// with spaces to a multiple of 8, then the data at contiguous offsets.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const Json& metadata = Json::object());
std::vector<std::pair<std::string, Tensor>> read_safetensors(const std::string& path, Json* metadata = nullptr);

// Writes bytes atomically (temporary file in the same folder, fsync, rename, fsync of the folder).
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace meshflow
