// Flags, model config files and batching files (Note [TF Serving's files] says why protobuf reads them).
#include "meshflow/serving/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <charconv>
#include <fstream>
#include <sstream>

#include "tensorflow_serving/config/model_server_config.pb.h"

namespace meshflow::serving {

// Note [TF Serving's files]: --model_config_file and --batching_parameters_file are text protos of
// TF Serving's ModelServerConfig and BatchingParameters. Our own .proto files
// (serving/proto/tensorflow_serving/config) declare those messages with TF Serving's names, so
// protobuf's TextFormat parser reads the files users already have, comments, quoting and
// repeated fields included, and reports a mistake with its line and column.

std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  MF_CHECK(in.good(), what, ": cannot open '", path, "'");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

namespace {

class CollectErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    if (!text.empty()) text += "; ";
    text += "line " + std::to_string(line + 1) + ", column " + std::to_string(column + 1) + ": " + message;
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  std::string text;
};

void parse_text_proto(const std::string& text, const std::string& source, google::protobuf::Message* message) {
  google::protobuf::TextFormat::Parser parser;
  CollectErrors errors;
  parser.RecordErrorsTo(&errors);
  MF_CHECK(parser.ParseFromString(text, message), source, ": not a valid ", message->GetTypeName(),
           " text proto: ", errors.text);
}

int64_t parse_int(const std::string& flag, const std::string& value, int64_t lo, int64_t hi) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  MF_CHECK(ec == std::errc() && end == value.data() + value.size() && !value.empty(), "--", flag,
           ": expected an integer, got '", value, "'");
  MF_CHECK(v >= lo && v <= hi, "--", flag, "=", v, ": expected a value in [", lo, ", ", hi, "]");
  return v;
}

bool parse_bool(const std::string& flag, const std::string& value) {
  if (value == "true" || value == "1" || value.empty()) return true;
  if (value == "false" || value == "0") return false;
  MF_THROW("--", flag, ": expected true or false, got '", value, "'");
}

}  // namespace

std::string flags_help() {
  return "meshflow-serve --model_name=NAME --model_base_path=DIR [--rest_api_port=8501] [--port=8500]\n"
         "               | --model_config_file=FILE\n"
         "  --rest_api_port=P              REST port on 127.0.0.1 (0: a free port)\n"
         "  --port=P                       gRPC port on 127.0.0.1 (0: a free port; unset: no gRPC)\n"
         "  --model_name, --model_base_path  one model; DIR holds integer-named version folders\n"
         "  --model_config_file=FILE       TF Serving's ModelServerConfig text proto, several models\n"
         "  --enable_batching[=true]       merge concurrent requests into batches\n"
         "  --batching_parameters_file=F   TF Serving's BatchingParameters text proto\n"
         "  --max_request_bytes=N          larger bodies get 413 (default 64 MiB)\n"
         "  --request_timeout_ms=N         a request not complete in time is closed (default 30000)\n"
         "  --file_system_poll_wait_seconds=S  how often base paths are scanned (default 1)\n"
         "  --rest_api_num_threads=N       HTTP threads (default: max(2, cores))\n"
         "  --tensorflow_intra_op_parallelism=N  threads inside one model call (default 0: OMP_NUM_THREADS)\n"
         "  --shutdown_grace_ms=N          SIGTERM waits this long for requests in flight (default 30000)\n";
}

ServerOptions parse_flags(const std::vector<std::string>& args) {
  ServerOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    MF_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, "meshflow-serve: unexpected argument '", a,
             "'; flags are --name=value\n", flags_help());
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto take = [&]() -> std::string {
      if (has_value) return value;
      MF_CHECK(i + 1 < args.size(), "--", name, ": missing value");
      return args[++i];
    };
    if (name == "rest_api_port") {
      o.rest_api_port = static_cast<int>(parse_int(name, take(), 0, 65535));
    } else if (name == "port" || name == "grpc_port") {
      o.grpc_port = static_cast<int>(parse_int(name, take(), 0, 65535));
    } else if (name == "model_name") {
      o.model_name = take();
    } else if (name == "model_base_path") {
      o.model_base_path = take();
    } else if (name == "model_config_file") {
      o.model_config_file = take();
    } else if (name == "enable_batching") {
      o.enable_batching = parse_bool(name, has_value ? value : "true");
    } else if (name == "batching_parameters_file") {
      o.batching_parameters_file = take();
    } else if (name == "max_request_bytes") {
      o.max_request_bytes = parse_int(name, take(), 1, int64_t{1} << 40);
    } else if (name == "request_timeout_ms" || name == "rest_api_timeout_in_ms") {
      o.request_timeout_ms = parse_int(name, take(), 1, int64_t{1} << 40);
    } else if (name == "file_system_poll_wait_seconds") {
      o.file_system_poll_wait_seconds = static_cast<double>(parse_int(name, take(), 0, 86400));
    } else if (name == "rest_api_num_threads") {
      o.rest_api_num_threads = static_cast<int>(parse_int(name, take(), 1, 1024));
    } else if (name == "tensorflow_intra_op_parallelism") {
      o.intra_op_parallelism = static_cast<int>(parse_int(name, take(), 0, 1024));
    } else if (name == "shutdown_grace_ms") {
      o.shutdown_grace_ms = parse_int(name, take(), 0, int64_t{1} << 40);
    } else {
      MF_THROW("meshflow-serve: unknown flag '--", name, "'\n", flags_help());
    }
  }
  MF_CHECK(!o.model_config_file.empty() || !o.model_base_path.empty(),
           "meshflow-serve: give --model_base_path (with --model_name) or --model_config_file\n", flags_help());
  MF_CHECK(o.model_config_file.empty() || o.model_base_path.empty(),
           "meshflow-serve: --model_base_path and --model_config_file exclude each other");
  if (o.model_name.empty()) o.model_name = "default";  // tensorflow_model_server's default name
  return o;
}

