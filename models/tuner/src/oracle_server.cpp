// OracleServer: a thread per worker connection, each reading JSON lines and answering from the
// shared oracle; a dropped connection, or one silent past the heartbeat timeout, fails the trials
// that worker left running.
#include <utility>  // Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "meshflow/core/error.h"
#include "meshflow/tuner/distributed.h"

namespace meshflow::tuner {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Note [Worker leases]
// A worker holds its trials on a lease that every line it sends renews: calls, and the heartbeat
// its RemoteOracle's thread sends 4 times per timeout whatever the training thread is doing. A
// killed worker's socket closes at once (the kernel closes it), so its trials fail at once; a
// stopped (SIGSTOP) or frozen one keeps its socket open but sends nothing, so a reaper thread fails
// its trials once it has been silent for heartbeat_timeout, writes the reason to the worker as a
// last error line and closes the connection. A stopped worker that is continued later finds its
// connection closed and its next call throws that reason; it cannot end a trial that already
// failed. Failed, not offered again: the same rule as a killed worker (Keras Tuner's chief also
// marks a lost worker's trial failed). A request being answered is never expired (the server, not
// the worker, is the slow one then). A worker whose training thread deadlocks while its heartbeat
// thread runs keeps its trial: a lease tells silent processes from living ones, not slow work from
// stuck work (the launcher's --timeout bounds that).

struct OracleServer::Impl {
  struct Session {
    std::shared_ptr<tcp::socket> sock;
    std::mutex mu;  // everything below, and writes to sock
    std::set<std::string> running;  // trials this worker holds
    std::string worker = "?";
    Clock::time_point last_seen = Clock::now();
    bool busy = false;     // a request is being answered
    bool expired = false;  // silent too long: trials failed, connection closed
  };

  std::shared_ptr<Oracle> oracle;
  OracleServerOptions options;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::thread accept_thread, reaper_thread;
  mutable std::mutex mu;  // threads, sessions, workers_seen, lost
  std::condition_variable reaper_cv;
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<Session>> sessions;
  std::set<std::string> workers_seen;
  std::vector<LostTrial> lost;
  std::atomic<int> open{0};
  std::atomic<int> accepted{0};

  // Fails the trials `ids` of `worker` that are still running, with `reason`.
  void fail_trials(const std::string& worker, const std::set<std::string>& ids, const std::string& reason) {
    for (const auto& id : ids) {
      auto t = oracle->trial(id);
      if (!t || t->status != TrialStatus::Running) continue;
      t->status = TrialStatus::Failed;
      t->score.reset();
      t->message = "worker " + worker + " " + reason + " during the trial";
      try {
        oracle->end_trial(*t);
      } catch (const std::exception&) {
        continue;
      }
      LostTrial record{worker, id, reason};
      {
        std::lock_guard<std::mutex> lock(mu);
        lost.push_back(record);
      }
      if (options.on_lost_trial) {
        try {
          options.on_lost_trial(record);
        } catch (const std::exception&) {
          // A report that cannot be written must not stop the server.
        }
      }
    }
  }

