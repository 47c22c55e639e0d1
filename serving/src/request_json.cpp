// Parsing TF Serving's REST request bodies into tensors, and writing the answers.
#include "meshflow/serving/request_json.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <optional>

#include "meshflow/serving/config.h"
#include "request_fast.h"

namespace meshflow::serving {

using Json = nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& message) { throw ServingError(400, message); }

// Note [Reading nested arrays]: a value's shape is read from its first elements (v, v[0], v[0][0],
// ...) up to the depth the input's rank allows, then the whole value is walked once, checking that
// every array has that length and every leaf is a number of the right kind, and writing the
// numbers straight into the tensor. Depth is bounded by the rank, so no input makes us recurse
// deeper than the signature.

// Note [Binary strings]: TF Serving's REST API carries bytes as {"b64": "<base64>"} in place of a
// string, for DT_STRING inputs. Meshflow's tensors have no string dtype, so no served model has a
// string input: such a value is read (checked as base64) and refused with a 400 that names the
// input, its dtype and the value's size, wherever it appears (a bare row, a keyed row, a column or
// a leaf inside nested arrays), rather than a puzzling shape error.
bool is_b64(const Json& v) { return v.is_object() && v.contains("b64"); }

[[noreturn]] void refuse_b64(const Json& v, const std::string& input, DType dtype, const std::string& where) {
  const std::string at = "input '" + input + "'" + where;
  if (v.size() != 1 || !v["b64"].is_string())
    bad(at + ": a binary value must be {\"b64\": \"<base64 string>\"} and nothing else");
  const auto bytes = decode_base64(v["b64"].get_ref<const std::string&>());
  if (!bytes) bad(at + ": the \"b64\" value is not valid base64");
  bad(at + ": got a {\"b64\": ...} value (" + std::to_string(bytes->size()) +
      " bytes), which TF Serving's convention gives to string inputs; input '" + input + "' is " +
      tf_dtype_name(dtype) + " and this model has no string inputs (Meshflow tensors hold numbers)");
}

// The shape of `v` seen through its first elements, at most `max_rank` deep.
Shape leading_shape(const Json& v, size_t max_rank) {
  Shape s;
  const Json* cur = &v;
  while (cur->is_array() && s.size() < max_rank) {
    s.push_back(static_cast<int64_t>(cur->size()));
    if (cur->empty()) break;
    cur = &(*cur)[0];
  }
  return s;
}

struct Writer {
  DType dtype;
  char* out;
  int64_t count = 0;
  const std::string* input;

  void put(const Json& leaf, const std::string& where) {
    double v = 0;
    if (leaf.is_boolean()) {
      if (dtype != DType::Bool) bad("input '" + *input + "'" + where + ": got a boolean, expected a number (" + dtype_name(dtype) + ")");
      v = leaf.get<bool>() ? 1.0 : 0.0;
    } else if (leaf.is_number_integer() || leaf.is_number_unsigned()) {
      if (dtype == DType::Bool) bad("input '" + *input + "'" + where + ": got a number, expected true or false");
      v = leaf.is_number_unsigned() ? static_cast<double>(leaf.get<uint64_t>()) : static_cast<double>(leaf.get<int64_t>());
      if (dtype == DType::I64 && leaf.is_number_unsigned() && leaf.get<uint64_t>() > uint64_t{INT64_MAX})
        bad("input '" + *input + "'" + where + ": " + leaf.dump() + " does not fit in int64");
      if (dtype == DType::I32 && (v < -2147483648.0 || v > 2147483647.0))
        bad("input '" + *input + "'" + where + ": " + leaf.dump() + " does not fit in int32");
    } else if (leaf.is_number_float()) {
      if (dtype == DType::Bool || is_integral(dtype))
        bad("input '" + *input + "'" + where + ": got " + leaf.dump() + ", expected an integer (" + dtype_name(dtype) + ")");
      v = leaf.get<double>();
    } else if (is_b64(leaf)) {
      refuse_b64(leaf, *input, dtype, where);
    } else {
      bad("input '" + *input + "'" + where + ": got " + std::string(leaf.type_name()) + ", expected a number (" +
          dtype_name(dtype) + ")");
    }
    switch (dtype) {
      case DType::F32: reinterpret_cast<float*>(out)[count] = static_cast<float>(v); break;
      case DType::F64: reinterpret_cast<double*>(out)[count] = v; break;
      case DType::I32: reinterpret_cast<int32_t*>(out)[count] = static_cast<int32_t>(v); break;
      case DType::I64:
        reinterpret_cast<int64_t*>(out)[count] = leaf.is_number_unsigned() ? static_cast<int64_t>(leaf.get<uint64_t>())
                                                                           : leaf.get<int64_t>();
        break;
      case DType::Bool: reinterpret_cast<bool*>(out)[count] = v != 0; break;
      case DType::BF16: reinterpret_cast<bf16*>(out)[count] = bf16(static_cast<float>(v)); break;
      case DType::F16: reinterpret_cast<f16*>(out)[count] = f16(static_cast<float>(v)); break;
    }
    ++count;
  }

