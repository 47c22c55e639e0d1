// RemoteOracle: one TCP connection to the chief's OracleServer, one JSON line per call, and a
// thread that sends heartbeats on it (Note [Worker leases] in oracle_server.cpp).
#include <utility>  // Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "meshflow/core/error.h"
#include "meshflow/tuner/distributed.h"

namespace meshflow::tuner {

namespace asio = boost::asio;
using asio::ip::tcp;

struct RemoteOracle::Connection {
  asio::io_context io;
  tcp::socket sock{io};
  asio::streambuf buf;
  std::string where;
  std::mutex mu;  // one call at a time on the socket, and `dropped`
  std::string dropped;  // why the chief closed this connection (its last line), once it did
  // The heartbeat thread and how to stop it.
  std::thread beater;
  std::mutex beat_mu;
  std::condition_variable beat_cv;
  bool stopping = false;
  std::chrono::milliseconds interval{0};
};

namespace {
OracleOptions placeholder() { return {.objective = {"pending", "min"}, .max_trials = 1}; }
}  // namespace

RemoteOracle::RemoteOracle(const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout)
    : Oracle(placeholder()), conn_(std::make_unique<Connection>()) {
  MF_CHECK(!host.empty() && port != 0, "RemoteOracle: needs a host and a port, got '", host, "':", port);
  conn_->where = host + ":" + std::to_string(port);
  auto deadline = std::chrono::steady_clock::now() + connect_timeout;
  tcp::resolver resolver(conn_->io);
  boost::system::error_code ec;
  for (;;) {
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (!ec) {
      asio::connect(conn_->sock, endpoints, ec);
      if (!ec) break;
    }
    MF_CHECK(std::chrono::steady_clock::now() < deadline, "RemoteOracle: no oracle server at ", conn_->where,
             " within ", connect_timeout.count(), " ms (", ec.message(), ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  conn_->sock.set_option(tcp::no_delay(true));
  Json hello = call({{"op", "hello"}});
  o_.objective = {hello.at("objective").at("name").get<std::string>(),
                  hello.at("objective").at("direction").get<std::string>()};
  o_.max_trials = hello.at("max_trials").get<int>();
  set_project_dir(hello.at("project_dir").get<std::string>());
  const auto timeout = std::chrono::milliseconds(hello.value("heartbeat_timeout_ms", int64_t{30000}));
  conn_->interval = std::max(std::chrono::milliseconds(5), timeout / 4);
  conn_->beater = std::thread([this] { beat(); });
}

RemoteOracle::~RemoteOracle() {
  {
    std::lock_guard<std::mutex> lock(conn_->beat_mu);
    conn_->stopping = true;
  }
  conn_->beat_cv.notify_all();
  if (conn_->beater.joinable()) conn_->beater.join();
  boost::system::error_code ec;
  conn_->sock.close(ec);
}

void RemoteOracle::beat() {
  std::unique_lock<std::mutex> lock(conn_->beat_mu);
  while (!conn_->beat_cv.wait_for(lock, conn_->interval, [&] { return conn_->stopping; })) {
    lock.unlock();
    try {
      call({{"op", "heartbeat"}});
    } catch (const std::exception&) {
      return;  // the chief is gone or dropped us; the next call says so
    }
    lock.lock();
  }
}

Json RemoteOracle::call(const Json& request) const {
  std::lock_guard<std::mutex> lock(conn_->mu);
  MF_CHECK(conn_->dropped.empty(), "RemoteOracle: the oracle at ", conn_->where, " dropped this worker: ",
           conn_->dropped, "; '", request.value("op", ""), "' was not sent");
  boost::system::error_code ec;
  std::string line = request.dump() + "\n";
  asio::write(conn_->sock, asio::buffer(line), ec);
  MF_CHECK(!ec, "RemoteOracle: sending '", request.value("op", ""), "' to the oracle at ", conn_->where,
           " failed (", ec.message(), ")");
  asio::read_until(conn_->sock, conn_->buf, '\n', ec);
  MF_CHECK(!ec, "RemoteOracle: the oracle at ", conn_->where, " did not answer '", request.value("op", ""), "' (",
           ec.message(), ")");
  std::istream is(&conn_->buf);
  std::string answer;
  std::getline(is, answer);
  Json j = Json::parse(answer);
  if (j.value("closed", false)) conn_->dropped = j.value("error", "no reason given");
  if (j.contains("error")) MF_THROW("oracle at ", conn_->where, ": ", j.at("error").get<std::string>());
  return j.at("result");
}

void RemoteOracle::update_space(const HyperParameters& hp) { call({{"op", "update_space"}, {"space", hp.to_json()}}); }

HyperParameters RemoteOracle::space() const { return HyperParameters::from_json(call({{"op", "space"}})); }

Trial RemoteOracle::create_trial(const std::string& worker) {
  return Trial::from_json(call({{"op", "create_trial"}, {"worker", worker}}));
}

void RemoteOracle::end_trial(const Trial& trial) { call({{"op", "end_trial"}, {"trial", trial.to_json()}}); }

std::vector<Trial> RemoteOracle::trials() const {
  std::vector<Trial> out;
  for (const auto& t : call({{"op", "trials"}})) out.push_back(Trial::from_json(t));
  return out;
}

std::optional<Trial> RemoteOracle::trial(const std::string& id) const {
  for (auto& t : trials())
    if (t.trial_id == id) return t;
  return std::nullopt;
}

void RemoteOracle::attach(const std::string&, bool overwrite) {
  MF_CHECK(!overwrite, "RemoteOracle: a worker cannot overwrite the chief's project (", project_dir(),
           "); start the chief's oracle with overwrite instead");
}

Oracle::Next RemoteOracle::populate_space(const std::string&) {
  MF_THROW("RemoteOracle: the chief chooses the values (populate_space is never called on a worker)");
}

}  // namespace meshflow::tuner
