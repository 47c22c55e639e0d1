// Distributed tuning as Keras Tuner's chief/worker model: the chief serves its oracle over TCP
// (Boost.Asio) and each worker's tuner asks it for trials through a RemoteOracle, so several
// workers run different trials at once. A worker whose connection drops (it died) has its
// running trials marked FAILED; the search goes on with the others.
//
//   chief:   OracleServer server(std::make_shared<RandomSearchOracle>(...), "0.0.0.0", 8000);
//            the oracle attached to the project folder first (oracle->attach(dir, false)).
//   worker:  Tuner tuner(build, std::make_shared<RemoteOracle>("chief-host", 8000), options);
//            tuner.search(x, y, fit);
//
// The wire format is one JSON object per line: {"op": "create_trial", ...} and its answer.
// Built where Boost.Asio is found (MESHFLOW_HAVE_ASIO); elsewhere making either class throws
// saying so (src/distributed_unavailable.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "meshflow/tuner/oracle.h"

namespace meshflow::tuner {

class OracleServer {
 public:
  // Listens on address:port (port 0: any free port, see port()); serves until stop() or
  // destruction. The oracle should be attached to its project folder (workers save their
  // trials' weights there, so on one machine or a shared file system).
  OracleServer(std::shared_ptr<Oracle> oracle, const std::string& address = "127.0.0.1", uint16_t port = 0);
  ~OracleServer();
  OracleServer(const OracleServer&) = delete;
  OracleServer& operator=(const OracleServer&) = delete;
  uint16_t port() const;
  // Connections now open (one per worker), and accepted since the start.
  int connections() const;
  int accepted() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An oracle that forwards every call to an OracleServer. The constructor connects, retrying
// until `connect_timeout` (workers may start before the chief), and takes the chief's objective
// and project folder; a call to a chief that is gone throws naming the address.
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
  struct Connection;
  std::unique_ptr<Connection> conn_;
};

}  // namespace meshflow::tuner