  Json handle(const Json& req, Session& s) {
    const std::string op = req.at("op").get<std::string>();
    if (op == "hello")
      return {{"objective", oracle->objective().to_json()},
              {"project_dir", oracle->project_dir()},
              {"max_trials", oracle->max_trials()},
              {"heartbeat_timeout_ms", options.heartbeat_timeout.count()}};
    if (op == "heartbeat") return {{"ok", true}};
    if (op == "create_trial") {
      const std::string worker = req.at("worker").get<std::string>();
      MF_CHECK(!worker.empty(), "OracleServer: create_trial needs a worker id");
      {
        std::lock_guard<std::mutex> lock(mu);
        workers_seen.insert(worker);
      }
      Trial t = oracle->create_trial(worker);
      if (t.status == TrialStatus::Running) {
        std::lock_guard<std::mutex> lock(s.mu);
        s.running.insert(t.trial_id);
      }
      return t.to_json();
    }
    if (op == "end_trial") {
      Trial t = Trial::from_json(req.at("trial"));
      {
        std::lock_guard<std::mutex> lock(s.mu);
        if (!s.running.count(t.trial_id)) {
          auto held = oracle->trial(t.trial_id);
          MF_THROW("OracleServer: worker ", s.worker, " ends trial ", t.trial_id, " that it does not hold",
                   held ? " (it is " + status_name(held->status) + (held->message.empty() ? "" : ": " + held->message) + ")"
                        : " (no such trial)");
        }
      }
      oracle->end_trial(t);
      std::lock_guard<std::mutex> lock(s.mu);
      s.running.erase(t.trial_id);
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

  void serve(std::shared_ptr<Session> s) {
    ++open;
    asio::streambuf buf;
    for (;;) {
      boost::system::error_code ec;
      asio::read_until(*s->sock, buf, '\n', ec);
      if (ec) break;
      std::istream is(&buf);
      std::string line;
      std::getline(is, line);
      {
        std::lock_guard<std::mutex> lock(s->mu);
        if (s->expired) break;
        s->busy = true;
        s->last_seen = Clock::now();
      }
      Json answer;
      try {
        Json req = Json::parse(line);
        if (req.contains("worker") && req.at("worker").is_string()) {
          std::lock_guard<std::mutex> lock(s->mu);
          s->worker = req.at("worker").get<std::string>();
        }
        answer = {{"result", handle(req, *s)}};
      } catch (const std::exception& e) {
        answer = {{"error", e.what()}};
      }
      std::string out = answer.dump() + "\n";
      std::lock_guard<std::mutex> lock(s->mu);
      s->busy = false;
      s->last_seen = Clock::now();
      asio::write(*s->sock, asio::buffer(out), ec);
      if (ec) break;
    }
    // The worker is gone: what it was running failed (Keras Tuner's chief does the same when a
    // worker stops reporting). An expired session's trials failed already.
    std::set<std::string> running;
    std::string worker;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      running.swap(s->running);
      worker = s->worker;
    }
    fail_trials(worker, running, "disconnected");
    --open;
  }

  // Note [Worker leases]: fails the trials of sessions silent for longer than the timeout.
  void reap() {
    const auto timeout = options.heartbeat_timeout;
    const auto period = std::clamp(timeout / 10, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      reaper_cv.wait_for(lock, period, [&] { return stopping.load(); });
      if (stopping) break;
      std::vector<std::shared_ptr<Session>> all = sessions;
      lock.unlock();
      for (auto& s : all) {
        std::set<std::string> running;
        std::string worker, reason;
        {
          std::lock_guard<std::mutex> slock(s->mu);
          const auto silent = Clock::now() - s->last_seen;
          if (s->expired || s->busy || silent <= timeout) continue;
          s->expired = true;
          running.swap(s->running);
          worker = s->worker;
          char text[160];
          std::snprintf(text, sizeof(text), "sent no heartbeat for %.1f s (timeout %.1f s; hung or stopped)",
                        std::chrono::duration<double>(silent).count(),
                        std::chrono::duration<double>(timeout).count());
          reason = text;
          // The last line the worker reads, if it ever reads again, says why it was dropped.
          Json last = {{"error", "worker " + worker + " " + reason + "; the chief failed its trials and closed "
                                 "this connection"},
                      {"closed", true}};
          std::string out = last.dump() + "\n";
          boost::system::error_code ec;
          asio::write(*s->sock, asio::buffer(out), ec);
          s->sock->shutdown(tcp::socket::shutdown_both, ec);
        }
        fail_trials(worker, running, reason);
      }
      lock.lock();
    }
  }

  void accept_loop() {
    while (!stopping) {
      auto sock = std::make_shared<tcp::socket>(io);
      boost::system::error_code ec;
      acceptor.accept(*sock, ec);
      if (stopping) break;
      if (ec) continue;
      auto s = std::make_shared<Session>();
      s->sock = sock;
      std::lock_guard<std::mutex> lock(mu);
      ++accepted;
      sessions.push_back(s);
      threads.emplace_back([this, s] { serve(s); });
    }
  }
};

OracleServer::OracleServer(std::shared_ptr<Oracle> oracle, const std::string& address, uint16_t port,
                           OracleServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  MF_CHECK(oracle, "OracleServer: the oracle is null");
  MF_CHECK(options.heartbeat_timeout.count() > 0, "OracleServer: heartbeat_timeout must be > 0, not ",
           options.heartbeat_timeout.count(), " ms");
  impl_->oracle = std::move(oracle);
  impl_->options = std::move(options);
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
  impl_->reaper_thread = std::thread([this] { impl_->reap(); });
}

OracleServer::~OracleServer() { stop(); }

uint16_t OracleServer::port() const { return impl_->port; }

int OracleServer::connections() const { return impl_->open.load(); }

int OracleServer::accepted() const { return impl_->accepted.load(); }

int OracleServer::workers() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return static_cast<int>(impl_->workers_seen.size());
}

std::vector<LostTrial> OracleServer::lost_trials() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->lost;
}

void OracleServer::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->reaper_cv.notify_all();
  }
  if (impl_->reaper_thread.joinable()) impl_->reaper_thread.join();
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
    for (auto& s : impl_->sessions) s->sock->shutdown(tcp::socket::shutdown_both, ec);
    threads.swap(impl_->threads);
  }
  for (auto& t : threads) t.join();
}

}  // namespace meshflow::tuner