std::vector<ModelSpec> parse_model_config(const std::string& text, const std::string& source) {
  tensorflow::serving::ModelServerConfig config;
  parse_text_proto(text, source, &config);
  MF_CHECK(config.has_model_config_list() && config.model_config_list().config_size() > 0, source,
           ": no model_config_list { config { ... } } entries");
  std::vector<ModelSpec> specs;
  for (const auto& c : config.model_config_list().config()) {
    ModelSpec s;
    s.name = c.name();
    s.base_path = c.base_path();
    MF_CHECK(!s.name.empty(), source, ": a config has no name");
    MF_CHECK(!s.base_path.empty(), source, ": model '", s.name, "' has no base_path");
    for (const auto& prev : specs) MF_CHECK(prev.name != s.name, source, ": model '", s.name, "' is configured twice");
    MF_CHECK(c.model_platform().empty() || c.model_platform() == "tensorflow" || c.model_platform() == "meshflow",
             source, ": model '", s.name, "' has model_platform '", c.model_platform(),
             "'; meshflow-serve serves folders written by Model::save ('meshflow' or 'tensorflow')");
    const auto& p = c.model_version_policy();
    if (p.has_all()) {
      s.policy.kind = VersionPolicy::Kind::All;
    } else if (p.has_specific()) {
      s.policy.kind = VersionPolicy::Kind::Specific;
      s.policy.versions.assign(p.specific().versions().begin(), p.specific().versions().end());
      MF_CHECK(!s.policy.versions.empty(), source, ": model '", s.name, "': specific {} lists no versions");
    } else if (p.has_latest()) {
      s.policy.latest = std::max<int64_t>(1, p.latest().num_versions());
    }
    for (const auto& [label, version] : c.version_labels()) {
      MF_CHECK(!label.empty(), source, ": model '", s.name, "' has an empty version label");
      s.labels[label] = version;
    }
    specs.push_back(std::move(s));
  }
  return specs;
}

BatchingOptions parse_batching_parameters(const std::string& text, const std::string& source) {
  tensorflow::serving::BatchingParameters p;
  parse_text_proto(text, source, &p);
  BatchingOptions b;
  if (p.has_max_batch_size()) b.max_batch_size = p.max_batch_size().value();
  if (p.has_batch_timeout_micros()) b.batch_timeout_micros = p.batch_timeout_micros().value();
  if (p.has_max_enqueued_batches()) b.max_enqueued_batches = p.max_enqueued_batches().value();
  if (p.has_num_batch_threads()) b.num_batch_threads = p.num_batch_threads().value();
  b.allowed_batch_sizes.assign(p.allowed_batch_sizes().begin(), p.allowed_batch_sizes().end());
  MF_CHECK(b.max_batch_size >= 1, source, ": max_batch_size must be at least 1, got ", b.max_batch_size);
  MF_CHECK(b.batch_timeout_micros >= 0, source, ": batch_timeout_micros must be >= 0, got ", b.batch_timeout_micros);
  MF_CHECK(b.max_enqueued_batches >= 1, source, ": max_enqueued_batches must be at least 1, got ",
           b.max_enqueued_batches);
  MF_CHECK(b.num_batch_threads >= 0 && b.num_batch_threads <= 1024, source,
           ": num_batch_threads must be in [0, 1024], got ", b.num_batch_threads);
  for (size_t i = 0; i < b.allowed_batch_sizes.size(); ++i) {
    MF_CHECK(b.allowed_batch_sizes[i] >= 1 && (i == 0 || b.allowed_batch_sizes[i] > b.allowed_batch_sizes[i - 1]),
             source, ": allowed_batch_sizes must be positive and increasing");
  }
  if (!b.allowed_batch_sizes.empty()) {
    // As TF Serving: the largest allowed size is the batch size.
    MF_CHECK(b.allowed_batch_sizes.back() == b.max_batch_size, source, ": the last allowed_batch_sizes entry (",
             b.allowed_batch_sizes.back(), ") must equal max_batch_size (", b.max_batch_size, ")");
  }
  return b;
}

std::vector<ModelSpec> model_specs(const ServerOptions& options) {
  if (!options.model_config_file.empty())
    return parse_model_config(read_text_file(options.model_config_file, "--model_config_file"),
                              options.model_config_file);
  ModelSpec s;
  s.name = options.model_name;
  s.base_path = options.model_base_path;
  return {s};
}

std::optional<BatchingOptions> batching_options(const ServerOptions& options) {
  if (!options.enable_batching) {
    MF_CHECK(options.batching_parameters_file.empty(),
             "--batching_parameters_file is given but --enable_batching is not");
    return std::nullopt;
  }
  if (options.batching_parameters_file.empty()) return BatchingOptions{};
  return parse_batching_parameters(read_text_file(options.batching_parameters_file, "--batching_parameters_file"),
                                   options.batching_parameters_file);
}

}  // namespace meshflow::serving
