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
#include "saving/shards.h"
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

}  // namespace

// Note [Saves under a strategy]
// Under a strategy of several processes every rank calls save_model with the same folder (as
// Keras asks of every worker), and they write one save between them: rank 0 makes the staging
// folder and tells the others where it is. When the optimizer holds pieces of the slots (ZeRO:
// runs of the flattened weights; tensor parallelism over processes: boxes of them), each rank
// writes the pieces no lower rank holds as optimizer-RRRRR-of-NNNNN.safetensors, so no rank ever
// holds the whole optimizer state. Once every rank has reported (a failed rank is named to all),
// rank 0 writes config.json, model.safetensors and the index optimizer.index.json (each slot's
// global shape and which file holds which piece) last, publishes the folder, and the ranks leave
// together. load_model reassembles each slot from the index, so a save made on one mesh loads on
// one process, or on any other mesh or strategy, where the slots are cut again.
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

  // Pieces: under ZeRO each rank holds runs of the flattened slots; under tensor parallelism over
  // several processes, boxes of them. Either way each piece is written once, by the first rank
  // holding it, and nothing is gathered. Otherwise the slots are saved whole by rank 0.
  bool parted = false;
  for (const auto& e : entries) parted = parted || e.var.is_part();
  const bool pieces = sliced || (parted && comm);
  std::vector<std::pair<std::string, Tensor>> whole_state;
  if (opt && !pieces) whole_state = saving::optimizer_state(model, *opt);
  std::vector<size_t> dims, at;  // per entry: the piece's rank and where it starts in a rank's row
  size_t row = 0;
  for (const auto& e : entries) {
    dims.push_back(sliced ? 1 : (e.var.is_part() ? e.var.whole_shape() : e.var.shape()).size());
    at.push_back(row);
    row += 2 * dims.back();
  }
  std::vector<int64_t> layout;  // this rank's row: per entry its piece's start then extent
  if (pieces) {
    try {
      for (const auto& e : entries) {
        saving::Piece p;
        if (sliced) p = {{e.var.is_slice() ? e.var.slice_offset() : 0}, {e.value.numel()}};
        else if (e.var.is_part()) p = saving::part_piece(e.var);
        else p = {std::vector<int64_t>(e.value.shape().size(), 0), e.value.shape()};
        MF_CHECK(shape_numel(p.extent) == e.value.numel(), "optimizer slot '", e.key, "' holds ", e.value.numel(),
                 " elements on this rank but its piece of the weight is ", shape_str(p.extent));
        layout.insert(layout.end(), p.start.begin(), p.start.end());
        layout.insert(layout.end(), p.extent.begin(), p.extent.end());
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  Tensor all_layout;
  if (comm) {
    check_every_rank(*comm, error, what);
    if (pieces) {
      Tensor t = from_vector(layout, {static_cast<int64_t>(layout.size())}, {.dtype = DType::I64});
      comm->all_gather(t, all_layout);
    }
  } else if (!error.empty()) {
    MF_THROW(error);
  } else if (pieces) {
    all_layout = from_vector(layout, {static_cast<int64_t>(layout.size())}, {.dtype = DType::I64});
  }
  const std::vector<int64_t> lv = pieces ? all_layout.to_vector<int64_t>() : std::vector<int64_t>{};
  auto piece_of = [&](int r, size_t i) {
    const auto first = lv.begin() + static_cast<int64_t>(static_cast<size_t>(r) * row + at[i]);
    const auto d = static_cast<int64_t>(dims[i]);
    return saving::Piece{{first, first + d}, {first + d, first + 2 * d}};
  };
  // Rank r writes entry i when it holds a non-empty piece that no lower rank holds.
  auto writes = [&](int r, size_t i) {
    const saving::Piece p = piece_of(r, i);
    if (shape_numel(p.extent) == 0) return false;
    for (int q = 0; q < r; ++q)
      if (piece_of(q, i) == p) return false;
    return true;
  };
  if (pieces) {
    std::vector<std::pair<std::string, Tensor>> mine;
    for (size_t i = 0; i < entries.size(); ++i)
      if (writes(rank, i))
        mine.emplace_back(entries[i].key, sliced ? entries[i].value.reshape({entries[i].value.numel()})
                                                 : entries[i].value.contiguous());
    try {
      if (!mine.empty())
        write_safetensors((fs::path(staging) / shard_name(rank, ranks)).string(), mine,
                          Json{{"format", "meshflow-optimizer-shard"}, {"save_id", id}});
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (comm) check_every_rank(*comm, error, what);
  else if (!error.empty()) MF_THROW(error);

  if (chief) {
    try {
      write_file_atomic(staged->file("config.json"), config.dump(2) + "\n");
      write_safetensors(staged->file("model.safetensors"), saving::named_weights(model),
                        Json{{"format", "meshflow-weights"}, {"save_id", id}});
      if (opt && !pieces) {
        write_safetensors(staged->file("optimizer.safetensors"), whole_state, opt_meta);
      } else if (opt) {
        // The index last: it names every shard, so a folder with an index has all of them.
        Json tensors = Json::object();
        for (size_t i = 0; i < entries.size(); ++i) {
          const auto& e = entries[i];
          const Shape shape = e.var.is_slice() || e.var.is_part() ? e.var.whole_shape() : e.var.shape();
          Json shards = Json::array();
          for (int r = 0; r < ranks; ++r)
            if (writes(r, i)) shards.push_back(saving::piece_json(shard_name(r, ranks), piece_of(r, i), sliced));
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
    slots = saving::read_sharded_slots(folder, opt_path, config.value("save_id", ""), &meta);
  } else {
    if (!fs::exists(opt_path)) return;  // saved with include_optimizer = false: a fresh optimizer
    slots = read_safetensors(opt_path, &meta);
    saving::check_save_id(meta, config.value("save_id", ""), opt_path);
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
  saving::check_save_id(meta, config.value("save_id", ""), weights_path);
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
