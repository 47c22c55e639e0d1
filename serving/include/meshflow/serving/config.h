// meshflow-serve's settings: command-line flags (tensorflow_model_server's names), the models to
// serve (one from --model_name/--model_base_path, or TF Serving's text-proto --model_config_file)
// and the batching knobs (TF Serving's --batching_parameters_file).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "meshflow/core/error.h"

namespace meshflow::serving {

// A request that cannot be answered, with the HTTP status that says why (400 bad request, 404
// unknown model or version, 413 body too large, 503 queue full); gRPC maps it to its own codes.
class ServingError : public Error {
 public:
  ServingError(int http_status, const std::string& message) : Error(message), http_status_(http_status) {}
  int http_status() const { return http_status_; }

 private:
  int http_status_;
};

// Which version folders of a model are served (TF Serving's ServableVersionPolicy).
struct VersionPolicy {
  enum class Kind { Latest, All, Specific };
  Kind kind = Kind::Latest;
  int64_t latest = 1;              // Latest: how many of the highest versions
  std::vector<int64_t> versions;   // Specific: exactly these
};

struct ModelSpec {
  std::string name;
  std::string base_path;            // holds integer-named version folders, each a Model::save folder
  VersionPolicy policy;
  std::map<std::string, int64_t> labels;  // "stable" -> 1, "canary" -> 2
};

struct BatchingOptions {
  int64_t max_batch_size = 1000;         // rows in one merged batch
  int64_t batch_timeout_micros = 0;      // how long a batch that is not full waits for more rows
  int64_t max_enqueued_batches = 10;     // the queue holds this many full batches; more is 503
  int64_t num_batch_threads = 0;         // 0: one per core
  std::vector<int64_t> allowed_batch_sizes;  // empty: any; else batches are padded up to one of them
};

struct ServerOptions {
  int rest_api_port = 8501;              // 0: a free port (printed in the "listening" line)
  std::optional<int> grpc_port;          // --port; unset: no gRPC server
  std::string model_name;
  std::string model_base_path;
  std::string model_config_file;
  bool enable_batching = false;
  std::string batching_parameters_file;
  int64_t max_request_bytes = 64ll << 20;
  int64_t request_timeout_ms = 30000;
  double file_system_poll_wait_seconds = 1.0;
  int rest_api_num_threads = 0;          // 0: max(2, cores)
  int intra_op_parallelism = 0;          // threads inside one model call (0: the process's, OMP_NUM_THREADS)
  int64_t shutdown_grace_ms = 30000;     // SIGTERM waits this long for requests in flight
};

// Parses --flag=value / --flag value arguments (argv[0] excluded). Throws naming the flag for an
// unknown flag, a missing or malformed value, or a missing model (neither --model_base_path nor
// --model_config_file).
ServerOptions parse_flags(const std::vector<std::string>& args);
std::string flags_help();

// TF Serving's ModelServerConfig text proto (model_config_list { config { ... } }); `source` names
// the file in errors.
std::vector<ModelSpec> parse_model_config(const std::string& text, const std::string& source);
// TF Serving's BatchingParameters text proto.
BatchingOptions parse_batching_parameters(const std::string& text, const std::string& source);
// The models the options ask for (reads --model_config_file when given).
std::vector<ModelSpec> model_specs(const ServerOptions& options);
// The batching options (reads --batching_parameters_file when given); nullopt without --enable_batching.
std::optional<BatchingOptions> batching_options(const ServerOptions& options);

std::string read_text_file(const std::string& path, const std::string& what);

}  // namespace meshflow::serving
