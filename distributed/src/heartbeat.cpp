// The heartbeat between a job's ranks (Note [Heartbeats]): one Boost.Asio thread per process,
// 5-byte messages to and from rank 0 every 250 ms.
#include "heartbeat.h"

#include <array>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>  // before Boost.Asio 1.74, whose C++20 coroutine header uses std::exchange unincluded

#include <boost/asio.hpp>

#include "meshflow/core/error.h"

namespace meshflow::distributed::internal {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kTick = std::chrono::milliseconds(250);
enum : char { kHello = 'H', kBeat = 'B', kFailed = 'F', kGoodbye = 'G' };
using Message = std::array<char, 5>;  // type, then a rank (int32, native order: one job, one machine type)

Message message(char type, int32_t rank) {
  Message m{};
  m[0] = type;
  std::memcpy(m.data() + 1, &rank, sizeof(rank));
  return m;
}

std::string seconds(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace

bool heartbeat_available() { return true; }

struct Heartbeat::Impl {
  struct Peer {
    explicit Peer(asio::io_context& io) : socket(io), last(Clock::now()) {}
    int rank = -1;  // -1 until its hello arrives (rank 0's side)
    tcp::socket socket;
    Clock::time_point last;
    Message in{};
    std::deque<Message> out;
    bool writing = false;
    bool gone = false;  // said goodbye or failed: checked no more
  };

  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::steady_timer timer{io}, stop_timer{io};
  std::vector<std::shared_ptr<Peer>> peers;
  std::vector<bool> connected;  // rank 0: which ranks said hello
  int rank = 0, size = 1;
  std::vector<std::string> hosts;
  std::chrono::milliseconds silence{3000};
  Clock::time_point started = Clock::now();
  bool stopping = false;
  mutable std::mutex mu;
  std::string failure;  // guarded by mu
  std::thread thread;

  std::string host(int r) const { return r >= 0 && r < static_cast<int>(hosts.size()) ? hosts[r] : "unknown"; }

  // Records the first failure; rank 0 tells the others which rank it was. Runs on the io thread.
  void fail(int who, const std::string& why) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!failure.empty()) return;
      failure = "rank " + std::to_string(who) + " (host " + host(who) + ") " + why;
    }
    if (rank == 0)
      for (auto& p : peers)
        if (p->rank != who && !p->gone) send(p, message(kFailed, who));
  }

  void send(const std::shared_ptr<Peer>& p, Message m) {
    p->out.push_back(m);
    if (!p->writing) write_next(p);
  }

  void write_next(const std::shared_ptr<Peer>& p) {
    if (p->out.empty()) {
      p->writing = false;
      if (stopping) {
        close(p);
        finish_if_all_closed();
      }
      return;
    }
    p->writing = true;
    asio::async_write(p->socket, asio::buffer(p->out.front()), [this, p](boost::system::error_code ec, size_t) {
      p->out.pop_front();
      if (ec) {  // the read side names a dead peer
        p->out.clear();
        p->writing = false;
        if (stopping) {
          close(p);
          finish_if_all_closed();
        }
        return;
      }
      write_next(p);
    });
  }

  // Once every goodbye is out the thread may end (the stop timer only bounds a peer that blocks).
  void finish_if_all_closed() {
    for (auto& p : peers)
      if (p->socket.is_open()) return;
    stop_timer.cancel();
  }

  static void close(const std::shared_ptr<Peer>& p) {
    boost::system::error_code ignored;
    p->socket.shutdown(tcp::socket::shutdown_both, ignored);
    p->socket.close(ignored);
  }

  void read(const std::shared_ptr<Peer>& p) {
    asio::async_read(p->socket, asio::buffer(p->in), [this, p](boost::system::error_code ec, size_t) {
      if (ec) {
        if (!p->gone && !stopping && p->rank >= 0) {
          p->gone = true;
          fail(p->rank, "closed its heartbeat without a goodbye: its process died (or its host became unreachable)");
        }
        return;
      }
      int32_t r = 0;
      std::memcpy(&r, p->in.data() + 1, sizeof(r));
      p->last = Clock::now();
      if (p->in[0] == kHello && r > 0 && r < size) {
        p->rank = r;
        connected[static_cast<size_t>(r)] = true;
      } else if (p->in[0] == kGoodbye) {
        p->gone = true;
        return;
      } else if (p->in[0] == kFailed && rank != 0) {
        fail(r, "stopped sending heartbeats to rank 0: it is stopped, dead or unreachable");
      }
      read(p);
    });
  }

  void accept() {
    auto p = std::make_shared<Peer>(io);
    acceptor.async_accept(p->socket, [this, p](boost::system::error_code ec) {
      if (ec || stopping) return;
      p->last = Clock::now();
      peers.push_back(p);
      read(p);
      if (static_cast<int>(peers.size()) < size - 1) accept();
    });
  }

  void tick() {
    timer.expires_after(kTick);
    timer.async_wait([this](boost::system::error_code ec) {
      if (ec || stopping) return;
      const auto now = Clock::now();
      for (auto& p : peers) {
        if (p->gone) continue;
        send(p, message(kBeat, rank));
        if (p->rank >= 0 && now - p->last > silence) {
          p->gone = true;
          fail(p->rank, "sent no heartbeat for " + seconds(now - p->last) + ": it is stopped or unreachable");
        }
      }
      if (rank == 0 && now - started > silence)
        for (int r = 1; r < size; ++r)
          if (!connected[static_cast<size_t>(r)]) {
            connected[static_cast<size_t>(r)] = true;
            fail(r, "never connected its heartbeat within " + seconds(silence));
          }
      tick();
    });
  }
};

