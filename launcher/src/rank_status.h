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

long long realtime_ns();

}  // namespace meshflow::launcher
