// TF Serving's gRPC API on our own protos with TF Serving's names and field numbers (serving/proto),
// so stock clients work unchanged: PredictionService's Predict, Classify, Regress, MultiInference
// and GetModelMetadata, and ModelService's GetModelStatus.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <future>

#include "grpc_frontend.h"
#include "grpc_tensors.h"
#include "meshflow/serving/metrics.h"
#include "meshflow/serving/model_manager.h"
#include "tensorflow_serving/apis/model_service.grpc.pb.h"
#include "tensorflow_serving/apis/prediction_service.grpc.pb.h"

namespace meshflow::serving {

namespace tfs = tensorflow::serving;

namespace {

[[noreturn]] void invalid(const std::string& message) { throw ServingError(400, message); }

grpc::Status to_status(int http_status, const std::string& message) {
  switch (http_status) {
    case 400: return {grpc::StatusCode::INVALID_ARGUMENT, message};
    case 404: return {grpc::StatusCode::NOT_FOUND, message};
    case 413: return {grpc::StatusCode::RESOURCE_EXHAUSTED, message};
    case 503: return {grpc::StatusCode::UNAVAILABLE, message};
    case 504: return {grpc::StatusCode::DEADLINE_EXCEEDED, message};
    default: return {grpc::StatusCode::INTERNAL, message};
  }
}

// Note [gRPC deadlines]: a call gets until the earlier of its client's deadline (grpc-timeout) and
// --request_timeout_ms after it arrived, the bound REST puts on a request. The handler waits for the
// model's answer until then and answers DEADLINE_EXCEEDED; the batcher drops a request still queued
// at its deadline instead of running it (Batcher::submit), so an abandoned call costs no model time.
struct Deadline {
  std::chrono::steady_clock::time_point at;
  std::string why;  // said in the DEADLINE_EXCEEDED message
};

Deadline deadline_of(const grpc::ServerContext& ctx, int64_t request_timeout_ms) {
  const auto now = std::chrono::steady_clock::now();
  Deadline d{now + std::chrono::milliseconds(request_timeout_ms),
             "no answer within --request_timeout_ms=" + std::to_string(request_timeout_ms)};
  const auto left = ctx.deadline() - std::chrono::system_clock::now();
  if (left < std::chrono::hours(24 * 365) && now + left < d.at) {
    d.at = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
    d.why = "the client's deadline passed";
  }
  if (d.at <= now) throw ServingError(504, d.why + " before the call was read");
  return d;
}

// The model on `inputs`, through its batcher, waiting no later than the deadline.
std::vector<Tensor> run(Batcher& batcher, std::vector<Tensor> inputs, int64_t rows, const Deadline& deadline) {
  auto promise = std::make_shared<std::promise<RunResult>>();
  auto answer = promise->get_future();
  batcher.submit(std::move(inputs), rows, [promise](RunResult r) { promise->set_value(std::move(r)); }, deadline.at);
  if (answer.wait_until(deadline.at) != std::future_status::ready)
    throw ServingError(504, deadline.why + " (model '" + batcher.servable()->model_name() + "')");
  RunResult result = answer.get();
  if (result.error) std::rethrow_exception(result.error);
  return std::move(result.outputs);
}

std::shared_ptr<Batcher> find(ModelManager& models, const tfs::ModelSpec& spec) {
  if (spec.name().empty()) invalid("model_spec.name is empty; name the model to use");
  const std::string& sig_name = spec.signature_name();
  if (!sig_name.empty() && sig_name != "serving_default")
    invalid("unknown signature_name '" + sig_name + "'; the model has 'serving_default'");
  std::optional<int64_t> version;
  if (spec.has_version()) version = spec.version().value();
  return models.find(spec.name(), version, spec.version_label());
}

void set_spec(const Servable& s, tfs::ModelSpec* spec) {
  spec->set_name(s.model_name());
  spec->mutable_version()->set_value(s.version());
  spec->set_signature_name("serving_default");
}

void write_classes(const Signature& sig, const std::vector<Tensor>& outputs, tfs::ClassificationResult* out) {
  for (const auto& row : classify_results(sig, outputs)) {
    auto* c = out->add_classifications();
    for (const auto& [label, score] : row) {
      auto* cls = c->add_classes();
      cls->set_label(label);
      cls->set_score(static_cast<float>(score));
    }
  }
}

void write_regressions(const std::vector<Tensor>& outputs, tfs::RegressionResult* out) {
  for (double v : regress_results(outputs)) out->add_regressions()->set_value(static_cast<float>(v));
}

void tensor_info(const TensorSpec& t, tensorflow::TensorInfo* info) {
  info->set_name(t.name);
  info->set_dtype(static_cast<tensorflow::DataType>(tf_dtype_enum(t.dtype)));
  for (int64_t d : t.shape) info->mutable_tensor_shape()->add_dim()->set_size(d);
}

class PredictionService final : public tfs::PredictionService::Service {
 public:
  PredictionService(ModelManager& models, Metrics& metrics, int64_t request_timeout_ms)
      : models_(models), metrics_(metrics), request_timeout_ms_(request_timeout_ms) {}

