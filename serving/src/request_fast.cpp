// A scanner for the common request, {"instances": [[numbers]]} for a model of one float input,
// that writes numbers straight into the tensor without building a JSON document.
#include "request_fast.h"

#include <charconv>
#include <cstring>
#include <vector>

namespace meshflow::serving {

// Note [The numeric fast path]: the general parser builds an nlohmann::json document first, and
// under load that (allocation per number, strtod) costs more than the model does. This scanner
// accepts only one shape of body, a single "instances" or "inputs" key whose value is a rectangular
// nested array of numbers of the input's rank, and reads numbers with std::from_chars. It reads
// them as the general parser does: an integer token as int64 (then uint64, then double when it
// does not fit), anything with a fraction or exponent as a double, then one conversion to the
// input's dtype. Whatever it is not sure of (other keys, escapes, empty or ragged arrays, a shape
// that does not fit, a number out of range) it hands to the general parser, which gives the same
// answer or the error; tests/fuzz/fuzz_predict_request.cpp checks that both agree on every input.

namespace {

struct Scanner {
  const char* p;
  const char* end;

  void ws() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  }
  bool take(char c) {
    ws();
    if (p < end && *p == c) {
      ++p;
      return true;
    }
    return false;
  }
  // A JSON number as the general parser reads it, into `v`.
  bool number(double& v) {
    ws();
    const char* start = p;
    if (p < end && *p == '-') ++p;
    if (p >= end) return false;
    if (*p == '0') {
      ++p;
    } else if (*p >= '1' && *p <= '9') {
      while (p < end && *p >= '0' && *p <= '9') ++p;
    } else {
      return false;
    }
    bool integer = true;
    if (p < end && *p == '.') {
      integer = false;
      ++p;
      if (p >= end || *p < '0' || *p > '9') return false;
      while (p < end && *p >= '0' && *p <= '9') ++p;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      integer = false;
      ++p;
      if (p < end && (*p == '+' || *p == '-')) ++p;
      if (p >= end || *p < '0' || *p > '9') return false;
      while (p < end && *p >= '0' && *p <= '9') ++p;
    }
    if (integer) {
      int64_t i = 0;
      if (auto r = std::from_chars(start, p, i); r.ec == std::errc() && r.ptr == p) {
        v = static_cast<double>(i);
        return true;
      }
      uint64_t u = 0;
      if (auto r = std::from_chars(start, p, u); r.ec == std::errc() && r.ptr == p) {
        v = static_cast<double>(u);
        return true;
      }
    }
    auto r = std::from_chars(start, p, v);
    return r.ec == std::errc() && r.ptr == p;
  }
};

struct Reader {
  Scanner s;
  size_t rank;
  std::vector<int64_t> dims;
  std::vector<double> values;
  size_t max_values;

  bool array(size_t level) {
    if (!s.take('[')) return false;
    if (s.take(']')) return false;  // empty: the general parser decides
    int64_t n = 0;
    for (;;) {
      if (level + 1 < rank) {
        if (!array(level + 1)) return false;
      } else {
        double v;
        if (!s.number(v) || values.size() >= max_values) return false;
        values.push_back(v);
      }
      ++n;
      if (s.take(',')) continue;
      if (s.take(']')) break;
      return false;
    }
    if (dims[level] < 0) dims[level] = n;
    return dims[level] == n;
  }
};

}  // namespace

bool parse_numeric_fast(std::string_view body, const Signature& sig, const ParseLimits& limits, ParsedRequest& out) {
  if (sig.inputs.size() != 1) return false;
  const TensorSpec& spec = sig.inputs[0];
  if ((spec.dtype != DType::F32 && spec.dtype != DType::F64) || spec.shape.empty() || spec.shape.size() > 16) return false;
  Reader r{{body.data(), body.data() + body.size()}, spec.shape.size(), std::vector<int64_t>(spec.shape.size(), -1), {},
           static_cast<size_t>(std::max<int64_t>(limits.max_elements, 0))};
  if (!r.s.take('{') || !r.s.take('"')) return false;
  const char* key = r.s.p;
  while (r.s.p < r.s.end && *r.s.p != '"' && *r.s.p != '\\') ++r.s.p;
  if (r.s.p >= r.s.end || *r.s.p != '"') return false;
  const std::string_view name(key, static_cast<size_t>(r.s.p - key));
  ++r.s.p;
  if ((name != "instances" && name != "inputs") || !r.s.take(':')) return false;
  if (!r.array(0) || !r.s.take('}')) return false;
  r.s.ws();
  if (r.s.p != r.s.end) return false;
  for (size_t d = 1; d < spec.shape.size(); ++d)
    if (spec.shape[d] >= 0 && spec.shape[d] != r.dims[d]) return false;
  Tensor t = empty(r.dims, {.dtype = spec.dtype, .device = cpu()});
  if (spec.dtype == DType::F64) {
    std::memcpy(t.raw_data(), r.values.data(), r.values.size() * sizeof(double));
  } else {
    float* f = static_cast<float*>(t.raw_data());
    for (size_t i = 0; i < r.values.size(); ++i) f[i] = static_cast<float>(r.values[i]);
  }
  out = ParsedRequest{};
  out.format = name == "instances" ? RequestFormat::Row : RequestFormat::Columnar;
  out.inputs.push_back(t);
  out.rows = r.dims[0];
  return true;
}

}  // namespace meshflow::serving
