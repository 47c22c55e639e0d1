// From options, config and facts about this machine to the exact mpirun or srun command and environment.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cluster_config.h"
#include "options.h"

namespace meshflow::launcher {

// What the plan depends on besides the user's input; read_machine_facts() fills it from this
// process, tests fill it by hand so the expected command is exact.
struct MachineFacts {
  int cores = 1;
  bool is_root = false;
  std::string hostname;
  std::string self_path;                      // meshflow-run itself, the rank wrapper
  std::string temp_dir = "/tmp";              // base of the failure folders unless the config names one
  int launcher_pid = 0;
  std::map<std::string, std::string> env;     // the variables the plan reads (SLURM_*, OMP_NUM_THREADS)
};
MachineFacts read_machine_facts();

using EnvList = std::vector<std::pair<std::string, std::string>>;

struct LaunchPlan {
  std::string launcher;       // "mpirun" or "srun"
  int ranks = 1;
  bool local = false;         // every rank on this machine (mpirun only)
  std::vector<HostSlots> hosts;
  std::vector<std::string> argv;
  EnvList env;                // set in the child's environment (and passed with -x to mpirun)
  std::string failure_dir;    // this attempt's MESHFLOW_FAILURE_DIR
  // Every rank writes its records where meshflow-run reads them (one node, or the config's
  // failure_dir), so the ranks that started and ended can be counted (Note [Every rank reports]).
  bool ranks_countable = false;
  std::optional<double> timeout_s;
  int max_restarts = 0;
  std::string describe() const;  // one line: ranks, where, launcher
};

// Throws meshflow::Error (a usage error: exit code 2) on -np missing or above the hosts' slots,
// hosts given inside Slurm with srun, srun asked for outside Slurm.
LaunchPlan build_launch_plan(const LaunchOptions& options, const ClusterConfig& config, const MachineFacts& facts,
                             int attempt);

// The folder under which each attempt's failure folder is made.
std::string failure_root(const ClusterConfig& config, const MachineFacts& facts);

std::string shell_quote(const std::string& word);

}  // namespace meshflow::launcher
