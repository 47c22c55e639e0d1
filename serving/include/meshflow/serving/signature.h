// What a served model takes and gives: its inputs and outputs by name with dtypes and shapes
// (batch dimension -1), and whether :classify and :regress apply to it.
#pragma once

#include <string>
#include <vector>

#include "meshflow/core/dtype.h"
#include "meshflow/core/shape.h"

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

// TF's names for our dtypes ("DT_FLOAT") and its DataType enum numbers.
const char* tf_dtype_name(DType dtype);
int tf_dtype_enum(DType dtype);

}  // namespace meshflow::serving
