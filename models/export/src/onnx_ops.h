// Ops applied to symbolic tensors outside any layer (x + y, relu(x) in a functional graph or a
// subclassed model's call()): the elementwise ones map to ONNX nodes directly.
#pragma once

#include <string>
#include <vector>

#include "meshflow/core/trace.h"
#include "onnx_builder.h"

namespace meshflow::onnx_export {

// Emits the ONNX node for graph node `n` (an op, not a layer call) over `inputs`; `where` names its
// place in the model for errors. Throws naming the op when it has no mapping.
std::vector<std::string> op_node(GraphBuilder& b, const Graph::Node& n, const std::string& where,
                                 const std::vector<Value>& inputs);

}  // namespace meshflow::onnx_export
