// BayesianOptimizationOracle without Eigen: creating one says what is missing.
#include "meshflow/core/error.h"
#include "meshflow/tuner/oracle.h"

namespace meshflow::tuner {

BayesianOptimizationOracle::BayesianOptimizationOracle(OracleOptions options, BayesianOptions bayes)
    : Oracle(std::move(options)), b_(bayes) {
  MF_THROW("BayesianOptimization needs Eigen, and this build has none (install libeigen3-dev and configure "
           "with -DMESHFLOW_WITH_EIGEN=AUTO)");
}

Oracle::Next BayesianOptimizationOracle::populate_space(const std::string&) { return {TrialStatus::Stopped, {}, {}}; }

}  // namespace meshflow::tuner
