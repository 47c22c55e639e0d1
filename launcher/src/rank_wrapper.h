// `meshflow-run --rank-wrapper -- PROGRAM ARGS`: what mpirun or srun starts on every rank.
#pragma once

#include <string>
#include <vector>

namespace meshflow::launcher {

// Runs `program` as a child, forwards SIGINT/SIGTERM/SIGHUP/SIGUSR1/SIGUSR2 to it, and when it
// fails (non-zero exit or a signal) writes rank-<R>.status to MESHFLOW_FAILURE_DIR before exiting
// with the same code (128 + signal for a signal). Whatever the outcome it also writes
// rank-<R>.started before the program starts and rank-<R>.ended after it ends, which meshflow-run
// counts (Note [Every rank reports] in rank_status.h). The child dies with the wrapper
// (PR_SET_PDEATHSIG), so a wrapper killed by mpirun leaves no orphan behind.
int run_rank_wrapper(const std::vector<std::string>& program);

// Runs `argv` with execvp; on failure prints why to stderr and exits 127 (as a shell does).
[[noreturn]] void exec_or_die(const std::vector<std::string>& argv);

}  // namespace meshflow::launcher
