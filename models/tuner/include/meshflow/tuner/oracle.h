// Oracles: what decides the next trial's hyperparameters (random, grid, Hyperband, Bayesian
// optimization) and keeps every trial's result, in a project folder as JSON (Keras Tuner's model).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "meshflow/tuner/hyperparameters.h"

namespace meshflow::tuner {

// A metric name and whether lower or higher is better. from_name infers the direction as Keras
// Tuner does: "max" for accuracy, auc, precision, recall (with or without "val_"), else "min".
struct Objective {
  std::string name = "val_loss";
  std::string direction = "min";  // "min" or "max"
  static Objective from_name(const std::string& name);
  bool better(double a, double b) const { return direction == "max" ? a > b : a < b; }
  Json to_json() const { return {{"name", name}, {"direction", direction}}; }
};

// Idle: nothing to run now, ask again (Hyperband waiting for a round's other trials).
enum class TrialStatus { Running, Completed, Failed, Invalid, Stopped, Idle };
std::string status_name(TrialStatus s);
TrialStatus status_from_name(const std::string& s);

struct Trial {
  std::string trial_id;  // "0000", "0001", ...
  Json values = Json::object();  // the hyperparameters' values
  TrialStatus status = TrialStatus::Running;
  std::optional<double> score;   // the objective (mean over executions)
  int best_step = 0;             // the epoch of the best objective value
  Json metrics = Json::object(); // metric -> best value over epochs (mean over executions)
  std::string message;           // why a trial failed
  std::string worker;            // who ran it (tuner_id)
  Json info = Json::object();    // oracle-specific: Hyperband's bracket, round, epochs, parent
  Json to_json() const;
  static Trial from_json(const Json& j);
};

struct OracleOptions {
  Objective objective;
  int max_trials = 10;   // trials made in all (a resumed search counts the saved ones)
  uint64_t seed = 0;
  // Random draws that repeat an earlier trial's values are redrawn up to this many times; then
  // the search stops (a small space is exhausted).
  int max_collisions = 100;
};

// The base oracle: trials, the space, persistence and the best trials. Subclasses say what the
// next trial's values are (populate_space). Thread-safe: the distributed oracle's server calls it
// from its threads. The public calls are virtual so a RemoteOracle can forward them to a chief.
class Oracle {
 public:
  explicit Oracle(OracleOptions options);
  virtual ~Oracle() = default;
  Oracle(const Oracle&) = delete;
  Oracle& operator=(const Oracle&) = delete;

  // The space as known so far; update_space adds parameters a build declared.
  virtual void update_space(const HyperParameters& hp);
  virtual HyperParameters space() const;
  // A new trial for `worker`: a trial left running by an interrupted search first (same id and
  // values), else the subclass's next values. Status Stopped when the search is over.
  virtual Trial create_trial(const std::string& worker);
  // Records the trial's result; score is required for Completed.
  virtual void end_trial(const Trial& trial);
  virtual std::vector<Trial> get_best_trials(int n) const;
  virtual std::vector<Trial> trials() const;  // in id order
  virtual std::optional<Trial> trial(const std::string& id) const;
  const Objective& objective() const { return o_.objective; }
  int max_trials() const { return o_.max_trials; }
  void set_max_trials(int n);

  // Persistence: state in dir/oracle.json and dir/trial_<id>/trial.json. attach() reads what is
  // there (a resumed search) or starts empty; every change is then written at once, atomically.
  virtual void attach(const std::string& project_dir, bool overwrite);
  const std::string& project_dir() const { return dir_; }
  std::string trial_dir(const std::string& id) const;
  // The RemoteOracle (distributed.h) takes the chief's folder as its own.
  void set_project_dir(const std::string& dir) { dir_ = dir; }

 protected:
  struct Next {
    TrialStatus status = TrialStatus::Running;  // Stopped: no more trials; Idle: none yet
    Json values;
    Json info = Json::object();
  };
  // Called with the lock held.
  virtual Next populate_space(const std::string& trial_id) = 0;
  virtual void on_trial_end(const Trial&) {}
  virtual Json get_state() const { return Json::object(); }
  virtual void set_state(const Json&) {}
  // Random values for every active parameter that no trial has had, or nullopt after
  // max_collisions redraws.
  std::optional<Json> random_values();
  // Values of the active parameters given the chosen ones (inactive ones dropped, defaults added).
  Json active_values(const Json& chosen) const;
  static std::string values_key(const Json& values) { return values.dump(); }
  int completed_or_running() const;
  // The id create_trial gives the trial populate_space is choosing values for.
  std::string pending_id() const;

