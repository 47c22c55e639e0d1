// Prometheus text exposition of the request, latency and batch-size metrics.
#include "meshflow/serving/metrics.h"

#include <sstream>

namespace meshflow::serving {

namespace {

const std::vector<double>& latency_bounds() {
  static const std::vector<double> b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return b;
}
const std::vector<double>& batch_bounds() {
  static const std::vector<double> b{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return b;
}

// Label values are escaped as Prometheus asks: backslash, quote and newline.
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

void Metrics::observe(Histogram& h, const std::vector<double>& bounds, double value) {
  if (h.buckets.empty()) h.buckets.assign(bounds.size(), 0);
  for (size_t i = 0; i < bounds.size(); ++i)
    if (value <= bounds[i]) {
      ++h.buckets[i];
      break;
    }
  ++h.count;
  h.sum += value;
}

void Metrics::count_request(const std::string& model, const std::string& api, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{model, api, status}];
  observe(latency_[{model, api}], latency_bounds(), seconds);
}

void Metrics::observe_batch(int64_t rows, int64_t padded) {
  std::lock_guard<std::mutex> lock(mutex_);
  observe(batch_rows_, batch_bounds(), static_cast<double>(rows));
  observe(batch_padded_, batch_bounds(), static_cast<double>(padded));
}

std::string Metrics::prometheus_text() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream os;
  auto histogram = [&](const std::string& name, const std::string& labels, const Histogram& h,
                       const std::vector<double>& bounds) {
    int64_t cumulative = 0;
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < bounds.size(); ++i) {
      cumulative += h.buckets.empty() ? 0 : h.buckets[i];
      os << name << "_bucket{" << labels << sep << "le=\"" << bounds[i] << "\"} " << cumulative << "\n";
    }
    os << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << h.count << "\n";
    os << name << "_sum" << (labels.empty() ? "" : "{" + labels + "}") << " " << h.sum << "\n";
    os << name << "_count" << (labels.empty() ? "" : "{" + labels + "}") << " " << h.count << "\n";
  };
  os << "# HELP meshflow_serving_requests_total Requests answered, by model, API and HTTP status.\n"
     << "# TYPE meshflow_serving_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    const auto& [model, api, status] = key;
    os << "meshflow_serving_requests_total{model=\"" << escape(model) << "\",api=\"" << api << "\",status=\""
       << status << "\"} " << n << "\n";
  }
  os << "# HELP meshflow_serving_request_latency_seconds Time from a request's arrival to its answer.\n"
     << "# TYPE meshflow_serving_request_latency_seconds histogram\n";
  for (const auto& [key, h] : latency_)
    histogram("meshflow_serving_request_latency_seconds",
              "model=\"" + escape(key.first) + "\",api=\"" + key.second + "\"", h, latency_bounds());
  os << "# HELP meshflow_serving_batch_size Rows in each batch the model ran (requests merged).\n"
     << "# TYPE meshflow_serving_batch_size histogram\n";
  histogram("meshflow_serving_batch_size", "", batch_rows_, batch_bounds());
  os << "# HELP meshflow_serving_padded_batch_size Rows in each batch after padding to an allowed size.\n"
     << "# TYPE meshflow_serving_padded_batch_size histogram\n";
  histogram("meshflow_serving_padded_batch_size", "", batch_padded_, batch_bounds());
  return os.str();
}

}  // namespace meshflow::serving
