// Private to distributed/src: a heartbeat between the ranks of a job, over TCP (Boost.Asio), that
// tells a stopped or dead rank from a slow one within seconds.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace meshflow::distributed::internal {

// Note [Heartbeats]
// The collective timeout cannot tell a rank that is gone (killed, stopped, cut off) from one that
// is slow (rank 0 writing a checkpoint for a minute): both just have not arrived. A heartbeat can:
// every rank runs a small thread that exchanges a few bytes with rank 0 every 250 ms, whatever its
// main thread is doing. Rank 0 hears every rank; every rank hears rank 0. A peer silent for
// `silence` is stopped or unreachable, a connection that closes without a goodbye is a dead
// process; rank 0 then tells every other rank which rank failed. A collective waiting on such a
// job stops waiting and throws, naming the rank, long before its timeout; a slow rank keeps
// beating and trips nothing. This supersedes "MPI itself carries the side channel"
// (docs/distributed.md): a rank stopped inside MPI answers nothing on MPI, but the kernel still
// tells a TCP peer when its process dies, and a silent peer is measured by our own clock.
class Heartbeat {
 public:
  // Collective: rank 0 listens on an ephemeral port (loopback when every rank is on its host, all
  // interfaces otherwise) and share_port(port) gives it to every rank (share_port(0) on the others
  // returns it); the others connect to rank 0 (its host name from `hosts`).
  Heartbeat(int rank, int size, std::vector<std::string> hosts, const std::function<int(int)>& share_port,
            std::chrono::milliseconds silence);
  ~Heartbeat();  // says goodbye (a clean end is no failure) and stops the thread
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Empty while every peer beats; else a sentence naming the first rank found stopped or dead.
  std::string failure() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Whether this build has the heartbeat (Boost.Asio was found); without it the constructor does
// nothing and failure() is always empty.
bool heartbeat_available();

}  // namespace meshflow::distributed::internal
