// The gRPC front end of a build without gRPC: asking for --port is an error that says why.
#include "grpc_frontend.h"

#include "meshflow/core/error.h"

namespace meshflow::serving {

std::unique_ptr<GrpcFrontend> start_grpc(ModelManager&, Metrics&, const GrpcOptions& options) {
  MF_THROW("--port=", options.port, ": this meshflow-serve was built without gRPC (configure found no gRPC++; install "
           "libgrpc++-dev and protobuf-compiler-grpc, or leave --port out to serve REST only)");
}

}  // namespace meshflow::serving
