// Tuners: search() builds a model per trial from a hypermodel, fits it, and reports the
// objective to an oracle (RandomSearch, GridSearch, Hyperband, BayesianOptimization), as Keras
// Tuner does; the project folder keeps every trial so an interrupted search resumes.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshflow/models/model.h"
#include "meshflow/tuner/distributed.h"
#include "meshflow/tuner/hyperparameters.h"
#include "meshflow/tuner/oracle.h"

namespace meshflow::tuner {

// A hypermodel: any callable that declares its hyperparameters and returns a compiled model.
using HyperModel = std::function<std::shared_ptr<Model>(HyperParameters&)>;

struct TunerOptions {
  std::string objective = "val_loss";  // a metric in fit()'s history; direction inferred
  std::string direction;               // "min" or "max" to override the inferred one
  int max_trials = 10;
  int executions_per_trial = 1;        // fits per trial; the objective is their mean
  std::string directory = ".";         // the project folder is directory/project_name
  std::string project_name = "untitled_project";
  bool overwrite = false;              // true: start again; false: resume what is there
  uint64_t seed = 0;
  std::string tuner_id = "tuner0";     // names the worker in each trial
  // A trial whose build or fit throws meshflow::Error is marked FAILED and the search goes on;
  // this many failures in a row end the search with an error.
  int max_consecutive_failed_trials = 3;
  int verbose = 1;                     // 0: silent; 1: a line per trial
  // A folder for TensorBoard's HParams dashboard: each trial's hyperparameters and objective.
  std::string hparams_log_dir;
  // This process's part in a distributed search; unset: DistributedTuning::from_environment(),
  // which meshflow-run --tuner fills (no role when its variables are not set). A worker's tuner
  // takes its trials from the chief's oracle (a RemoteOracle replaces the one it was given, and
  // tuner_id becomes the worker's id); the chief's search() serves its oracle to the workers,
  // runs no trial itself, and returns once they are done.
  std::optional<DistributedTuning> distributed;
};

// How long a chief waits for its first worker to connect before search() throws.
inline constexpr std::chrono::seconds kChiefFirstWorkerWait{300};

class Tuner {
 public:
  Tuner(HyperModel hypermodel, std::shared_ptr<Oracle> oracle, TunerOptions options);
  virtual ~Tuner() = default;

  // Runs trials until the oracle stops: each builds a model, fits it on x/y with `fit` (epochs,
  // batch size, validation data or split, callbacks such as EarlyStopping are passed through) and
  // reports the best epoch's value of the objective. On a distributed search's chief it serves
  // the oracle until the workers are done instead (TunerOptions::distributed).
  void search(const Tensors& x, const Tensors& y, FitOptions fit = {});
  // The best trials as a table: id, score, hyperparameters.
  void results_summary(int num_trials = 10, std::ostream& os = std::cout) const;
  std::string results_summary_string(int num_trials = 10) const;
  std::vector<HyperParameters> get_best_hyperparameters(int num_trials = 1) const;
  // The best trials' models, rebuilt and given the weights of their best epoch.
  std::vector<std::shared_ptr<Model>> get_best_models(int num_trials = 1);
  Oracle& oracle() { return *oracle_; }
  const Oracle& oracle() const { return *oracle_; }
  const std::string& project_dir() const { return project_dir_; }
  // The role this tuner plays (DistributedTuning::Role::None for a search in one process).
  const DistributedTuning& distributed() const { return role_; }
  // Builds the hypermodel with these values (space learned by the oracle on the way).
  std::shared_ptr<Model> build(HyperParameters& hp);

 protected:
  // One trial: executions_per_trial fits; fills trial.score, metrics and best_step. Subclasses
  // change how a trial trains (Hyperband's epochs and parent weights).
  virtual void run_trial(Trial& trial, const Tensors& x, const Tensors& y, const FitOptions& fit);
  // Fits `model` once and returns the history; keeps the best epoch's weights in `best_weights`
  // when that epoch beats `best_so_far`.
  History fit_once(Model& model, const Tensors& x, const Tensors& y, FitOptions fit,
                   std::vector<Tensor>& best_weights, double& best_so_far);
  // Declares the space: the hypermodel built with defaults, and once more for each value of a
  // parameter that a conditional scope depends on, until no new parameter appears.
  void populate_initial_space();
  void save_weights(const std::string& trial_id, const std::vector<Tensor>& weights) const;
  void load_weights(Model& model, const std::string& trial_id) const;
  void ensure_built(Model& model) const;
  // The chief's search(): serves oracle_ until the workers are done (distributed_tuning.cpp).
  void serve_as_chief();

  HyperModel hypermodel_;
  std::shared_ptr<Oracle> oracle_;
  TunerOptions o_;
  DistributedTuning role_;
  std::string project_dir_;
  Tensors sample_x_;  // one row of the search data, to build models before loading weights
};

class RandomSearch : public Tuner {
 public:
  RandomSearch(HyperModel hypermodel, TunerOptions options);
};

class GridSearch : public Tuner {
 public:
  // max_trials: the grid's size bounds it too.
  GridSearch(HyperModel hypermodel, TunerOptions options);
};

// Keras Tuner's Hyperband: trials in brackets with epochs set by the oracle; a promoted trial
// trains on from its parent's weights (initial_epoch = the parent's epochs). max_trials is ignored:
// the schedule decides the number of trials. FitOptions::epochs is ignored.
class Hyperband : public Tuner {
 public:
  Hyperband(HyperModel hypermodel, HyperbandOptions hyperband, TunerOptions options);

 protected:
  void run_trial(Trial& trial, const Tensors& x, const Tensors& y, const FitOptions& fit) override;
};

class BayesianOptimization : public Tuner {
 public:
  BayesianOptimization(HyperModel hypermodel, TunerOptions options, BayesianOptions bayes = {});
};

// The objective of `options` (its name with the given or inferred direction).
Objective objective_of(const TunerOptions& options);

}  // namespace meshflow::tuner