  // Writes `v`, which must have shape dims[level:].
  void walk(const Json& v, const Shape& dims, size_t level, const std::string& where) {
    if (level == dims.size()) {
      if (v.is_array()) bad("input '" + *input + "'" + where + ": nested deeper than its shape " + shape_str(dims));
      put(v, where);
      return;
    }
    if (is_b64(v)) refuse_b64(v, *input, dtype, where);
    if (!v.is_array() || static_cast<int64_t>(v.size()) != dims[level])
      bad("input '" + *input + "'" + where + ": expected an array of " + std::to_string(dims[level]) +
          " at depth " + std::to_string(level) + " (shape " + shape_str(dims) + "), got " +
          (v.is_array() ? "one of " + std::to_string(v.size()) : std::string(v.type_name())));
    for (const auto& e : v) walk(e, dims, level + 1, where);
  }
};

// Checks `got` against the signature's shape `want` (both with the batch dimension).
void check_shape(const std::string& name, const Shape& got, const Shape& want) {
  bool ok = got.size() == want.size();
  for (size_t i = 1; ok && i < want.size(); ++i) ok = want[i] < 0 || want[i] == got[i];
  if (!ok) bad("input '" + name + "': got shape " + shape_str(got) + ", the model expects " + shape_str(want));
}

Tensor allocate(const TensorSpec& spec, const Shape& shape, const ParseLimits& limits, int64_t& elements) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > limits.max_elements / d))
      bad("input '" + spec.name + "' holds more than " + std::to_string(limits.max_elements) + " values");
    n *= d;
  }
  elements += n;
  if (elements > limits.max_elements)
    bad("the request holds more than " + std::to_string(limits.max_elements) + " values");
  return empty(shape, {.dtype = spec.dtype, .device = cpu()});
}

// Row format: every instance is one row (an object keyed by input name, or the bare value for a
// model of one input).
void parse_rows(const Json& instances, const Signature& sig, const ParseLimits& limits, ParsedRequest& out) {
  if (!instances.is_array()) bad("\"instances\" must be a list of rows");
  if (instances.empty()) bad("\"instances\" is empty");
  const int64_t rows = static_cast<int64_t>(instances.size());
  const bool keyed = instances[0].is_object() && !instances[0].contains("b64");
  if (!keyed && sig.inputs.size() != 1)
    bad("the model has " + std::to_string(sig.inputs.size()) +
        " inputs, so each instance must be an object keyed by input name");
  int64_t elements = 0;
  for (size_t k = 0; k < sig.inputs.size(); ++k) {
    const TensorSpec& spec = sig.inputs[k];
    auto value_of = [&](int64_t r) -> const Json& {
      const Json& inst = instances[static_cast<size_t>(r)];
      if (!keyed) return inst;
      if (!inst.is_object()) bad("instance " + std::to_string(r) + " is not an object like instance 0");
      auto it = inst.find(spec.name);
      if (it == inst.end()) bad("instance " + std::to_string(r) + " has no input '" + spec.name + "'");
      return *it;
    };
    for (int64_t r = 0; r < rows; ++r)
      if (const Json& v = value_of(r); is_b64(v)) refuse_b64(v, spec.name, spec.dtype, ", instance " + std::to_string(r));
    Shape row_shape = leading_shape(value_of(0), spec.shape.size() - 1);
    Shape shape{rows};
    shape.insert(shape.end(), row_shape.begin(), row_shape.end());
    check_shape(spec.name, shape, spec.shape);
    Tensor t = allocate(spec, shape, limits, elements);
    Writer w{spec.dtype, static_cast<char*>(t.raw_data()), 0, &spec.name};
    for (int64_t r = 0; r < rows; ++r) w.walk(value_of(r), row_shape, 0, ", instance " + std::to_string(r));
    out.inputs.push_back(t);
  }
  if (keyed) {
    for (int64_t r = 0; r < rows; ++r)
      for (const auto& [key, _] : instances[static_cast<size_t>(r)].items())
        if (sig.input_index(key) < 0) bad("instance " + std::to_string(r) + " names '" + key + "', which is not an input");
  }
  out.rows = rows;
}

