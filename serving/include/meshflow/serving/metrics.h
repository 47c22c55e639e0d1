// Counters and histograms for /monitoring/prometheus/metrics, in Prometheus's text format.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace meshflow::serving {

class Metrics {
 public:
  // One answered request: model ("" where none was named), API (predict, classify, regress,
  // status, metadata, other) and HTTP status (gRPC answers are counted with their HTTP equivalent).
  void count_request(const std::string& model, const std::string& api, int status, double seconds);
  void observe_batch(int64_t rows, int64_t padded);
  std::string prometheus_text() const;

 private:
  struct Histogram {
    std::vector<int64_t> buckets;  // counts per upper bound, cumulative when printed
    int64_t count = 0;
    double sum = 0;
  };
  static void observe(Histogram& h, const std::vector<double>& bounds, double value);
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, int64_t> requests_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;
  Histogram batch_rows_, batch_padded_;
};

}  // namespace meshflow::serving
