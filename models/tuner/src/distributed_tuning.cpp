// DistributedTuning::from_environment and the chief's side of Tuner::search: serve the oracle
// until the workers are done. Compiled with or without Boost.Asio (OracleServer says what is missing).
#include <arpa/inet.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "meshflow/core/error.h"
#include "meshflow/tuner/distributed.h"
#include "meshflow/tuner/tuner.h"

namespace meshflow::tuner {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

long long env_integer(const char* name, const std::string& v, long long min, long long max) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  MF_CHECK(!v.empty() && *end == '\0' && errno == 0 && x >= min && x <= max, name, "='", v,
           "' is not an integer from ", min, " to ", max);
  return x;
}

bool is_ip_address(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

DistributedTuning DistributedTuning::from_environment() {
  DistributedTuning d;
  d.tuner_id = env("MESHFLOW_TUNER_ID");
  if (d.tuner_id.empty()) return d;
  d.role = d.tuner_id == "chief" ? Role::Chief : Role::Worker;
  const std::string ip = env("MESHFLOW_TUNER_ORACLE_IP"), port = env("MESHFLOW_TUNER_ORACLE_PORT");
  MF_CHECK(!ip.empty() && !port.empty(), "MESHFLOW_TUNER_ID=", d.tuner_id,
           " makes this process part of a distributed search, but MESHFLOW_TUNER_ORACLE_",
           ip.empty() ? "IP" : "PORT", " is not set (meshflow-run --tuner sets both: the chief's address and port)");
  MF_CHECK(is_ip_address(ip), "MESHFLOW_TUNER_ORACLE_IP='", ip, "' is not an IP address (e.g. 127.0.0.1)");
  d.oracle_ip = ip;
  d.oracle_port = static_cast<uint16_t>(env_integer("MESHFLOW_TUNER_ORACLE_PORT", port, 1, 65535));
  if (std::string w = env("MESHFLOW_TUNER_WORKERS"); !w.empty())
    d.expected_workers = static_cast<int>(env_integer("MESHFLOW_TUNER_WORKERS", w, 1, 1 << 20));
  if (std::string t = env("MESHFLOW_TUNER_HEARTBEAT_TIMEOUT"); !t.empty()) {
    char* end = nullptr;
    double s = std::strtod(t.c_str(), &end);
    MF_CHECK(*end == '\0' && std::isfinite(s) && s >= 0.001 && s <= 1e6, "MESHFLOW_TUNER_HEARTBEAT_TIMEOUT='", t,
             "' is not a number of seconds from 0.001 to 1e6");
    d.heartbeat_timeout = std::chrono::milliseconds(static_cast<int64_t>(std::llround(s * 1000)));
  }
  d.report_dir = env("MESHFLOW_FAILURE_DIR");
  return d;
}

void Tuner::serve_as_chief() {
  OracleServerOptions so{.heartbeat_timeout = role_.heartbeat_timeout};
  // Note [Tuner mode] in launcher/src/tuner_job.cpp: the launcher reads these lines for its summary.
  const std::string report = role_.report_dir.empty() ? "" : role_.report_dir + "/tuner-lost-trials.tsv";
  const int verbose = o_.verbose;
  so.on_lost_trial = [report, verbose](const LostTrial& t) {
    if (verbose > 0) {
      std::printf("Chief: trial %s failed: worker %s %s\n", t.trial_id.c_str(), t.worker.c_str(), t.reason.c_str());
      std::fflush(stdout);
    }
    if (report.empty()) return;
    if (std::FILE* f = std::fopen(report.c_str(), "a")) {
      std::fprintf(f, "%s\t%s\t%s\n", t.worker.c_str(), t.trial_id.c_str(), t.reason.c_str());
      std::fclose(f);
    }
  };
  OracleServer server(oracle_, role_.oracle_ip, role_.oracle_port, so);
  if (o_.verbose > 0) {
    std::printf("Chief: oracle on %s:%u; waiting for %d worker(s)\n", role_.oracle_ip.c_str(),
                static_cast<unsigned>(server.port()), role_.expected_workers);
    std::fflush(stdout);
  }
  // Done when no worker is connected and either every expected worker took part (each leaves when
  // the oracle has no more trials for it, dies, or is dropped for silence) or the launcher says no
  // worker process is left (one died before it asked for a trial).
  const std::string none_left = role_.report_dir.empty() ? "" : role_.report_dir + "/tuner-workers-ended";
  const auto first_deadline = std::chrono::steady_clock::now() + kChiefFirstWorkerWait;
  for (;;) {
    const bool ended = !none_left.empty() && std::filesystem::exists(none_left);
    if (server.connections() == 0 && (ended || server.workers() >= role_.expected_workers)) break;
    MF_CHECK(server.accepted() > 0 || std::chrono::steady_clock::now() < first_deadline, "Tuner (chief): no worker ",
             "connected to the oracle on ", role_.oracle_ip, ":", server.port(), " within ",
             std::chrono::duration_cast<std::chrono::seconds>(kChiefFirstWorkerWait).count(), " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  server.stop();
  if (o_.verbose > 0) {
    int completed = 0, failed = 0;
    for (const auto& t : oracle_->trials()) (t.status == TrialStatus::Completed ? completed : failed) += 1;
    std::printf("Chief: the workers are done: %d trial(s) completed, %d failed (%zu lost with their worker)\n",
                completed, failed, server.lost_trials().size());
    std::fflush(stdout);
  }
}

}  // namespace meshflow::tuner
