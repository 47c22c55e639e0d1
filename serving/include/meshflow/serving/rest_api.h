// TF Serving's REST API as plain requests and answers, apart from the HTTP transport (rest_server.h):
//   GET  /v1/models/NAME[/versions/V | /labels/L]            version status
//   GET  /v1/models/NAME[/versions/V | /labels/L]/metadata   signature
//   POST /v1/models/NAME[/versions/V | /labels/L]:predict | :classify | :regress
//   GET  /monitoring/prometheus/metrics
//   any  /monitoring/noop                                    {} at once: what HTTP alone costs (bench_serving)
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace meshflow::serving {

class Metrics;
class ModelManager;

struct HttpAnswer {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};
using AnswerDone = std::function<void(HttpAnswer)>;

class RestApi {
 public:
  RestApi(ModelManager& models, Metrics& metrics) : models_(models), metrics_(metrics) {}
  // Answers one request. `done` is called exactly once, on this thread (errors, status, metadata)
  // or on a model's thread (predictions); every failure is a 4xx/5xx {"error": ...} answer.
  void handle(std::string_view method, std::string_view target, std::string body, AnswerDone done);

 private:
  ModelManager& models_;
  Metrics& metrics_;
};

}  // namespace meshflow::serving
