// Oracle: trials, the search space, the project folder, and the random and grid oracles.
#include "meshflow/tuner/oracle.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "meshflow/core/error.h"
#include "meshflow/models/saving.h"

namespace fs = std::filesystem;

namespace meshflow::tuner {

Objective Objective::from_name(const std::string& name) {
  MF_CHECK(!name.empty(), "Objective: the metric name is empty");
  std::string base = name.rfind("val_", 0) == 0 ? name.substr(4) : name;
  Objective o{name, "min"};
  for (const char* m : {"acc", "accuracy", "auc", "precision", "recall", "binary_accuracy",
                        "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy"})
    if (base == m) o.direction = "max";
  return o;
}

std::string status_name(TrialStatus s) {
  switch (s) {
    case TrialStatus::Running: return "RUNNING";
    case TrialStatus::Completed: return "COMPLETED";
    case TrialStatus::Failed: return "FAILED";
    case TrialStatus::Invalid: return "INVALID";
    case TrialStatus::Stopped: return "STOPPED";
    case TrialStatus::Idle: return "IDLE";
  }
  return "?";
}

TrialStatus status_from_name(const std::string& s) {
  for (TrialStatus t : {TrialStatus::Running, TrialStatus::Completed, TrialStatus::Failed, TrialStatus::Invalid,
                        TrialStatus::Stopped, TrialStatus::Idle})
    if (status_name(t) == s) return t;
  MF_THROW("unknown trial status '", s, "'");
}

Json Trial::to_json() const {
  Json j = {{"trial_id", trial_id}, {"values", values},   {"status", status_name(status)},
            {"best_step", best_step}, {"metrics", metrics}, {"message", message},
            {"worker", worker},     {"info", info}};
  j["score"] = score ? Json(*score) : Json();
  return j;
}

Trial Trial::from_json(const Json& j) {
  Trial t;
  t.trial_id = j.at("trial_id").get<std::string>();
  t.values = j.at("values");
  t.status = status_from_name(j.at("status").get<std::string>());
  if (!j.at("score").is_null()) t.score = j.at("score").get<double>();
  t.best_step = j.value("best_step", 0);
  t.metrics = j.value("metrics", Json::object());
  t.message = j.value("message", "");
  t.worker = j.value("worker", "");
  t.info = j.value("info", Json::object());
  return t;
}

Oracle::Oracle(OracleOptions options) : o_(std::move(options)), rng_(o_.seed) {
  MF_CHECK(o_.objective.direction == "min" || o_.objective.direction == "max", "Objective '", o_.objective.name,
           "': direction must be \"min\" or \"max\", not \"", o_.objective.direction, "\"");
  MF_CHECK(!o_.objective.name.empty(), "Oracle: the objective's metric name is empty");
  MF_CHECK(o_.max_trials >= 1, "Oracle: max_trials must be >= 1, not ", o_.max_trials);
  MF_CHECK(o_.max_collisions >= 1, "Oracle: max_collisions must be >= 1, not ", o_.max_collisions);
}

void Oracle::set_max_trials(int n) {
  MF_CHECK(n >= 1, "Oracle::set_max_trials: max_trials must be >= 1, not ", n);
  std::lock_guard<std::recursive_mutex> lock(mu_);
  o_.max_trials = n;
}

void Oracle::update_space(const HyperParameters& hp) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  size_t before = space_.space().size();
  space_.merge_space(hp);
  if (space_.space().size() != before) save_locked();
}

HyperParameters Oracle::space() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return space_;
}

Json Oracle::active_values(const Json& chosen) const {
  Json out = Json::object();
  for (const auto& p : space_.space()) {
    if (!space_.conditions_hold(p, out)) continue;
    out[p.name] = chosen.contains(p.name) ? chosen.at(p.name) : p.default_value;
  }
  return out;
}

