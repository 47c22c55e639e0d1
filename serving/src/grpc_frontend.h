// The gRPC API behind one small interface, so the server never asks whether gRPC was built:
// grpc_server.cpp (TF Serving's PredictionService and ModelService) or grpc_absent.cpp.
#pragma once

#include <chrono>
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

// Binds 127.0.0.1:port (0: a free port). Throws meshflow::Error when the port cannot be bound, or
// when this build has no gRPC (the message says how to get it).
std::unique_ptr<GrpcFrontend> start_grpc(ModelManager& models, Metrics& metrics, int port, int64_t max_message_bytes);

}  // namespace meshflow::serving
