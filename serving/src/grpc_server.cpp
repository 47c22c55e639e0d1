// TF Serving's gRPC API: PredictionService.Predict and ModelService.GetModelStatus, on our own
// protos with TF Serving's names and field numbers (serving/proto), so stock clients work unchanged.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstring>
#include <future>

#include "grpc_frontend.h"
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
    default: return {grpc::StatusCode::INTERNAL, message};
  }
}

DType dtype_from_tf(int tf, const std::string& input) {
  for (DType d : {DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool, DType::BF16, DType::F16})
    if (tf_dtype_enum(d) == tf) return d;
  invalid("input '" + input + "': DataType " + std::to_string(tf) + " is not one meshflow-serve reads");
}

// The values of a typed *_val field, checked for count, copied into `out`.
template <typename Field, typename Convert>
void copy_values(const Field& field, int64_t n, char* out, const std::string& input, const char* field_name,
                 Convert convert) {
  if (static_cast<int64_t>(field.size()) != n)
    invalid("input '" + input + "': " + field_name + " holds " + std::to_string(field.size()) + " values, its shape " +
            std::to_string(n));
  for (int64_t i = 0; i < n; ++i) convert(field.Get(static_cast<int>(i)), out, i);
}

Tensor tensor_from_proto(const tensorflow::TensorProto& p, const TensorSpec& spec) {
  const DType dtype = dtype_from_tf(p.dtype(), spec.name);
  if (dtype != spec.dtype)
    invalid("input '" + spec.name + "': got " + tf_dtype_name(dtype) + ", the model expects " + tf_dtype_name(spec.dtype));
  if (p.tensor_shape().unknown_rank()) invalid("input '" + spec.name + "': the shape has an unknown rank");
  Shape shape;
  int64_t n = 1;
  for (const auto& d : p.tensor_shape().dim()) {
    if (d.size() < 0 || (d.size() > 0 && n > (int64_t{1} << 40) / d.size()))
      invalid("input '" + spec.name + "': bad dimension " + std::to_string(d.size()));
    shape.push_back(d.size());
    n *= d.size();
  }
  bool ok = shape.size() == spec.shape.size() && !shape.empty();
  for (size_t i = 1; ok && i < shape.size(); ++i) ok = spec.shape[i] < 0 || spec.shape[i] == shape[i];
  if (!ok) invalid("input '" + spec.name + "': got shape " + shape_str(shape) + ", the model expects " + shape_str(spec.shape));
  Tensor t = empty(shape, {.dtype = dtype, .device = cpu()});
  char* out = static_cast<char*>(t.raw_data());
  const size_t bytes = static_cast<size_t>(n) * dtype_size(dtype);
  if (!p.tensor_content().empty()) {
    if (p.tensor_content().size() != bytes)
      invalid("input '" + spec.name + "': tensor_content has " + std::to_string(p.tensor_content().size()) +
              " bytes, its shape and dtype need " + std::to_string(bytes));
    std::memcpy(out, p.tensor_content().data(), bytes);
    return t;
  }
  switch (dtype) {
    case DType::F32:
      copy_values(p.float_val(), n, out, spec.name, "float_val", [](float v, char* o, int64_t i) { reinterpret_cast<float*>(o)[i] = v; });
      break;
    case DType::F64:
      copy_values(p.double_val(), n, out, spec.name, "double_val", [](double v, char* o, int64_t i) { reinterpret_cast<double*>(o)[i] = v; });
      break;
    case DType::I32:
      copy_values(p.int_val(), n, out, spec.name, "int_val", [](int32_t v, char* o, int64_t i) { reinterpret_cast<int32_t*>(o)[i] = v; });
      break;
    case DType::I64:
      copy_values(p.int64_val(), n, out, spec.name, "int64_val", [](int64_t v, char* o, int64_t i) { reinterpret_cast<int64_t*>(o)[i] = v; });
      break;
    case DType::Bool:
      copy_values(p.bool_val(), n, out, spec.name, "bool_val", [](bool v, char* o, int64_t i) { reinterpret_cast<bool*>(o)[i] = v; });
      break;
    case DType::F16:
    case DType::BF16:
      copy_values(p.half_val(), n, out, spec.name, "half_val",
                  [](int32_t v, char* o, int64_t i) { reinterpret_cast<uint16_t*>(o)[i] = static_cast<uint16_t>(v); });
      break;
  }
  return t;
}

