// Starts mpirun/srun in its own process group and supervises it: signals, timeout, exit status, stderr.
#include "job_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "meshflow/core/error.h"
#include "rank_wrapper.h"

namespace meshflow::launcher {
namespace {

volatile sig_atomic_t g_group = 0;   // the job's process group, 0 when none runs
volatile sig_atomic_t g_signal = 0;  // the first signal meshflow-run received

void forward_to_group(int sig) {
  if (!g_signal) g_signal = sig;
  if (g_group > 0) kill(-g_group, sig);
}

// Copies what the job wrote on stderr to ours and keeps its last non-empty line.
class StderrTail {
 public:
  // Reads what is there now (the pipe is non-blocking); false once every writer has closed it.
  bool pump(int fd) {
    char buf[4096];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n > 0) {
        for (ssize_t done = 0; done < n;) {  // best effort: our stderr may be gone
          ssize_t w = write(STDERR_FILENO, buf + done, static_cast<size_t>(n - done));
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) break;
          done += w;
        }
        for (ssize_t i = 0; i < n; ++i) take(buf[i]);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }
  std::string last_line() {
    take('\n');
    return last_;
  }

 private:
  void take(char c) {
    if (c != '\n') {
      if (current_.size() < 4096) current_ += c;
      return;
    }
    while (!current_.empty() && (current_.back() == '\r' || current_.back() == ' ')) current_.pop_back();
    if (current_.find_first_not_of(" \t-") != std::string::npos) last_ = current_;  // not blank, not "-----"
    current_.clear();
  }
  std::string current_, last_;
};

}  // namespace

void make_dirs(const std::string& path) {
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST)
      MF_THROW("cannot create the failure folder ", prefix, ": ", std::strerror(errno));
  }
}

void set_forwarded_group(int group) {
  g_group = group;
  if (group > 0 && g_signal) kill(-group, g_signal);
}

void install_signal_forwarding() {
  struct sigaction sa {};
  sa.sa_handler = forward_to_group;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

int received_signal() { return g_signal; }

AttemptResult run_attempt(const LaunchPlan& plan) {
  make_dirs(plan.failure_dir);
  int err_pipe[2];
  MF_CHECK(pipe2(err_pipe, O_CLOEXEC) == 0, "cannot make a pipe for the job's stderr: ", std::strerror(errno));
  pid_t child = fork();
  if (child < 0) {
    close(err_pipe[0]);
    close(err_pipe[1]);
  }
  MF_CHECK(child >= 0, "fork failed: ", std::strerror(errno));
  if (child == 0) {
    setpgid(0, 0);
    dup2(err_pipe[1], STDERR_FILENO);  // dup2 clears O_CLOEXEC on the copy
    if (isatty(STDIN_FILENO)) {
      int null_fd = open("/dev/null", O_RDONLY);
      if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    }
    for (const auto& [k, v] : plan.env) setenv(k.c_str(), v.c_str(), 1);
    exec_or_die(plan.argv);
  }
  close(err_pipe[1]);
  int err_fd = err_pipe[0];
  fcntl(err_fd, F_SETFL, fcntl(err_fd, F_GETFL) | O_NONBLOCK);
  StderrTail tail;
  setpgid(child, child);  // also here: a signal may come before the child runs setpgid itself
  g_group = child;
  if (g_signal) kill(-child, g_signal);

  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  AttemptResult result;
  Clock::time_point stop_sent{};
  bool stopping = false, killed = false;
  int wstatus = 0;
  for (;;) {
    pid_t done = waitpid(child, &wstatus, WNOHANG);
    if (done == child) break;
    if (done < 0 && errno != EINTR) break;
    if (!stopping && plan.timeout_s && since(start) > *plan.timeout_s) {
      result.timed_out = true;
      kill(-child, SIGTERM);
    }
    if (!stopping && (result.timed_out || g_signal)) {
      stopping = true;
      stop_sent = Clock::now();
    }
    if (stopping && !killed && since(stop_sent) > kKillGraceSeconds) {
      kill(-child, SIGKILL);
      killed = true;
    }
    if (err_fd >= 0) {
      pollfd p{err_fd, POLLIN, 0};
      poll(&p, 1, 20);
      if (!tail.pump(err_fd)) {  // every writer closed it
        close(err_fd);
        err_fd = -1;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  g_group = 0;
  kill(-child, SIGKILL);  // anything of the job's group still alive after mpirun/srun ended
  if (err_fd >= 0) {  // what is left in the pipe; a process outside the group may still hold it open
    tail.pump(err_fd);
    close(err_fd);
  }
  result.last_stderr_line = tail.last_line();
  result.exit_code = WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
  result.user_signal = g_signal;
  return result;
}

}  // namespace meshflow::launcher
