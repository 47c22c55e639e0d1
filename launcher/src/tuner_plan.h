// `meshflow-run --tuner`: the plan of a hyperparameter search on this machine, one chief serving the
// oracle on 127.0.0.1 and N workers, each told its role through the environment.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cluster_config.h"
#include "launch_plan.h"
#include "options.h"

namespace meshflow::launcher {

struct TunerPlan {
  int workers = 1;
  std::string oracle_ip = "127.0.0.1";
  int oracle_port = 0;
  double heartbeat_timeout_s = 30;
  std::vector<std::string> program;
  EnvList env;              // every process's; env_for adds the role
  std::string failure_dir;  // this attempt's MESHFLOW_FAILURE_DIR, also the chief's report folder
  std::optional<double> timeout_s;
  int max_restarts = 0;

  // "a chief and 3 workers on this machine (oracle on 127.0.0.1:PORT)"
  std::string describe() const;
  // The environment of process `index`: -1 is the chief, 0..workers-1 the workers.
  EnvList env_for(int index) const;
};

// "chief" for -1, "worker<index>" otherwise: the MESHFLOW_TUNER_ID of each process.
std::string tuner_process_id(int index);

// Throws meshflow::Error (a usage error) on -np missing, on hosts other than this machine
// (--hosts, --hostfile, or the config's), or on --launcher given: the tuner mode starts every
// process itself, here, and its oracle listens on 127.0.0.1 only. `port` is the oracle's.
TunerPlan build_tuner_plan(const LaunchOptions& options, const ClusterConfig& config, const MachineFacts& facts,
                           int attempt, int port);

// A port on 127.0.0.1 that is free now (bound and released; the chief binds it a moment later).
int pick_free_port();

// What --dry-run prints: the plan, the shared environment, and one line per process.
std::string tuner_dry_run(const TunerPlan& plan);

}  // namespace meshflow::launcher
