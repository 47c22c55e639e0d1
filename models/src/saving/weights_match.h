// Weights as (variable name, tensor) pairs, and loading them back with every mismatch reported.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "meshflow/models/layer.h"
#include "meshflow/models/model.h"

namespace meshflow::saving {

// The layer's weights by variable name; two weights with one name are an error.
std::vector<std::pair<std::string, Tensor>> named_weights(const Layer& layer);
// Assigns saved tensors to the layer's weights by name. Any missing, unexpected or mis-shaped
// name is an error listing them all (with both shapes), raised before any weight changes.
void assign_by_name(const Layer& layer, const std::vector<std::pair<std::string, Tensor>>& saved,
                    const std::string& source);

// The optimizer's slots by "<variable>/<slot>", each whole: slots of weight slices (ZeRO) are
// gathered through the model's strategy, a collective every rank must join.
std::vector<std::pair<std::string, Tensor>> optimizer_state(const Model& model, const Optimizer& optimizer);

}  // namespace meshflow::saving
