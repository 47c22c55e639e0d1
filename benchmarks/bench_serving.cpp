// meshflow-serve under load: wrk (1 thread, 64 connections, one instance per request) against the
// REST :predict of an MLP and a CNN, batching off and on, next to Model::predict in-process at
// max_batch_size. Prints requests/s, p50/p99 latency, errors and served samples/s over in-process
// samples/s. Each server is also timed on /monitoring/noop with the same body and wrk settings (an
// answer without parsing or a model): the HTTP ceiling of this machine, and the served rate over it.
// Needs `wrk` on PATH.
//   bench_serving [--seconds 10] [--connections 64] [--max-batch 32] [--timeout-us 2000] [--models mlp,cnn]
//                 [--server-flag --tensorflow_intra_op_parallelism=1 ...]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "meshflow/meshflow.h"
#include "timing.h"

namespace mf = meshflow;
namespace fs = std::filesystem;

namespace {

struct Server {
  pid_t pid = -1;
  int port = -1;
};

// Starts meshflow-serve and reads its port from the "listening" line (30 s at most).
Server start_server(const std::vector<std::string>& args, const std::string& log) {
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  Server s;
  s.pid = ::fork();
  if (s.pid == 0) {
    ::dup2(out[1], 1);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) ::dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(MESHFLOW_SERVE_PATH)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(MESHFLOW_SERVE_PATH, argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string line;
  auto deadline = bench::Clock::now() + std::chrono::seconds(30);
  while (bench::Clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char c;
    if (::read(out[0], &c, 1) <= 0) break;
    if (c != '\n') {
      line += c;
      continue;
    }
    int grpc = 0;
    if (std::sscanf(line.c_str(), "listening rest=%d grpc=%d", &s.port, &grpc) == 2) break;
    line.clear();
  }
  ::close(out[0]);
  if (s.port <= 0) throw std::runtime_error("meshflow-serve did not start; see " + log);
  return s;
}

int stop_server(Server& s) {
  ::kill(s.pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(s.pid, &status, WNOHANG) == s.pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    ::usleep(20000);
  }
  ::kill(s.pid, SIGKILL);
  ::waitpid(s.pid, &status, 0);
  return -1;
}

struct WrkResult {
  double rps = 0, p50_ms = 0, p99_ms = 0;
  int64_t requests = 0, errors = 0;
  std::string raw;
};

double to_ms(const std::string& v) {
  double x = std::stod(v);
  if (v.find("us") != std::string::npos) return x / 1000;
  if (v.find("ms") != std::string::npos) return x;
  if (v.find('s') != std::string::npos) return x * 1000;
  return x;
}

WrkResult run_wrk(int port, const std::string& path, const std::string& body, int connections, int seconds,
                  const std::string& dir) {
  const std::string script = dir + "/post.lua";
  std::ofstream(script) << "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [==["
                        << body << "]==]\n";
  std::ostringstream cmd;
  cmd << "wrk -t1 -c" << connections << " -d" << seconds << "s --latency --timeout 10s -s " << script
      << " http://127.0.0.1:" << port << path << " 2>&1";
  WrkResult r;
  FILE* p = ::popen(cmd.str().c_str(), "r");
  if (!p) throw std::runtime_error("cannot run wrk");
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) r.raw += buf;
  ::pclose(p);
  std::smatch m;
  if (std::regex_search(r.raw, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) r.rps = std::stod(m[1]);
  if (std::regex_search(r.raw, m, std::regex(R"(\n\s+50%\s+([0-9.]+[a-z]+))"))) r.p50_ms = to_ms(m[1]);
  if (std::regex_search(r.raw, m, std::regex(R"(\n\s+99%\s+([0-9.]+[a-z]+))"))) r.p99_ms = to_ms(m[1]);
  if (std::regex_search(r.raw, m, std::regex(R"((\d+) requests in)"))) r.requests = std::stoll(m[1]);
  if (std::regex_search(r.raw, m, std::regex(R"(Non-2xx or 3xx responses:\s+(\d+))"))) r.errors += std::stoll(m[1]);
  if (std::regex_search(r.raw, m, std::regex(R"(Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+))")))
    for (int i = 1; i <= 4; ++i) r.errors += std::stoll(m[i]);
  return r;
}

std::shared_ptr<mf::Model> make_model(const std::string& kind) {
  mf::manual_seed(7);
  if (kind == "mlp") {
    auto x = mf::Input({784}, {.name = "x"});
    auto h = mf::layers::Dense(256, {.activation = "relu"})(x);
    h = mf::layers::Dense(128, {.activation = "relu"})(h);
    auto y = mf::layers::Dense(10, {.activation = "softmax", .name = "probs"})(h);
    return std::make_shared<mf::Model>(mf::Tensors{x}, mf::Tensors{y});
  }
  auto x = mf::Input({28, 28, 1}, {.name = "x"});
  auto h = mf::layers::Conv2D(16, 3, {.activation = "relu"})(x);
  h = mf::layers::MaxPooling2D(2)(h);
  h = mf::layers::Conv2D(32, 3, {.activation = "relu"})(h);
  h = mf::layers::MaxPooling2D(2)(h);
  h = mf::layers::Flatten()(h);
  auto y = mf::layers::Dense(10, {.activation = "softmax", .name = "probs"})(h);
  return std::make_shared<mf::Model>(mf::Tensors{x}, mf::Tensors{y});
}

// One instance as JSON: values in [0, 1) with 4 decimals (an image's pixels, a feature row).
std::string instance_json(const mf::Shape& shape) {
  mf::Generator gen(3);
  mf::Tensor t = mf::empty(shape);
  mf::uniform_(t, 0.0, 1.0, &gen);
  const std::vector<float> v = t.to_vector<float>();
  std::function<nlohmann::json(size_t, int64_t&)> build = [&](size_t d, int64_t& k) -> nlohmann::json {
    if (d == shape.size()) return std::round(v[static_cast<size_t>(k++)] * 1e4) / 1e4;
    nlohmann::json a = nlohmann::json::array();
    for (int64_t i = 0; i < shape[d]; ++i) a.push_back(build(d + 1, k));
    return a;
  };
  int64_t k = 0;
  return nlohmann::json{{"instances", nlohmann::json::array({build(0, k)})}}.dump();
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 10, connections = 64;
  int64_t max_batch = 32, timeout_us = 2000;
  std::string models = "mlp,cnn";
  std::vector<std::string> server_flags;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--seconds") seconds = std::stoi(argv[i + 1]);
    else if (a == "--connections") connections = std::stoi(argv[i + 1]);
    else if (a == "--max-batch") max_batch = std::stoll(argv[i + 1]);
    else if (a == "--timeout-us") timeout_us = std::stoll(argv[i + 1]);
    else if (a == "--models") models = argv[i + 1];
    else if (a == "--server-flag") server_flags.push_back(argv[i + 1]);
    else {
      std::cerr << "unknown flag " << a << "\n";
      return 2;
    }
  }
  if (std::system("command -v wrk > /dev/null 2>&1") != 0) {
    std::cerr << "bench_serving: wrk not found (apt-get install wrk)\n";
    return 77;
  }
  const std::string dir = (fs::temp_directory_path() / ("meshflow_bench_serving_" + std::to_string(::getpid()))).string();
  fs::create_directories(dir);
  std::ofstream(dir + "/batching.txt") << "max_batch_size { value: " << max_batch << " }\nbatch_timeout_micros { value: "
                                       << timeout_us << " }\nmax_enqueued_batches { value: 1000 }\n"
                                       << "num_batch_threads { value: 1 }\n";
  std::printf("bench_serving: wrk -t1 -c%d -d%ds, one instance per request (req/s = served samples/s); batching max_batch_size=%lld "
              "batch_timeout_micros=%lld; %u cores\n",
              connections, seconds, static_cast<long long>(max_batch), static_cast<long long>(timeout_us),
              std::thread::hardware_concurrency());
  for (const auto& f : server_flags) std::printf("server flag: %s\n", f.c_str());
  std::printf("%-5s %-9s %9s %8s %8s %7s %14s %10s %8s %11s %8s\n", "model", "batching", "req/s", "p50 ms", "p99 ms",
              "errors", "in-process @B", "/in-proc", "noop rq/s", "noop p50ms", "/noop");
  bool all_ok = true;
  for (const std::string kind : {"mlp", "cnn"}) {
    if (models.find(kind) == std::string::npos) continue;
    auto model = make_model(kind);
    fs::create_directories(dir + "/" + kind);
    model->save(dir + "/" + kind + "/1", false);
    const mf::Shape row = kind == "mlp" ? mf::Shape{784} : mf::Shape{28, 28, 1};
    mf::Shape batch_shape{max_batch};
    batch_shape.insert(batch_shape.end(), row.begin(), row.end());
    mf::Tensor xb = mf::zeros(batch_shape);
    mf::Generator gen(1);
    mf::uniform_(xb, 0.0, 1.0, &gen);
    auto loaded = mf::load_model(dir + "/" + kind + "/1", false);
    const auto per_call = bench::time_runs({.repeats = 5, .calls = 1, .warmups = 2, .budget_s = 2.0, .max_repeats = 200},
                                           [&] { loaded->predict({xb}, {.batch_size = max_batch, .verbose = 0, .callbacks = {}}); });
    std::vector<double> sorted = per_call;
    std::sort(sorted.begin(), sorted.end());
    const double in_process = static_cast<double>(max_batch) / sorted[sorted.size() / 2];
    const std::string body = instance_json(row);
    for (bool batching : {false, true}) {
      std::vector<std::string> args{"--model_name=" + kind, "--model_base_path=" + dir + "/" + kind, "--rest_api_port=0"};
      args.insert(args.end(), server_flags.begin(), server_flags.end());
      if (batching) {
        args.push_back("--enable_batching=true");
        args.push_back("--batching_parameters_file=" + dir + "/batching.txt");
      }
      Server s = start_server(args, dir + "/" + kind + (batching ? "_on" : "_off") + ".log");
      run_wrk(s.port, "/v1/models/" + kind + ":predict", body, connections, 1, dir);  // warm-up
      WrkResult r = run_wrk(s.port, "/v1/models/" + kind + ":predict", body, connections, seconds, dir);
      // The ceiling: the same server, body and wrk settings, on an endpoint that touches no model.
      WrkResult noop = run_wrk(s.port, "/monitoring/noop", body, connections, seconds, dir);
      const int code = stop_server(s);
      all_ok = all_ok && code == 0 && r.requests > 0 && r.errors == 0 && noop.errors == 0;
      std::printf("%-5s %-9s %9.0f %8.2f %8.2f %7lld %14.0f %10.3f %8.0f %11.2f %8.2f%s\n", kind.c_str(),
                  batching ? "on" : "off", r.rps, r.p50_ms, r.p99_ms, static_cast<long long>(r.errors), in_process,
                  r.rps / in_process, noop.rps, noop.p50_ms, noop.rps > 0 ? r.rps / noop.rps : 0.0,
                  code == 0 ? "" : "  (server did not exit 0)");
      std::fflush(stdout);
      if (r.requests == 0 || r.errors > 0) std::cerr << r.raw;
      if (noop.requests == 0 || noop.errors > 0) std::cerr << noop.raw;
    }
  }
  fs::remove_all(dir);
  return all_ok ? 0 : 1;
}
