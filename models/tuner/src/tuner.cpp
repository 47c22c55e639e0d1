// Tuner: the search loop, one trial's fits, the best trials and models, the summary table.
#include "meshflow/tuner/tuner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "meshflow/core/error.h"
#include "meshflow/models/saving.h"
#include "meshflow/tuner/hparams.h"

namespace fs = std::filesystem;

namespace meshflow::tuner {

Objective objective_of(const TunerOptions& o) {
  Objective obj = Objective::from_name(o.objective);
  if (!o.direction.empty()) {
    MF_CHECK(o.direction == "min" || o.direction == "max", "TunerOptions.direction must be \"min\" or \"max\", not \"",
             o.direction, "\"");
    obj.direction = o.direction;
  }
  return obj;
}

namespace {

OracleOptions oracle_options(const TunerOptions& o) {
  return {.objective = objective_of(o), .max_trials = o.max_trials, .seed = o.seed};
}

// Copies the model's weights at each epoch whose objective beats the best so far.
class KeepBest : public Callback {
 public:
  KeepBest(Objective objective, std::vector<Tensor>& best, double& best_value)
      : objective_(std::move(objective)), best_(best), best_value_(best_value) {}
  void on_epoch_end(int, Logs& logs) override {
    auto it = logs.find(objective_.name);
    if (it == logs.end() || !std::isfinite(it->second)) return;
    if (best_.empty() || objective_.better(it->second, best_value_)) {
      best_value_ = it->second;
      best_ = model()->get_weights();
    }
  }

