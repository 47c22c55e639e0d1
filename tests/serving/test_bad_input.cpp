// Bad requests on the real server: malformed JSON, wrong shapes and dtypes, huge bodies, unknown
// paths, garbage bytes and slow clients that never finish. Each gets a 4xx JSON error or a closed
// connection, and the server keeps answering the others (checked against Model::predict).
#include <gtest/gtest.h>

#include "serving_test_util.h"

using namespace serving_test;

namespace {

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(mf_test::temp_folder("serving_bad"));
    std::filesystem::create_directories(*dir_ + "/m");
    publish(*make_mlp(71), *dir_ + "/m", 1);
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->start({"--model_name=m", "--model_base_path=" + *dir_ + "/m", "--max_request_bytes=4096",
                                "--request_timeout_ms=1500"},
                               *dir_ + "/log"))
        << server_->error();
  }
  static void TearDownTestSuite() {
    if (server_) {
      EXPECT_EQ(server_->stop(), 0) << server_->log();
      delete server_;
      server_ = nullptr;
    }
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); ASSERT_GT(server_->rest_port(), 0); }
  // The server still answers a good request correctly.
  static void expect_serving() {
    const mf::Tensor x = random_rows(2, 4, 700);
    auto r = http(server_->rest_port(), "POST", "/v1/models/m:predict", Json{{"instances", rows_json(x)}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    auto want = mf::load_model(*dir_ + "/m/1", false)->predict({x}, {.batch_size = 8, .verbose = 0, .callbacks = {}})[0];
    EXPECT_EQ(compare(r.json()["predictions"], want), "");
  }
  static HttpResult post(const std::string& body, const std::string& path = "/v1/models/m:predict") {
    return http(server_->rest_port(), "POST", path, body);
  }
  static std::string* dir_;
  static ServerProcess* server_;
};
std::string* BadInput::dir_ = nullptr;
ServerProcess* BadInput::server_ = nullptr;

// TF Serving's {"b64": ...} binary strings: the model's input is float, so each is a 400 naming it.
TEST_F(BadInput, Base64ValuesAre400NamingTheInput) {
  for (const std::string path : {"/v1/models/m:predict", "/v1/models/m:classify"}) {
    for (const std::string body : {R"({"instances": [{"b64": "AAECAw=="}]})", R"({"examples": [{"x": {"b64": "AAECAw=="}}]})",
                                   R"({"inputs": {"x": [[1, 2, {"b64": "AAECAw=="}, 4]]}})"}) {
      auto r = post(body, path);
      EXPECT_EQ(r.status, 400) << path << " " << body << ": " << r.body;
      const std::string error = r.json().value("error", "");
      for (const char* w : {"input 'x'", "b64", "DT_FLOAT", "4 bytes", "no string inputs"})
        EXPECT_NE(error.find(w), std::string::npos) << body << " -> " << error;
    }
  }
  expect_serving();
}

TEST_F(BadInput, MalformedBodiesWrongShapesAndDtypesAre400) {
  const std::pair<std::string, std::string> cases[] = {
      {"{\"instances\": [[1, 2, 3, 4]", "not valid JSON"},
      {"", "not valid JSON"},
      {"\xff\xfe{}", "not valid JSON"},
      {"{\"instances\": [[1, 2, 3]]}", "expects [?, 4]"},
      {"{\"instances\": [[1, 2, 3, 4], [1, 2]]}", "instance 1"},
      {"{\"inputs\": [[[1, 2, 3, 4]]]}", "expects [?, 4]"},
      {"{\"instances\": [[1, 2, \"3\", 4]]}", "got string"},
      {"{\"instances\": [[1, 2, null, 4]]}", "got null"},
      {"{\"instances\": [{\"y\": [1, 2, 3, 4]}]}", "no input 'x'"},
      {"{\"instances\": 5}", "list of rows"},
  };
  for (const auto& [body, says] : cases) {
    auto r = post(body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    Json j = r.json();
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    EXPECT_NE(j["error"].get<std::string>().find(says), std::string::npos) << body << " -> " << r.body;
  }
  expect_serving();
}

TEST_F(BadInput, UnknownPathsModelsAndMethods) {
  const int port = server_->rest_port();
  EXPECT_EQ(http(port, "GET", "/").status, 404);
  EXPECT_EQ(http(port, "GET", "/v2/models/m").status, 404);
  EXPECT_EQ(http(port, "GET", "/v1/models/m/versions/1/extra").status, 404);
  EXPECT_EQ(post("{}", "/v1/models/m:explode").status, 404);
  EXPECT_EQ(post("{}", "/v1/models/other:predict").status, 404);
  EXPECT_EQ(post("{}", "/v1/models/m/versions/9:predict").status, 404);
  EXPECT_EQ(http(port, "GET", "/v1/models/m/versions/x").status, 400);
  EXPECT_EQ(http(port, "GET", "/v1/models/m:predict").status, 405);
  EXPECT_EQ(post("{}", "/v1/models/m").status, 405);
  auto r = http(port, "GET", "/v1/models/other");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.json()["error"].get<std::string>().find("'other'"), std::string::npos) << r.body;
  expect_serving();
}

TEST_F(BadInput, HugeBodyIs413AndGarbageIs400) {
  std::string huge = "{\"instances\": [" + std::string(10000, ' ') + "[1, 2, 3, 4]]}";
  auto r = post(huge);
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_NE(r.body.find("max_request_bytes"), std::string::npos) << r.body;
  // A Content-Length far past the limit is refused from the header alone.
  int fd = connect_to(server_->rest_port(), 5000);
  ASSERT_GE(fd, 0);
  send_all(fd, "POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{");
  EXPECT_EQ(parse_http(read_all(fd)).status, 413);
  ::close(fd);
  fd = connect_to(server_->rest_port(), 5000);
  ASSERT_GE(fd, 0);
  send_all(fd, "\x16\x03\x01 this is not HTTP\r\n\r\n");
  EXPECT_EQ(parse_http(read_all(fd)).status, 400);
  ::close(fd);
  expect_serving();
}

// curl sends "Expect: 100-continue" before a large body and waits for the 100 (up to a second).
TEST_F(BadInput, ExpectContinueGetsA100BeforeTheBody) {
  int fd = connect_to(server_->rest_port(), 5000);
  ASSERT_GE(fd, 0);
  const mf::Tensor x = random_rows(1, 4, 701);
  const std::string body = Json{{"instances", rows_json(x)}}.dump();
  send_all(fd, "POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n"
               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n");
  char buf[256];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);  // the 100 comes before we send the body
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 100 Continue", 0), 0u) << std::string(buf, n);
  send_all(fd, body);
  HttpResult r = parse_http(read_all(fd));
  ::close(fd);
  ASSERT_EQ(r.status, 200) << r.body;
  auto want = mf::load_model(*dir_ + "/m/1", false)->predict({x}, {.batch_size = 8, .verbose = 0, .callbacks = {}})[0];
  EXPECT_EQ(compare(r.json()["predictions"], want), "");
}

TEST_F(BadInput, SlowClientsAreClosedAndOthersAreServed) {
  // Ten clients that send half a request and then nothing.
  std::vector<int> slow;
  for (int i = 0; i < 10; ++i) {
    int fd = connect_to(server_->rest_port(), 10000);
    ASSERT_GE(fd, 0);
    send_all(fd, i % 2 ? "POST /v1/models/m:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"inst"
                       : "GET /v1/models/m HTTP/1.1\r\nHost:");
    slow.push_back(fd);
  }
  expect_serving();  // while they hang
  const auto t0 = std::chrono::steady_clock::now();
  for (int fd : slow) {
    std::string rest = read_all(fd);  // returns when the server closes (or after the 10 s receive timeout)
    EXPECT_EQ(parse_http(rest).status, 0) << rest;
    ::close(fd);
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(waited, 6.0) << "slow clients were not closed by --request_timeout_ms=1500";
  expect_serving();
}

}  // namespace
