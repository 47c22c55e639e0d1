// meshflow-serve's parts put together, and taken apart in an order that loses no answer.
#include "meshflow/serving/server.h"

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include "grpc_frontend.h"
#include "meshflow/serving/metrics.h"
#include "meshflow/serving/model_manager.h"
#include "meshflow/serving/rest_api.h"
#include "rest_server.h"

namespace meshflow::serving {

struct Server::Impl {
  ServerOptions options;
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<ModelManager> models;
  std::unique_ptr<RestApi> api;
  std::unique_ptr<RestServer> rest;
  std::unique_ptr<GrpcFrontend> grpc;
  std::mutex mutex;
  std::condition_variable wake;
  bool stop_requested = false;
  bool stopped = false;

  // Note [Shutdown order]: the front ends stop taking requests and finish the ones in flight;
  // then the models go (their batchers run whatever is still queued, whose answers post to the
  // REST server's I/O context, so that object is destroyed last).
  void teardown() {
    if (stopped) return;
    stopped = true;
    const auto grace = std::chrono::milliseconds(options.shutdown_grace_ms);
    if (models) models->flush();  // queued requests run now instead of waiting for fuller batches
    if (grpc) grpc->shutdown(grace);
    bool drained = rest ? rest->drain(grace) : true;
    if (!drained) std::cerr << "meshflow-serve: requests still in flight after the grace period; closing them\n";
    if (models) models->stop();
    models.reset();
    grpc.reset();
    rest.reset();
    api.reset();
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  m.metrics = std::make_unique<Metrics>();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  m.models = std::make_unique<ModelManager>(model_specs(options), batching_options(options), cores, m.metrics.get(),
                                            options.intra_op_parallelism);
  m.models->poll();
  m.api = std::make_unique<RestApi>(*m.models, *m.metrics);
  RestServerOptions ro;
  ro.port = options.rest_api_port;
  ro.threads = options.rest_api_num_threads > 0 ? options.rest_api_num_threads : std::max(2, cores);
  ro.max_request_bytes = options.max_request_bytes;
  ro.request_timeout_ms = options.request_timeout_ms;
  m.rest = std::make_unique<RestServer>(*m.api, ro);
  if (options.grpc_port)
    m.grpc = start_grpc(*m.models, *m.metrics, {*options.grpc_port, options.max_request_bytes, options.request_timeout_ms});
  if (options.file_system_poll_wait_seconds > 0) m.models->start_watching(options.file_system_poll_wait_seconds);
}

Server::~Server() {
  shutdown();
  impl_->teardown();
}

int Server::rest_port() const { return impl_->rest ? impl_->rest->port() : -1; }
int Server::grpc_port() const { return impl_->grpc ? impl_->grpc->port() : -1; }

void Server::wait() {
  {
    std::unique_lock<std::mutex> lock(impl_->mutex);
    impl_->wake.wait(lock, [&] { return impl_->stop_requested; });
  }
  impl_->teardown();
}

void Server::shutdown() {
  // Notified under the lock: wait() cannot return (and main cannot destroy the server and its
  // condition variable) while this thread is still inside notify_all (TSan found that race).
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->stop_requested = true;
  impl_->wake.notify_all();
}

}  // namespace meshflow::serving
