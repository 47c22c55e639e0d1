// GridSearchCV / RandomizedSearchCV: candidates from the grid or random oracle, each scored by
// k-fold cross-validation on evaluate()'s logs, ranked, and the best refit on all the data.
#include "meshflow/tuner/cross_validation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>

#include "meshflow/core/core.h"
#include "meshflow/core/error.h"

namespace meshflow::tuner {

std::vector<std::vector<int64_t>> kfold_indices(int64_t n, int k, bool shuffle, uint64_t seed) {
  MF_CHECK(k >= 2, "KFold: cv must be >= 2, not ", k);
  MF_CHECK(n >= k, "KFold: cv = ", k, " folds need at least ", k, " rows, got ", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) {
    std::mt19937_64 rng(seed);
    std::shuffle(order.begin(), order.end(), rng);
  }
  std::vector<std::vector<int64_t>> folds;
  int64_t start = 0;
  for (int f = 0; f < k; ++f) {
    int64_t size = n / k + (f < n % k ? 1 : 0);
    folds.emplace_back(order.begin() + start, order.begin() + start + size);
    start += size;
  }
  return folds;
}

namespace {

Tensors take_rows(const Tensors& t, const std::vector<int64_t>& rows) {
  Tensor idx = from_vector(rows, {static_cast<int64_t>(rows.size())});
  Tensors out;
  for (size_t i = 0; i < t.size(); ++i) out.push_back(gather(t[i], idx.to(t[i].device()), 0), t.names()[i]);
  return out;
}

std::vector<int64_t> all_but(int64_t n, const std::vector<int64_t>& held) {
  std::set<int64_t> h(held.begin(), held.end());
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i)
    if (!h.count(i)) out.push_back(i);
  return out;
}

Objective scoring_objective(const SearchCVOptions& o) {
  Objective obj = Objective::from_name(o.scoring);
  if (!o.direction.empty()) {
    MF_CHECK(o.direction == "min" || o.direction == "max", "SearchCVOptions.direction must be \"min\" or \"max\", not \"",
             o.direction, "\"");
    obj.direction = o.direction;
  }
  return obj;
}

}  // namespace

SearchCV::SearchCV(HyperModel estimator, SearchCVOptions options, std::shared_ptr<Oracle> oracle)
    : estimator_(std::move(estimator)), o_(std::move(options)), oracle_(std::move(oracle)) {
  MF_CHECK(estimator_, "SearchCV: the estimator (hypermodel) is empty");
  MF_CHECK(o_.cv >= 2, "SearchCV: cv must be >= 2, not ", o_.cv);
  MF_CHECK(o_.n_iter >= 1, "SearchCV: n_iter must be >= 1, not ", o_.n_iter);
}

void SearchCV::fit(const Tensors& x, const Tensors& y, FitOptions fit) {
  MF_CHECK(!x.empty() && !y.empty(), "SearchCV::fit: x and y must hold at least one tensor each");
  const int64_t n = x[0].size(0);
  for (size_t i = 0; i < x.size(); ++i)
    MF_CHECK(x[i].size(0) == n, "SearchCV::fit: x[", i, "] has ", x[i].size(0), " rows, x[0] has ", n);
  for (size_t i = 0; i < y.size(); ++i)
    MF_CHECK(y[i].size(0) == n, "SearchCV::fit: y[", i, "] has ", y[i].size(0), " rows, x has ", n);
  MF_CHECK(fit.validation_split == 0 && !fit.validation_data, "SearchCV::fit: the folds are the validation; "
                                                              "leave validation_split and validation_data unset");
  auto folds = kfold_indices(n, o_.cv, o_.shuffle, o_.seed);
  const Objective& obj = oracle_->objective();
  // The space, from a build with defaults (as the tuners do).
  {
    HyperParameters hp;
    estimator_(hp);
    oracle_->update_space(hp);
  }
  results_.clear();
  best_.reset();
  best_index_ = -1;
  for (;;) {
    Trial t = oracle_->create_trial("cv");
    if (t.status != TrialStatus::Running) break;
    CVResult r;
    r.params = t.values;
    for (const auto& held : folds) {
      HyperParameters hp = oracle_->space();
      hp.set_values(t.values);
      auto model = estimator_(hp);
      MF_CHECK(model && model->compiled(), "SearchCV: the estimator must return a compiled model");
      model->fit(take_rows(x, all_but(n, held)), take_rows(y, all_but(n, held)), fit);
      EvaluateOptions quiet;
      quiet.verbose = 0;
      auto logs = model->evaluate(take_rows(x, held), take_rows(y, held), quiet);
      auto it = logs.find(obj.name);
      if (it == logs.end()) {
        std::string keys;
        for (const auto& [k, v] : logs) keys += (keys.empty() ? "" : ", ") + k;
        MF_THROW("SearchCV: scoring '", obj.name, "' is not in evaluate()'s logs (it has: ", keys, ")");
      }
      r.split_scores.push_back(it->second);
    }
    double m = std::accumulate(r.split_scores.begin(), r.split_scores.end(), 0.0) / static_cast<double>(folds.size());
    double var = 0;
    for (double s : r.split_scores) var += (s - m) * (s - m);
    r.mean_score = m;
    r.std_score = std::sqrt(var / static_cast<double>(folds.size()));
    t.status = TrialStatus::Completed;
    t.score = m;
    oracle_->end_trial(t);
    if (o_.verbose > 0) std::printf("[CV] %s: %s = %.6g (+/- %.3g)\n", t.values.dump().c_str(), obj.name.c_str(), m, r.std_score);
    results_.push_back(std::move(r));
  }
  MF_CHECK(!results_.empty(), "SearchCV::fit: the search space gave no candidate");
  // Ranks: 1 for the best mean score; ties share the smaller rank (scikit-learn's "min" method).
  for (auto& r : results_) {
    r.rank = 1;
    for (const auto& other : results_)
      if (obj.better(other.mean_score, r.mean_score)) ++r.rank;
  }
  best_index_ = 0;
  for (size_t i = 1; i < results_.size(); ++i)
    if (obj.better(results_[i].mean_score, results_[static_cast<size_t>(best_index_)].mean_score)) best_index_ = static_cast<int>(i);
  if (o_.refit) {
    HyperParameters hp = oracle_->space();
    hp.set_values(best_params());
    best_ = estimator_(hp);
    best_->fit(x, y, fit);
  }
}

int SearchCV::best_index() const {
  MF_CHECK(best_index_ >= 0, "SearchCV: call fit() first");
  return best_index_;
}

const Json& SearchCV::best_params() const { return results_.at(static_cast<size_t>(best_index())).params; }

double SearchCV::best_score() const { return results_.at(static_cast<size_t>(best_index())).mean_score; }

std::shared_ptr<Model> SearchCV::best_estimator() const {
  MF_CHECK(best_, "SearchCV: no best_estimator (call fit() first, with refit = true)");
  return best_;
}

GridSearchCV::GridSearchCV(HyperModel estimator, SearchCVOptions options)
    : SearchCV(std::move(estimator), options,
               std::make_shared<GridSearchOracle>(OracleOptions{.objective = scoring_objective(options),
                                                                .max_trials = 1000000, .seed = options.seed})) {}

RandomizedSearchCV::RandomizedSearchCV(HyperModel estimator, SearchCVOptions options)
    : SearchCV(std::move(estimator), options,
               std::make_shared<RandomSearchOracle>(OracleOptions{.objective = scoring_objective(options),
                                                                  .max_trials = std::max(1, options.n_iter),
                                                                  .seed = options.seed})) {}

}  // namespace meshflow::tuner