// Columnar format: one value per input holding every row.
void parse_columns(const Json& inputs, const Signature& sig, const ParseLimits& limits, ParsedRequest& out) {
  const bool keyed = inputs.is_object() && !inputs.contains("b64");
  if (!keyed && sig.inputs.size() != 1)
    bad("the model has " + std::to_string(sig.inputs.size()) + " inputs, so \"inputs\" must be an object keyed by input name");
  if (keyed) {
    for (const auto& [key, _] : inputs.items())
      if (sig.input_index(key) < 0) bad("\"inputs\" names '" + key + "', which is not an input");
  }
  int64_t elements = 0;
  out.rows = -1;
  for (const auto& spec : sig.inputs) {
    const Json* v = &inputs;
    if (keyed) {
      auto it = inputs.find(spec.name);
      if (it == inputs.end()) bad("\"inputs\" has no input '" + spec.name + "'");
      v = &*it;
    }
    if (is_b64(*v)) refuse_b64(*v, spec.name, spec.dtype, "");
    Shape shape = leading_shape(*v, spec.shape.size());
    if (shape.empty()) bad("input '" + spec.name + "': expected a list of rows, got " + std::string(v->type_name()));
    check_shape(spec.name, shape, spec.shape);
    if (out.rows >= 0 && shape[0] != out.rows)
      bad("input '" + spec.name + "' has " + std::to_string(shape[0]) + " rows, the others " + std::to_string(out.rows));
    out.rows = shape[0];
    if (shape[0] == 0) bad("input '" + spec.name + "' has no rows");
    Tensor t = allocate(spec, shape, limits, elements);
    Writer w{spec.dtype, static_cast<char*>(t.raw_data()), 0, &spec.name};
    w.walk(*v, shape, 0, "");
    out.inputs.push_back(t);
  }
}

// One row of an output as JSON (a number for a scalar row, else nested lists).
Json row_json(const Tensor& t, int64_t row) {
  const Shape& s = t.shape();
  int64_t per_row = 1;
  for (size_t d = 1; d < s.size(); ++d) per_row *= s[d];
  const char* base = static_cast<const char*>(t.raw_data()) + row * per_row * static_cast<int64_t>(dtype_size(t.dtype()));
  auto leaf = [&](int64_t i) -> Json {
    switch (t.dtype()) {
      case DType::F32: return static_cast<double>(reinterpret_cast<const float*>(base)[i]);
      case DType::F64: return reinterpret_cast<const double*>(base)[i];
      case DType::I32: return reinterpret_cast<const int32_t*>(base)[i];
      case DType::I64: return reinterpret_cast<const int64_t*>(base)[i];
      case DType::Bool: return reinterpret_cast<const bool*>(base)[i];
      case DType::BF16: return static_cast<double>(static_cast<float>(reinterpret_cast<const bf16*>(base)[i]));
      case DType::F16: return static_cast<double>(static_cast<float>(reinterpret_cast<const f16*>(base)[i]));
    }
    return nullptr;
  };
  int64_t next = 0;
  std::function<Json(size_t)> build = [&](size_t d) -> Json {
    if (d == s.size()) return leaf(next++);
    Json a = Json::array();
    for (int64_t i = 0; i < s[d]; ++i) a.push_back(build(d + 1));
    return a;
  };
  return build(1);
}

Json column_json(const Tensor& t) {
  Json a = Json::array();
  for (int64_t r = 0; r < t.size(0); ++r) a.push_back(row_json(t, r));
  return a;
}

}  // namespace

