// meshflow-run's command line: what the user asked for, before the config file and machine are consulted.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace meshflow::launcher {

struct LaunchOptions {
  std::optional<int> ranks;             // -np / -n
  std::string hosts;                    // --hosts h1:2,h2:2
  std::string hostfile;                 // --hostfile F
  std::string config;                   // --config X.yaml
  std::string launcher = "auto";        // --launcher auto|mpirun|srun
  bool dry_run = false;                 // --dry-run
  std::optional<int> max_restarts;      // --max-restarts N
  std::optional<double> timeout_s;      // --timeout S (per attempt)
  bool tuner = false;                   // --tuner: a chief and -np workers of a hyperparameter search
  std::optional<double> heartbeat_timeout_s;  // --heartbeat-timeout S (with --tuner)
  std::vector<std::string> program;     // everything after "--", or from the first word that is no option
  bool help = false;
};

// Parses argv[1..]; throws meshflow::Error on an unknown option, a missing or malformed value,
// both --hosts and --hostfile, --heartbeat-timeout without --tuner, or no program. The program
// starts after "--" or at the first word that does not start with '-' (as mpirun's does). A range
// check of -np comes later, once the config file may have supplied it.
LaunchOptions parse_options(const std::vector<std::string>& args);

const char* usage();

}  // namespace meshflow::launcher
