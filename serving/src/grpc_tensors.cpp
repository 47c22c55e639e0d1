// TensorProto and Example conversions for the gRPC API (Note [Examples as rows]).
#include "grpc_tensors.h"

#include <cstring>
#include <map>

#include "meshflow/serving/config.h"

namespace meshflow::serving {

namespace {

[[noreturn]] void invalid(const std::string& message) { throw ServingError(400, message); }

constexpr int kTfString = 7;  // DT_STRING
constexpr int64_t kMaxValues = int64_t{1} << 26;  // as the REST parser's ParseLimits

DType dtype_from_tf(int tf, const TensorSpec& spec) {
  if (tf == kTfString)
    invalid("input '" + spec.name + "': got DT_STRING values, the model expects " + tf_dtype_name(spec.dtype) +
            " (meshflow-serve has no string inputs)");
  for (DType d : {DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool, DType::BF16, DType::F16})
    if (tf_dtype_enum(d) == tf) return d;
  invalid("input '" + spec.name + "': DataType " + std::to_string(tf) + " is not one meshflow-serve reads");
}

// The values of a typed *_val field, checked for count, copied into `out`.
template <typename Field, typename Convert>
void copy_values(const Field& field, int64_t n, char* out, const std::string& input, const char* field_name,
                 Convert convert) {
  if (static_cast<int64_t>(field.size()) != n)
    invalid("input '" + input + "': " + field_name + " holds " + std::to_string(field.size()) + " values, its shape " +
            std::to_string(n));
  for (int64_t i = 0; i < n; ++i) convert(field.Get(static_cast<int>(i)), out, i);
}

std::string input_names(const Signature& sig) {
  std::string s;
  for (const auto& in : sig.inputs) s += (s.empty() ? "" : ", ") + in.name;
  return s;
}

// Writes one example's feature (the row's values) at row `r` of `out`.
void put_feature(const tensorflow::Feature& f, const TensorSpec& spec, int64_t per_row, int64_t r, char* out,
                 const std::string& where) {
  const std::string what = "input '" + spec.name + "', " + where;
  auto check_count = [&](int64_t n) {
    if (n != per_row)
      invalid(what + ": " + std::to_string(n) + " values, the input's row shape " +
              shape_str(Shape(spec.shape.begin() + 1, spec.shape.end())) + " needs " + std::to_string(per_row));
  };
  const DType d = spec.dtype;
  const int64_t base = r * per_row;
  switch (f.kind_case()) {
    case tensorflow::Feature::kBytesList:
      invalid(what + ": a bytes_list feature, the input is " + tf_dtype_name(d) + " (meshflow-serve has no string inputs)");
    case tensorflow::Feature::kFloatList: {
      if (!is_floating(d))
        invalid(what + ": a float_list feature for a " + tf_dtype_name(d) + " input; send an int64_list");
      const auto& v = f.float_list().value();
      check_count(v.size());
      for (int64_t i = 0; i < per_row; ++i) {
        const float x = v.Get(static_cast<int>(i));
        switch (d) {
          case DType::F32: reinterpret_cast<float*>(out)[base + i] = x; break;
          case DType::F64: reinterpret_cast<double*>(out)[base + i] = x; break;
          case DType::BF16: reinterpret_cast<bf16*>(out)[base + i] = bf16(x); break;
          case DType::F16: reinterpret_cast<f16*>(out)[base + i] = f16(x); break;
          default: break;
        }
      }
      return;
    }
    case tensorflow::Feature::kInt64List: {
      const auto& v = f.int64_list().value();
      check_count(v.size());
      for (int64_t i = 0; i < per_row; ++i) {
        const int64_t x = v.Get(static_cast<int>(i));
        switch (d) {
          case DType::I64: reinterpret_cast<int64_t*>(out)[base + i] = x; break;
          case DType::I32:
            if (x < INT32_MIN || x > INT32_MAX) invalid(what + ": " + std::to_string(x) + " does not fit in int32");
            reinterpret_cast<int32_t*>(out)[base + i] = static_cast<int32_t>(x);
            break;
          case DType::Bool:
            if (x != 0 && x != 1) invalid(what + ": " + std::to_string(x) + " for a DT_BOOL input; send 0 or 1");
            reinterpret_cast<bool*>(out)[base + i] = x == 1;
            break;
          case DType::F32: reinterpret_cast<float*>(out)[base + i] = static_cast<float>(static_cast<double>(x)); break;
          case DType::F64: reinterpret_cast<double*>(out)[base + i] = static_cast<double>(x); break;
          case DType::BF16: reinterpret_cast<bf16*>(out)[base + i] = bf16(static_cast<float>(static_cast<double>(x))); break;
          case DType::F16: reinterpret_cast<f16*>(out)[base + i] = f16(static_cast<float>(static_cast<double>(x))); break;
        }
      }
      return;
    }
    case tensorflow::Feature::KIND_NOT_SET:
      check_count(0);
      return;
  }
}

}  // namespace

Tensor tensor_from_proto(const tensorflow::TensorProto& p, const TensorSpec& spec) {
  const DType dtype = dtype_from_tf(p.dtype(), spec);
  if (dtype != spec.dtype)
    invalid("input '" + spec.name + "': got " + tf_dtype_name(dtype) + ", the model expects " + tf_dtype_name(spec.dtype));
  if (p.tensor_shape().unknown_rank()) invalid("input '" + spec.name + "': the shape has an unknown rank");
  Shape shape;
  int64_t n = 1;
  for (const auto& d : p.tensor_shape().dim()) {
    if (d.size() < 0 || (d.size() > 0 && n > (int64_t{1} << 40) / d.size()))
      invalid("input '" + spec.name + "': bad dimension " + std::to_string(d.size()));
    shape.push_back(d.size());
    n *= d.size();
  }
  bool ok = shape.size() == spec.shape.size() && !shape.empty();
  for (size_t i = 1; ok && i < shape.size(); ++i) ok = spec.shape[i] < 0 || spec.shape[i] == shape[i];
  if (!ok) invalid("input '" + spec.name + "': got shape " + shape_str(shape) + ", the model expects " + shape_str(spec.shape));
  const size_t bytes = static_cast<size_t>(n) * dtype_size(dtype);
  if (!p.tensor_content().empty() && p.tensor_content().size() != bytes)
    invalid("input '" + spec.name + "': tensor_content has " + std::to_string(p.tensor_content().size()) +
            " bytes, its shape and dtype need " + std::to_string(bytes));
  Tensor t = empty(shape, {.dtype = dtype, .device = cpu()});
  char* out = static_cast<char*>(t.raw_data());
  if (!p.tensor_content().empty()) {
    std::memcpy(out, p.tensor_content().data(), bytes);
    return t;
  }
  switch (dtype) {
    case DType::F32:
      copy_values(p.float_val(), n, out, spec.name, "float_val", [](float v, char* o, int64_t i) { reinterpret_cast<float*>(o)[i] = v; });
      break;
    case DType::F64:
      copy_values(p.double_val(), n, out, spec.name, "double_val", [](double v, char* o, int64_t i) { reinterpret_cast<double*>(o)[i] = v; });
      break;
    case DType::I32:
      copy_values(p.int_val(), n, out, spec.name, "int_val", [](int32_t v, char* o, int64_t i) { reinterpret_cast<int32_t*>(o)[i] = v; });
      break;
    case DType::I64:
      copy_values(p.int64_val(), n, out, spec.name, "int64_val", [](int64_t v, char* o, int64_t i) { reinterpret_cast<int64_t*>(o)[i] = v; });
      break;
    case DType::Bool:
      copy_values(p.bool_val(), n, out, spec.name, "bool_val", [](bool v, char* o, int64_t i) { reinterpret_cast<bool*>(o)[i] = v; });
      break;
    case DType::F16:
    case DType::BF16:
      copy_values(p.half_val(), n, out, spec.name, "half_val",
                  [](int32_t v, char* o, int64_t i) { reinterpret_cast<uint16_t*>(o)[i] = static_cast<uint16_t>(v); });
      break;
  }
  return t;
}

void tensor_to_proto(const Tensor& host, tensorflow::TensorProto* p) {
  Tensor t = host.contiguous();
  p->set_dtype(static_cast<tensorflow::DataType>(tf_dtype_enum(t.dtype())));
  for (int64_t d : t.shape()) p->mutable_tensor_shape()->add_dim()->set_size(d);
  const int64_t n = t.numel();
  const char* in = static_cast<const char*>(t.raw_data());
  switch (t.dtype()) {
    case DType::F32: {
      auto* f = p->mutable_float_val();
      f->Reserve(static_cast<int>(n));
      for (int64_t i = 0; i < n; ++i) f->AddAlreadyReserved(reinterpret_cast<const float*>(in)[i]);
      break;
    }
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) p->add_double_val(reinterpret_cast<const double*>(in)[i]);
      break;
    case DType::I32:
      for (int64_t i = 0; i < n; ++i) p->add_int_val(reinterpret_cast<const int32_t*>(in)[i]);
      break;
    case DType::I64:
      for (int64_t i = 0; i < n; ++i) p->add_int64_val(reinterpret_cast<const int64_t*>(in)[i]);
      break;
    case DType::Bool:
      for (int64_t i = 0; i < n; ++i) p->add_bool_val(reinterpret_cast<const bool*>(in)[i]);
      break;
    case DType::F16:
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) p->add_half_val(reinterpret_cast<const uint16_t*>(in)[i]);
      break;
  }
}

