// meshflow-run: launches a Meshflow program on N ranks (or a tuner search's chief and workers), restarts it on
// failure, names the first failed rank (or the lost workers and their trials).
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cluster_config.h"
#include "job_runner.h"
#include "launch_plan.h"
#include "meshflow/core/error.h"
#include "options.h"
#include "rank_status.h"
#include "rank_wrapper.h"
#include "tuner_job.h"
#include "tuner_plan.h"

namespace ml = meshflow::launcher;

namespace {

constexpr int kUsageError = 2;
constexpr int kTimedOut = 124;  // as timeout(1)
constexpr int kRanksMissing = 1;  // the launcher exited 0 but not every rank ran (Note [Every rank reports])

void print_dry_run(const ml::LaunchPlan& plan) {
  std::printf("# meshflow-run: %s; up to %d restart(s)", plan.describe().c_str(), plan.max_restarts);
  if (plan.timeout_s) std::printf("; timeout %g s per attempt", *plan.timeout_s);
  std::printf("\n");
  for (const auto& [k, v] : plan.env) std::printf("%s=%s\n", k.c_str(), ml::shell_quote(v).c_str());
  std::string line;
  for (const auto& w : plan.argv) line += (line.empty() ? "" : " ") + ml::shell_quote(w);
  std::printf("%s\n", line.c_str());
}

// Runs attempts until one succeeds, the restarts are used up, or the user stops us.
int run_job(const ml::LaunchOptions& options, const ml::ClusterConfig& config, const ml::MachineFacts& facts) {
  ml::install_signal_forwarding();
  int attempts = 0, exit_code = 0;
  std::string first_failure, plan_description;
  bool ranks_countable = true;
  for (int attempt = 0;; ++attempt) {
    ml::LaunchPlan plan = ml::build_launch_plan(options, config, facts, attempt);
    plan_description = plan.describe();
    ranks_countable = plan.ranks_countable;
    attempts = attempt + 1;
    std::fprintf(stderr, "meshflow-run: attempt %d of %d: %s\n", attempts, plan.max_restarts + 1,
                 plan_description.c_str());
    std::fflush(stderr);
    ml::AttemptResult result = ml::run_attempt(plan);
    std::vector<ml::RankFailure> failures = ml::read_rank_failures(plan.failure_dir);
    exit_code = result.exit_code;
    // The first failed rank's own code is the job's: mpirun and srun may report a later one, or 0.
    if (!failures.empty() && failures.front().exit_code != 0) exit_code = failures.front().exit_code;
    // Success needs every rank to have run and ended (Note [Every rank reports] in rank_status.h):
    // srun can fail to launch the tasks and still exit 0.
    const std::string launcher_said =
        ml::describe_launcher_end(plan.launcher, result.exit_code, result.last_stderr_line);
    const std::string missing =
        plan.ranks_countable
            ? ml::describe_missing_ranks(ml::count_ranks(plan.failure_dir, plan.ranks), plan.launcher, launcher_said)
            : "";
    if (exit_code == 0 && !missing.empty()) exit_code = kRanksMissing;
    if (result.timed_out) exit_code = kTimedOut;
    if (result.user_signal) exit_code = 128 + result.user_signal;
    if (exit_code == 0) break;

    if (!failures.empty()) first_failure = "first failure " + ml::describe_failure(failures.front());
    else if (!missing.empty()) first_failure = missing;
    else if (plan.ranks_countable)
      first_failure = "every rank exited with code 0, but " + launcher_said;
    else
      first_failure = "no rank reported a failure (" + launcher_said + ")";
    // A rank the others blame (stopped, dead, hung) is named before the ranks that only aborted.
    if (std::string culprit = ml::describe_culprit(failures); !culprit.empty()) first_failure = culprit;
    if (result.timed_out) {
      char seconds[32];
      std::snprintf(seconds, sizeof(seconds), "%g", *plan.timeout_s);
      first_failure = "timed out after " + std::string(seconds) + " s; " + first_failure;
    }
    if (result.user_signal) first_failure = "stopped by signal " + std::to_string(result.user_signal);
    bool retry = attempt < plan.max_restarts && !result.user_signal && !ml::received_signal();
    std::fprintf(stderr, "meshflow-run: attempt %d failed (exit code %d): %s%s\n", attempts, exit_code,
                 first_failure.c_str(), retry ? "; restarting" : "");
    if (!retry) break;
  }
  std::error_code ignored;
  std::filesystem::remove_all(ml::failure_root(config, facts), ignored);
  if (exit_code == 0)
    std::fprintf(stderr, "meshflow-run: job succeeded: %s, attempt %d, exit code 0%s\n", plan_description.c_str(),
                 attempts, ranks_countable ? "" : " (not checked that every rank ran: the ranks span nodes and the "
                                                  "config names no shared failure_dir)");
  else
    std::fprintf(stderr, "meshflow-run: job failed with exit code %d after %d attempt(s): %s\n", exit_code, attempts,
                 first_failure.c_str());
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--rank-wrapper") {
    if (args.size() < 3 || args[1] != "--") {
      std::fprintf(stderr, "meshflow-run: usage: meshflow-run --rank-wrapper -- PROGRAM [ARGS...]\n");
      return kUsageError;
    }
    return ml::run_rank_wrapper(std::vector<std::string>(args.begin() + 2, args.end()));
  }
  ml::LaunchOptions options;
  ml::ClusterConfig config;
  ml::MachineFacts facts = ml::read_machine_facts();
  try {
    options = ml::parse_options(args);
    if (options.help) {
      std::fputs(ml::usage(), stdout);
      return 0;
    }
    if (!options.config.empty()) config = ml::load_cluster_config(options.config);
    if (options.tuner) {  // Note [Tuner mode] in tuner_job.cpp
      ml::TunerPlan plan = ml::build_tuner_plan(options, config, facts, 0, ml::pick_free_port());
      if (options.dry_run) {
        std::fputs(ml::tuner_dry_run(plan).c_str(), stdout);
        return 0;
      }
    } else {
      ml::LaunchPlan plan = ml::build_launch_plan(options, config, facts, 0);  // checks the input once
      if (options.dry_run) {
        print_dry_run(plan);
        return 0;
      }
    }
  } catch (const meshflow::Error& e) {
    std::fprintf(stderr, "meshflow-run: error: %s\n", e.what());
    return kUsageError;
  }
  try {
    return options.tuner ? ml::run_tuner_job(options, config, facts) : run_job(options, config, facts);
  } catch (const meshflow::Error& e) {
    std::fprintf(stderr, "meshflow-run: job failed: %s\n", e.what());
    return 1;
  }
}