std::optional<Json> Oracle::random_values() {
  for (int attempt = 0; attempt < o_.max_collisions; ++attempt) {
    Json v = Json::object();
    for (const auto& p : space_.space())
      if (space_.conditions_hold(p, v)) v[p.name] = p.random_value(rng_);
    if (!seen_values_.count(values_key(v))) return v;
  }
  return std::nullopt;
}

int Oracle::completed_or_running() const { return static_cast<int>(trials_.size()); }

std::string Oracle::pending_id() const {
  char id[16];
  std::snprintf(id, sizeof(id), "%04d", next_id_);
  return id;
}

Trial Oracle::create_trial(const std::string& worker) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Trial t;
  t.worker = worker;
  if (!to_resume_.empty()) {
    t = trials_.at(to_resume_.front());
    to_resume_.erase(to_resume_.begin());
    t.status = TrialStatus::Running;
    t.worker = worker;
    trials_[t.trial_id] = t;
    save_trial_locked(t);
    return t;
  }
  if (completed_or_running() >= o_.max_trials) {
    t.status = TrialStatus::Stopped;
    return t;
  }
  std::string id = pending_id();
  Next next = populate_space(id);
  if (next.status != TrialStatus::Running) {
    t.status = next.status;
    return t;
  }
  ++next_id_;
  t.trial_id = id;
  t.values = next.values;
  t.info = next.info;
  t.status = TrialStatus::Running;
  seen_values_.insert(values_key(t.values));
  trials_[t.trial_id] = t;
  save_trial_locked(t);
  save_locked();
  return t;
}

void Oracle::end_trial(const Trial& trial) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto it = trials_.find(trial.trial_id);
  MF_CHECK(it != trials_.end(), "Oracle::end_trial: no trial '", trial.trial_id, "'");
  MF_CHECK(trial.status != TrialStatus::Running && trial.status != TrialStatus::Idle &&
               trial.status != TrialStatus::Stopped,
           "Oracle::end_trial: trial ", trial.trial_id, " ends with status ", status_name(trial.status),
           " (expected COMPLETED, FAILED or INVALID)");
  MF_CHECK(trial.status != TrialStatus::Completed || trial.score.has_value(), "Oracle::end_trial: trial ",
           trial.trial_id, " completed without a score for '", o_.objective.name, "'");
  Trial& t = it->second;
  t.status = trial.status;
  t.score = trial.score;
  t.best_step = trial.best_step;
  t.metrics = trial.metrics;
  t.message = trial.message;
  if (!trial.worker.empty()) t.worker = trial.worker;
  on_trial_end(t);
  save_trial_locked(t);
  save_locked();
}

std::vector<Trial> Oracle::trials() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  std::vector<Trial> out;
  for (const auto& [id, t] : trials_) out.push_back(t);
  return out;
}

std::optional<Trial> Oracle::trial(const std::string& id) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto it = trials_.find(id);
  if (it == trials_.end()) return std::nullopt;
  return it->second;
}

std::vector<Trial> Oracle::get_best_trials(int n) const {
  MF_CHECK(n >= 1, "get_best_trials: n must be >= 1, not ", n);
  std::vector<Trial> done;
  for (const auto& t : trials())
    if (t.status == TrialStatus::Completed && t.score) done.push_back(t);
  std::stable_sort(done.begin(), done.end(),
                   [&](const Trial& a, const Trial& b) { return o_.objective.better(*a.score, *b.score); });
  if (static_cast<int>(done.size()) > n) done.resize(static_cast<size_t>(n));
  return done;
}

std::string Oracle::trial_dir(const std::string& id) const {
  MF_CHECK(!dir_.empty(), "Oracle::trial_dir: the oracle has no project folder (attach() was not called)");
  return (fs::path(dir_) / ("trial_" + id)).string();
}