ParsedRequest parse_predict_request(std::string_view body, const Signature& sig, ParseLimits limits) {
  MF_CHECK(!sig.inputs.empty(), "parse_predict_request: the signature has no inputs");
  ParsedRequest fast;
  if (parse_numeric_fast(body, sig, limits, fast)) return fast;
  return parse_predict_request_general(body, sig, limits);
}

ParsedRequest parse_predict_request_general(std::string_view body, const Signature& sig, ParseLimits limits) {
  MF_CHECK(!sig.inputs.empty(), "parse_predict_request: the signature has no inputs");
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) bad("the body is not valid JSON");
  if (!j.is_object()) bad("the body must be a JSON object with \"instances\" or \"inputs\"");
  ParsedRequest out;
  if (auto it = j.find("signature_name"); it != j.end()) {
    if (!it->is_string()) bad("\"signature_name\" must be a string");
    out.signature_name = it->get<std::string>();
    if (!out.signature_name.empty() && out.signature_name != "serving_default")
      bad("unknown signature_name '" + out.signature_name + "'; the model has 'serving_default'");
  }
  const bool has_rows = j.contains("instances") || j.contains("examples");
  const bool has_cols = j.contains("inputs");
  if (has_rows == has_cols)
    bad(has_rows ? "give either \"instances\" or \"inputs\", not both" : "the body has neither \"instances\" nor \"inputs\"");
  if (j.contains("instances") && j.contains("examples")) bad("give either \"instances\" or \"examples\", not both");
  for (const auto& spec : sig.inputs)
    MF_CHECK(!spec.shape.empty(), "parse_predict_request: input '", spec.name, "' has no batch dimension");
  if (has_rows) {
    out.format = RequestFormat::Row;
    parse_rows(j.contains("instances") ? j["instances"] : j["examples"], sig, limits, out);
  } else {
    out.format = RequestFormat::Columnar;
    parse_columns(j["inputs"], sig, limits, out);
  }
  return out;
}

std::string predict_response(const ParsedRequest& request, const Signature& sig, const std::vector<Tensor>& outputs) {
  MF_CHECK(outputs.size() == sig.outputs.size(), "predict_response: ", outputs.size(), " outputs for a signature of ",
           sig.outputs.size());
  Json body;
  if (request.format == RequestFormat::Columnar) {
    if (outputs.size() == 1) {
      body["outputs"] = column_json(outputs[0]);
    } else {
      Json o = Json::object();
      for (size_t i = 0; i < outputs.size(); ++i) o[sig.outputs[i].name] = column_json(outputs[i]);
      body["outputs"] = o;
    }
  } else {
    Json rows = Json::array();
    for (int64_t r = 0; r < request.rows; ++r) {
      if (outputs.size() == 1) {
        rows.push_back(row_json(outputs[0], r));
      } else {
        Json o = Json::object();
        for (size_t i = 0; i < outputs.size(); ++i) o[sig.outputs[i].name] = row_json(outputs[i], r);
        rows.push_back(o);
      }
    }
    body["predictions"] = rows;
  }
  return body.dump();
}

std::string classify_response(const Signature& sig, const std::vector<Tensor>& outputs) {
  Json results = Json::array();
  for (const auto& row : classify_results(sig, outputs)) {
    Json r = Json::array();
    for (const auto& [label, score] : row) r.push_back(Json::array({label, score}));
    results.push_back(std::move(r));
  }
  return Json{{"results", results}}.dump();
}

std::string regress_response(const std::vector<Tensor>& outputs) {
  return Json{{"results", regress_results(outputs)}}.dump();
}

std::optional<std::string> decode_base64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet, which TF Serving also reads
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  size_t n = text.size();
  if (n % 4 == 0 && n >= 1 && text[n - 1] == '=') --n;
  if (n % 4 == 3 && text[n - 1] == '=') --n;
  if (n % 4 == 1) return std::nullopt;  // 6 bits cannot end a byte
  std::string out;
  out.reserve(n * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    const int v = value(text[i]);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::string error_json(const std::string& message) {
  // Invalid UTF-8 from a request (echoed in a message) is replaced, never thrown on.
  return Json{{"error", message}}.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace meshflow::serving
