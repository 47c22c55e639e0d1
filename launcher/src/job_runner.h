// Runs one attempt of a planned job: its own process group, signals forwarded, a timeout, the exit code.
#pragma once

#include <string>

#include "launch_plan.h"

namespace meshflow::launcher {

struct AttemptResult {
  int exit_code = 0;       // mpirun's or srun's (128 + signal when it was killed)
  bool timed_out = false;  // the plan's timeout passed and the job was stopped
  int user_signal = 0;     // SIGINT/SIGTERM/SIGHUP that meshflow-run received and forwarded
  std::string last_stderr_line;  // the job's last non-empty stderr line (mpirun's boxes' "----" skipped)
};

// Seconds between forwarding SIGTERM (after a timeout or a user's signal) and SIGKILL.
constexpr double kKillGraceSeconds = 10.0;

// Starts plan.argv in a new process group with plan.env added to the environment (stdin from
// /dev/null when it is a terminal: a background group reading it would be stopped), forwards
// SIGINT/SIGTERM/SIGHUP to that group, and waits. The job's stderr passes through a pipe to ours
// as it comes, so the last line (srun's "task 0 launch failed") can be named in the summary.
// Creates plan.failure_dir first.
AttemptResult run_attempt(const LaunchPlan& plan);

// Installs the forwarding handlers once (before the first attempt).
void install_signal_forwarding();

// The signal meshflow-run received, 0 if none; attempts stop once one arrives.
int received_signal();

// The process group the handlers forward to (0: none). run_attempt sets it itself; the tuner
// mode (tuner_job.h), which starts its processes without mpirun, sets it here.
void set_forwarded_group(int group);

// Creates `path` and the folders above it.
void make_dirs(const std::string& path);

}  // namespace meshflow::launcher
