// Version folders to loaded versions: scanning, the policies, hot swaps and statuses.
#include "meshflow/serving/model_manager.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <iostream>
#include <set>

namespace meshflow::serving {

namespace fs = std::filesystem;

// Note [Hot swaps]: a version is loaded (and warmed up) outside the lock, then published in one
// step under it, so a request either finds the old default or the new one, never a half-loaded
// model. An unloaded version's batcher moves to retired_: requests that already hold it finish on
// it (its destructor runs what is queued), and it is destroyed by a later poll once nobody holds
// it, never on a batcher thread.

const char* version_state_name(VersionState s) {
  switch (s) {
    case VersionState::Unknown: return "UNKNOWN";
    case VersionState::Start: return "START";
    case VersionState::Loading: return "LOADING";
    case VersionState::Available: return "AVAILABLE";
    case VersionState::Unloading: return "UNLOADING";
    case VersionState::End: return "END";
  }
  return "UNKNOWN";
}

namespace {

// Integer-named folders under base (others, like a staging folder, are skipped).
std::set<int64_t> version_folders(const std::string& base) {
  std::set<int64_t> out;
  std::error_code ec;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    const std::string name = it->path().filename().string();
    int64_t v = -1;
    auto [p, err] = std::from_chars(name.data(), name.data() + name.size(), v);
    if (err == std::errc() && p == name.data() + name.size() && v >= 0) out.insert(v);
  }
  return out;
}

// Names, sizes and times of a folder's files: a failed version is tried again when this changes.
std::string fingerprint(const fs::path& dir) {
  std::string f;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    auto t = fs::last_write_time(it->path(), ec).time_since_epoch().count();
    f += it->path().string() + ":" + std::to_string(it->file_size(ec)) + ":" + std::to_string(t) + ";";
  }
  return f;
}

std::set<int64_t> wanted(const VersionPolicy& p, const std::set<int64_t>& present) {
  switch (p.kind) {
    case VersionPolicy::Kind::All: return present;
    case VersionPolicy::Kind::Specific: {
      std::set<int64_t> out;
      for (int64_t v : p.versions)
        if (present.count(v)) out.insert(v);
      return out;
    }
    case VersionPolicy::Kind::Latest: {
      std::set<int64_t> out;
      for (auto it = present.rbegin(); it != present.rend() && static_cast<int64_t>(out.size()) < p.latest; ++it)
        out.insert(*it);
      return out;
    }
  }
  return {};
}

}  // namespace

ModelManager::ModelManager(std::vector<ModelSpec> specs, std::optional<BatchingOptions> batching, int threads,
                           Metrics* metrics, int intra_op_threads)
    : specs_(std::move(specs)),
      batching_(std::move(batching)),
      threads_(threads),
      intra_op_threads_(intra_op_threads),
      metrics_(metrics) {
  MF_CHECK(!specs_.empty(), "ModelManager: no models to serve");
  MF_CHECK(intra_op_threads_ >= 0, "--tensorflow_intra_op_parallelism=", intra_op_threads_, ": must be 0 or more");
  for (const auto& s : specs_) {
    MF_CHECK(!s.name.empty(), "ModelManager: a model has no name");
    MF_CHECK(fs::is_directory(s.base_path), "model '", s.name, "': base path '", s.base_path, "' is not a folder");
    MF_CHECK(models_.emplace(s.name, Model{s, {}}).second, "ModelManager: model '", s.name, "' is given twice");
  }
}

ModelManager::~ModelManager() {
  stop();
  std::lock_guard<std::mutex> lock(mutex_);
  models_.clear();
  retired_.clear();
}

void ModelManager::poll() {
  std::lock_guard<std::mutex> poll_lock(poll_mutex_);
  for (const auto& s : specs_) poll_model(s.name);
  std::vector<std::shared_ptr<Batcher>> done;  // destroyed outside the lock (their threads are joined)
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& b : retired_)
    if (b.use_count() == 1) done.push_back(std::move(b));
  std::erase_if(retired_, [](const std::shared_ptr<Batcher>& b) { return b == nullptr; });
}

