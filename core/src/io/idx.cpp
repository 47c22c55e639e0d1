// IDX reader (the MNIST / Fashion-MNIST format) with in-process gzip decompression.
#include <cstring>
#include <fstream>
#include <sstream>

#include "meshflow/core/error.h"
#include "meshflow/core/io.h"
#include "io/idx_layout.h"

namespace meshflow::io {

std::string read_file_maybe_gzip(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MF_CHECK(f.good(), "cannot open '", path, "': ", std::strerror(errno));
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return gunzip_if_gzip(std::move(raw), path);
}

Tensor read_idx(const std::string& path, bool as_float) {
  std::string d = read_file_maybe_gzip(path);
  IdxLayout l = parse_idx_layout(d, path, as_float);
  const size_t n = l.count, esize = l.element_size;
  Tensor t = empty(l.shape, {.dtype = l.dtype, .device = cpu()});  // filled from the file on the host
  const auto* src = reinterpret_cast<const unsigned char*>(d.data()) + l.header_bytes;
  if (esize == 1) {
    bool is_signed = l.type_code == 0x09;
    if (l.dtype == DType::F32) {
      float* o = t.data<float>();
      for (size_t i = 0; i < n; ++i) o[i] = is_signed ? float(int8_t(src[i])) : float(src[i]);
    } else {
      int64_t* o = t.data<int64_t>();
      for (size_t i = 0; i < n; ++i) o[i] = is_signed ? int64_t(int8_t(src[i])) : int64_t(src[i]);
    }
  } else {
    // IDX is big-endian.
    unsigned char* o = static_cast<unsigned char*>(t.raw_data());
    for (size_t i = 0; i < n; ++i)
      for (size_t b = 0; b < esize; ++b) o[i * esize + b] = src[i * esize + (esize - 1 - b)];
  }
  return t;
}

}  // namespace meshflow::io
