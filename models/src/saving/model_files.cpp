// save_model/load_model: a folder with config.json (with the compile settings), model.safetensors
// and optimizer.safetensors (slots and step).
#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "meshflow/core/error.h"
#include "meshflow/models/model.h"
#include "meshflow/models/saving.h"
#include "meshflow/models/version.h"
#include "meshflow/parallel/strategy.h"  // the version stamped into config.json
#include "saving/files.h"
#include "saving/model_config.h"
#include "saving/weights_match.h"

namespace meshflow {
namespace {

// 128 random bits as hex: the id of one save_model call.
std::string save_id() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

// A file of a save whose id differs from config.json's: the folder was replaced while it was read.
void check_save_id(const Json& meta, const std::string& want, const std::string& path) {
  if (want.empty()) return;  // saved before save ids existed
  MF_CHECK(meta.value("save_id", "") == want, "'", path, "' belongs to another save than config.json (save id ",
           meta.value("save_id", "none"), " vs ", want, "); the folder was replaced while it was read: load again");
}

}  // namespace

// Note [Saves under a strategy]
// Under a strategy of several processes every rank calls save_model with the same folder (as
// Keras asks of every worker), and they write one save between them: rank 0 makes the staging
// folder and tells the others where it is; when the optimizer holds slices of the weights (ZeRO),
// each rank writes its own slices there as optimizer-RRRRR-of-NNNNN.safetensors, so no rank ever
// holds the whole optimizer state; once every rank has reported (a failed rank is named to all),
// rank 0 writes config.json, model.safetensors and the index optimizer.index.json (each slot's
// global shape and which file holds which elements) last, publishes the folder, and the ranks
// leave together. load_model reassembles each slot from the index, so a save made on N ranks
// loads on one process, or on any number of ranks, where the slots are sliced again.
namespace {

constexpr const char* kOptimizerIndex = "optimizer.index.json";

std::string shard_name(int rank, int ranks) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "optimizer-%05d-of-%05d.safetensors", rank, ranks);
  return buf;
}

// Rank 0's text on every rank.
std::string broadcast_text(distributed::Communicator& comm, const std::string& text) {
  Tensor n = from_vector(std::vector<int64_t>{static_cast<int64_t>(text.size())}, {1}, {.dtype = DType::I64});
  comm.broadcast(n, 0);
  std::vector<int64_t> chars(static_cast<size_t>(n.to_vector<int64_t>()[0]));
  for (size_t i = 0; i < chars.size() && i < text.size(); ++i) chars[i] = static_cast<unsigned char>(text[i]);
  Tensor t = from_vector(chars, {static_cast<int64_t>(chars.size())}, {.dtype = DType::I64});
  comm.broadcast(t, 0);
  std::string out;
  for (int64_t c : t.to_vector<int64_t>()) out.push_back(static_cast<char>(c));
  return out;
}

// Every rank's error ("" when it did well), on every rank: throws naming the ranks that failed.
void check_every_rank(distributed::Communicator& comm, const std::string& error, const std::string& what) {
  Tensor ok = from_vector(std::vector<int64_t>{error.empty() ? 0 : 1}, {1}, {.dtype = DType::I64});
  Tensor all;
  comm.all_gather(ok, all);
  std::string failed;
  auto v = all.to_vector<int64_t>();
  for (size_t r = 0; r < v.size(); ++r)
    if (v[r]) failed += (failed.empty() ? "" : ", ") + std::to_string(r);
  if (failed.empty()) return;
  if (!error.empty()) MF_THROW(what, " failed on this rank (", comm.rank(), "): ", error);
  MF_THROW(what, " failed on rank(s) ", failed, " (their errors say why); nothing was published");
}

}  // namespace

