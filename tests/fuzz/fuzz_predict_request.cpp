// libFuzzer harness for meshflow-serve's REST request parser (serving/src/request_json.cpp). The
// first byte picks one of five signatures (one or two inputs; f32, f64, i64, i32, bool; known and
// unknown dimensions), the rest is the body. Any input either throws a ServingError with status 400
// or gives one tensor per input with the signature's dtype and rank, its known dimensions, the same
// rows everywhere; and when every value is finite, the answer written from those tensors parses
// back (as a request) to the same tensors. Where the numeric fast path takes a body, the general
// parser must give the same tensors, bit for bit.
#include <cmath>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <string>
#include <vector>

#include "meshflow/serving/config.h"
#include "meshflow/serving/request_json.h"
#include "request_fast.h"

namespace sv = meshflow::serving;
using meshflow::DType;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

std::vector<sv::Signature> signatures() {
  std::vector<sv::Signature> out(5);
  out[0].inputs = {{"x", DType::F32, {-1, 4}}};
  out[1].inputs = {{"a", DType::F32, {-1, 2}}, {"ids", DType::I64, {-1}}};
  out[2].inputs = {{"img", DType::F64, {-1, -1, 3}}};
  out[3].inputs = {{"flag", DType::Bool, {-1}}, {"n", DType::I32, {-1, 2}}};
  out[4].inputs = {{"x", DType::F32, {-1}}};
  for (auto& s : out) s.outputs = s.inputs;  // the echo: answers written from the inputs
  return out;
}

bool finite(const meshflow::Tensor& t) {
  if (!meshflow::is_floating(t.dtype())) return true;
  for (double v : t.to(DType::F64).contiguous().to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

bool same(const meshflow::Tensor& a, const meshflow::Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  auto va = a.to(DType::F64).contiguous().to_vector<double>(), vb = b.to(DType::F64).contiguous().to_vector<double>();
  return va == vb;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<sv::Signature> sigs = signatures();
  if (size == 0) return 0;
  const sv::Signature& sig = sigs[data[0] % sigs.size()];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  sv::ParseLimits limits;
  limits.max_elements = 1 << 16;
  sv::ParsedRequest fast;
  if (sv::parse_numeric_fast(body, sig, limits, fast)) {
    sv::ParsedRequest general;
    try {
      general = sv::parse_predict_request_general(body, sig, limits);
    } catch (const sv::ServingError&) {
      check(false);  // the fast path took a body the general parser refuses
    }
    check(general.format == fast.format && general.rows == fast.rows && general.inputs.size() == fast.inputs.size());
    for (size_t i = 0; i < fast.inputs.size(); ++i) {
      const auto& a = fast.inputs[i];
      const auto& b = general.inputs[i];
      check(a.shape() == b.shape() && a.dtype() == b.dtype());
      check(std::memcmp(a.raw_data(), b.raw_data(), static_cast<size_t>(a.numel()) * meshflow::dtype_size(a.dtype())) == 0);
    }
  }
  sv::ParsedRequest req;
  try {
    req = sv::parse_predict_request(body, sig, limits);
  } catch (const sv::ServingError& e) {
    check(e.http_status() == 400);
    return 0;
  }
  check(req.inputs.size() == sig.inputs.size() && req.rows >= 1);
  bool all_finite = true;
  for (size_t i = 0; i < sig.inputs.size(); ++i) {
    const auto& t = req.inputs[i];
    const auto& spec = sig.inputs[i];
    check(t.dtype() == spec.dtype && t.shape().size() == spec.shape.size() && t.size(0) == req.rows);
    for (size_t d = 1; d < spec.shape.size(); ++d) check(spec.shape[d] < 0 || spec.shape[d] == t.shape()[d]);
    all_finite = all_finite && finite(t);
  }
  if (!all_finite) return 0;
  // Round trip: the answer's JSON, renamed into a request, parses to the same tensors.
  std::string answer = sv::predict_response(req, sig, req.inputs);
  const bool rows = req.format == sv::RequestFormat::Row;
  const std::string from = rows ? "{\"predictions\":" : "{\"outputs\":";
  check(answer.rfind(from, 0) == 0);
  std::string again = (rows ? "{\"instances\":" : "{\"inputs\":") + answer.substr(from.size());
  sv::ParsedRequest back;
  try {
    back = sv::parse_predict_request(again, sig, limits);
  } catch (const sv::ServingError&) {
    // Rows with a zero-sized dimension write as [] and may not read back the same; nothing else may fail.
    for (const auto& t : req.inputs) check(t.numel() == 0 || t.size(0) == 0);
    return 0;
  }
  check(back.rows == req.rows);
  for (size_t i = 0; i < req.inputs.size(); ++i) check(same(back.inputs[i], req.inputs[i]));
  return 0;
}
