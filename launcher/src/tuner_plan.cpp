// The plan of `meshflow-run --tuner`: processes, roles, environment (Note [Tuner mode] in tuner_job.cpp).
#include "tuner_plan.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "hosts.h"
#include "meshflow/core/error.h"

namespace meshflow::launcher {

std::string tuner_process_id(int index) { return index < 0 ? "chief" : "worker" + std::to_string(index); }

std::string TunerPlan::describe() const {
  return "a chief and " + std::to_string(workers) + " worker" + (workers == 1 ? "" : "s") +
         " on this machine (oracle on " + oracle_ip + ":" + std::to_string(oracle_port) + ")";
}

EnvList TunerPlan::env_for(int index) const {
  EnvList e = env;
  e.emplace_back("MESHFLOW_TUNER_ID", tuner_process_id(index));
  return e;
}

TunerPlan build_tuner_plan(const LaunchOptions& o, const ClusterConfig& c, const MachineFacts& f, int attempt,
                           int port) {
  TunerPlan p;
  MF_CHECK(o.ranks || c.ranks, "the number of workers is missing: give -np N (or 'ranks:' in the config)");
  p.workers = o.ranks ? *o.ranks : *c.ranks;
  MF_CHECK(p.workers >= 1, "-np ", p.workers, " must be at least 1");
  MF_CHECK(o.hosts.empty() && o.hostfile.empty(), "--tuner runs the chief and its workers on this machine (its ",
           "oracle listens on 127.0.0.1 only); drop ", o.hosts.empty() ? "--hostfile" : "--hosts");
  for (const auto& h : c.hosts)
    MF_CHECK(is_local_host(h.host, f.hostname), "--tuner runs the chief and its workers on this machine (its oracle ",
             "listens on 127.0.0.1 only), but the config ", c.path, " names host '", h.host, "'");
  MF_CHECK(o.launcher == "auto", "--tuner starts its processes itself, without mpirun or srun; drop --launcher ",
           o.launcher);
  MF_CHECK(port >= 1 && port <= 65535, "the oracle's port ", port, " is not in 1..65535");
  p.oracle_port = port;
  p.heartbeat_timeout_s = o.heartbeat_timeout_s.value_or(30.0);
  p.program = o.program;
  p.timeout_s = o.timeout_s ? o.timeout_s : c.timeout_s;
  p.max_restarts = o.max_restarts ? *o.max_restarts : c.max_restarts.value_or(0);
  p.failure_dir = failure_root(c, f) + "/attempt-" + std::to_string(attempt);

  // Threads: the workers train, the chief only answers them, so the cores are shared by the workers.
  bool config_sets_omp = std::any_of(c.env.begin(), c.env.end(), [](auto& kv) { return kv.first == "OMP_NUM_THREADS"; });
  if (!config_sets_omp) {
    auto inherited = f.env.find("OMP_NUM_THREADS");
    if (inherited != f.env.end() && !inherited->second.empty())
      p.env.emplace_back("OMP_NUM_THREADS", inherited->second);
    else
      p.env.emplace_back("OMP_NUM_THREADS", std::to_string(c.threads_per_rank.value_or(std::max(1, f.cores / p.workers))));
  }
  p.env.emplace_back("MESHFLOW_FAILURE_DIR", p.failure_dir);
  p.env.emplace_back("MESHFLOW_RESTART_ATTEMPT", std::to_string(attempt));
  if (!c.path.empty()) p.env.emplace_back("MESHFLOW_CLUSTER_CONFIG", c.path);
  for (const auto& kv : c.env) p.env.push_back(kv);
  char timeout[32];
  std::snprintf(timeout, sizeof(timeout), "%g", p.heartbeat_timeout_s);
  p.env.emplace_back("MESHFLOW_TUNER_ORACLE_IP", p.oracle_ip);
  p.env.emplace_back("MESHFLOW_TUNER_ORACLE_PORT", std::to_string(p.oracle_port));
  p.env.emplace_back("MESHFLOW_TUNER_WORKERS", std::to_string(p.workers));
  p.env.emplace_back("MESHFLOW_TUNER_HEARTBEAT_TIMEOUT", timeout);
  return p;
}

int pick_free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  MF_CHECK(fd >= 0, "cannot open a socket to find a free port: ", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
            getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  int err = errno;
  close(fd);
  MF_CHECK(ok, "cannot find a free port on 127.0.0.1: ", std::strerror(err));
  return ntohs(a.sin_port);
}

std::string tuner_dry_run(const TunerPlan& p) {
  std::string out = "# meshflow-run --tuner: " + p.describe() + "; up to " + std::to_string(p.max_restarts) +
                    " restart(s)";
  if (p.timeout_s) {
    char s[48];
    std::snprintf(s, sizeof(s), "; timeout %g s per attempt", *p.timeout_s);
    out += s;
  }
  out += "\n";
  for (const auto& [k, v] : p.env) out += k + "=" + shell_quote(v) + "\n";
  std::string command;
  for (const auto& w : p.program) command += " " + shell_quote(w);
  for (int i = -1; i < p.workers; ++i) out += "MESHFLOW_TUNER_ID=" + tuner_process_id(i) + command + "\n";
  return out;
}

}  // namespace meshflow::launcher
