// libFuzzer harness for meshflow-run's cluster configs (yaml-cpp plus the config checks): any bytes
// either throw meshflow::Error or give a config whose values are usable as they stand (hosts that
// survive mpirun's "--host h:n,..." form, variable names, no NUL), that reads back the same when
// written out as YAML again, and whose planned mpirun command carries its ranks, hosts and variables.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cluster_config.h"
#include "hosts.h"
#include "launch_plan.h"
#include "meshflow/core/error.h"

namespace {

namespace ml = meshflow::launcher;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// A YAML double-quoted scalar: ASCII controls, quotes and backslashes escaped, other bytes as they are (yaml-cpp
// passes bytes that are not UTF-8 through, so escaping them as code points would change the value).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  char buf[8];
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& s : items) out += (out.size() > 1 ? ", " : "") + quoted(s);
  return out + "]";
}

std::string to_yaml(const ml::ClusterConfig& c) {
  std::string y;
  if (c.ranks) y += "ranks: " + quoted(std::to_string(*c.ranks)) + "\n";
  if (!c.hosts.empty()) {
    y += "hosts:\n";
    for (const auto& h : c.hosts) y += "  - {host: " + quoted(h.host) + ", slots: " + std::to_string(h.slots) + "}\n";
  }
  if (c.threads_per_rank) y += "threads_per_rank: " + std::to_string(*c.threads_per_rank) + "\n";
  if (!c.mpirun_args.empty()) y += "mpirun_args: " + list(c.mpirun_args) + "\n";
  if (!c.srun_args.empty()) y += "srun_args: " + list(c.srun_args) + "\n";
  if (!c.env.empty()) {
    y += "env:\n";
    for (const auto& [k, v] : c.env) y += "  " + quoted(k) + ": " + quoted(v) + "\n";
  }
  if (c.timeout_s) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g", *c.timeout_s);
    y += std::string("timeout: ") + buf + "\n";
  }
  if (c.max_restarts) y += "max_restarts: " + std::to_string(*c.max_restarts) + "\n";
  if (!c.failure_dir.empty()) y += "failure_dir: " + quoted(c.failure_dir) + "\n";
  return y;
}

bool same(const ml::ClusterConfig& a, const ml::ClusterConfig& b) {
  return a.ranks == b.ranks && a.hosts == b.hosts && a.threads_per_rank == b.threads_per_rank &&
         a.mpirun_args == b.mpirun_args && a.srun_args == b.srun_args && a.env == b.env && a.timeout_s == b.timeout_s &&
         a.max_restarts == b.max_restarts && a.failure_dir == b.failure_dir;
}

bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ml::ClusterConfig c;
  try {
    c = ml::parse_cluster_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  } catch (const meshflow::Error&) {
    return 0;
  }
  // Every value is usable as it stands.
  check(!c.ranks || *c.ranks >= 1);
  check(!c.threads_per_rank || *c.threads_per_rank >= 1);
  check(!c.max_restarts || *c.max_restarts >= 0);
  check(!c.timeout_s || (std::isfinite(*c.timeout_s) && *c.timeout_s > 0));
  if (!c.hosts.empty()) check(ml::parse_hosts_string(ml::hosts_to_mpirun(c.hosts)) == c.hosts);
  for (const auto& [k, v] : c.env) check(!k.empty() && k.find('=') == std::string::npos && !has_nul(k) && !has_nul(v));
  for (const auto* args : {&c.mpirun_args, &c.srun_args})
    check(std::none_of(args->begin(), args->end(), has_nul));
  check(!has_nul(c.failure_dir));

  // Written out again, it reads back the same.
  const std::string yaml = to_yaml(c);
  ml::ClusterConfig again;
  try {
    again = ml::parse_cluster_config(yaml, "fuzz.yaml");
  } catch (const meshflow::Error& e) {
    std::fprintf(stderr, "the config written back does not read: %s\n%s", e.what(), yaml.c_str());
    check(false);
  }
  if (!same(c, again)) {
    std::fprintf(stderr, "the config written back reads differently:\n%s---\n%s", yaml.c_str(), to_yaml(again).c_str());
    check(false);
  }

  // The mpirun command planned from it.
  if (!c.ranks) return 0;
  ml::LaunchOptions o;
  o.program = {"./train"};
  ml::MachineFacts f;
  f.cores = 4;
  f.hostname = "fuzzhost";
  f.self_path = "/mf/meshflow-run";
  f.launcher_pid = 7;
  ml::LaunchPlan p;
  try {
    p = ml::build_launch_plan(o, c, f, 0);
  } catch (const meshflow::Error&) {
    check(!c.hosts.empty() && *c.ranks > ml::total_slots(c.hosts));  // the one way a valid config fails here
    return 0;
  }
  const auto& a = p.argv;
  check(a.size() >= 7 && a[0] == "mpirun" && a[1] == "-np" && a[2] == std::to_string(*c.ranks));
  check(std::equal(a.end() - 4, a.end(), std::vector<std::string>{f.self_path, "--rank-wrapper", "--", "./train"}.begin()));
  auto host = std::find(a.begin(), a.end(), "--host");
  if (p.local) {
    check(host == a.end());
  } else {
    check(host != a.end() && host + 1 != a.end() && ml::parse_hosts_string(*(host + 1)) == c.hosts);
  }
  for (const auto& [k, v] : c.env) {
    bool passed = false;
    for (size_t i = 0; i + 1 < a.size(); ++i) passed = passed || (a[i] == "-x" && a[i + 1] == k + "=" + v);
    check(passed);
  }
  check(c.mpirun_args.empty() ||
        std::search(a.begin(), a.end(), c.mpirun_args.begin(), c.mpirun_args.end()) != a.end());
  return 0;
}
