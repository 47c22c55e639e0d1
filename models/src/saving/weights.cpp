// Weights by variable name: save_weights/load_weights, the Model members, and name matching.
#include <map>
#include <set>

#include "meshflow/core/error.h"
#include "meshflow/models/model.h"
#include "meshflow/models/saving.h"
#include "saving/files.h"
#include "saving/weights_match.h"

namespace meshflow {
namespace saving {

std::vector<std::pair<std::string, Tensor>> named_weights(const Layer& layer) {
  std::vector<std::pair<std::string, Tensor>> out;
  std::set<std::string> names;
  for (const auto& w : layer.weights()) {
    MF_CHECK(names.insert(w.name()).second, "cannot save the weights of '", layer.name(), "': two weights are ",
             "named '", w.name(), "' (give the layers distinct names)");
    out.emplace_back(w.name(), w);
  }
  return out;
}

std::vector<std::pair<std::string, Tensor>> optimizer_state(const Model& model, const Optimizer& optimizer) {
  auto entries = optimizer.slot_entries();
  bool sliced = false, parts = false;
  for (const auto& e : entries) {
    sliced = sliced || e.var.is_slice();
    parts = parts || e.var.is_part();
  }
  if (parts) {
    // Tensor parallelism: each split weight's slots gathered whole (every rank calls this).
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& e : entries) out.emplace_back(e.key, e.var.is_part() ? e.var.gather_part(e.value) : e.value);
    return out;
  }
  if (!sliced) return optimizer.state();
  MF_CHECK(model.strategy() != nullptr, "cannot save the optimizer state of '", model.name(), "': it holds slices of ",
           "the weights (ZeRO) but the model has no strategy to gather them");
  std::vector<Tensor> slices;
  std::vector<Shape> shapes;
  std::vector<int64_t> offsets;
  for (const auto& e : entries) {
    slices.push_back(e.value);
    shapes.push_back(e.var.is_slice() ? e.var.whole_shape() : e.var.shape());
    offsets.push_back(e.var.is_slice() ? e.var.slice_offset() : 0);
  }
  auto whole = model.strategy()->gather_slices(slices, shapes, offsets);
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < entries.size(); ++i) out.emplace_back(entries[i].key, whole[i]);
  return out;
}

void assign_by_name(const Layer& layer, const std::vector<std::pair<std::string, Tensor>>& saved,
                    const std::string& source) {
  auto weights = layer.weights();
  MF_CHECK(!weights.empty() || saved.empty(), "cannot load '", source, "' into '", layer.name(), "': it has no ",
           "weights yet; build it first (call it on data or give it an input shape)");
  std::map<std::string, Tensor> by_name(saved.begin(), saved.end());
  std::vector<std::string> missing, mis_shaped, unexpected;
  std::set<std::string> wanted;
  for (const auto& w : weights) {
    wanted.insert(w.name());
    auto it = by_name.find(w.name());
    if (it == by_name.end()) missing.push_back(w.name());
    else if (it->second.shape() != w.shape())
      mis_shaped.push_back(w.name() + " (file " + shape_str(it->second.shape()) + ", model " + shape_str(w.shape()) +
                           ")");
  }
  for (const auto& [name, t] : saved)
    if (!wanted.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !mis_shaped.empty() || !unexpected.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
      return s.empty() ? std::string("none") : s;
    };
    MF_THROW("'", source, "' does not match the architecture of '", layer.name(), "': missing in the file: ",
             list(missing), "; mis-shaped: ", list(mis_shaped), "; unexpected in the file: ", list(unexpected));
  }
  // Everything matched: only now write, so a mismatch leaves the model as it was.
  for (auto& w : weights) {
    const Tensor& value = by_name.at(w.name());
    w.assign(value.dtype() == w.dtype() ? value : value.to(w.dtype()));
  }
}

}  // namespace saving

void save_weights(const Layer& layer, const std::string& path) {
  write_safetensors(path, saving::named_weights(layer), Json{{"format", "meshflow-weights"}});
}

void load_weights(Layer& layer, const std::string& path) {
  saving::assign_by_name(layer, read_safetensors(path), path);
}

void Model::save_weights(const std::string& path) const {
  settle_pipeline();
  ::meshflow::save_weights(*this, path);
}
void Model::load_weights(const std::string& path) { ::meshflow::load_weights(*this, path); }
void Model::save(const std::string& folder, bool include_optimizer) const {
  settle_pipeline();
  save_model(*this, folder, include_optimizer);
}

}  // namespace meshflow
