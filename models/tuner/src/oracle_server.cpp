// OracleServer: a thread per worker connection, each reading JSON lines and answering from the
// shared oracle; a dropped connection fails the trials that worker left running.
#include <utility>  // Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "meshflow/core/error.h"
#include "meshflow/tuner/distributed.h"

namespace meshflow::tuner {

namespace asio = boost::asio;
using asio::ip::tcp;

struct OracleServer::Impl {
  std::shared_ptr<Oracle> oracle;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::thread accept_thread;
  mutable std::mutex mu;
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<tcp::socket>> sockets;
  std::atomic<int> open{0};
  std::atomic<int> accepted{0};

  Json handle(const Json& req, std::set<std::string>& running) {
    const std::string op = req.at("op").get<std::string>();
    if (op == "hello")
      return {{"objective", oracle->objective().to_json()}, {"project_dir", oracle->project_dir()},
              {"max_trials", oracle->max_trials()}};
    if (op == "create_trial") {
      Trial t = oracle->create_trial(req.at("worker").get<std::string>());
      if (t.status == TrialStatus::Running) running.insert(t.trial_id);
      return t.to_json();
    }
    if (op == "end_trial") {
      Trial t = Trial::from_json(req.at("trial"));
      oracle->end_trial(t);
      running.erase(t.trial_id);
      return {{"ok", true}};
    }
    if (op == "update_space") {
      oracle->update_space(HyperParameters::from_json(req.at("space")));
      return {{"ok", true}};
    }
    if (op == "space") return oracle->space().to_json();
    if (op == "trials") {
      Json out = Json::array();
      for (const auto& t : oracle->trials()) out.push_back(t.to_json());
      return out;
    }
    MF_THROW("OracleServer: unknown request '", op, "'");
  }

  void serve(std::shared_ptr<tcp::socket> sock) {
    ++open;
    std::set<std::string> running;  // trials this worker has and has not ended
    std::string worker = "?";
    asio::streambuf buf;
    for (;;) {
      boost::system::error_code ec;
      asio::read_until(*sock, buf, '\n', ec);
      if (ec) break;
      std::istream is(&buf);
      std::string line;
      std::getline(is, line);
      Json answer;
      try {
        Json req = Json::parse(line);
        if (req.contains("worker")) worker = req.at("worker").get<std::string>();
        answer = {{"result", handle(req, running)}};
      } catch (const std::exception& e) {
        answer = {{"error", e.what()}};
      }
      std::string out = answer.dump() + "\n";
      asio::write(*sock, asio::buffer(out), ec);
      if (ec) break;
    }
    // The worker is gone: what it was running failed (Keras Tuner's chief does the same when a
    // worker stops reporting).
    for (const auto& id : running) {
      auto t = oracle->trial(id);
      if (!t || t->status != TrialStatus::Running) continue;
      t->status = TrialStatus::Failed;
      t->score.reset();
      t->message = "worker " + worker + " disconnected during the trial";
      try {
        oracle->end_trial(*t);
      } catch (const std::exception&) {
      }
    }
    --open;
  }

  void accept_loop() {
    while (!stopping) {
      auto sock = std::make_shared<tcp::socket>(io);
      boost::system::error_code ec;
      acceptor.accept(*sock, ec);
      if (stopping) break;
      if (ec) continue;
      std::lock_guard<std::mutex> lock(mu);
      ++accepted;
      sockets.push_back(sock);
      threads.emplace_back([this, sock] { serve(sock); });
    }
  }
};

OracleServer::OracleServer(std::shared_ptr<Oracle> oracle, const std::string& address, uint16_t port)
    : impl_(std::make_unique<Impl>()) {
  MF_CHECK(oracle, "OracleServer: the oracle is null");
  impl_->oracle = std::move(oracle);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  MF_CHECK(!ec, "OracleServer: '", address, "' is not an IP address (", ec.message(), ")");
  tcp::endpoint ep(addr, port);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  MF_CHECK(!ec, "OracleServer: cannot listen on ", address, ":", port, " (", ec.message(), ")");
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept_thread = std::thread([this] { impl_->accept_loop(); });
}

OracleServer::~OracleServer() { stop(); }

uint16_t OracleServer::port() const { return impl_->port; }

int OracleServer::connections() const { return impl_->open.load(); }

int OracleServer::accepted() const { return impl_->accepted.load(); }

void OracleServer::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  // Wake the blocking accept with a connection of our own, then close every socket so the
  // connection threads' reads return.
  {
    boost::system::error_code ec;
    asio::io_context io;
    tcp::socket wake(io);
    wake.connect(tcp::endpoint(impl_->acceptor.local_endpoint().address().is_unspecified()
                                   ? asio::ip::make_address("127.0.0.1")
                                   : impl_->acceptor.local_endpoint().address(),
                               impl_->port),
                 ec);
  }
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (auto& s : impl_->sockets) s->shutdown(tcp::socket::shutdown_both, ec);
    threads.swap(impl_->threads);
  }
  for (auto& t : threads) t.join();
}

}  // namespace meshflow::tuner