  grpc::Status Predict(grpc::ServerContext* ctx, const tfs::PredictRequest* req, tfs::PredictResponse* res) override {
    return serve(*ctx, req->model_spec().name(), "grpc_predict", [&](const Deadline& d) { predict(*req, *res, d); });
  }

  grpc::Status Classify(grpc::ServerContext* ctx, const tfs::ClassificationRequest* req,
                        tfs::ClassificationResponse* res) override {
    return serve(*ctx, req->model_spec().name(), "grpc_classify", [&](const Deadline& d) {
      auto batcher = find(models_, req->model_spec());
      const Servable& s = *batcher->servable();
      check_method(s.signature(), s.model_name(), Method::Classify);
      ExampleRows in = examples_to_inputs(req->input(), s.signature(), s.model_name());
      write_classes(s.signature(), run(*batcher, std::move(in.inputs), in.rows, d), res->mutable_result());
      set_spec(s, res->mutable_model_spec());
    });
  }

  grpc::Status Regress(grpc::ServerContext* ctx, const tfs::RegressionRequest* req,
                       tfs::RegressionResponse* res) override {
    return serve(*ctx, req->model_spec().name(), "grpc_regress", [&](const Deadline& d) {
      auto batcher = find(models_, req->model_spec());
      const Servable& s = *batcher->servable();
      check_method(s.signature(), s.model_name(), Method::Regress);
      ExampleRows in = examples_to_inputs(req->input(), s.signature(), s.model_name());
      write_regressions(run(*batcher, std::move(in.inputs), in.rows, d), res->mutable_result());
      set_spec(s, res->mutable_model_spec());
    });
  }

  grpc::Status MultiInference(grpc::ServerContext* ctx, const tfs::MultiInferenceRequest* req,
                              tfs::MultiInferenceResponse* res) override {
    const std::string model = req->tasks().empty() ? "" : req->tasks(0).model_spec().name();
    return serve(*ctx, model, "grpc_multi_inference", [&](const Deadline& d) { multi_inference(*req, *res, d); });
  }

  grpc::Status GetModelMetadata(grpc::ServerContext* ctx, const tfs::GetModelMetadataRequest* req,
                                tfs::GetModelMetadataResponse* res) override {
    return serve(*ctx, req->model_spec().name(), "grpc_metadata", [&](const Deadline&) {
      if (req->metadata_field().empty()) invalid("metadata_field is empty; ask for \"signature_def\"");
      for (const auto& f : req->metadata_field())
        if (f != "signature_def") invalid("metadata_field '" + f + "' is not one meshflow-serve has; ask for \"signature_def\"");
      auto batcher = find(models_, req->model_spec());
      const Servable& s = *batcher->servable();
      tfs::SignatureDefMap map;
      tensorflow::SignatureDef& sig = (*map.mutable_signature_def())["serving_default"];
      for (const auto& t : s.signature().inputs) tensor_info(t, &(*sig.mutable_inputs())[t.name]);
      for (const auto& t : s.signature().outputs) tensor_info(t, &(*sig.mutable_outputs())[t.name]);
      sig.set_method_name(method_name(Method::Predict));
      (*res->mutable_metadata())["signature_def"].PackFrom(map);
      set_spec(s, res->mutable_model_spec());
      res->mutable_model_spec()->clear_signature_name();
    });
  }

