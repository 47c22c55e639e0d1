// Helpers for the serving tests: meshflow-serve started as a real process on free loopback ports
// (waited for at most 30 s; stopped with SIGTERM, then SIGKILL after 10 s), a small blocking HTTP
// client, and the models the tests serve, saved with Model::save.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "meshflow/meshflow.h"
#include "test_util.h"

namespace serving_test {

namespace mf = meshflow;
using Json = nlohmann::json;

struct HttpResult {
  int status = 0;     // 0: no answer (connection closed or timed out)
  std::string body;
  Json json() const { return Json::parse(body, nullptr, false); }
};

// A connected TCP socket to 127.0.0.1:port with send/receive timeouts; -1 when it cannot connect.
inline int connect_to(int port, int timeout_ms = 10000) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool send_all(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Everything the peer sends until it closes (or the receive timeout).
inline std::string read_all(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

inline HttpResult parse_http(const std::string& raw) {
  HttpResult r;
  if (raw.rfind("HTTP/1.1 ", 0) != 0) return r;
  r.status = std::atoi(raw.c_str() + 9);
  auto end = raw.find("\r\n\r\n");
  if (end != std::string::npos) r.body = raw.substr(end + 4);
  return r;
}

// One request on its own connection ("Connection: close").
inline HttpResult http(int port, const std::string& method, const std::string& path, const std::string& body = "",
                       int timeout_ms = 20000) {
  int fd = connect_to(port, timeout_ms);
  if (fd < 0) return {};
  std::ostringstream req;
  req << method << " " << path << " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST") req << "Content-Type: application/json\r\nContent-Length: " << body.size() << "\r\n";
  req << "\r\n" << body;
  HttpResult r;
  if (send_all(fd, req.str())) r = parse_http(read_all(fd));
  ::close(fd);
  return r;
}

// meshflow-serve as a child process.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ~ServerProcess() {
    if (pid_ > 0) stop();
  }

