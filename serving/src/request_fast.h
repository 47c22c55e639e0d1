// The fast path of the REST request parser (Note [The numeric fast path]), and the general parser
// it must agree with (the fuzz harness checks that they do).
#pragma once

#include <string_view>

#include "meshflow/serving/request_json.h"

namespace meshflow::serving {

// True, with `out` filled, when `body` is {"instances": A} or {"inputs": A} for a model of one
// floating-point input and A is a nested array of JSON numbers of the input's shape. False means
// "not sure": the general parser then decides (and writes the error, if any).
bool parse_numeric_fast(std::string_view body, const Signature& signature, const ParseLimits& limits, ParsedRequest& out);

// The general parser alone (parse_predict_request tries the fast path first).
ParsedRequest parse_predict_request_general(std::string_view body, const Signature& signature, ParseLimits limits);

}  // namespace meshflow::serving