void ModelManager::poll_model(const std::string& name) {
  ModelSpec spec;
  std::map<int64_t, std::pair<VersionState, std::string>> known;  // state, failed fingerprint
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const Model& m = models_.at(name);
    spec = m.spec;
    for (const auto& [v, ver] : m.versions) known[v] = {ver.status.state, ver.fingerprint};
  }
  const std::set<int64_t> present = version_folders(spec.base_path);
  const std::set<int64_t> want = wanted(spec.policy, present);
  // Load what is wanted and not yet available, highest first (the new default comes soonest).
  for (auto it = want.rbegin(); it != want.rend(); ++it) {
    const int64_t v = *it;
    const fs::path dir = fs::path(spec.base_path) / std::to_string(v);
    auto k = known.find(v);
    if (k != known.end() && k->second.first == VersionState::Available) continue;
    std::string print;
    if (k != known.end() && !k->second.second.empty()) {
      print = fingerprint(dir);
      if (print == k->second.second) continue;  // failed before and unchanged
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      models_.at(name).versions[v].status = {v, VersionState::Loading, ""};
    }
    std::shared_ptr<Batcher> batcher;
    std::string error;
    try {
      batcher = std::make_shared<Batcher>(Servable::load(name, v, dir.string()), batching_, threads_, metrics_,
                                          intra_op_threads_);
    } catch (const std::exception& e) {
      error = e.what();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    Version& ver = models_.at(name).versions[v];
    if (batcher) {
      ver.status = VersionStatus{v, VersionState::Available, ""};
      ver.batcher = std::move(batcher);
      ver.fingerprint.clear();
      std::cerr << "meshflow-serve: model '" << name << "' version " << v << " is available\n";
    } else {
      ver.status = VersionStatus{v, VersionState::End, error};
      ver.batcher = nullptr;
      ver.fingerprint = print.empty() ? fingerprint(dir) : print;
      if (ver.fingerprint.empty()) ver.fingerprint = "(empty)";
      std::cerr << "meshflow-serve: " << error << "\n";
    }
  }
  // Unload the versions no longer wanted (their folder left, or a newer one took their place). As
  // TF Serving's availability-preserving policy: while no wanted version is available (the new one
  // failed to load), a version whose folder is still there keeps serving.
  std::lock_guard<std::mutex> lock(mutex_);
  bool wanted_available = false;
  for (const auto& [v, ver] : models_.at(name).versions)
    wanted_available |= want.count(v) && ver.status.state == VersionState::Available;
  for (auto& [v, ver] : models_.at(name).versions) {
    if (want.count(v) || ver.status.state != VersionState::Available) continue;
    if (!wanted_available && present.count(v)) continue;
    retired_.push_back(std::move(ver.batcher));
    ver.batcher = nullptr;
    ver.status.state = VersionState::End;
    std::cerr << "meshflow-serve: model '" << name << "' version " << v << " is unloaded\n";
  }
}

void ModelManager::start_watching(double seconds) {
  std::lock_guard<std::mutex> lock(watch_mutex_);
  MF_CHECK(!watching_, "ModelManager::start_watching: already watching");
  MF_CHECK(seconds > 0, "ModelManager::start_watching: the interval must be positive, got ", seconds);
  watching_ = true;
  watcher_ = std::thread([this, seconds] {
    std::unique_lock<std::mutex> lk(watch_mutex_);
    while (watching_) {
      watch_wake_.wait_for(lk, std::chrono::duration<double>(seconds), [&] { return !watching_; });
      if (!watching_) break;
      lk.unlock();
      try {
        poll();
      } catch (const std::exception& e) {
        std::cerr << "meshflow-serve: scanning the model folders failed: " << e.what() << "\n";
      }
      lk.lock();
    }
  });
}

void ModelManager::stop() {
  {
    std::lock_guard<std::mutex> lock(watch_mutex_);
    watching_ = false;
  }
  watch_wake_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

void ModelManager::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [name, m] : models_)
    for (auto& [v, ver] : m.versions)
      if (ver.batcher) ver.batcher->flush();
  for (auto& b : retired_) b->flush();
}

std::shared_ptr<Batcher> ModelManager::find(const std::string& model, std::optional<int64_t> version,
                                            const std::string& label) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto m = models_.find(model);
  if (m == models_.end()) throw ServingError(404, "Servable not found for request: model '" + model + "' is not served");
  if (!label.empty()) {
    auto l = m->second.spec.labels.find(label);
    if (l == m->second.spec.labels.end())
      throw ServingError(404, "model '" + model + "' has no version label '" + label + "'");
    version = l->second;
  }
  if (version) {
    auto v = m->second.versions.find(*version);
    if (v == m->second.versions.end() || !v->second.batcher)
      throw ServingError(404, "Servable not found for request: model '" + model + "' version " +
                                  std::to_string(*version) + " is not available");
    return v->second.batcher;
  }
  for (auto v = m->second.versions.rbegin(); v != m->second.versions.rend(); ++v)
    if (v->second.batcher) return v->second.batcher;
  throw ServingError(404, "Servable not found for request: model '" + model + "' has no available version");
}

std::vector<VersionStatus> ModelManager::status(const std::string& model, std::optional<int64_t> version) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto m = models_.find(model);
  if (m == models_.end()) throw ServingError(404, "model '" + model + "' is not served");
  std::vector<VersionStatus> out;
  for (auto v = m->second.versions.rbegin(); v != m->second.versions.rend(); ++v)
    if (!version || v->first == *version) out.push_back(v->second.status);
  if (version && out.empty())
    throw ServingError(404, "model '" + model + "' has no version " + std::to_string(*version));
  return out;
}

std::vector<std::string> ModelManager::model_names() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [name, _] : models_) out.push_back(name);
  return out;
}

bool ModelManager::has_model(const std::string& model) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return models_.count(model) > 0;
}

}  // namespace meshflow::serving
