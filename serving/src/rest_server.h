// The HTTP transport of the REST API: Boost.Beast on 127.0.0.1, a pool of I/O threads, body and
// time limits, and a drain that lets requests in flight finish (SIGTERM).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace meshflow::serving {

class RestApi;

struct RestServerOptions {
  int port = 8501;                   // 0: a free port
  int threads = 2;
  int64_t max_request_bytes = 64ll << 20;
  int64_t request_timeout_ms = 30000;
};

class RestServer {
 public:
  // Binds 127.0.0.1:port and starts serving; throws meshflow::Error naming the port when it cannot.
  RestServer(RestApi& api, RestServerOptions options);
  ~RestServer();
  int port() const;
  // Stops accepting, closes idle connections, waits up to `grace` for requests in flight to be
  // answered, then stops the threads. Returns false when the grace period ran out.
  bool drain(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshflow::serving