ExampleRows examples_to_inputs(const tensorflow::serving::Input& input, const Signature& sig, const std::string& model) {
  namespace tfs = tensorflow::serving;
  const google::protobuf::RepeatedPtrField<tensorflow::Example>* examples = nullptr;
  const tensorflow::Features* context = nullptr;
  switch (input.kind_case()) {
    case tfs::Input::kExampleList: examples = &input.example_list().examples(); break;
    case tfs::Input::kExampleListWithContext:
      examples = &input.example_list_with_context().examples();
      if (input.example_list_with_context().has_context()) context = &input.example_list_with_context().context().features();
      break;
    case tfs::Input::KIND_NOT_SET: invalid("the request's input holds no examples (set input.example_list)");
  }
  if (examples->empty()) invalid("the request's input holds no examples");
  const int64_t rows = examples->size();
  if (context)
    for (const auto& [key, _] : context->feature())
      if (sig.input_index(key) < 0)
        invalid("the context's feature '" + key + "' is not an input of model '" + model + "' (its inputs: " +
                input_names(sig) + ")");
  for (int64_t r = 0; r < rows; ++r)
    for (const auto& [key, _] : (*examples)[static_cast<int>(r)].features().feature()) {
      if (sig.input_index(key) < 0)
        invalid("example " + std::to_string(r) + " has feature '" + key + "', which is not an input of model '" + model +
                "' (its inputs: " + input_names(sig) + ")");
      if (context && context->feature().count(key))
        invalid("feature '" + key + "' is in example " + std::to_string(r) + " and in the context; name it once");
    }
  ExampleRows out;
  out.rows = rows;
  int64_t total = 0;
  for (const auto& spec : sig.inputs) {
    int64_t per_row = 1;
    for (size_t d = 1; d < spec.shape.size(); ++d) {
      if (spec.shape[d] < 0)
        invalid("input '" + spec.name + "' has shape " + shape_str(spec.shape) +
                "; an Example's feature is a flat list, so every dimension but the batch must be known");
      per_row *= spec.shape[d];
    }
    total += per_row * rows;
    if (per_row > kMaxValues || total > kMaxValues)
      invalid("the request holds more than " + std::to_string(kMaxValues) + " values");
    Shape shape = spec.shape;
    shape[0] = rows;
    Tensor t = empty(shape, {.dtype = spec.dtype, .device = cpu()});
    char* data = static_cast<char*>(t.raw_data());
    for (int64_t r = 0; r < rows; ++r) {
      const auto& features = (*examples)[static_cast<int>(r)].features().feature();
      auto it = features.find(spec.name);
      const tensorflow::Feature* f = it != features.end() ? &it->second : nullptr;
      if (!f && context) {
        auto c = context->feature().find(spec.name);
        if (c != context->feature().end()) f = &c->second;
      }
      if (!f) invalid("example " + std::to_string(r) + " has no feature '" + spec.name + "' (the model's inputs: " +
                      input_names(sig) + ")");
      put_feature(*f, spec, per_row, r, data, "example " + std::to_string(r));
    }
    out.inputs.push_back(std::move(t));
  }
  return out;
}

}  // namespace meshflow::serving
