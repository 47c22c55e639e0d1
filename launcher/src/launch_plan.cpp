// Builds the mpirun or srun command line; Note [Launch rules] lists every flag it adds and why.
#include "launch_plan.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "meshflow/core/error.h"

namespace meshflow::launcher {
namespace {

// Note [Launch rules]
// - Inside a Slurm allocation (SLURM_JOB_ID set) the default launcher is
//   `srun --mpi=pmix -n N --kill-on-bad-exit=1`: pmix because Debian's Open MPI has no PMI-2,
//   kill-on-bad-exit so one failed rank ends the step instead of leaving its peers waiting.
// - mpirun gets --allow-run-as-root when we are root (Open MPI refuses root otherwise).
// - A local run (no hosts, or only this machine) adds --bind-to none (Open MPI binds each rank to
//   one core by default, which piles a rank's OpenMP threads onto it), loopback-only TCP for MPI
//   and for mpirun's own out-of-band channel (no interface probing, works without a network),
//   and --oversubscribe when -np exceeds this machine's cores.
// - Every rank runs under `meshflow-run --rank-wrapper` (Note [Failure reports]); its records are
//   counted (Note [Every rank reports]) when all ranks are on this node or failure_dir is set.
// - The environment goes to mpirun as -x NAME=VALUE, so ranks on other hosts get it too.

std::optional<std::string> lookup(const MachineFacts& f, const std::string& name) {
  auto it = f.env.find(name);
  if (it == f.env.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

int env_int(const MachineFacts& f, const std::string& name, int fallback) {
  auto v = lookup(f, name);
  if (!v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v->c_str(), &end, 10);
  return (*end == '\0' && x >= 1 && x < (1 << 24)) ? static_cast<int>(x) : fallback;
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace

MachineFacts read_machine_facts() {
  MachineFacts f;
  f.cores = std::max(1u, std::thread::hardware_concurrency());
  f.is_root = geteuid() == 0;
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) == 0) f.hostname = name;
  char self[4096] = {0};
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  f.self_path = n > 0 ? std::string(self, static_cast<size_t>(n)) : "meshflow-run";
  if (const char* t = std::getenv("TMPDIR"); t && *t) f.temp_dir = t;
  f.launcher_pid = static_cast<int>(getpid());
  for (const char* k : {"SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "SLURM_JOB_NUM_NODES",
                        "SLURM_NTASKS", "OMP_NUM_THREADS"})
    if (const char* v = std::getenv(k)) f.env[k] = v;
  return f;
}

std::string failure_root(const ClusterConfig& config, const MachineFacts& facts) {
  std::string base = config.failure_dir.empty() ? facts.temp_dir : config.failure_dir;
  return base + "/meshflow-run-" + std::to_string(facts.launcher_pid);
}

std::string shell_quote(const std::string& w) {
  if (!w.empty() && w.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=,+@%")
                        == std::string::npos)
    return w;
  std::string q = "'";
  for (char c : w) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string LaunchPlan::describe() const {
  std::string where = local ? "this machine" : hosts.empty() ? "the Slurm allocation" : hosts_to_mpirun(hosts);
  return std::to_string(ranks) + " ranks on " + where + " via " + launcher;
}

LaunchPlan build_launch_plan(const LaunchOptions& o, const ClusterConfig& c, const MachineFacts& f, int attempt) {
  LaunchPlan p;
  MF_CHECK(o.ranks || c.ranks, "the number of ranks is missing: give -np N (or 'ranks:' in the config)");
  p.ranks = o.ranks ? *o.ranks : *c.ranks;
  MF_CHECK(p.ranks >= 1, "-np ", p.ranks, " must be at least 1");
  if (!o.hosts.empty()) p.hosts = parse_hosts_string(o.hosts);
  else if (!o.hostfile.empty()) p.hosts = read_hostfile(o.hostfile);
  else p.hosts = c.hosts;
  bool in_slurm = lookup(f, "SLURM_JOB_ID").has_value();
  p.launcher = o.launcher == "auto" ? (in_slurm ? "srun" : "mpirun") : o.launcher;
  MF_CHECK(p.launcher != "srun" || in_slurm, "--launcher srun needs a Slurm allocation (SLURM_JOB_ID is not set); ",
           "use sbatch/salloc, or --launcher mpirun");
  MF_CHECK(p.launcher != "srun" || p.hosts.empty(), "hosts were given (", hosts_to_mpirun(p.hosts),
           ") but srun runs on the Slurm allocation's nodes; drop them or use --launcher mpirun");
  if (!p.hosts.empty())
    MF_CHECK(p.ranks <= total_slots(p.hosts), "-np ", p.ranks, " exceeds the ", total_slots(p.hosts),
             " slots of the hosts ", hosts_to_mpirun(p.hosts), "; add slots or lower -np");
  p.local = p.launcher == "mpirun" && !in_slurm &&
            (p.hosts.empty() || (p.hosts.size() == 1 && is_local_host(p.hosts[0].host, f.hostname)));
  p.timeout_s = o.timeout_s ? o.timeout_s : c.timeout_s;
  p.max_restarts = o.max_restarts ? *o.max_restarts : c.max_restarts.value_or(0);
  p.failure_dir = failure_root(c, f) + "/attempt-" + std::to_string(attempt);
  const bool one_node = p.hosts.empty() ? !in_slurm || env_int(f, "SLURM_JOB_NUM_NODES", 1) == 1
                                        : p.hosts.size() == 1 && is_local_host(p.hosts[0].host, f.hostname);
  p.ranks_countable = one_node || !c.failure_dir.empty();

  // The environment: OpenMP threads per rank, the failure folder, the attempt, then the config's.
  bool config_sets_omp = std::any_of(c.env.begin(), c.env.end(), [](auto& kv) { return kv.first == "OMP_NUM_THREADS"; });
  if (!config_sets_omp) {
    if (auto inherited = lookup(f, "OMP_NUM_THREADS")) {
      p.env.emplace_back("OMP_NUM_THREADS", *inherited);
    } else {
      int threads = 1;
      int nodes = p.local ? 1 : !p.hosts.empty() ? static_cast<int>(p.hosts.size()) : env_int(f, "SLURM_JOB_NUM_NODES", 1);
      int cores = in_slurm ? env_int(f, "SLURM_CPUS_ON_NODE", f.cores) : f.cores;
      threads = std::max(1, cores / ceil_div(p.ranks, nodes));
      if (in_slurm) threads = env_int(f, "SLURM_CPUS_PER_TASK", threads);
      if (c.threads_per_rank) threads = *c.threads_per_rank;
      p.env.emplace_back("OMP_NUM_THREADS", std::to_string(threads));
    }
  }
  p.env.emplace_back("MESHFLOW_FAILURE_DIR", p.failure_dir);
  p.env.emplace_back("MESHFLOW_RESTART_ATTEMPT", std::to_string(attempt));
  if (!c.path.empty()) p.env.emplace_back("MESHFLOW_CLUSTER_CONFIG", c.path);
  for (const auto& kv : c.env) p.env.push_back(kv);

  std::vector<std::string>& a = p.argv;
  if (p.launcher == "srun") {
    a = {"srun", "--mpi=pmix", "-n", std::to_string(p.ranks), "--kill-on-bad-exit=1"};
    a.insert(a.end(), c.srun_args.begin(), c.srun_args.end());
  } else {
    a = {"mpirun", "-np", std::to_string(p.ranks)};
    if (f.is_root) a.push_back("--allow-run-as-root");
    if (p.local) {
      if (p.ranks > f.cores) a.push_back("--oversubscribe");
      for (const char* w : {"--bind-to", "none", "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"})
        a.push_back(w);
    } else if (!o.hostfile.empty()) {
      a.insert(a.end(), {"--hostfile", o.hostfile});
    } else if (!p.hosts.empty()) {
      a.insert(a.end(), {"--host", hosts_to_mpirun(p.hosts)});
    }
    for (const auto& [k, v] : p.env) a.insert(a.end(), {"-x", k + "=" + v});
    a.insert(a.end(), c.mpirun_args.begin(), c.mpirun_args.end());
  }
  a.insert(a.end(), {f.self_path, "--rank-wrapper", "--"});
  a.insert(a.end(), o.program.begin(), o.program.end());
  return p;
}

}  // namespace meshflow::launcher