void save_model(const Model& model, const std::string& folder, bool include_optimizer) {
  namespace fs = std::filesystem;
  // The config first: it fails for models that cannot be rebuilt, before anything is written.
  Json config = saving::model_to_config(model);
  config["format"] = "meshflow-model";
  config["meshflow_version"] = version();
  if (model.compiled()) config["compile_config"] = model.get_compile_config();
  Strategy* strategy = model.strategy();
  auto comm = strategy && strategy->num_processes() > 1 ? strategy->process_communicator() : nullptr;
  const bool chief = !comm || comm->rank() == 0;
  const int ranks = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  const std::string what = "save_model('" + folder + "')";

  // Rank 0 stages; every file of this save carries its id, so a loader can tell saves apart.
  std::optional<saving::StagedFolder> staged;
  std::string id, staging, error;
  if (chief) {
    id = save_id();
    try {
      staged.emplace(folder);
      staging = staged->file("");
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (comm) {
    check_every_rank(*comm, error, what);
    id = broadcast_text(*comm, id);
    staging = broadcast_text(*comm, staging);
  } else if (!error.empty()) {
    MF_THROW(error);
  }
  config["save_id"] = id;

  auto opt = include_optimizer && model.compiled() ? model.optimizer() : nullptr;
  std::vector<Optimizer::SlotEntry> entries;
  bool sliced = false;
  if (opt) {
    entries = opt->slot_entries();
    for (const auto& e : entries) sliced = sliced || e.var.is_slice();
  }
  Json opt_meta{{"optimizer", opt ? opt->name() : ""},
                {"iterations", std::to_string(opt ? opt->iterations() : 0)},
                {"config", opt ? opt->get_config().dump() : ""},
                {"save_id", id}};

  // Slots whole on every rank (tensor parallelism gathers its parts here: a collective).
  std::vector<std::pair<std::string, Tensor>> whole_state;
  if (opt && !sliced) whole_state = saving::optimizer_state(model, *opt);
  // ZeRO: every rank writes its slices; rank 0 learns where each slice lies.
  std::vector<int64_t> layout;  // per entry: offset, count (this rank's)
  if (sliced) {
    std::vector<std::pair<std::string, Tensor>> mine;
    Json where = Json::object();
    for (const auto& e : entries) {
      const int64_t offset = e.var.is_slice() ? e.var.slice_offset() : 0;
      layout.push_back(offset);
      layout.push_back(e.value.numel());
      mine.emplace_back(e.key, e.value.reshape({e.value.numel()}));
    }
    try {
      write_safetensors((fs::path(staging) / shard_name(rank, ranks)).string(), mine,
                        Json{{"format", "meshflow-optimizer-shard"}, {"save_id", id}});
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  Tensor all_layout;
  if (comm) {
    check_every_rank(*comm, error, what);
    if (sliced) {
      Tensor t = from_vector(layout, {static_cast<int64_t>(layout.size())}, {.dtype = DType::I64});
      comm->all_gather(t, all_layout);
    }
  } else if (!error.empty()) {
    MF_THROW(error);
  } else if (sliced) {
    all_layout = from_vector(layout, {static_cast<int64_t>(layout.size())}, {.dtype = DType::I64});
  }

  if (chief) {
    try {
      write_file_atomic(staged->file("config.json"), config.dump(2) + "\n");
      write_safetensors(staged->file("model.safetensors"), saving::named_weights(model),
                        Json{{"format", "meshflow-weights"}, {"save_id", id}});
      if (opt && !sliced) {
        write_safetensors(staged->file("optimizer.safetensors"), whole_state, opt_meta);
      } else if (opt) {
        // The index last: it names every shard, so a folder with an index has all of them.
        auto lv = all_layout.to_vector<int64_t>();
        const size_t k = entries.size();
        Json tensors = Json::object();
        for (size_t i = 0; i < k; ++i) {
          const auto& e = entries[i];
          const Shape shape = e.var.is_slice() ? e.var.whole_shape() : e.var.shape();
          Json shards = Json::array();
          for (int r = 0; r < ranks; ++r) {
            const int64_t offset = lv[static_cast<size_t>(r) * 2 * k + 2 * i], count = lv[static_cast<size_t>(r) * 2 * k + 2 * i + 1];
            if (count) shards.push_back(Json{{"file", shard_name(r, ranks)}, {"offset", offset}, {"count", count}});
          }
          tensors[e.key] = Json{{"shape", shape}, {"dtype", dtype_name(e.value.dtype())}, {"shards", shards}};
        }
        Json index = opt_meta;
        index["format"] = "meshflow-optimizer-index";
        index["ranks"] = ranks;
        index["tensors"] = tensors;
        write_file_atomic(staged->file(kOptimizerIndex), index.dump(1) + "\n");
      }
      staged->publish();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  // Nobody returns before the folder is in place (or everybody knows it is not).
  if (comm) check_every_rank(*comm, error, what);
  else if (!error.empty()) MF_THROW(error);
}

namespace {

// The whole slots of a sharded save (Note [Saves under a strategy]): each tensor assembled from
// the shards its index names, which must tile it exactly.
std::vector<std::pair<std::string, Tensor>> read_sharded_slots(const std::string& folder, const std::string& index_path,
                                                              const std::string& save_id, Json* meta) {
  namespace fs = std::filesystem;
  Json index;
  try {
    index = Json::parse(saving::read_whole_file(index_path, "optimizer index"));
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
      Tensor whole = zeros({numel}, {.dtype = dtype});
      std::vector<std::pair<int64_t, int64_t>> spans;
      for (const auto& sh : t.at("shards")) {
        const std::string file = sh.at("file").get<std::string>();
        const int64_t offset = sh.at("offset").get<int64_t>(), count = sh.at("count").get<int64_t>();
        MF_CHECK(file.find('/') == std::string::npos && file.find("..") == std::string::npos, "'", index_path,
                 "': tensor '", key, "' names the shard file '", file, "' outside the folder");
        MF_CHECK(offset >= 0 && count >= 0 && offset + count <= numel, "'", index_path, "': tensor '", key, "' of shape ",
                 shape_str(shape), " has a shard in '", file, "' holding elements [", offset, ", ", offset + count,
                 ") of its ", numel);
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
        MF_CHECK(found->second.numel() == count && found->second.dtype() == dtype, "'", index_path, "': tensor '", key,
                 "' has ", count, " ", dtype_name(dtype), " elements in '", file, "', which holds ",
                 found->second.numel(), " ", dtype_name(found->second.dtype()));
        if (count) whole.slice(0, offset, offset + count).copy_(found->second.reshape({count}));
        spans.emplace_back(offset, count);
      }
      std::sort(spans.begin(), spans.end());
      int64_t covered = 0;
      for (const auto& [o, c] : spans) {
        MF_CHECK(o == covered, "'", index_path, "': the shards of tensor '", key, "' (shape ", shape_str(shape), ") ",
                 o > covered ? "leave out" : "overlap at", " elements from ", std::min(o, covered),
                 "; its shards must hold each element once");
        covered += c;
      }
      MF_CHECK(covered == numel, "'", index_path, "': the shards of tensor '", key, "' (shape ", shape_str(shape),
               ") hold ", covered, " of its ", numel, " elements");
      out.emplace_back(key, whole.reshape(shape));
    }
  } catch (const Json::exception& e) {
    MF_THROW("'", index_path, "': ", e.what());
  }
  *meta = index;
  return out;
}

// Compiles a loaded model as it was saved and gives its optimizer the saved slots and step.
void restore_training_state(Model& model, const Json& config, const std::string& folder,
                            const std::string& config_path) {
  namespace fs = std::filesystem;
  try {
    model.compile_from_config(config["compile_config"]);
  } catch (const std::exception& e) {
    MF_THROW("'", config_path, "': cannot compile the model as it was saved: ", e.what(),
             " (load_model(folder, false) loads it uncompiled, to compile yourself)");
  }
  std::string opt_path = (fs::path(folder) / "optimizer.safetensors").string();
  Json meta;
  std::vector<std::pair<std::string, Tensor>> slots;
  if (fs::exists(fs::path(folder) / kOptimizerIndex)) {
    opt_path = (fs::path(folder) / kOptimizerIndex).string();
    slots = read_sharded_slots(folder, opt_path, config.value("save_id", ""), &meta);
  } else {
    if (!fs::exists(opt_path)) return;  // saved with include_optimizer = false: a fresh optimizer
    slots = read_safetensors(opt_path, &meta);
    check_save_id(meta, config.value("save_id", ""), opt_path);
  }
  auto opt = model.optimizer();
  MF_CHECK(meta.value("optimizer", "") == opt->name(), "'", opt_path, "' holds the state of optimizer '",
           meta.value("optimizer", ""), "' but config.json compiles the model with '", opt->name(), "'");
  opt->load_state(slots);
  try {
    opt->set_iterations(std::stoll(meta.value("iterations", "0")));
  } catch (const std::exception&) {
    MF_THROW("'", opt_path, "': the iterations entry '", meta.value("iterations", ""), "' is not a number");
  }
}

}  // namespace

namespace {

std::shared_ptr<Model> load_once(const std::string& folder, bool compile) {
  namespace fs = std::filesystem;
  MF_CHECK(fs::is_directory(folder), "load_model: '", folder, "' is not a folder (save_model writes a folder with ",
           "config.json and model.safetensors)");
  const std::string config_path = (fs::path(folder) / "config.json").string();
  Json config;
  std::shared_ptr<Model> model = saving::model_from_config_text(
      saving::read_whole_file(config_path, "model config"), config_path, &config);
  const std::string weights_path = (fs::path(folder) / "model.safetensors").string();
  Json meta;
  auto weights = read_safetensors(weights_path, &meta);
  check_save_id(meta, config.value("save_id", ""), weights_path);
  saving::assign_by_name(*model, weights, weights_path);
  if (compile && config.contains("compile_config")) restore_training_state(*model, config, folder, config_path);
  return model;
}

}  // namespace

// A save that replaces the folder while it is read shows as files with different save ids; the
// replacement is one rename, so reading again a moment later sees one whole save.
std::shared_ptr<Model> load_model(const std::string& folder, bool compile, std::optional<Device> device) {
  detail::LoadDevice placement(device);
  std::optional<DeviceScope> on;
  if (device) on.emplace(*device);  // what the loader itself creates (layers without a config device)
  for (int attempt = 1;; ++attempt) {
    try {
      return load_once(folder, compile);
    } catch (const Error& e) {
      if (attempt == 5 || std::string(e.what()).find("belongs to another save") == std::string::npos) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * attempt));
    }
  }
}

}  // namespace meshflow
