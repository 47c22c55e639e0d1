// DType, Shape and Device helpers.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "meshflow/core/allocator.h"
#include "meshflow/core/device.h"
#include "meshflow/core/dtype.h"
#include "meshflow/core/error.h"
#include "meshflow/core/shape.h"

namespace meshflow {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Bool: return "bool";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F32: return "f32";
    case DType::F64: return "f64";
  }
  return "?";
}

DType dtype_from_name(const std::string& n) {
  if (n == "bool") return DType::Bool;
  if (n == "i32" || n == "int32") return DType::I32;
  if (n == "i64" || n == "int64") return DType::I64;
  if (n == "f16" || n == "float16" || n == "half") return DType::F16;
  if (n == "bf16" || n == "bfloat16") return DType::BF16;
  if (n == "f32" || n == "float32" || n == "float") return DType::F32;
  if (n == "f64" || n == "float64" || n == "double") return DType::F64;
  MF_THROW("unknown dtype '", n, "': expected one of bool, i32, i64, f16, bf16, f32, f64");
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::Bool: return 1;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::F32: return 4;
    case DType::F64: return 8;
  }
  return 0;
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  // f16 and bf16 meet in f32, as in PyTorch.
  if ((a == DType::F16 && b == DType::BF16) || (a == DType::BF16 && b == DType::F16)) return DType::F32;
  auto rank = [](DType t) {
    switch (t) {
      case DType::Bool: return 0;
      case DType::I32: return 1;
      case DType::I64: return 2;
      case DType::F16: return 3;
      case DType::BF16: return 3;
      case DType::F32: return 4;
      case DType::F64: return 5;
    }
    return 0;
  };
  return rank(a) >= rank(b) ? a : b;
}

f16::f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x007fffffu;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xffu);
  if (exp == 0xff) {  // inf or nan
    bits = static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
    return;
  }
  int32_t e = exp - 127 + 15;
  if (e >= 0x1f) {  // overflow: inf
    bits = static_cast<uint16_t>(sign | 0x7c00u);
    return;
  }
  if (e <= 0) {  // subnormal or zero
    if (e < -10) {
      bits = static_cast<uint16_t>(sign);
      return;
    }
    mant |= 0x00800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++half_mant;
    bits = static_cast<uint16_t>(sign | half_mant);
    return;
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent: correct
  bits = static_cast<uint16_t>(half);
}

f16::operator float() const {
  uint32_t sign = (static_cast<uint32_t>(bits) & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1fu;
  uint32_t mant = bits & 0x3ffu;
  uint32_t out;
  if (exp == 0) {
    if (mant == 0) {
      out = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      out = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    out = sign | 0x7f800000u | (mant << 13);
  } else {
    out = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &out, 4);
  return f;
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) return -1;
    n *= d;
  }
  return n;
}

bool shape_known(const Shape& s) {
  return std::all_of(s.begin(), s.end(), [](int64_t d) { return d >= 0; });
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) os << ", ";
    if (s[i] < 0) os << "?"; else os << s[i];
  }
  os << "]";
  return os.str();
}

Strides contiguous_strides(const Shape& s) {
  Strides st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const char* op) {
  int64_t a = axis < 0 ? axis + rank : axis;
  MF_CHECK(a >= 0 && a < rank, op, ": axis ", axis, " is out of range for a tensor of rank ", rank,
           " (valid: ", -rank, " to ", rank - 1, ")");
  return a;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da == db) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else if (db == 1) {
      out[i] = da;
    } else if (da < 0 || db < 0) {  // unknown meets known: the known one (checked when run)
      out[i] = da < 0 ? db : da;
    } else {
      MF_THROW(op, ": shapes ", shape_str(a), " and ", shape_str(b),
               " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")");
    }
  }
  return out;
}

const char* device_type_name(DeviceType t) { return t == DeviceType::CPU ? "cpu" : "cuda"; }

Device::Device(const std::string& spec) {
  std::string s = spec;
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.rfind("/device:", 0) == 0) lower = lower.substr(8);
  else if (!lower.empty() && lower[0] == '/') lower = lower.substr(1);
  std::string kind = lower;
  int idx = 0;
  auto colon = lower.find(':');
  if (colon != std::string::npos) {
    kind = lower.substr(0, colon);
    std::string num = lower.substr(colon + 1);
    MF_CHECK(!num.empty() && std::all_of(num.begin(), num.end(), ::isdigit), "device '", spec,
             "': the index after ':' must be a non-negative number (e.g. cpu:1, cuda:0, /gpu:0)");
    idx = std::stoi(num);
  }
  if (kind == "cpu") type = DeviceType::CPU;
  else if (kind == "cuda" || kind == "gpu") type = DeviceType::CUDA;
  else MF_THROW("device '", spec, "': unknown device type '", kind, "' (expected cpu, cpu:N, cuda:N or /gpu:N)");
  index = idx;
}

// Note [Current device]: a thread-local pointer to the innermost scope's device. An open scope
// decides where ops run; without one, call_op places an op by its inputs (Note [Mixed devices]),
// so code that never opens a scope pays one thread-local read per op.
namespace {
[[gnu::tls_model("initial-exec")]] thread_local const Device* t_current_device = nullptr;
}

DeviceScope::DeviceScope(Device device) : device_(device), outer_(t_current_device) {
  // Virtual cpu:N always exist; a GPU must. Counted once: kernels open scopes on every op.
  if (device.is_cuda()) {
    static const int gpus = device_count(DeviceType::CUDA);
    MF_CHECK(device.index < gpus, "DeviceScope: ", device.str(), " does not exist (this machine has ", gpus,
             " CUDA device", gpus == 1 ? "" : "s", ")");
  }
  t_current_device = &device_;
}
DeviceScope::~DeviceScope() { t_current_device = outer_; }
const Device* DeviceScope::current() { return t_current_device; }

std::string Device::str() const { return std::string(device_type_name(type)) + ":" + std::to_string(index); }

}  // namespace meshflow
