// Runs a hyperparameter search's chief and workers (Note [Tuner mode]) and summarizes who was lost.
#include "tuner_job.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "job_runner.h"
#include "meshflow/core/error.h"
#include "rank_wrapper.h"

namespace meshflow::launcher {

// Note [Tuner mode]
// `meshflow-run --tuner -np N PROGRAM` runs Keras Tuner's chief/worker model on this machine
// without mpirun: mpirun (and srun with kill-on-bad-exit) end the whole job when one process dies,
// which is right for collectives and wrong for a search, whose workers share nothing but the
// oracle. So meshflow-run forks N + 1 copies of PROGRAM itself, in one process group of their own
// (signals to meshflow-run reach them all), each killed with meshflow-run (PR_SET_PDEATHSIG), and
// tells each its part through the environment that meshflow::tuner::DistributedTuning reads:
// MESHFLOW_TUNER_ID (chief, worker0..), MESHFLOW_TUNER_ORACLE_IP (127.0.0.1) and _PORT (free a
// moment before; the chief binds it), MESHFLOW_TUNER_WORKERS, MESHFLOW_TUNER_HEARTBEAT_TIMEOUT.
// - A worker that dies is reported at once and the others go on; the chief fails its trial when
//   the connection drops. A stopped (SIGSTOP) worker is reported too; the chief fails its trial
//   once it has sent no heartbeat for the timeout (Note [Worker leases] in the tuner).
// - The chief appends each trial it failed with its worker to MESHFLOW_FAILURE_DIR/
//   tuner-lost-trials.tsv; the summary joins those lines with how each worker process ended.
// - When no worker process is left, meshflow-run creates MESHFLOW_FAILURE_DIR/tuner-workers-ended
//   so a chief still waiting for a worker that died before it connected stops waiting.
// - The chief's end is the search's end and its exit code is the job's. Workers still there then
//   are ended: a stopped one at once (SIGKILL), others after kKillGraceSeconds (SIGTERM, then
//   SIGKILL). When the chief fails, the workers get SIGTERM at once (their search is lost).
// - --timeout and signals to meshflow-run end the whole group as in the MPI mode.

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Starts plan.program as process `index` (-1: the chief) in process group `group` (0: a new one).
pid_t start_process(const TunerPlan& plan, int index, pid_t group) {
  pid_t parent = getpid();
  pid_t child = fork();
  MF_CHECK(child >= 0, "fork failed: ", std::strerror(errno));
  if (child == 0) {
    setpgid(0, group);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(137);  // meshflow-run died before prctl took effect
    if (isatty(STDIN_FILENO)) {
      int null_fd = open("/dev/null", O_RDONLY);
      if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    }
    for (const auto& [k, v] : plan.env_for(index)) setenv(k.c_str(), v.c_str(), 1);
    exec_or_die(plan.program);
  }
  setpgid(child, group ? group : child);  // also here: the child may not have run setpgid yet
  return child;
}

std::string how_it_ended(const TunerProcess& p) {
  if (p.signal) return "killed by signal " + std::to_string(p.signal) + " (" + strsignal(p.signal) + ")";
  return "exited with code " + std::to_string(p.exit_code);
}

struct Tracked {
  TunerProcess info;
  bool ended = false, stopped = false, term_sent = false;
};

// Reaps or notes a stop of `t` without waiting; true when something changed.
bool poll(Tracked& t) {
  if (t.ended) return false;
  int st = 0;
  pid_t r = waitpid(t.info.pid, &st, WNOHANG | WUNTRACED | WCONTINUED);
  if (r != t.info.pid) return false;
  if (WIFSTOPPED(st)) {
    t.stopped = true;
    t.info.stop_signal = WSTOPSIG(st);
  } else if (WIFCONTINUED(st)) {
    t.stopped = false;
  } else {
    t.ended = true;
    t.stopped = false;
    t.info.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    t.info.exit_code = WIFSIGNALED(st) ? 128 + t.info.signal : WEXITSTATUS(st);
  }
  return true;
}

void say(const std::string& line) {
  std::fprintf(stderr, "meshflow-run: %s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace

TunerAttemptResult run_tuner_attempt(const TunerPlan& plan) {
  make_dirs(plan.failure_dir);
  std::vector<Tracked> procs(static_cast<size_t>(plan.workers) + 1);  // [0]: the chief
  const pid_t group = start_process(plan, -1, 0);
  procs[0].info = {.id = "chief", .pid = group};
  set_forwarded_group(group);
  for (int w = 0; w < plan.workers; ++w)
    procs[static_cast<size_t>(w) + 1].info = {.id = tuner_process_id(w), .pid = start_process(plan, w, group)};

  TunerAttemptResult result;
  const auto start = Clock::now();
  Clock::time_point chief_end{}, stop_sent{};
  bool chief_done = false, stopping = false, group_killed = false, marker = false;
  for (;;) {
    for (size_t i = 0; i < procs.size(); ++i) {
      Tracked& t = procs[i];
      const bool was_stopped = t.stopped;
      if (!poll(t) || i == 0 || chief_done || stopping) continue;
      const std::string who = t.info.id + " (pid " + std::to_string(t.info.pid) + ")";
      if (t.ended && t.info.exit_code != 0)
        say(who + " " + how_it_ended(t.info) + "; its trial fails, the other workers go on");
      else if (t.stopped && !was_stopped) {
        char timeout[32];
        std::snprintf(timeout, sizeof(timeout), "%g", plan.heartbeat_timeout_s);
        say(who + " stopped by signal " + std::to_string(t.info.stop_signal) + " (" + strsignal(t.info.stop_signal) +
            "); the chief fails its trial after " + timeout + " s without a heartbeat");
      }
    }
    bool workers_left = false;
    for (size_t i = 1; i < procs.size(); ++i) workers_left |= !procs[i].ended;
    if (!workers_left && !marker) {
      std::ofstream(plan.failure_dir + "/tuner-workers-ended") << "no worker process is left\n";
      marker = true;
    }
    if (procs[0].ended && !chief_done && !stopping) {
      chief_done = true;
      chief_end = Clock::now();
      if (procs[0].info.exit_code != 0) {  // the search is lost: end the workers now
        for (size_t i = 1; i < procs.size(); ++i) {
          if (procs[i].ended) continue;
          kill(procs[i].info.pid, SIGTERM);
          kill(procs[i].info.pid, SIGCONT);
          procs[i].term_sent = true;
        }
      }
    }
    if (chief_done) {
      for (size_t i = 1; i < procs.size(); ++i) {
        Tracked& t = procs[i];
        if (t.ended) continue;
        if (t.stopped || since(chief_end) > 2 * kKillGraceSeconds) {
          kill(t.info.pid, SIGKILL);
          t.info.killed_at_end = true;
        } else if (!t.term_sent && since(chief_end) > kKillGraceSeconds) {
          kill(t.info.pid, SIGTERM);
          t.term_sent = true;
          t.info.killed_at_end = true;
        }
      }
    }
    if (!stopping && ((plan.timeout_s && since(start) > *plan.timeout_s) || received_signal())) {
      result.timed_out = !received_signal();
      stopping = true;
      stop_sent = Clock::now();
      kill(-group, SIGTERM);
      kill(-group, SIGCONT);  // a stopped process takes SIGTERM only once continued
    }
    if (stopping && !group_killed && since(stop_sent) > kKillGraceSeconds) {
      kill(-group, SIGKILL);
      group_killed = true;
    }
    bool all_ended = true;
    for (const auto& t : procs) all_ended &= t.ended;
    if (all_ended) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  set_forwarded_group(0);
  kill(-group, SIGKILL);  // anything the programs started that is still in the group
  result.chief = procs[0].info;
  for (size_t i = 1; i < procs.size(); ++i) result.workers.push_back(procs[i].info);
  result.exit_code = result.chief.exit_code;
  if (result.timed_out) result.exit_code = 124;  // as timeout(1)
  result.user_signal = received_signal();
  if (result.user_signal) result.exit_code = 128 + result.user_signal;
  result.lost = read_lost_trials(plan.failure_dir);
  return result;
}

std::vector<LostTrialRecord> read_lost_trials(const std::string& dir) {
  std::vector<LostTrialRecord> out;
  std::ifstream in(dir + "/tuner-lost-trials.tsv");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find('\t'), b = a == std::string::npos ? a : line.find('\t', a + 1);
    if (b == std::string::npos) continue;  // a torn line names nothing
    out.push_back({line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)});
  }
  return out;
}

std::vector<std::string> describe_lost_workers(const TunerAttemptResult& r) {
  std::vector<std::string> out;
  for (const auto& w : r.workers) {
    std::string trials;
    for (const auto& l : r.lost)
      if (l.worker == w.id) trials += (trials.empty() ? "" : ", ") + ("trial " + l.trial_id + " (" + l.reason + ")");
    if (w.exit_code == 0 && !w.stop_signal && trials.empty()) continue;
    std::string s = w.id + " (pid " + std::to_string(w.pid) + ")";
    if (w.stop_signal) {
      s += " stopped by signal " + std::to_string(w.stop_signal) + " (" + strsignal(w.stop_signal) + ")";
      s += w.killed_at_end ? ", killed when the search ended" : (w.exit_code ? ", then " + how_it_ended(w) : "");
    } else if (w.killed_at_end) {
      s += " still running when the search ended, " + how_it_ended(w);
    } else {
      s += " " + how_it_ended(w);
    }
    s += trials.empty() ? "; it lost no trial" : "; failed with it: " + trials;
    out.push_back(s);
  }
  return out;
}

int run_tuner_job(const LaunchOptions& options, const ClusterConfig& config, const MachineFacts& facts) {
  install_signal_forwarding();
  int exit_code = 0, attempts = 0;
  std::string outcome, description;
  for (int attempt = 0;; ++attempt) {
    TunerPlan plan = build_tuner_plan(options, config, facts, attempt, pick_free_port());
    description = plan.describe();
    attempts = attempt + 1;
    say("attempt " + std::to_string(attempts) + " of " + std::to_string(plan.max_restarts + 1) + ": " + description);
    TunerAttemptResult r = run_tuner_attempt(plan);
    exit_code = r.exit_code;
    int finished = 0;
    for (const auto& w : r.workers) finished += w.exit_code == 0 && !w.stop_signal;
    std::vector<std::string> lost = describe_lost_workers(r);
    std::string workers = std::to_string(finished) + " of " + std::to_string(r.workers.size()) + " workers finished";
    for (const auto& l : lost) workers += "; " + l;
    if (exit_code == 0) {
      outcome = workers;
      break;
    }
    outcome = "the chief (pid " + std::to_string(r.chief.pid) + ") " + how_it_ended(r.chief) +
              " (its output above says why); " + workers;
    if (r.timed_out) {
      char s[64];
      std::snprintf(s, sizeof(s), "timed out after %g s; ", *plan.timeout_s);
      outcome = s + workers;
    }
    if (r.user_signal) outcome = "stopped by signal " + std::to_string(r.user_signal) + "; " + workers;
    bool retry = attempt < plan.max_restarts && !r.user_signal && !received_signal();
    say("attempt " + std::to_string(attempts) + " failed (exit code " + std::to_string(exit_code) + "): " + outcome +
        (retry ? "; restarting" : ""));
    if (!retry) break;
  }
  std::error_code ignored;
  std::filesystem::remove_all(failure_root(config, facts), ignored);
  if (exit_code == 0)
    say("tuner search succeeded: " + description + ", attempt " + std::to_string(attempts) + ", exit code 0; " + outcome);
  else
    say("job failed with exit code " + std::to_string(exit_code) + " after " + std::to_string(attempts) +
        " attempt(s): " + outcome);
  return exit_code;
}

}  // namespace meshflow::launcher
