// Signature lookups and TensorFlow's names and numbers for Meshflow's dtypes.
#include "meshflow/serving/signature.h"

#include "meshflow/serving/config.h"

namespace meshflow::serving {

int Signature::input_index(const std::string& name) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == name) return static_cast<int>(i);
  return -1;
}

const char* method_name(Method m) {
  switch (m) {
    case Method::Predict: return "tensorflow/serving/predict";
    case Method::Classify: return "tensorflow/serving/classify";
    case Method::Regress: return "tensorflow/serving/regress";
  }
  return "";
}

void check_method(const Signature& sig, const std::string& model, Method m) {
  if (m == Method::Classify && !sig.can_classify)
    throw ServingError(400, "model '" + model + "' cannot :classify: " + sig.classify_reason);
  if (m == Method::Regress && !sig.can_regress)
    throw ServingError(400, "model '" + model + "' cannot :regress: " + sig.regress_reason);
}

std::vector<ClassScores> classify_results(const Signature& sig, const std::vector<Tensor>& outputs) {
  MF_CHECK(outputs.size() == 1 && outputs[0].dim() == 2, "classify_results: expected one [batch, classes] output, got ",
           outputs.size(), " outputs");
  Tensor scores = outputs[0].to(DType::F64).contiguous();
  const double* p = scores.data<double>();
  const int64_t rows = scores.size(0), classes = scores.size(1);
  std::vector<ClassScores> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    ClassScores& row = out[static_cast<size_t>(r)];
    if (sig.sigmoid && classes == 1) {
      row = {{"0", 1.0 - p[r]}, {"1", p[r]}};
    } else {
      for (int64_t c = 0; c < classes; ++c) row.emplace_back(std::to_string(c), p[r * classes + c]);
    }
  }
  return out;
}

std::vector<double> regress_results(const std::vector<Tensor>& outputs) {
  MF_CHECK(outputs.size() == 1 && outputs[0].dim() >= 1, "regress_results: expected one output, got ", outputs.size());
  Tensor v = outputs[0].to(DType::F64).contiguous();
  MF_CHECK(v.numel() == v.size(0), "regress_results: expected one number per row, got shape ", shape_str(v.shape()));
  const double* p = v.data<double>();
  return std::vector<double>(p, p + v.size(0));
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
