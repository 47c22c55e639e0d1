// Between TF Serving's gRPC messages and Meshflow tensors: TensorProto both ways (Predict) and
// Examples into one tensor per model input (Classify, Regress, MultiInference). Every mistake is a
// ServingError 400 naming the input, the example and what was expected.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/serving/signature.h"
#include "tensorflow/core/framework/tensor.pb.h"
#include "tensorflow_serving/apis/input.pb.h"

namespace meshflow::serving {

// A TensorProto (typed *_val fields or tensor_content) as a host tensor of `spec`'s dtype, with the
// signature's shape (any batch size).
Tensor tensor_from_proto(const tensorflow::TensorProto& proto, const TensorSpec& spec);
// Typed *_val fields, TF's dtype enum, the tensor's shape.
void tensor_to_proto(const Tensor& host, tensorflow::TensorProto* proto);

struct ExampleRows {
  std::vector<Tensor> inputs;  // one per signature input, in its order
  int64_t rows = 0;
};
// Note [Examples as rows]: each Example is one row; its features are named after the model's
// inputs and hold the row's values flattened (float_list for float inputs, int64_list for integer
// ones, and also for float and boolean (0/1) ones, as REST's JSON numbers). A context's features
// join every example. Features need every dimension but the batch to be known.
ExampleRows examples_to_inputs(const tensorflow::serving::Input& input, const Signature& signature,
                               const std::string& model);

}  // namespace meshflow::serving
