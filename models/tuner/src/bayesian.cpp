// BayesianOptimizationOracle: a Gaussian process (Matern 5/2) over the unit cube and expected
// improvement; the linear algebra is Eigen's Cholesky (LLT).
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "meshflow/core/error.h"
#include "meshflow/tuner/oracle.h"

namespace meshflow::tuner {

namespace {

double matern52(double r, double length) {
  double a = std::sqrt(5.0) * r / length;
  return (1.0 + a + a * a / 3.0) * std::exp(-a);
}

Eigen::MatrixXd kernel(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, double length) {
  Eigen::MatrixXd k(a.rows(), b.rows());
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < b.rows(); ++j) k(i, j) = matern52((a.row(i) - b.row(j)).norm(), length);
  return k;
}

// A GP on standardized targets with unit signal variance: the Cholesky factor of K + alpha I and
// alpha_vec = (K + alpha I)^-1 y.
struct Gp {
  Eigen::MatrixXd x;
  Eigen::LLT<Eigen::MatrixXd> llt;
  Eigen::VectorXd weights;
  double length = 0.2;

  // Log marginal likelihood of y under length scale `l`; -inf when K is not positive definite.
  static double fit(Gp& gp, const Eigen::MatrixXd& x, const Eigen::VectorXd& y, double l, double noise) {
    gp.x = x;
    gp.length = l;
    Eigen::MatrixXd k = kernel(x, x, l);
    k.diagonal().array() += noise;
    gp.llt.compute(k);
    if (gp.llt.info() != Eigen::Success) return -std::numeric_limits<double>::infinity();
    gp.weights = gp.llt.solve(y);
    Eigen::MatrixXd lm = gp.llt.matrixL();
    double log_det = 2.0 * lm.diagonal().array().log().sum();
    return -0.5 * y.dot(gp.weights) - 0.5 * log_det - 0.5 * static_cast<double>(y.size()) * std::log(2 * std::numbers::pi);
  }

  void predict(const Eigen::MatrixXd& q, Eigen::VectorXd& mean, Eigen::VectorXd& sd) const {
    Eigen::MatrixXd ks = kernel(x, q, length);  // n x m
    mean = ks.transpose() * weights;
    Eigen::MatrixXd v = llt.matrixL().solve(ks);
    sd.resize(q.rows());
    for (Eigen::Index j = 0; j < q.rows(); ++j) sd(j) = std::sqrt(std::max(1e-12, 1.0 - v.col(j).squaredNorm()));
  }
};

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
double normal_pdf(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2 * std::numbers::pi); }

}  // namespace

BayesianOptimizationOracle::BayesianOptimizationOracle(OracleOptions options, BayesianOptions bayes)
    : Oracle(std::move(options)), b_(bayes) {
  MF_CHECK(b_.num_initial_points >= 0, "BayesianOptimization: num_initial_points must be >= 0, not ",
           b_.num_initial_points);
  MF_CHECK(b_.alpha > 0, "BayesianOptimization: alpha must be > 0, not ", b_.alpha);
  MF_CHECK(b_.xi >= 0, "BayesianOptimization: xi must be >= 0, not ", b_.xi);
  MF_CHECK(b_.candidates >= 1, "BayesianOptimization: candidates must be >= 1, not ", b_.candidates);
}

Oracle::Next BayesianOptimizationOracle::populate_space(const std::string&) {
  const auto& sp = space_.space();
  const auto d = static_cast<Eigen::Index>(sp.size());
  int initial = b_.num_initial_points > 0 ? b_.num_initial_points : std::max(2, 3 * static_cast<int>(sp.size()));
  std::vector<const Trial*> done;
  for (const auto& [id, t] : trials_)
    if (t.status == TrialStatus::Completed && t.score && std::isfinite(*t.score)) done.push_back(&t);
  auto random_next = [&]() -> Next {
    auto v = random_values();
    if (!v) return {TrialStatus::Stopped, Json(), Json::object()};
    return {TrialStatus::Running, *v, Json::object()};
  };
  if (static_cast<int>(done.size()) < initial || d == 0) return random_next();

  // Observations in the unit cube; the GP maximizes, so a "min" objective is negated.
  const auto n = static_cast<Eigen::Index>(done.size());
  Eigen::MatrixXd x(n, d);
  Eigen::VectorXd y(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const Json& v = done[static_cast<size_t>(i)]->values;
    for (Eigen::Index j = 0; j < d; ++j) {
      const auto& p = sp[static_cast<size_t>(j)];
      x(i, j) = p.to_unit(v.contains(p.name) ? v.at(p.name) : p.default_value);
    }
    double s = *done[static_cast<size_t>(i)]->score;
    y(i) = o_.objective.direction == "max" ? s : -s;
  }
  double mean = y.mean();
  double sd = std::sqrt((y.array() - mean).square().sum() / static_cast<double>(n));
  if (!(sd > 1e-12)) sd = 1.0;
  Eigen::VectorXd ys = (y.array() - mean) / sd;

  Gp gp;
  double best_ll = -std::numeric_limits<double>::infinity();
  double best_l = 0.2;
  for (double l : {0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0}) {
    Gp trial_gp;
    double ll = Gp::fit(trial_gp, x, ys, l, b_.alpha);
    if (ll > best_ll) {
      best_ll = ll;
      best_l = l;
    }
  }
  if (!std::isfinite(best_ll)) return random_next();
  Gp::fit(gp, x, ys, best_l, b_.alpha);

  // Candidates: uniform points, and Gaussian moves around the five best observations.
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::normal_distribution<double> step(0.0, 0.05);
  std::vector<Eigen::Index> order(static_cast<size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::sort(order.begin(), order.end(), [&](Eigen::Index a, Eigen::Index b) { return ys(a) > ys(b); });
  const int local_per_best = 100;
  const auto n_best = static_cast<int>(std::min<size_t>(5, order.size()));
  const Eigen::Index m = b_.candidates + n_best * local_per_best;
  Eigen::MatrixXd q(m, d);
  for (Eigen::Index i = 0; i < b_.candidates; ++i)
    for (Eigen::Index j = 0; j < d; ++j) q(i, j) = u01(rng_);
  for (int b = 0; b < n_best; ++b)
    for (int k = 0; k < local_per_best; ++k) {
      Eigen::Index row = b_.candidates + b * local_per_best + k;
      for (Eigen::Index j = 0; j < d; ++j)
        q(row, j) = std::clamp(x(order[static_cast<size_t>(b)], j) + step(rng_), 0.0, 1.0);
    }
  Eigen::VectorXd mu, sigma;
  gp.predict(q, mu, sigma);
  const double best = ys.maxCoeff();
  std::vector<std::pair<double, Eigen::Index>> scored;
  scored.reserve(static_cast<size_t>(m));
  for (Eigen::Index i = 0; i < m; ++i) {
    double imp = mu(i) - best - b_.xi;
    double z = imp / sigma(i);
    scored.emplace_back(imp * normal_cdf(z) + sigma(i) * normal_pdf(z), i);
  }
  std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [ei, i] : scored) {
    Json v = Json::object();
    for (Eigen::Index j = 0; j < d; ++j) {
      const auto& p = sp[static_cast<size_t>(j)];
      if (space_.conditions_hold(p, v)) v[p.name] = p.from_unit(q(i, j));
    }
    if (!seen_values_.count(values_key(v))) return {TrialStatus::Running, v, {{"expected_improvement", ei}}};
  }
  return random_next();
}

}  // namespace meshflow::tuner
