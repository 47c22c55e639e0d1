// TensorBoard's HParams dashboard: the experiment (every hyperparameter's domain and the objective
// metric) at log_dir, and one session per trial at log_dir/trial_<id> with its values, its
// objective as a scalar, and its end status.
#pragma once

#include <string>

#include "meshflow/tuner/hyperparameters.h"
#include "meshflow/tuner/oracle.h"

namespace meshflow::tuner {

// Writes (again) the experiment summary for `space` and the session of `trial`.
void write_hparams(const std::string& log_dir, const Trial& trial, const HyperParameters& space,
                   const Objective& objective);

// The serialized HParamsPluginData messages (exposed for tests).
std::string hparams_experiment_bytes(const HyperParameters& space, const Objective& objective);
std::string hparams_session_start_bytes(const Trial& trial);

}  // namespace meshflow::tuner
