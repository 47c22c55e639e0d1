// What a served model takes and gives: its inputs and outputs by name with dtypes and shapes
// (batch dimension -1), and whether :classify and :regress apply to it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "meshflow/core/dtype.h"
#include "meshflow/core/shape.h"
#include "meshflow/core/tensor.h"

namespace meshflow::serving {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;  // with the batch dimension first, -1
};

struct Signature {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  // :classify needs one output whose last layer is a softmax or sigmoid; :regress one output of one
  // value per row. Where they do not apply, the reasons say why (the 400 answer's text).
  bool can_classify = false;
  bool sigmoid = false;  // a sigmoid head: each unit's score stands alone
  bool can_regress = false;
  std::string classify_reason;
  std::string regress_reason;

  int input_index(const std::string& name) const;  // -1 when absent
};

// The APIs a request can ask of a model, REST's verbs and gRPC's methods alike.
enum class Method { Predict, Classify, Regress };
// TF's method names ("tensorflow/serving/classify") and REST's verbs ("classify").
const char* method_name(Method method);
// Throws ServingError 400 "model 'M' cannot :classify: <reason>" where the model does not support it.
void check_method(const Signature& signature, const std::string& model, Method method);

// One row's classes and scores: labels are class indices as strings ("0", "1", ...); a single
// sigmoid unit gives ("0", 1 - p) and ("1", p). `outputs` are a run's outputs (one [rows, classes]).
using ClassScores = std::vector<std::pair<std::string, double>>;
std::vector<ClassScores> classify_results(const Signature& signature, const std::vector<Tensor>& outputs);
// One number per row of the single output.
std::vector<double> regress_results(const std::vector<Tensor>& outputs);

// TF's names for our dtypes ("DT_FLOAT") and its DataType enum numbers.
const char* tf_dtype_name(DType dtype);
int tf_dtype_enum(DType dtype);

}  // namespace meshflow::serving
