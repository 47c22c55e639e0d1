// ONNX export: a functional, Sequential or traceable subclassed Model written as an ONNX model
// (protobuf, the schema of Debian's libonnx-dev) that ONNX Runtime runs on servers, phones and in
// browsers. Layers map one by one (Keras-to-ONNX style); weights become initializers.
#pragma once

#include <cstdint>
#include <string>

#include "meshflow/models/model.h"

namespace meshflow {

struct OnnxExportOptions {
  // The ai.onnx opset to declare, 13 to 17 (what the ONNX 1.12 schema knows). A layer that needs a
  // newer one (LayerNormalization: 17) is an error naming it.
  int64_t opset = 17;
  // The batch dimension of every input and output is the symbolic "batch"; false fixes it to
  // batch_size.
  bool dynamic_batch = true;
  int64_t batch_size = 1;
  std::string doc_string;  // free text stored in the model
};

// Writes `model` to `path` (atomically: a failed export leaves no file, nor a partial one, and an
// existing file at `path` unchanged). The graph's inputs and outputs carry the model's Keras input
// and output names; metadata_props hold "meshflow_input_names", "meshflow_output_names" (JSON
// lists) and "meshflow_config" (the model's Keras-style config, where it has one).
// Throws meshflow::Error naming the layer (class and path in the model, "model/block/dense") that
// has no ONNX mapping, the layer that needs a newer opset, or the path that cannot be written.
void export_onnx(const Model& model, const std::string& path, const OnnxExportOptions& options = {});

// The same model as serialized ONNX bytes, without writing a file.
std::string export_onnx_bytes(const Model& model, const OnnxExportOptions& options = {});

// The opsets export_onnx can write.
constexpr int64_t kOnnxMinOpset = 13;
constexpr int64_t kOnnxMaxOpset = 17;

}  // namespace meshflow