Heartbeat::Heartbeat(int rank, int size, std::vector<std::string> hosts, const std::function<int(int)>& share_port,
                     std::chrono::milliseconds silence)
    : impl_(std::make_shared<Impl>()) {
  Impl& s = *impl_;
  s.rank = rank;
  s.size = size;
  s.hosts = std::move(hosts);
  s.silence = silence;
  s.connected.assign(static_cast<size_t>(size), false);
  bool one_host = true;
  for (const auto& h : s.hosts) one_host = one_host && h == s.hosts[0];
  // Only loopback when the whole job is on this host; a cluster needs rank 0's network address.
  const auto address = one_host ? asio::ip::address_v4::loopback() : asio::ip::address_v4::any();
  int port = 0;
  std::string setup_error;
  try {
    if (rank == 0) {
      tcp::endpoint at(address, 0);
      s.acceptor.open(at.protocol());
      s.acceptor.set_option(tcp::acceptor::reuse_address(true));
      s.acceptor.bind(at);
      s.acceptor.listen();
      port = s.acceptor.local_endpoint().port();
    }
  } catch (const std::exception& e) {
    setup_error = e.what();
    port = -1;  // tells the others not to connect
  }
  port = share_port(port);
  MF_CHECK(port > 0, "heartbeat: rank 0 could not listen", setup_error.empty() ? "" : ": " + setup_error);
  if (rank != 0) {
    auto p = std::make_shared<Impl::Peer>(s.io);
    p->rank = 0;
    tcp::resolver resolver(s.io);
    const std::string where = one_host ? "127.0.0.1" : s.hosts[0];
    boost::system::error_code ec;
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto endpoints = resolver.resolve(where, std::to_string(port), ec);
      if (!ec) asio::connect(p->socket, endpoints, ec);
      if (!ec) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    MF_CHECK(!ec, "heartbeat: rank ", rank, " cannot connect to rank 0 at ", where, ":", port, ": ", ec.message());
    const Message hello = message(kHello, rank);
    asio::write(p->socket, asio::buffer(hello));
    s.peers.push_back(p);
    s.read(p);
  } else {
    s.connected[0] = true;
    if (size > 1) s.accept();
  }
  s.tick();
  s.thread = std::thread([impl = impl_] { impl->io.run(); });
}

Heartbeat::~Heartbeat() {
  auto impl = impl_;
  asio::post(impl->io, [impl] {
    impl->stopping = true;
    impl->timer.cancel();
    boost::system::error_code ignored;
    impl->acceptor.close(ignored);
    for (auto& p : impl->peers) {
      if (p->gone || !p->socket.is_open()) {
        Impl::close(p);
      } else {
        impl->send(p, message(kGoodbye, impl->rank));  // closed once written (write_next)
      }
    }
    // A peer that takes no more bytes must not hold the exit: stop regardless after 500 ms.
    impl->stop_timer.expires_after(std::chrono::milliseconds(500));
    impl->stop_timer.async_wait([impl](boost::system::error_code ec) {
      if (!ec) impl->io.stop();
    });
    impl->finish_if_all_closed();
  });
  if (impl->thread.joinable()) impl->thread.join();
}

std::string Heartbeat::failure() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->failure;
}

}  // namespace meshflow::distributed::internal
