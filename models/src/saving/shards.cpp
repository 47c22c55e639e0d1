// Pieces of sharded optimizer saves: the box a tensor-parallel part holds, and reading an index of
// pieces (flat ZeRO slices or boxes) back into whole tensors.
#include "saving/shards.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/models/saving.h"
#include "saving/files.h"

namespace meshflow::saving {

namespace {

std::vector<int64_t> strides_of(const Shape& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) s[d - 1] = s[d] * shape[d];
  return s;
}

// Calls f(flat index in the whole tensor) for every element of the box, row-major.
template <typename F>
void for_each_in_box(const Shape& whole, const Piece& p, F&& f) {
  const auto stride = strides_of(whole);
  const size_t dims = whole.size();
  int64_t n = 1;
  for (int64_t e : p.extent) n *= e;
  if (n == 0) return;
  std::vector<int64_t> at(dims, 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t flat = 0;
    for (size_t d = 0; d < dims; ++d) flat += (p.start[d] + at[d]) * stride[d];
    f(flat);
    for (size_t d = dims; d-- > 0;) {
      if (++at[d] < p.extent[d]) break;
      at[d] = 0;
    }
  }
}

std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

Piece part_piece(const Variable& part) {
  MF_CHECK(part.is_part(), "part_piece: '", part.name(), "' is not a tensor-parallel part");
  const Shape& whole = part.whole_shape();
  NoGradGuard no_grad;
  // Element numbers are exact in float64 up to 2^53, far past any tensor's size.
  Tensor numbers = arange(shape_numel(whole), {.dtype = DType::F64}).reshape(whole);
  Tensor cut = part.take_part(numbers);
  Piece p;
  p.extent = cut.shape();
  p.start.assign(whole.size(), 0);
  const std::vector<double> got = cut.contiguous().to_vector<double>();
  if (got.empty()) return p;
  int64_t first = static_cast<int64_t>(got[0]);
  const auto stride = strides_of(whole);
  for (size_t d = 0; d < whole.size(); ++d) {
    p.start[d] = first / stride[d];
    first %= stride[d];
  }
  size_t k = 0;
  bool box = p.extent.size() == whole.size();
  if (box)
    for_each_in_box(whole, p, [&](int64_t flat) { box = box && k < got.size() && got[k++] == static_cast<double>(flat); });
  MF_CHECK(box && k == got.size(), "part_piece: the part of '", part.name(), "' (", shape_str(p.extent), " of ",
           shape_str(whole), ") is not one box of the whole weight, so it cannot be saved as one piece");
  return p;
}

Json piece_json(const std::string& file, const Piece& piece, bool flat) {
  if (flat) return Json{{"file", file}, {"offset", piece.start.at(0)}, {"count", piece.extent.at(0)}};
  return Json{{"file", file}, {"start", piece.start}, {"extent", piece.extent}};
}

void check_save_id(const Json& meta, const std::string& want, const std::string& path) {
  if (want.empty()) return;  // saved before save ids existed
  MF_CHECK(meta.value("save_id", "") == want, "'", path, "' belongs to another save than config.json (save id ",
           meta.value("save_id", "none"), " vs ", want, "); the folder was replaced while it was read: load again");
}

std::vector<std::pair<std::string, Tensor>> read_sharded_slots(const std::string& folder, const std::string& index_path,
                                                              const std::string& save_id, Json* meta) {
  namespace fs = std::filesystem;
  Json index;
  try {
    index = Json::parse(read_whole_file(index_path, "optimizer index"));
  } catch (const Json::exception& e) {
    MF_THROW("'", index_path, "' is not valid JSON: ", e.what());
  }
  MF_CHECK(index.is_object() && index.value("format", "") == "meshflow-optimizer-index" && index.contains("tensors") &&
               index["tensors"].is_object(),
           "'", index_path, "' is not a Meshflow optimizer index (format meshflow-optimizer-index with \"tensors\")");
  check_save_id(index, save_id, index_path);
  std::map<std::string, std::vector<std::pair<std::string, Tensor>>> files;  // shard file -> its tensors
  std::vector<std::pair<std::string, Tensor>> out;
  try {
    for (const auto& [key, t] : index["tensors"].items()) {
      const Shape shape = t.at("shape").get<Shape>();
      for (int64_t d : shape) MF_CHECK(d >= 0, "'", index_path, "': tensor '", key, "' has a negative dimension");
      const DType dtype = dtype_from_name(t.at("dtype").get<std::string>());
      const int64_t numel = shape_numel(shape);
      Tensor whole = zeros(shape, {.dtype = dtype});
      std::vector<uint8_t> held(static_cast<size_t>(numel), 0);
      for (const auto& sh : t.at("shards")) {
        const std::string file = sh.at("file").get<std::string>();
        MF_CHECK(file.find('/') == std::string::npos && file.find("..") == std::string::npos, "'", index_path,
                 "': tensor '", key, "' names the shard file '", file, "' outside the folder");
        // A flat piece (ZeRO) lies in the flattened tensor; a box in the tensor's own shape.
        const bool flat = sh.contains("offset");
        const Shape frame = flat ? Shape{numel} : shape;
        Piece p = flat ? Piece{{sh.at("offset").get<int64_t>()}, {sh.at("count").get<int64_t>()}}
                       : Piece{sh.at("start").get<std::vector<int64_t>>(), sh.at("extent").get<std::vector<int64_t>>()};
        bool inside = p.start.size() == frame.size() && p.extent.size() == frame.size();
        for (size_t d = 0; inside && d < frame.size(); ++d)
          inside = p.start[d] >= 0 && p.extent[d] >= 0 && p.start[d] + p.extent[d] <= frame[d];
        MF_CHECK(inside, "'", index_path, "': tensor '", key, "' of shape ", shape_str(shape), " has a shard in '", file,
                 "' at ", ints_str(p.start), " of extent ", ints_str(p.extent), ", which does not lie inside ",
                 shape_str(frame));
        auto it = files.find(file);
        if (it == files.end()) {
          const std::string path = (fs::path(folder) / file).string();
          Json shard_meta;
          auto tensors = read_safetensors(path, &shard_meta);
          check_save_id(shard_meta, save_id, path);
          it = files.emplace(file, std::move(tensors)).first;
        }
        auto found = std::find_if(it->second.begin(), it->second.end(), [&](const auto& e) { return e.first == key; });
        MF_CHECK(found != it->second.end(), "'", index_path, "': tensor '", key, "' has a shard in '", file,
                 "', which does not hold it");
        const int64_t count = shape_numel(p.extent);
        MF_CHECK(found->second.numel() == count && found->second.dtype() == dtype, "'", index_path, "': tensor '", key,
                 "' has ", count, " ", dtype_name(dtype), " elements in '", file, "', which holds ",
                 found->second.numel(), " ", dtype_name(found->second.dtype()));
        if (count) {
          Tensor view = flat ? whole.reshape({numel}) : whole;
          for (size_t d = 0; d < frame.size(); ++d) view = view.slice(static_cast<int>(d), p.start[d], p.start[d] + p.extent[d]);
          view.copy_(found->second.reshape(p.extent));
        }
        for_each_in_box(frame, p, [&](int64_t flat_index) {
          MF_CHECK(held[static_cast<size_t>(flat_index)] == 0, "'", index_path, "': the shards of tensor '", key,
                   "' (shape ", shape_str(shape), ") overlap at elements from ", flat_index,
                   "; its shards must hold each element once");
          held[static_cast<size_t>(flat_index)] = 1;
        });
      }
      auto gap = std::find(held.begin(), held.end(), uint8_t{0});
      MF_CHECK(gap == held.end(), "'", index_path, "': the shards of tensor '", key, "' (shape ", shape_str(shape),
               ") leave out elements from ", gap - held.begin(), " of its ", numel,
               "; its shards must hold each element once");
      out.emplace_back(key, whole);
    }
  } catch (const Json::exception& e) {
    MF_THROW("'", index_path, "': ", e.what());
  }
  *meta = index;
  return out;
}

}  // namespace meshflow::saving