  OracleOptions o_;
  HyperParameters space_;
  std::map<std::string, Trial> trials_;
  std::set<std::string> seen_values_;
  std::vector<std::string> to_resume_;  // trials a previous run left running
  std::mt19937_64 rng_;
  mutable std::recursive_mutex mu_;

 private:
  void save_locked() const;
  void save_trial_locked(const Trial& t) const;
  std::string dir_;
  int next_id_ = 0;
};

// Independent random draws (no repeats).
class RandomSearchOracle : public Oracle {
 public:
  using Oracle::Oracle;

 protected:
  Next populate_space(const std::string& trial_id) override;
};

// Every combination of the grid values once, in order (the last parameter varies fastest);
// combinations that differ only in parameters whose conditions do not hold are one trial.
class GridSearchOracle : public Oracle {
 public:
  using Oracle::Oracle;
  // The combinations the grid holds for the current space (for tests and for max_trials).
  std::vector<Json> combinations() const;

 protected:
  Next populate_space(const std::string& trial_id) override;
};

// Hyperband (Li et al., 2018): brackets s = s_max..0 of successive halving, s_max = floor(log_factor
// max_epochs); round i of bracket s trains its configurations to ceil(max_epochs / factor^(s-i))
// epochs. How many configurations each round holds is where Keras Tuner and the paper differ
// (Note [Hyperband schedules] in hyperband.cpp): Keras Tuner's, the default, gives every bracket
// the same number of end models, E = ceil(1 + log_factor(max_epochs)), and rounds each round up:
// n_i = ceil(E / (s+1) * factor^(s-i)); the paper's Table 1 starts n = ceil((s_max+1) factor^s /
// (s+1)) and keeps floor(n / factor^i). A promoted trial carries its parent's id in info, so its
// tuner continues training the parent's weights.
enum class HyperbandSchedule {
  KerasTuner,  // Keras Tuner's sizes: its epoch budget for max_epochs and factor (81, 3: 211 trials)
  Paper,       // Li et al.'s Algorithm 1 and Table 1 (81, 3: 206 trials)
};
std::string schedule_name(HyperbandSchedule s);

struct HyperbandOptions {
  int max_epochs = 100;
  int factor = 3;
  int hyperband_iterations = 1;  // the whole set of brackets, repeated
  HyperbandSchedule schedule = HyperbandSchedule::KerasTuner;
};

struct BracketRound {
  int64_t configurations = 0;  // n_i
  int64_t epochs = 0;          // r_i
};
// schedule[k] is bracket s = s_max - k, its rounds in order. Throws meshflow::Error naming
// max_epochs (< 1) or factor (< 2).
std::vector<std::vector<BracketRound>> hyperband_schedule(int max_epochs, int factor,
                                                          HyperbandSchedule schedule = HyperbandSchedule::KerasTuner);

class HyperbandOracle : public Oracle {
 public:
  HyperbandOracle(OracleOptions options, HyperbandOptions hyperband);
  const HyperbandOptions& hyperband() const { return h_; }

 protected:
  Next populate_space(const std::string& trial_id) override;
  Json get_state() const override;
  void set_state(const Json& state) override;

 private:
  HyperbandOptions h_;
  std::vector<std::vector<BracketRound>> schedule_;
  int iteration_ = 0, bracket_ = 0, round_ = 0;
  std::vector<std::string> round_trials_;  // the trials made for the current round
  std::vector<std::string> candidates_;    // the previous round's trials, best first
};

// Bayesian optimization: after num_initial_points random trials, a Gaussian process (Matern 5/2
// kernel on the unit cube, noise alpha, length scale by maximum marginal likelihood) models the
// objective and the next trial maximizes expected improvement over random candidates and local
// moves around the best points. Needs Eigen (without it, creating one throws).
struct BayesianOptions {
  int num_initial_points = 0;  // 0: 3 x the number of parameters, at least 2
  double alpha = 1e-4;         // observation noise on the standardized objective
  double xi = 0.01;            // exploration margin of expected improvement
  int candidates = 2000;       // random points scored per trial
};

class BayesianOptimizationOracle : public Oracle {
 public:
  BayesianOptimizationOracle(OracleOptions options, BayesianOptions bayes);

 protected:
  Next populate_space(const std::string& trial_id) override;

 private:
  BayesianOptions b_;
};

}  // namespace meshflow::tuner
