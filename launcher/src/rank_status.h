// Per-rank failure records in the attempt's failure folder: written by the rank wrapper, read by the launcher.
#pragma once

#include <string>
#include <vector>

namespace meshflow::launcher {

struct RankFailure {
  int rank = -1;
  std::string host;
  int exit_code = 0;      // as the shell reports it: 128 + signal for a signal
  int signal = 0;         // 0 when the rank exited by itself
  long long time_ns = 0;  // CLOCK_REALTIME when the rank ended; orders failures across ranks
  std::string message;    // rank-<R>.message when the program left one (Note [Failure reports])
};

// Writes "<dir>/rank-<R>.status" (key=value lines) through a temporary name, so a reader never
// sees half a record. Never throws: a failure report must not cause a second failure.
void write_rank_status(const std::string& dir, const RankFailure& failure);

// Every rank-<R>.status in `dir`, with its message attached, earliest first. Missing dir: empty.
std::vector<RankFailure> read_rank_failures(const std::string& dir);

// "rank 1 on host vm: exit code 134 (signal 6, Aborted): uncaught meshflow::Error: ..." (one line).
std::string describe_failure(const RankFailure& failure);

// When ranks ended because of another one (their reports start "blames rank K: ", written by
// Meshflow before it aborts a job whose collective failed): "rank K is the culprit ...; rank(s)
// A, B ended because of it (last collective: ...)". Empty when no report blames a rank.
std::string describe_culprit(const std::vector<RankFailure>& failures);

// Note [Every rank reports]
// A launcher can start fewer ranks than asked for and still exit 0 (srun --mpi=pmix after a failed
// step setup: "task 0 launch failed", nothing ran). So the rank wrapper also writes
// "<dir>/rank-<R>.started" before it starts the program and "<dir>/rank-<R>.ended" (exit code)
// after it ends, whatever the outcome, and meshflow-run counts them: a job succeeds only when all
// N ranks started and ended with exit code 0. The count needs the folder to be one every rank
// sees: this machine's, or the config's failure_dir (LaunchPlan::ranks_countable).
void write_rank_marker(const std::string& dir, int rank, const std::string& kind, int exit_code = 0);

struct RankCount {
  int expected = 0;
  std::vector<int> not_started;  // ranks in [0, expected) with no rank-<R>.started
  std::vector<int> not_ended;    // started, but no rank-<R>.ended (the wrapper itself was killed)
  bool complete() const { return not_started.empty() && not_ended.empty(); }
};
RankCount count_ranks(const std::string& dir, int expected);

// Empty when the count is complete; else e.g. "srun started 1 of 2 ranks (rank 1 did not start; "
// followed by `launcher_said` (how the launcher ended, see describe_launcher_end) and ")".
std::string describe_missing_ranks(const RankCount& count, const std::string& launcher, const std::string& launcher_said);

// "srun exited with code 0; its last line on stderr: srun: error: ..." (or "... and printed
// nothing on stderr").
std::string describe_launcher_end(const std::string& launcher, int exit_code, const std::string& last_stderr_line);

long long realtime_ns();

}  // namespace meshflow::launcher