 private:
  // One call: its deadline, the answer's status, the metrics.
  template <typename Body>
  grpc::Status serve(const grpc::ServerContext& ctx, const std::string& model, const char* api, Body body) {
    const auto start = std::chrono::steady_clock::now();
    int status = 200;
    std::string message;
    try {
      body(deadline_of(ctx, request_timeout_ms_));
    } catch (const ServingError& e) {
      status = e.http_status();
      message = e.what();
    } catch (const Error& e) {
      status = 400;  // a request the model refused
      message = e.what();
    } catch (const std::exception& e) {
      status = 500;
      message = e.what();
    }
    metrics_.count_request(models_.has_model(model) ? model : "", api, status,
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return status == 200 ? grpc::Status::OK : to_status(status, message);
  }

  void predict(const tfs::PredictRequest& req, tfs::PredictResponse& res, const Deadline& deadline) {
    std::shared_ptr<Batcher> batcher = find(models_, req.model_spec());
    std::shared_ptr<Servable> servable = batcher->servable();
    const Signature& sig = servable->signature();
    for (const auto& [name, _] : req.inputs())
      if (sig.input_index(name) < 0) invalid("'" + name + "' is not an input of model '" + servable->model_name() + "'");
    std::vector<Tensor> inputs;
    int64_t rows = -1;
    for (const auto& spec : sig.inputs) {
      auto it = req.inputs().find(spec.name);
      if (it == req.inputs().end()) invalid("the request has no input '" + spec.name + "'");
      inputs.push_back(tensor_from_proto(it->second, spec));
      const int64_t r = inputs.back().size(0);
      if (rows >= 0 && r != rows)
        invalid("input '" + spec.name + "' has " + std::to_string(r) + " rows, the others " + std::to_string(rows));
      rows = r;
    }
    if (rows <= 0) invalid("the request has no rows");
    std::vector<bool> wanted(sig.outputs.size(), req.output_filter().empty());
    for (const auto& name : req.output_filter()) {
      bool found = false;
      for (size_t i = 0; i < sig.outputs.size(); ++i)
        if (sig.outputs[i].name == name) wanted[i] = found = true;
      if (!found) invalid("output_filter names '" + name + "', which is not an output");
    }
    std::vector<Tensor> outputs = run(*batcher, std::move(inputs), rows, deadline);
    for (size_t i = 0; i < sig.outputs.size(); ++i)
      if (wanted[i]) tensor_to_proto(outputs[i], &(*res.mutable_outputs())[sig.outputs[i].name]);
    set_spec(*servable, res.mutable_model_spec());
  }

  // Every task names the same model and version; the model runs once and each task reads its answer.
  void multi_inference(const tfs::MultiInferenceRequest& req, tfs::MultiInferenceResponse& res, const Deadline& d) {
    if (req.tasks().empty()) invalid("the MultiInferenceRequest has no tasks");
    std::shared_ptr<Batcher> batcher;
    std::vector<Method> methods;
    for (int i = 0; i < req.tasks_size(); ++i) {
      const auto& task = req.tasks(i);
      const std::string& name = task.model_spec().name();
      if (name != req.tasks(0).model_spec().name())
        invalid("task " + std::to_string(i) + " names model '" + name + "', task 0 '" + req.tasks(0).model_spec().name() +
                "'; every task of a MultiInference must name the same model");
      auto b = find(models_, task.model_spec());
      if (batcher && b->servable() != batcher->servable())
        invalid("task " + std::to_string(i) + " names version " + std::to_string(b->servable()->version()) +
                ", task 0 version " + std::to_string(batcher->servable()->version()) +
                "; MultiInference runs one version once");
      batcher = b;
      Method m;
      if (task.method_name() == method_name(Method::Classify)) m = Method::Classify;
      else if (task.method_name() == method_name(Method::Regress)) m = Method::Regress;
      else
        invalid("task " + std::to_string(i) + ": method_name '" + task.method_name() + "' is not one MultiInference runs; use '" +
                method_name(Method::Classify) + "' or '" + method_name(Method::Regress) + "'");
      for (size_t j = 0; j < methods.size(); ++j)
        if (methods[j] == m)
          invalid("task " + std::to_string(i) + " repeats task " + std::to_string(j) + " (" + task.method_name() +
                  " on the same signature)");
      check_method(batcher->servable()->signature(), name, m);
      methods.push_back(m);
    }
    const Servable& s = *batcher->servable();
    ExampleRows in = examples_to_inputs(req.input(), s.signature(), s.model_name());
    std::vector<Tensor> outputs = run(*batcher, std::move(in.inputs), in.rows, d);
    for (Method m : methods) {
      auto* r = res.add_results();
      set_spec(s, r->mutable_model_spec());
      if (m == Method::Classify) write_classes(s.signature(), outputs, r->mutable_classification_result());
      else write_regressions(outputs, r->mutable_regression_result());
    }
  }

  ModelManager& models_;
  Metrics& metrics_;
  int64_t request_timeout_ms_;
};

class ModelService final : public tfs::ModelService::Service {
 public:
  explicit ModelService(ModelManager& models) : models_(models) {}

