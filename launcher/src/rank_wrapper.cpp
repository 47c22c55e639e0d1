// The rank wrapper: runs one rank's program and records how it ended (Note [Failure reports]).
#include "rank_wrapper.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "meshflow/distributed/failure.h"
#include "meshflow/distributed/world.h"
#include "rank_status.h"

namespace meshflow::launcher {
namespace {

volatile sig_atomic_t g_child = 0;

void forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

}  // namespace

void exec_or_die(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  std::fprintf(stderr, "meshflow-run: cannot run '%s': %s\n", args[0], std::strerror(errno));
  std::fflush(stderr);
  _exit(127);
}

int run_rank_wrapper(const std::vector<std::string>& program) {
  RankFailure status;
  try {
    status.rank = distributed::detect_world().rank;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "meshflow-run --rank-wrapper: %s\n", e.what());
  }
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  status.host = host;

  const char* dir = std::getenv("MESHFLOW_FAILURE_DIR");
  const bool reports = dir && *dir;
  if (reports) write_rank_marker(dir, status.rank, "started");  // Note [Every rank reports]

  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) {
    std::perror("meshflow-run --rank-wrapper: fork");
    if (reports) write_rank_marker(dir, status.rank, "ended", 127);
    return 127;
  }
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(137);  // the wrapper died before prctl took effect
    exec_or_die(program);
  }
  g_child = child;
  struct sigaction sa {};
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaction(sig, &sa, nullptr);

  int wstatus = 0;
  while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
  }
  status.time_ns = realtime_ns();
  if (WIFSIGNALED(wstatus)) {
    status.signal = WTERMSIG(wstatus);
    status.exit_code = 128 + status.signal;
  } else {
    status.exit_code = WEXITSTATUS(wstatus);
  }
  if (status.exit_code != 0 && reports) {
    bool left_message = access(distributed::failure_message_path(dir, status.rank).c_str(), F_OK) == 0;
    if (status.exit_code == 127 && !status.signal && !left_message)
      distributed::report_failure(status.rank, "could not start '" + program[0] + "' (exit code 127)");
    write_rank_status(dir, status);
  }
  if (reports) write_rank_marker(dir, status.rank, "ended", status.exit_code);
  return status.exit_code;
}

}  // namespace meshflow::launcher
