// Signature lookups and TensorFlow's names and numbers for Meshflow's dtypes.
#include "meshflow/serving/signature.h"

namespace meshflow::serving {

int Signature::input_index(const std::string& name) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == name) return static_cast<int>(i);
  return -1;
}

const char* tf_dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "DT_FLOAT";
    case DType::F64: return "DT_DOUBLE";
    case DType::I32: return "DT_INT32";
    case DType::I64: return "DT_INT64";
    case DType::Bool: return "DT_BOOL";
    case DType::BF16: return "DT_BFLOAT16";
    case DType::F16: return "DT_HALF";
  }
  return "DT_INVALID";
}

int tf_dtype_enum(DType d) {
  switch (d) {
    case DType::F32: return 1;
    case DType::F64: return 2;
    case DType::I32: return 3;
    case DType::I64: return 9;
    case DType::Bool: return 10;
    case DType::BF16: return 14;
    case DType::F16: return 19;
  }
  return 0;
}

}  // namespace meshflow::serving