  grpc::Status GetModelStatus(grpc::ServerContext*, const tfs::GetModelStatusRequest* req,
                              tfs::GetModelStatusResponse* res) override {
    try {
      const auto& spec = req->model_spec();
      std::optional<int64_t> version;
      if (spec.has_version()) version = spec.version().value();
      if (!spec.version_label().empty()) version = find(models_, spec)->servable()->version();
      for (const auto& s : models_.status(spec.name(), version)) {
        auto* out = res->add_model_version_status();
        out->set_version(s.version);
        out->set_state(static_cast<tfs::ModelVersionStatus::State>(static_cast<int>(s.state)));
        out->mutable_status()->set_error_code(s.error.empty() ? 0 : 2);  // OK, UNKNOWN
        out->mutable_status()->set_error_message(s.error);
      }
      return grpc::Status::OK;
    } catch (const ServingError& e) {
      return to_status(e.http_status(), e.what());
    } catch (const std::exception& e) {
      return {grpc::StatusCode::INTERNAL, e.what()};
    }
  }

 private:
  ModelManager& models_;
};

class GrpcServer final : public GrpcFrontend {
 public:
  GrpcServer(ModelManager& models, Metrics& metrics, const GrpcOptions& o)
      : predict_(models, metrics, o.request_timeout_ms), status_(models) {
    MF_CHECK(o.port >= 0 && o.port <= 65535, "--port=", o.port, ": not a port");
    MF_CHECK(o.request_timeout_ms > 0, "--request_timeout_ms=", o.request_timeout_ms, ": must be positive");
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(o.port), grpc::InsecureServerCredentials(), &port_);
    builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(o.max_message_bytes, INT32_MAX)));
    builder.RegisterService(&predict_);
    builder.RegisterService(&status_);
    server_ = builder.BuildAndStart();
    MF_CHECK(server_ && port_ > 0, "--port=", o.port, ": cannot listen for gRPC on 127.0.0.1:", o.port);
  }
  ~GrpcServer() override { shutdown(std::chrono::milliseconds(0)); }
  int port() const override { return port_; }
  void shutdown(std::chrono::milliseconds grace) override {
    if (!server_) return;
    server_->Shutdown(std::chrono::system_clock::now() + grace);
    server_->Wait();
    server_.reset();
  }

 private:
  PredictionService predict_;
  ModelService status_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace

std::unique_ptr<GrpcFrontend> start_grpc(ModelManager& models, Metrics& metrics, const GrpcOptions& options) {
  return std::make_unique<GrpcServer>(models, metrics, options);
}

}  // namespace meshflow::serving
