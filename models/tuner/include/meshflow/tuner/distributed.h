// Distributed tuning as Keras Tuner's chief/worker model: the chief serves its oracle over TCP
// (Boost.Asio) and each worker's tuner asks it for trials through a RemoteOracle, so several
// workers run different trials at once. A worker whose connection drops (it died) or that sends
// nothing for OracleServerOptions::heartbeat_timeout (it hangs or was stopped) has its running
// trials marked FAILED; the search goes on with the others (Note [Worker leases]).
//
//   chief:   OracleServer server(std::make_shared<RandomSearchOracle>(...), "0.0.0.0", 8000);
//            the oracle attached to the project folder first (oracle->attach(dir, false)).
//   worker:  Tuner tuner(build, std::make_shared<RemoteOracle>("chief-host", 8000), options);
//            tuner.search(x, y, fit);
// or, with no code for it, any Tuner under `meshflow-run --tuner`: DistributedTuning below says
// which role the process has and where the oracle is, and Tuner::search serves or works.
//
// The wire format is one JSON object per line: {"op": "create_trial", ...} and its answer.
// Built where Boost.Asio is found (MESHFLOW_HAVE_ASIO); elsewhere making either class throws
// saying so (src/distributed_unavailable.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "meshflow/tuner/oracle.h"

namespace meshflow::tuner {

// Where this process stands in a distributed search. meshflow-run --tuner sets the variables
// (Note [Tuner mode] in launcher/src/tuner_job.cpp); from_environment() reads them once:
//   MESHFLOW_TUNER_ID                 "chief" or a worker's id ("worker0", ...); unset: no role
//   MESHFLOW_TUNER_ORACLE_IP, _PORT   where the chief serves the oracle (127.0.0.1 and a free port)
//   MESHFLOW_TUNER_WORKERS            how many workers the launcher started (the chief waits for them)
//   MESHFLOW_TUNER_HEARTBEAT_TIMEOUT  seconds of silence after which a worker's trial fails (30)
//   MESHFLOW_FAILURE_DIR              where the chief reports trials lost with their workers
// They play the part of Keras Tuner's KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and _PORT.
struct DistributedTuning {
  enum class Role { None, Chief, Worker };
  Role role = Role::None;
  std::string tuner_id;             // "chief" or the worker's id
  std::string oracle_ip = "127.0.0.1";
  uint16_t oracle_port = 0;
  int expected_workers = 1;         // the chief is done once this many took trials and all left
  std::chrono::milliseconds heartbeat_timeout = std::chrono::seconds(30);
  std::string report_dir;           // empty: no report
  // Throws meshflow::Error naming the variable that is malformed (a port off 1..65535, a
  // non-positive timeout or worker count, an address that is not IPv4/IPv6) or missing (a role
  // without the oracle's address).
  static DistributedTuning from_environment();
  bool is_chief() const { return role == Role::Chief; }
  bool is_worker() const { return role == Role::Worker; }
};

// A trial failed because its worker was lost (disconnected, or silent past the heartbeat timeout).
struct LostTrial {
  std::string worker, trial_id, reason;
};

struct OracleServerOptions {
  // A worker that sends nothing, neither a call nor a heartbeat, for this long is taken for hung
  // or stopped: its trials fail and its connection is closed. Workers beat 4 times per timeout.
  std::chrono::milliseconds heartbeat_timeout = std::chrono::seconds(30);
  // Called, from a server thread, for each trial that failed with its worker.
  std::function<void(const LostTrial&)> on_lost_trial;
};

class OracleServer {
 public:
  // Listens on address:port (port 0: any free port, see port()); serves until stop() or
  // destruction. The oracle should be attached to its project folder (workers save their
  // trials' weights there, so on one machine or a shared file system). Throws meshflow::Error
  // for a null oracle, an address that is not an IP address, a port in use, a timeout <= 0.
  OracleServer(std::shared_ptr<Oracle> oracle, const std::string& address = "127.0.0.1", uint16_t port = 0,
               OracleServerOptions options = {});
  ~OracleServer();
  OracleServer(const OracleServer&) = delete;
  OracleServer& operator=(const OracleServer&) = delete;
  uint16_t port() const;
  // Connections now open (one per worker), and accepted since the start.
  int connections() const;
  int accepted() const;
  // Distinct workers that asked for a trial since the start.
  int workers() const;
  // The trials failed because their worker disconnected or went silent, in the order they failed.
  std::vector<LostTrial> lost_trials() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An oracle that forwards every call to an OracleServer. The constructor connects, retrying
// until `connect_timeout` (workers may start before the chief), and takes the chief's objective,
// project folder and heartbeat timeout; a thread then sends a heartbeat 4 times per timeout, so a
// worker busy in a long fit keeps its trial and one that is stopped loses it. A call to a chief
// that is gone, or that closed this worker's connection, throws naming the address and why.
class RemoteOracle : public Oracle {
 public:
  RemoteOracle(const std::string& host, uint16_t port,
               std::chrono::milliseconds connect_timeout = std::chrono::seconds(30));
  ~RemoteOracle() override;

  void update_space(const HyperParameters& hp) override;
  HyperParameters space() const override;
  Trial create_trial(const std::string& worker) override;
  void end_trial(const Trial& trial) override;
  std::vector<Trial> trials() const override;
  std::optional<Trial> trial(const std::string& id) const override;
  // The chief owns the folder: attach() only checks that it is the one named (or leaves it).
  void attach(const std::string& project_dir, bool overwrite) override;

 protected:
  Next populate_space(const std::string& trial_id) override;

 private:
  Json call(const Json& request) const;
  void beat();
  struct Connection;
  std::unique_ptr<Connection> conn_;
};

}  // namespace meshflow::tuner
