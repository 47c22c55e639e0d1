// TF Serving's REST bodies: a :predict/:classify/:regress request's JSON turned into input tensors
// (row format "instances"/"examples", or columnar "inputs"), and outputs turned into the answer.
// The parser trusts nothing: every mistake is a ServingError 400 naming the input, the row and
// what was expected (tests/fuzz/fuzz_predict_request.cpp feeds it arbitrary bytes).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/serving/signature.h"

namespace meshflow::serving {

enum class RequestFormat { Row, Columnar };

struct ParsedRequest {
  RequestFormat format = RequestFormat::Row;
  std::vector<Tensor> inputs;  // one per signature input, in its order, on the host
  int64_t rows = 0;
  std::string signature_name;
};

// Limits that keep one request from taking the server's memory.
struct ParseLimits {
  int64_t max_elements = int64_t{1} << 26;  // numbers in one request
  int max_depth = 16;                       // nested arrays per value
};

ParsedRequest parse_predict_request(std::string_view body, const Signature& signature, ParseLimits limits = {});

// {"predictions": [...]} for row requests, {"outputs": ...} for columnar ones; several outputs
// are keyed by name (per row for row requests).
std::string predict_response(const ParsedRequest& request, const Signature& signature,
                             const std::vector<Tensor>& outputs);
// {"results": [[[class, score], ...], ...]}: one list per row, classes by index as strings.
std::string classify_response(const Signature& signature, const std::vector<Tensor>& outputs);
// {"results": [value, ...]}: one number per row.
std::string regress_response(const std::vector<Tensor>& outputs);
// The bytes of a base64 text (standard or URL-safe alphabet, padding optional); nullopt when it is
// not base64. TF Serving's {"b64": ...} values (Note [Binary strings] in request_json.cpp).
std::optional<std::string> decode_base64(std::string_view text);
// {"error": message}
std::string error_json(const std::string& message);

}  // namespace meshflow::serving