void Oracle::attach(const std::string& project_dir, bool overwrite) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  MF_CHECK(!project_dir.empty(), "Oracle::attach: the project folder name is empty");
  if (overwrite) fs::remove_all(project_dir);
  fs::create_directories(project_dir);
  dir_ = project_dir;
  fs::path state = fs::path(dir_) / "oracle.json";
  if (!fs::exists(state)) {
    save_locked();
    return;
  }
  std::ifstream in(state);
  Json j;
  try {
    j = Json::parse(in);
  } catch (const std::exception& e) {
    MF_THROW("tuner project ", state.string(), ": not valid JSON (", e.what(), ")");
  }
  std::string saved = j.at("objective").at("name").get<std::string>();
  MF_CHECK(saved == o_.objective.name, "tuner project ", dir_, " was searched for objective '", saved,
           "', not '", o_.objective.name, "' (pass overwrite = true to start again)");
  space_.merge_space(HyperParameters::from_json(j.at("space")));
  next_id_ = j.at("next_id").get<int>();
  std::istringstream rs(j.at("rng").get<std::string>());
  rs >> rng_;
  for (const auto& id : j.at("trial_ids")) {
    fs::path tp = fs::path(trial_dir(id.get<std::string>())) / "trial.json";
    MF_CHECK(fs::exists(tp), "tuner project ", dir_, ": ", tp.string(), " is missing");
    std::ifstream tin(tp);
    Trial t = Trial::from_json(Json::parse(tin));
    seen_values_.insert(values_key(t.values));
    if (t.status == TrialStatus::Running) to_resume_.push_back(t.trial_id);
    trials_[t.trial_id] = t;
  }
  set_state(j.value("state", Json::object()));
}

void Oracle::save_locked() const {
  if (dir_.empty()) return;
  std::ostringstream rs;
  rs << rng_;
  Json ids = Json::array();
  for (const auto& [id, t] : trials_) ids.push_back(id);
  Json j = {{"objective", o_.objective.to_json()},
            {"max_trials", o_.max_trials},
            {"space", space_.to_json()},
            {"next_id", next_id_},
            {"rng", rs.str()},
            {"trial_ids", ids},
            {"state", get_state()}};
  write_file_atomic((fs::path(dir_) / "oracle.json").string(), j.dump(2));
}

void Oracle::save_trial_locked(const Trial& t) const {
  if (dir_.empty()) return;
  fs::create_directories(trial_dir(t.trial_id));
  write_file_atomic((fs::path(trial_dir(t.trial_id)) / "trial.json").string(), t.to_json().dump(2));
}

Oracle::Next RandomSearchOracle::populate_space(const std::string&) {
  auto v = random_values();
  if (!v) return {TrialStatus::Stopped, Json(), Json::object()};
  return {TrialStatus::Running, *v, Json::object()};
}

std::vector<Json> GridSearchOracle::combinations() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const auto& sp = space_.space();
  std::vector<std::vector<Json>> axes;
  double total = 1;
  for (const auto& p : sp) {
    axes.push_back(p.grid_values());
    total *= static_cast<double>(axes.back().size());
  }
  MF_CHECK(total <= 1e6, "GridSearch: the grid holds ", total, " combinations (more than 1e6)");
  std::vector<Json> out;
  std::set<std::string> keys;
  std::vector<size_t> idx(axes.size(), 0);
  for (;;) {
    Json chosen = Json::object();
    for (size_t i = 0; i < axes.size(); ++i) chosen[sp[i].name] = axes[i][idx[i]];
    Json v = active_values(chosen);
    if (keys.insert(values_key(v)).second) out.push_back(v);
    // Odometer: the last parameter turns fastest.
    size_t k = axes.size();
    while (k > 0) {
      --k;
      if (++idx[k] < axes[k].size()) break;
      idx[k] = 0;
      if (k == 0) return out;
    }
    if (axes.empty()) return out;
  }
}

Oracle::Next GridSearchOracle::populate_space(const std::string&) {
  for (const auto& v : combinations())
    if (!seen_values_.count(values_key(v))) return {TrialStatus::Running, v, Json::object()};
  return {TrialStatus::Stopped, Json(), Json::object()};
}

}  // namespace meshflow::tuner
