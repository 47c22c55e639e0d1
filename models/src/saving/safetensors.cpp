// Safetensors files: writing named tensors and reading them back through the strict layout check.
#include <bit>
#include <cstring>
#include <fstream>
#include <set>

#include "meshflow/core/error.h"
#include "meshflow/models/saving.h"
#include "saving/files.h"
#include "saving/safetensors_layout.h"

namespace meshflow {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so must the host be");

namespace saving {

std::string encode_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors, const Json& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    MF_CHECK(metadata.is_object(), "write_safetensors: metadata must be a JSON object of strings, got ",
             metadata.dump());
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata.items()) {
      MF_CHECK(v.is_string(), "write_safetensors: metadata value '", k, "' must be a string (safetensors metadata ",
               "is string to string; dump JSON values first), got ", v.dump());
      meta[k] = v.get<std::string>();
    }
    header["__metadata__"] = meta;
  }
  std::set<std::string> names;
  std::vector<Tensor> data;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    MF_CHECK(!name.empty() && name != "__metadata__", "write_safetensors: invalid tensor name '", name, "'");
    MF_CHECK(names.insert(name).second, "write_safetensors: the tensor name '", name, "' appears twice");
    MF_CHECK(t.defined() && !t.is_symbolic(), "write_safetensors: tensor '", name, "' is undefined or symbolic");
    Tensor c = t.detach();
    {
      DeviceScope here(c.device());  // the copy runs where the tensor lives, whatever scope is open
      c = c.contiguous();
    }
    if (!c.device().is_cpu()) c = c.to(Device());
    const size_t bytes = static_cast<size_t>(c.numel()) * saving::safetensors_dtype_size(c.dtype());
    header[name] = {{"dtype", saving::safetensors_dtype_name(c.dtype())},
                    {"shape", c.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xff);
  out += text;
  out.reserve(out.size() + offset);
  for (const auto& c : data)
    out.append(static_cast<const char*>(c.raw_data()),
               static_cast<size_t>(c.numel()) * saving::safetensors_dtype_size(c.dtype()));
  return out;
}

std::vector<std::pair<std::string, Tensor>> decode_safetensors(const std::string& bytes, const std::string& source,
                                                               Json* metadata) {
  SafetensorsLayout layout = parse_safetensors_layout(bytes.data(), bytes.size(), source);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& e : layout.entries) {
    const char* src = bytes.data() + layout.data_start + e.begin;
    Tensor t = empty(e.shape, {.dtype = e.dtype, .device = cpu()});  // filled from the file on the host
    if (e.dtype == DType::Bool) {
      // Any byte but 0 reads as true: a bool holding another bit pattern is undefined behaviour.
      auto* dst = static_cast<unsigned char*>(t.raw_data());
      for (size_t i = 0; i < e.end - e.begin; ++i) dst[i] = src[i] != 0;
    } else if (e.end > e.begin) {
      std::memcpy(t.raw_data(), src, e.end - e.begin);
    }
    out.emplace_back(e.name, t);
  }
  if (metadata) {
    *metadata = Json::object();
    for (const auto& [k, v] : layout.metadata) (*metadata)[k] = v;
  }
  return out;
}

}  // namespace saving

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const Json& metadata) {
  write_file_atomic(path, saving::encode_safetensors(tensors, metadata));
}

std::vector<std::pair<std::string, Tensor>> read_safetensors(const std::string& path, Json* metadata) {
  return saving::decode_safetensors(saving::read_whole_file(path, "safetensors file"), path, metadata);
}

}  // namespace meshflow