 private:
  Objective objective_;
  std::vector<Tensor>& best_;
  double& best_value_;
};

Tensors first_rows(const Tensors& x) {
  Tensors out;
  for (size_t i = 0; i < x.size(); ++i) out.push_back(x[i].slice(0, 0, 1), x.names()[i]);
  return out;
}

}  // namespace

Tuner::Tuner(HyperModel hypermodel, std::shared_ptr<Oracle> oracle, TunerOptions options)
    : hypermodel_(std::move(hypermodel)), oracle_(std::move(oracle)), o_(std::move(options)) {
  MF_CHECK(hypermodel_, "Tuner: the hypermodel is empty");
  MF_CHECK(oracle_, "Tuner: the oracle is null");
  MF_CHECK(o_.executions_per_trial >= 1, "TunerOptions.executions_per_trial must be >= 1, not ",
           o_.executions_per_trial);
  MF_CHECK(o_.max_consecutive_failed_trials >= 1, "TunerOptions.max_consecutive_failed_trials must be >= 1, not ",
           o_.max_consecutive_failed_trials);
  MF_CHECK(!o_.project_name.empty(), "TunerOptions.project_name is empty");
  role_ = o_.distributed ? *o_.distributed : DistributedTuning::from_environment();
  if (role_.role != DistributedTuning::Role::None) {
    MF_CHECK(!role_.tuner_id.empty(), "TunerOptions.distributed: the tuner id is empty (\"chief\" or a worker's id)");
    MF_CHECK(role_.oracle_port != 0, "TunerOptions.distributed: the oracle's port is 0 (", role_.tuner_id, ")");
    MF_CHECK(role_.expected_workers >= 1, "TunerOptions.distributed: expected_workers must be >= 1, not ",
             role_.expected_workers);
  }
  if (role_.is_worker()) {
    // Keras Tuner's workers do the same: the chief's oracle decides, the worker only runs trials.
    oracle_ = std::make_shared<RemoteOracle>(role_.oracle_ip, role_.oracle_port);
    o_.tuner_id = role_.tuner_id;
    o_.overwrite = false;
    project_dir_ = oracle_->project_dir();
    return;
  }
  project_dir_ = (fs::path(o_.directory) / o_.project_name).string();
  oracle_->attach(project_dir_, o_.overwrite);
}

std::shared_ptr<Model> Tuner::build(HyperParameters& hp) {
  auto model = hypermodel_(hp);
  MF_CHECK(model, "Tuner: the hypermodel returned no model");
  MF_CHECK(model->compiled(), "Tuner: the hypermodel must return a compiled model (call compile() in build)");
  oracle_->update_space(hp);
  return model;
}

void Tuner::populate_initial_space() {
  HyperParameters hp = oracle_->space();
  build(hp);
  // Each value of a parameter that conditions others may declare new ones.
  std::set<std::string> tried;
  for (int round = 0; round < 32; ++round) {
    HyperParameters space = oracle_->space();
    bool built = false;
    for (const auto& p : space.space()) {
      for (const auto& c : p.conditions) {
        const auto& parent = space.parameter(c.parent);
        if (parent.kind == HyperParameter::Kind::Float && parent.step == 0) continue;
        for (const auto& v : parent.grid_values()) {
          std::string key = c.parent + "=" + v.dump();
          if (!tried.insert(key).second) continue;
          HyperParameters h = oracle_->space();
          h.set(c.parent, v);
          build(h);
          built = true;
        }
      }
    }
    if (!built) break;
  }
}

History Tuner::fit_once(Model& model, const Tensors& x, const Tensors& y, FitOptions fit,
                        std::vector<Tensor>& best_weights, double& best_so_far) {
  fit.callbacks.push_back(std::make_shared<KeepBest>(oracle_->objective(), best_weights, best_so_far));
  return model.fit(x, y, fit);
}

void Tuner::run_trial(Trial& trial, const Tensors& x, const Tensors& y, const FitOptions& fit) {
  const Objective& obj = oracle_->objective();
  std::vector<double> scores;
  std::map<std::string, std::vector<double>> metric_bests;
  std::vector<Tensor> best_weights;
  double best_value = 0;
  int best_step = 0;
  double best_execution = 0;
  for (int e = 0; e < o_.executions_per_trial; ++e) {
    HyperParameters hp = oracle_->space();
    hp.set_values(trial.values);
    auto model = build(hp);
    History h = fit_once(*model, x, y, fit, best_weights, best_value);
    auto it = h.history.find(obj.name);
    if (it == h.history.end()) {
      std::string keys;
      for (const auto& [k, v] : h.history) keys += (keys.empty() ? "" : ", ") + k;
      MF_THROW("objective '", obj.name, "' is not in fit()'s history (it has: ", keys,
               "); a val_ metric needs validation_data or validation_split");
    }
    const auto& vals = it->second;
    MF_CHECK(!vals.empty(), "objective '", obj.name, "': fit() ran no epoch");
    size_t best = 0;
    for (size_t i = 1; i < vals.size(); ++i)
      if (obj.better(vals[i], vals[best])) best = i;
    scores.push_back(vals[best]);
    if (e == 0 || obj.better(vals[best], best_execution)) {
      best_execution = vals[best];
      best_step = h.epoch.empty() ? static_cast<int>(best) : h.epoch[best];
    }
    for (const auto& [k, v] : h.history) {
      if (v.empty()) continue;
      Objective mo = Objective::from_name(k);
      double b = v[0];
      for (double d : v)
        if (mo.better(d, b)) b = d;
      metric_bests[k].push_back(b);
    }
  }
  double sum = 0;
  for (double s : scores) sum += s;
  trial.score = sum / static_cast<double>(scores.size());
  trial.best_step = best_step;
  trial.metrics = Json::object();
  for (const auto& [k, v] : metric_bests) {
    double m = 0;
    for (double d : v) m += d;
    trial.metrics[k] = m / static_cast<double>(v.size());
  }
  if (!best_weights.empty()) save_weights(trial.trial_id, best_weights);
}

void Tuner::search(const Tensors& x, const Tensors& y, FitOptions fit) {
  MF_CHECK(!x.empty() && !y.empty(), "Tuner::search: x and y must hold at least one tensor each");
  for (size_t i = 0; i < x.size(); ++i)
    MF_CHECK(x[i].defined() && x[i].dim() >= 1 && x[i].size(0) >= 1, "Tuner::search: x[", i, "] has no rows");
  sample_x_ = first_rows(x);
  if (role_.is_chief()) {
    serve_as_chief();
    return;
  }
  if (oracle_->space().space().empty()) populate_initial_space();
  int failed_in_row = 0;
  for (;;) {
    Trial trial = oracle_->create_trial(o_.tuner_id);
    if (trial.status == TrialStatus::Stopped) break;
    if (trial.status == TrialStatus::Idle) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (o_.verbose > 0) {
      std::cout << "Search: Running Trial #" << trial.trial_id;
      for (const auto& [k, v] : trial.values.items()) std::cout << "  " << k << "=" << value_str(v);
      std::cout << "\n";
    }
    auto start = std::chrono::steady_clock::now();
    try {
      run_trial(trial, x, y, fit);
      trial.status = TrialStatus::Completed;
      failed_in_row = 0;
    } catch (const Error& e) {
      trial.status = TrialStatus::Failed;
      trial.score.reset();
      trial.message = e.what();
      ++failed_in_row;
    }
    oracle_->end_trial(trial);
    if (!o_.hparams_log_dir.empty()) write_hparams(o_.hparams_log_dir, trial, oracle_->space(), oracle_->objective());
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (o_.verbose > 0) {
      if (trial.status == TrialStatus::Completed)
        std::printf("Trial %s complete [%.1fs]: %s = %.6g\n", trial.trial_id.c_str(), secs,
                    oracle_->objective().name.c_str(), *trial.score);
      else
        std::printf("Trial %s failed: %s\n", trial.trial_id.c_str(), trial.message.c_str());
      auto best = oracle_->get_best_trials(1);
      if (!best.empty()) std::printf("Best %s so far: %.6g\n", oracle_->objective().name.c_str(), *best[0].score);
      std::fflush(stdout);
    }
    if (failed_in_row >= o_.max_consecutive_failed_trials)
      MF_THROW("Tuner::search: ", failed_in_row, " trials failed in a row; the last (trial ", trial.trial_id,
               ") with: ", trial.message);
  }
}

std::string Tuner::results_summary_string(int num_trials) const {
  MF_CHECK(num_trials >= 1, "results_summary: num_trials must be >= 1, not ", num_trials);
  std::ostringstream os;
  const Objective& obj = oracle_->objective();
  const HyperParameters space = oracle_->space();
  os << "Results summary\nResults in " << project_dir_ << "\nShowing " << num_trials << " best trials\n"
     << "Objective(name=\"" << obj.name << "\", direction=\"" << obj.direction << "\")\n";
  for (const auto& t : oracle_->get_best_trials(num_trials)) {
    os << "\nTrial " << t.trial_id << " summary\nHyperparameters:\n";
    // In the order the hypermodel declared them, as Keras Tuner prints.
    for (const auto& p : space.space())
      if (t.values.contains(p.name)) os << p.name << ": " << value_str(t.values.at(p.name)) << "\n";
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.6g", *t.score);
    os << "Score: " << buf << "\n";
  }
  return os.str();
}

void Tuner::results_summary(int num_trials, std::ostream& os) const { os << results_summary_string(num_trials); }

std::vector<HyperParameters> Tuner::get_best_hyperparameters(int num_trials) const {
  std::vector<HyperParameters> out;
  for (const auto& t : oracle_->get_best_trials(num_trials)) {
    HyperParameters hp = oracle_->space();
    hp.set_values(t.values);
    out.push_back(std::move(hp));
  }
  return out;
}

std::vector<std::shared_ptr<Model>> Tuner::get_best_models(int num_trials) {
  std::vector<std::shared_ptr<Model>> out;
  for (const auto& t : oracle_->get_best_trials(num_trials)) {
    HyperParameters hp = oracle_->space();
    hp.set_values(t.values);
    auto model = build(hp);
    load_weights(*model, t.trial_id);
    out.push_back(model);
  }
  return out;
}

void Tuner::save_weights(const std::string& trial_id, const std::vector<Tensor>& weights) const {
  std::vector<std::pair<std::string, Tensor>> named;
  char name[32];
  for (size_t i = 0; i < weights.size(); ++i) {
    std::snprintf(name, sizeof(name), "w%06zu", i);
    named.emplace_back(name, weights[i]);
  }
  fs::create_directories(oracle_->trial_dir(trial_id));
  write_safetensors((fs::path(oracle_->trial_dir(trial_id)) / "checkpoint.safetensors").string(), named);
}

void Tuner::ensure_built(Model& model) const {
  if (!model.weights().empty()) return;
  MF_CHECK(!sample_x_.empty(), "Tuner: the model has no weights until it sees data; call search() first "
                               "(a finished search returns at once) so the tuner has a row to build it with");
  PredictOptions quiet;
  quiet.verbose = 0;
  model.predict(sample_x_, quiet);
}

void Tuner::load_weights(Model& model, const std::string& trial_id) const {
  std::string path = (fs::path(oracle_->trial_dir(trial_id)) / "checkpoint.safetensors").string();
  MF_CHECK(fs::exists(path), "Tuner: trial ", trial_id, " has no saved weights (", path, ")");
  ensure_built(model);
  auto named = read_safetensors(path);
  std::sort(named.begin(), named.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Tensor> ws;
  for (auto& [n, t] : named) ws.push_back(t);
  model.set_weights(ws);
}

RandomSearch::RandomSearch(HyperModel hypermodel, TunerOptions options)
    : Tuner(std::move(hypermodel), std::make_shared<RandomSearchOracle>(oracle_options(options)), options) {}

GridSearch::GridSearch(HyperModel hypermodel, TunerOptions options)
    : Tuner(std::move(hypermodel), std::make_shared<GridSearchOracle>(oracle_options(options)), options) {}

namespace {
OracleOptions hyperband_oracle_options(const TunerOptions& o, const HyperbandOptions& h) {
  OracleOptions oo = oracle_options(o);
  int64_t total = 0;
  for (const auto& bracket : hyperband_schedule(h.max_epochs, h.factor, h.schedule))
    for (const auto& r : bracket) total += r.configurations;
  oo.max_trials = static_cast<int>(total * std::max(1, h.hyperband_iterations));
  return oo;
}
}  // namespace

Hyperband::Hyperband(HyperModel hypermodel, HyperbandOptions hyperband, TunerOptions options)
    : Tuner(std::move(hypermodel),
            std::make_shared<HyperbandOracle>(hyperband_oracle_options(options, hyperband), hyperband), options) {}

void Hyperband::run_trial(Trial& trial, const Tensors& x, const Tensors& y, const FitOptions& fit) {
  FitOptions f = fit;
  f.epochs = trial.info.at("epochs").get<int>();
  f.initial_epoch = trial.info.value("initial_epoch", 0);
  std::string parent = trial.info.value("parent", "");
  if (parent.empty()) {
    Tuner::run_trial(trial, x, y, f);
    return;
  }
  // A promoted trial: the parent's weights, trained on to the round's epochs.
  const Objective& obj = oracle_->objective();
  std::vector<Tensor> best_weights;
  double best_value = 0;
  double sum = 0;
  for (int e = 0; e < o_.executions_per_trial; ++e) {
    HyperParameters hp = oracle_->space();
    hp.set_values(trial.values);
    auto model = build(hp);
    load_weights(*model, parent);
    History h = fit_once(*model, x, y, f, best_weights, best_value);
    const auto& vals = h[obj.name];
    double b = vals.at(0);
    for (double v : vals)
      if (obj.better(v, b)) b = v;
    sum += b;
  }
  trial.score = sum / o_.executions_per_trial;
  trial.metrics = {{obj.name, *trial.score}};
  if (!best_weights.empty()) save_weights(trial.trial_id, best_weights);
}

BayesianOptimization::BayesianOptimization(HyperModel hypermodel, TunerOptions options, BayesianOptions bayes)
    : Tuner(std::move(hypermodel), std::make_shared<BayesianOptimizationOracle>(oracle_options(options), bayes),
            options) {}

}  // namespace meshflow::tuner
