// `meshflow-run --tuner`: starts the chief and the workers of a TunerPlan, keeps the survivors
// running when a worker dies or stops, and says which worker was lost with which trial.
#pragma once

#include <string>
#include <vector>

#include "tuner_plan.h"

namespace meshflow::launcher {

// How one process of the search ended.
struct TunerProcess {
  std::string id;              // "chief", "worker0", ...
  int pid = 0;
  int exit_code = 0;           // 128 + signal when a signal ended it
  int signal = 0;              // the signal that ended it, 0 when it exited
  int stop_signal = 0;         // the last signal that stopped it (SIGSTOP, ...), 0 if never stopped
  bool killed_at_end = false;  // still there (stopped or hung) when the search ended, so killed
};

// A trial the chief failed with its worker ("tuner-lost-trials.tsv" in the failure folder).
struct LostTrialRecord {
  std::string worker, trial_id, reason;
};

struct TunerAttemptResult {
  int exit_code = 0;  // the chief's; 124 on a timeout; 128 + signal when meshflow-run was signalled
  bool timed_out = false;
  int user_signal = 0;
  TunerProcess chief;
  std::vector<TunerProcess> workers;
  std::vector<LostTrialRecord> lost;
};

// Runs one attempt: the chief and the workers in one process group of their own (each dies with
// meshflow-run: PR_SET_PDEATHSIG), until the chief ends; then the workers left are ended.
TunerAttemptResult run_tuner_attempt(const TunerPlan& plan);

// Reads "<dir>/tuner-lost-trials.tsv" (worker, trial, reason per line); missing: empty.
std::vector<LostTrialRecord> read_lost_trials(const std::string& dir);

// One phrase per worker that did not simply finish, with the trials it lost, e.g.
// "worker1 (pid 42) killed by signal 9 (Killed) during trial 0003, which failed (disconnected)".
std::vector<std::string> describe_lost_workers(const TunerAttemptResult& result);

// Attempts until one succeeds (the chief exits 0), restarts are used up, or meshflow-run is
// signalled; prints the summary line and returns the exit code.
int run_tuner_job(const LaunchOptions& options, const ClusterConfig& config, const MachineFacts& facts);

}  // namespace meshflow::launcher
