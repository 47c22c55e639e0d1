// scikit-learn's GridSearchCV and RandomizedSearchCV for hypermodels: every candidate (the grid of
// the hypermodel's declared space, or n_iter random draws from it) is scored by k-fold
// cross-validation, the best is refit on all the data.
//
//   GridSearchCV search(build, {.scoring = "accuracy", .cv = 5});
//   search.fit(x, y, {.epochs = 3, .verbose = 0});
//   search.best_params();  search.best_score();  search.best_estimator();
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "meshflow/tuner/tuner.h"

namespace meshflow::tuner {

struct SearchCVOptions {
  std::string scoring = "loss";  // a key of evaluate()'s logs on the held-out fold
  std::string direction;         // "min" or "max"; empty: inferred from the name as Objective does
  int cv = 5;                    // folds (>= 2)
  bool shuffle = false;          // KFold(shuffle=..., random_state=seed)
  uint64_t seed = 0;             // the fold shuffle and the random draws
  bool refit = true;             // fit the best candidate on all the data afterwards
  int n_iter = 10;               // RandomizedSearchCV: candidates drawn
  int verbose = 0;               // 1: a line per candidate
};

// One candidate's results (scikit-learn's cv_results_ row).
struct CVResult {
  Json params;
  std::vector<double> split_scores;  // one per fold, in fold order
  double mean_score = 0, std_score = 0;
  int rank = 0;                      // 1 = best
};

// The folds of KFold(n_splits=k): the indices held out by each fold. Without shuffle the folds
// are consecutive; the first n % k folds hold one more index, as scikit-learn's.
std::vector<std::vector<int64_t>> kfold_indices(int64_t n, int k, bool shuffle = false, uint64_t seed = 0);

class SearchCV {
 public:
  virtual ~SearchCV() = default;
  // x and y: the same number of rows in every tensor. `fit` trains each candidate on each fold.
  void fit(const Tensors& x, const Tensors& y, FitOptions fit = {});
  const std::vector<CVResult>& cv_results() const { return results_; }
  const Json& best_params() const;
  double best_score() const;
  int best_index() const;
  // The best candidate fitted on all the data (refit = true).
  std::shared_ptr<Model> best_estimator() const;

 protected:
  SearchCV(HyperModel estimator, SearchCVOptions options, std::shared_ptr<Oracle> oracle);
  HyperModel estimator_;
  SearchCVOptions o_;
  std::shared_ptr<Oracle> oracle_;
  std::vector<CVResult> results_;
  std::shared_ptr<Model> best_;
  int best_index_ = -1;
};

class GridSearchCV : public SearchCV {
 public:
  explicit GridSearchCV(HyperModel estimator, SearchCVOptions options = {});
};

class RandomizedSearchCV : public SearchCV {
 public:
  explicit RandomizedSearchCV(HyperModel estimator, SearchCVOptions options = {});
};

}  // namespace meshflow::tuner