  // Starts meshflow-serve with `args` (plus --rest_api_port=0 unless given) and waits at most 30 s
  // for its "listening" line. False (with the reason in error()) when it does not come.
  bool start(std::vector<std::string> args, const std::string& log_path) {
    bool has_port = false;
    for (const auto& a : args) has_port |= a.rfind("--rest_api_port", 0) == 0;
    if (!has_port) args.push_back("--rest_api_port=0");
    int out[2];
    if (::pipe(out) != 0) return fail("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (log >= 0) ::dup2(log, 2);
      ::close(out[0]);
      std::vector<char*> argv{const_cast<char*>(MESHFLOW_SERVE_PATH)};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(MESHFLOW_SERVE_PATH, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_fd_ = out[0];
    log_path_ = log_path;
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char c;
      ssize_t n = ::read(out_fd_, &c, 1);
      if (n <= 0) return fail("meshflow-serve exited before listening: " + log());
      if (c != '\n') {
        line += c;
        continue;
      }
      if (std::sscanf(line.c_str(), "listening rest=%d grpc=%d", &rest_port_, &grpc_port_) == 2) return true;
      line.clear();
    }
    return fail("no 'listening' line within 30 s: " + log());
  }

  // SIGTERM, then SIGKILL after 10 s; the exit code (-1 when it had to be killed or died of a signal).
  int stop() {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    pid_t r = 0;
    while ((r = ::waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (r == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      exit_code_ = -1;
    } else {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    pid_ = -1;
    if (out_fd_ >= 0) ::close(out_fd_);
    out_fd_ = -1;
    return exit_code_;
  }

  int rest_port() const { return rest_port_; }
  int grpc_port() const { return grpc_port_; }
  pid_t pid() const { return pid_; }
  const std::string& error() const { return error_; }
  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  bool fail(const std::string& why) {
    error_ = why;
    return false;
  }
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int rest_port_ = -1, grpc_port_ = -1, exit_code_ = -1;
  std::string log_path_, error_;
};

// Saves `model` as version `version` under `base` the way a trainer publishes one: written to a
// staging folder beside it, then renamed into place (the server never sees half a folder).
inline void publish(mf::Model& model, const std::string& base, int64_t version) {
  const std::string staging = base + "/.staging_" + std::to_string(version);
  std::filesystem::remove_all(staging);
  model.save(staging, /*include_optimizer=*/false);
  std::filesystem::rename(staging, base + "/" + std::to_string(version));
}

// x -> Dense(8, relu) -> Dense(3, softmax, "probs"): one input, one classifier output.
inline std::shared_ptr<mf::Model> make_mlp(uint64_t seed, int64_t features = 4) {
  mf::manual_seed(seed);
  auto x = mf::Input({features}, {.name = "x"});
  auto h = mf::layers::Dense(8, {.activation = "relu", .name = "hidden"})(x);
  auto y = mf::layers::Dense(3, {.activation = "softmax", .name = "probs"})(h);
  return std::make_shared<mf::Model>(mf::Tensors{x}, mf::Tensors{y});
}

// Inputs "a" [3] and "b" [2]; outputs "score" (one number) and "cls" (softmax over 2).
inline std::shared_ptr<mf::Model> make_two_in_two_out(uint64_t seed) {
  mf::manual_seed(seed);
  auto a = mf::Input({3}, {.name = "a"});
  auto b = mf::Input({2}, {.name = "b"});
  auto h = mf::layers::Dense(6, {.activation = "tanh", .name = "mix"})(mf::layers::Concatenate()({a, b}));
  auto score = mf::layers::Dense(1, {.name = "score"})(h);
  auto cls = mf::layers::Dense(2, {.activation = "softmax", .name = "cls"})(h);
  return std::make_shared<mf::Model>(mf::Tensors{a, b}, mf::Tensors{score, cls});
}

// x -> Dense(1, "value"): a regressor.
inline std::shared_ptr<mf::Model> make_regressor(uint64_t seed) {
  mf::manual_seed(seed);
  auto x = mf::Input({4}, {.name = "x"});
  auto y = mf::layers::Dense(1, {.name = "value"})(x);
  return std::make_shared<mf::Model>(mf::Tensors{x}, mf::Tensors{y});
}

// x -> Dense(1, sigmoid, "p"): one probability per row, so both :classify and :regress apply.
inline std::shared_ptr<mf::Model> make_sigmoid(uint64_t seed) {
  mf::manual_seed(seed);
  auto x = mf::Input({4}, {.name = "x"});
  auto y = mf::layers::Dense(1, {.activation = "sigmoid", .name = "p"})(x);
  return std::make_shared<mf::Model>(mf::Tensors{x}, mf::Tensors{y});
}

// Rows of random values in [-1, 1) as a float32 tensor and as JSON lists.
inline mf::Tensor random_rows(int64_t rows, int64_t cols, uint64_t seed) {
  return mf_test::random_tensor({rows, cols}, seed, -1.0, 1.0, mf::DType::F32);
}

inline Json rows_json(const mf::Tensor& t) {
  Json out = Json::array();
  auto v = mf_test::values(t);
  for (int64_t r = 0; r < t.size(0); ++r) {
    Json row = Json::array();
    for (int64_t c = 0; c < t.size(1); ++c) row.push_back(static_cast<float>(v[r * t.size(1) + c]));
    out.push_back(row);
  }
  return out;
}

// A [rows, cols] JSON list compared with a tensor: the first difference, or "" when all are close.
inline std::string compare(const Json& got, const mf::Tensor& want, double tol = 1e-5) {
  auto v = mf_test::values(want);
  const int64_t rows = want.size(0), cols = want.numel() / std::max<int64_t>(rows, 1);
  if (!got.is_array() || static_cast<int64_t>(got.size()) != rows) return "expected " + std::to_string(rows) + " rows, got " + got.dump();
  for (int64_t r = 0; r < rows; ++r) {
    Json row = got[static_cast<size_t>(r)];
    if (!row.is_array()) row = Json::array({row});
    if (static_cast<int64_t>(row.size()) != cols) return "row " + std::to_string(r) + " has " + std::to_string(row.size()) + " values";
    for (int64_t c = 0; c < cols; ++c) {
      double g = row[static_cast<size_t>(c)].get<double>(), w = v[r * cols + c];
      if (std::fabs(g - w) > tol * (1 + std::fabs(w)))
        return "row " + std::to_string(r) + " col " + std::to_string(c) + ": " + std::to_string(g) + " vs " + std::to_string(w);
    }
  }
  return "";
}

}  // namespace serving_test
