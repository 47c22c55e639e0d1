// meshflow-serve in one object: the models, the REST server on 127.0.0.1 and, where built with
// gRPC and asked for (--port), the gRPC server.
#pragma once

#include <memory>

#include "meshflow/serving/config.h"

namespace meshflow::serving {

class Server {
 public:
  // Loads every model (the versions found now) and binds the ports; throws meshflow::Error naming
  // the flag, file or port that failed.
  explicit Server(ServerOptions options);
  ~Server();
  int rest_port() const;
  int grpc_port() const;  // -1 without gRPC
  // Serves until shutdown() (from any thread or a signal handler's thread) and every request in
  // flight has been answered, or the grace period ran out.
  void wait();
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshflow::serving
