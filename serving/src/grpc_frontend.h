// The gRPC API behind one small interface, so the server never asks whether gRPC was built:
// grpc_server.cpp (TF Serving's PredictionService and ModelService) or grpc_absent.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace meshflow::serving {

class Metrics;
class ModelManager;

class GrpcFrontend {
 public:
  virtual ~GrpcFrontend() = default;
  virtual int port() const = 0;
  // Stops taking calls; calls in flight get until `grace` to finish.
  virtual void shutdown(std::chrono::milliseconds grace) = 0;
};

struct GrpcOptions {
  int port = 0;                          // 0: a free port
  int64_t max_message_bytes = 64ll << 20;
  int64_t request_timeout_ms = 30000;    // a call's answer waits at most this long (Note [gRPC deadlines])
};

// Binds 127.0.0.1:port. Throws meshflow::Error when the port cannot be bound, or when this build
// has no gRPC (the message says how to get it).
std::unique_ptr<GrpcFrontend> start_grpc(ModelManager& models, Metrics& metrics, const GrpcOptions& options);

}  // namespace meshflow::serving