void tensor_to_proto(const Tensor& host, tensorflow::TensorProto* p) {
  Tensor t = host.contiguous();
  p->set_dtype(static_cast<tensorflow::DataType>(tf_dtype_enum(t.dtype())));
  for (int64_t d : t.shape()) p->mutable_tensor_shape()->add_dim()->set_size(d);
  const int64_t n = t.numel();
  const char* in = static_cast<const char*>(t.raw_data());
  for (int64_t i = 0; i < n; ++i) {
    switch (t.dtype()) {
      case DType::F32: p->add_float_val(reinterpret_cast<const float*>(in)[i]); break;
      case DType::F64: p->add_double_val(reinterpret_cast<const double*>(in)[i]); break;
      case DType::I32: p->add_int_val(reinterpret_cast<const int32_t*>(in)[i]); break;
      case DType::I64: p->add_int64_val(reinterpret_cast<const int64_t*>(in)[i]); break;
      case DType::Bool: p->add_bool_val(reinterpret_cast<const bool*>(in)[i]); break;
      case DType::F16:
      case DType::BF16: p->add_half_val(reinterpret_cast<const uint16_t*>(in)[i]); break;
    }
  }
}

std::shared_ptr<Batcher> find(ModelManager& models, const tfs::ModelSpec& spec) {
  std::optional<int64_t> version;
  if (spec.has_version()) version = spec.version().value();
  return models.find(spec.name(), version, spec.version_label());
}

class PredictionService final : public tfs::PredictionService::Service {
 public:
  PredictionService(ModelManager& models, Metrics& metrics) : models_(models), metrics_(metrics) {}

  grpc::Status Predict(grpc::ServerContext*, const tfs::PredictRequest* req, tfs::PredictResponse* res) override {
    const auto start = std::chrono::steady_clock::now();
    int status = 200;
    std::string message;
    try {
      predict(*req, *res);
    } catch (const ServingError& e) {
      status = e.http_status();
      message = e.what();
    } catch (const std::exception& e) {
      status = 500;
      message = e.what();
    }
    const std::string& name = req->model_spec().name();
    metrics_.count_request(models_.has_model(name) ? name : "", "grpc_predict", status,
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return status == 200 ? grpc::Status::OK : to_status(status, message);
  }

 private:
  void predict(const tfs::PredictRequest& req, tfs::PredictResponse& res) {
    std::shared_ptr<Batcher> batcher = find(models_, req.model_spec());
    std::shared_ptr<Servable> servable = batcher->servable();
    const Signature& sig = servable->signature();
    const std::string& sig_name = req.model_spec().signature_name();
    if (!sig_name.empty() && sig_name != "serving_default")
      invalid("unknown signature_name '" + sig_name + "'; the model has 'serving_default'");
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
    auto promise = std::make_shared<std::promise<RunResult>>();
    auto answer = promise->get_future();
    batcher->submit(std::move(inputs), rows, [promise](RunResult r) { promise->set_value(std::move(r)); });
    RunResult result = answer.get();
    if (result.error) std::rethrow_exception(result.error);
    for (size_t i = 0; i < sig.outputs.size(); ++i)
      if (wanted[i]) tensor_to_proto(result.outputs[i], &(*res.mutable_outputs())[sig.outputs[i].name]);
    res.mutable_model_spec()->set_name(servable->model_name());
    res.mutable_model_spec()->mutable_version()->set_value(servable->version());
    res.mutable_model_spec()->set_signature_name("serving_default");
  }

  ModelManager& models_;
  Metrics& metrics_;
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
  GrpcServer(ModelManager& models, Metrics& metrics, int port, int64_t max_message_bytes)
      : predict_(models, metrics), status_(models) {
    MF_CHECK(port >= 0 && port <= 65535, "--port=", port, ": not a port");
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &port_);
    builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(max_message_bytes, INT32_MAX)));
    builder.RegisterService(&predict_);
    builder.RegisterService(&status_);
    server_ = builder.BuildAndStart();
    MF_CHECK(server_ && port_ > 0, "--port=", port, ": cannot listen for gRPC on 127.0.0.1:", port);
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

std::unique_ptr<GrpcFrontend> start_grpc(ModelManager& models, Metrics& metrics, int port, int64_t max_message_bytes) {
  return std::make_unique<GrpcServer>(models, metrics, port, max_message_bytes);
}

}  // namespace meshflow::serving
