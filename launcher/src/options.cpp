// Parses meshflow-run's options; every error says which option and what a valid value looks like.
#include "options.h"

#include <cmath>
#include <cstdlib>

#include "meshflow/core/error.h"

namespace meshflow::launcher {
namespace {

int parse_int(const std::string& option, const std::string& v, int min) {
  char* end = nullptr;
  long x = std::strtol(v.c_str(), &end, 10);
  MF_CHECK(!v.empty() && *end == '\0' && x >= min && x < (1 << 24), "option ", option, ": '", v,
           "' is not an integer >= ", min);
  return static_cast<int>(x);
}

}  // namespace

const char* usage() {
  return "usage: meshflow-run -np N [--hosts h1:2,h2:2 | --hostfile FILE] [--config FILE.yaml]\n"
         "                    [--launcher auto|mpirun|srun] [--dry-run] [--max-restarts N] [--timeout SECONDS]\n"
         "                    [--] PROGRAM [ARGS...]\n"
         "       meshflow-run --tuner -np N [--heartbeat-timeout SECONDS] [--config FILE.yaml] [--dry-run]\n"
         "                    [--max-restarts N] [--timeout SECONDS] [--] PROGRAM [ARGS...]\n"
         "Runs PROGRAM on N ranks with mpirun, or with srun inside a Slurm allocation (SLURM_JOB_ID set),\n"
         "and ends with a summary naming the first rank that failed. Exit code: the job's (2: bad usage).\n"
         "With --tuner: a hyperparameter search on this machine, one chief serving the oracle on 127.0.0.1\n"
         "and N workers running trials; a worker that dies or stops fails its trial, not the search.\n"
         "Exit code: the chief's.\n";
}

LaunchOptions parse_options(const std::vector<std::string>& args) {
  LaunchOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      o.program.assign(args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (a.empty() || a[0] != '-') {  // the program, as mpirun takes it
      o.program.assign(args.begin() + static_cast<long>(i), args.end());
      break;
    }
    if (a == "-h" || a == "--help") {
      o.help = true;
      return o;
    }
    // Options take their value as the next word or after '=' (--timeout=30).
    std::string name = a, inline_value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      name = a.substr(0, a.find('='));
      inline_value = a.substr(a.find('=') + 1);
      has_inline = true;
    }
    auto value = [&]() -> std::string {
      if (has_inline) return inline_value;
      MF_CHECK(i + 1 < args.size(), "option ", name, " needs a value\n", usage());
      return args[++i];
    };
    if (name == "-np" || name == "-n" || name == "--np") {
      o.ranks = parse_int(name, value(), 1);
    } else if (name == "--hosts" || name == "--host" || name == "-H") {
      o.hosts = value();
      MF_CHECK(!o.hosts.empty(), "option --hosts: empty; expected a list like h1:2,h2:2");
    } else if (name == "--hostfile") {
      o.hostfile = value();
    } else if (name == "--config" || name == "-c") {
      o.config = value();
    } else if (name == "--launcher") {
      o.launcher = value();
      MF_CHECK(o.launcher == "auto" || o.launcher == "mpirun" || o.launcher == "srun", "option --launcher: '",
               o.launcher, "' is not one of auto, mpirun, srun");
    } else if (name == "--dry-run" && !has_inline) {
      o.dry_run = true;
    } else if (name == "--tuner" && !has_inline) {
      o.tuner = true;
    } else if (name == "--heartbeat-timeout") {
      std::string v = value();
      char* end = nullptr;
      double s = std::strtod(v.c_str(), &end);
      MF_CHECK(!v.empty() && *end == '\0' && std::isfinite(s) && s >= 0.001 && s <= 1e6, "option --heartbeat-timeout: '",
               v, "' is not a number of seconds from 0.001 to 1e6 (a worker silent this long loses its trial)");
      o.heartbeat_timeout_s = s;
    } else if (name == "--max-restarts") {
      o.max_restarts = parse_int(name, value(), 0);
    } else if (name == "--timeout") {
      std::string v = value();
      char* end = nullptr;
      double s = std::strtod(v.c_str(), &end);
      MF_CHECK(!v.empty() && *end == '\0' && std::isfinite(s) && s > 0, "option --timeout: '", v,
               "' is not a positive number of seconds");
      o.timeout_s = s;
    } else {
      MF_THROW("unknown option '", a, "' (the program and its arguments go after '--')\n", usage());
    }
  }
  MF_CHECK(o.hosts.empty() || o.hostfile.empty(), "options --hosts and --hostfile exclude each other; give one");
  MF_CHECK(o.tuner || !o.heartbeat_timeout_s, "option --heartbeat-timeout applies to a tuner search; add --tuner");
  MF_CHECK(!o.program.empty(), "no program to run: put it after the options (or after '--'), as in meshflow-run -np 2 ",
           "-- ./train\n", usage());
  return o;
}

}  // namespace meshflow::launcher
