// TF Serving's REST paths: routing, status and metadata answers, and predictions through the batcher.
#include "meshflow/serving/rest_api.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <optional>
#include <vector>

#include "meshflow/serving/metrics.h"
#include "meshflow/serving/model_manager.h"
#include "meshflow/serving/request_json.h"

namespace meshflow::serving {

using Json = nlohmann::json;

namespace {

// What a /v1/models/... path asks for.
struct Route {
  std::string model;
  std::optional<int64_t> version;
  std::string label;
  std::string verb;  // "" (status), "metadata", "predict", "classify", "regress"
};

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

[[noreturn]] void not_found(std::string_view target) {
  throw ServingError(404, "no such path: '" + std::string(target) +
                              "'; try /v1/models/NAME[/versions/V|/labels/L][/metadata|:predict|:classify|:regress]");
}

Route parse_route(std::string_view target) {
  std::vector<std::string> parts = split(target, '/');  // "", "v1", "models", NAME, ...
  if (parts.size() < 4 || !parts[0].empty() || parts[1] != "v1" || parts[2] != "models") not_found(target);
  Route r;
  // A ":verb" ends the last segment.
  std::string& last = parts.back();
  if (auto colon = last.find(':'); colon != std::string::npos) {
    r.verb = last.substr(colon + 1);
    last = last.substr(0, colon);
    if (r.verb != "predict" && r.verb != "classify" && r.verb != "regress")
      throw ServingError(404, "unknown method ':" + r.verb + "'; use :predict, :classify or :regress");
  }
  r.model = parts[3];
  if (r.model.empty()) not_found(target);
  size_t i = 4;
  if (i + 1 < parts.size() + 0 && (parts[i] == "versions" || parts[i] == "labels")) {
    if (parts[i] == "versions") {
      int64_t v = -1;
      const std::string& s = parts[i + 1];
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || p != s.data() + s.size() || v < 0)
        throw ServingError(400, "version '" + s + "' is not a non-negative integer");
      r.version = v;
    } else {
      r.label = parts[i + 1];
      if (r.label.empty()) not_found(target);
    }
    i += 2;
  }
  if (i < parts.size()) {
    if (i + 1 == parts.size() && parts[i] == "metadata" && r.verb.empty()) r.verb = "metadata";
    else not_found(target);
  }
  return r;
}

Json status_json(const std::vector<VersionStatus>& statuses) {
  Json list = Json::array();
  for (const auto& s : statuses)
    list.push_back({{"version", std::to_string(s.version)},
                    {"state", version_state_name(s.state)},
                    {"status", {{"error_code", s.error.empty() ? "OK" : "UNKNOWN"}, {"error_message", s.error}}}});
  return Json{{"model_version_status", list}};
}

Json specs_json(const std::vector<TensorSpec>& specs) {
  Json out = Json::object();
  for (const auto& t : specs) {
    Json dims = Json::array();
    for (int64_t d : t.shape) dims.push_back({{"size", std::to_string(d)}, {"name", ""}});
    out[t.name] = {{"dtype", tf_dtype_name(t.dtype)},
                   {"tensor_shape", {{"dim", dims}, {"unknown_rank", false}}},
                   {"name", t.name}};
  }
  return out;
}

Json metadata_json(const Servable& s) {
  Json sig = {{"inputs", specs_json(s.signature().inputs)},
              {"outputs", specs_json(s.signature().outputs)},
              {"method_name", "tensorflow/serving/predict"}};
  return Json{{"model_spec", {{"name", s.model_name()}, {"signature_name", ""}, {"version", std::to_string(s.version())}}},
              {"metadata", {{"signature_def", {{"signature_def", {{"serving_default", sig}}}}}}}};
}

int status_of(const std::exception_ptr& e, std::string& message) {
  try {
    std::rethrow_exception(e);
  } catch (const ServingError& se) {
    message = se.what();
    return se.http_status();
  } catch (const std::exception& ex) {
    message = ex.what();
    return 500;
  } catch (...) {
    message = "unknown error";
    return 500;
  }
}

}  // namespace

void RestApi::handle(std::string_view method, std::string_view target, std::string body, AnswerDone done) {
  MF_CHECK(done, "RestApi::handle: no completion callback for ", method, " ", target);
  const auto start = std::chrono::steady_clock::now();
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  std::string model, api = "other";
  // Every answer passes here once: counted, timed, handed on.
  auto answer = [this, start, done](const std::string& model_name, const std::string& api_name, HttpAnswer a) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Names that are not served are counted under "": a client must not grow the metrics at will.
    metrics_.count_request(models_.has_model(model_name) ? model_name : "", api_name, a.status, seconds);
    done(std::move(a));
  };
  // The HTTP ceiling's endpoint (bench_serving): a fixed answer, no model, no metrics.
  if (target == "/monitoring/noop") {
    done({200, "{}"});
    return;
  }
  try {
    if (target == "/monitoring/prometheus/metrics") {
      if (method != "GET") throw ServingError(405, "use GET for " + std::string(target));
      answer("", "metrics", {200, metrics_.prometheus_text(), "text/plain; version=0.0.4"});
      return;
    }
    Route r = parse_route(target);
    model = r.model;
    if (r.verb.empty() || r.verb == "metadata") {
      api = r.verb.empty() ? "status" : "metadata";
      if (method != "GET") throw ServingError(405, "use GET for " + std::string(target));
      if (r.verb.empty()) {
        if (!models_.has_model(r.model)) throw ServingError(404, "model '" + r.model + "' is not served");
        std::optional<int64_t> v = r.version;
        if (!r.label.empty()) v = models_.find(r.model, std::nullopt, r.label)->servable()->version();
        answer(model, api, {200, status_json(models_.status(r.model, v)).dump()});
      } else {
        auto b = models_.find(r.model, r.version, r.label);
        answer(model, api, {200, metadata_json(*b->servable()).dump()});
      }
      return;
    }
    api = r.verb;
    if (method != "POST") throw ServingError(405, "use POST for :" + r.verb);
    std::shared_ptr<Batcher> batcher = models_.find(r.model, r.version, r.label);
    const Signature& sig = batcher->servable()->signature();
    check_method(sig, r.model, r.verb == "classify" ? Method::Classify : r.verb == "regress" ? Method::Regress : Method::Predict);
    auto request = std::make_shared<ParsedRequest>(parse_predict_request(body, sig));
    std::vector<Tensor> inputs = request->inputs;
    std::shared_ptr<Servable> servable = batcher->servable();
    batcher->submit(std::move(inputs), request->rows,
                    [answer, request, servable, model, api, verb = r.verb](RunResult result) {
                      HttpAnswer a;
                      try {
                        if (result.error) std::rethrow_exception(result.error);
                        if (verb == "predict")
                          a.body = predict_response(*request, servable->signature(), result.outputs);
                        else if (verb == "classify")
                          a.body = classify_response(servable->signature(), result.outputs);
                        else
                          a.body = regress_response(result.outputs);
                      } catch (...) {
                        std::string message;
                        a.status = status_of(std::current_exception(), message);
                        a.body = error_json(message);
                      }
                      answer(model, api, std::move(a));
                    });
  } catch (...) {
    std::string message;
    int status = status_of(std::current_exception(), message);
    answer(model, api, {status, error_json(message)});
  }
}

}  // namespace meshflow::serving
