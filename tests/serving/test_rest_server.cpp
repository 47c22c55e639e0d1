// meshflow-serve's REST API against the real server on 127.0.0.1: every path, one- and two-input
// models, row and columnar requests; every answer is compared with Model::predict on the same inputs.
#include <gtest/gtest.h>
#include <ifaddrs.h>

#include "serving_test_util.h"

using namespace serving_test;

namespace {

class RestServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(mf_test::temp_folder("serving_rest"));
    for (const char* m : {"mlp", "multi", "reg"}) std::filesystem::create_directories(*dir_ + "/" + m);
    publish(*make_mlp(11), *dir_ + "/mlp", 1);
    publish(*make_two_in_two_out(12), *dir_ + "/multi", 1);
    publish(*make_regressor(13), *dir_ + "/reg", 1);
    std::ofstream(*dir_ + "/models.config") << "# three models\nmodel_config_list {\n"
                                               "  config { name: 'mlp' base_path: '" << *dir_ << "/mlp' model_platform: 'tensorflow' }\n"
                                               "  config { name: \"multi\" base_path: \"" << *dir_ << "/multi\" }\n"
                                               "  config { name: 'reg' base_path: '" << *dir_ << "/reg' }\n}\n";
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->start({"--model_config_file=" + *dir_ + "/models.config"}, *dir_ + "/server.log"))
        << server_->error();
  }
  static void TearDownTestSuite() {
    if (server_) {
      EXPECT_EQ(server_->stop(), 0) << "meshflow-serve did not exit cleanly after SIGTERM:\n" << server_->log();
      delete server_;
      server_ = nullptr;
    }
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); ASSERT_GT(server_->rest_port(), 0); }

  static HttpResult get(const std::string& path) { return http(server_->rest_port(), "GET", path); }
  static HttpResult post(const std::string& path, const Json& body) {
    return http(server_->rest_port(), "POST", path, body.dump());
  }
  // The model as the server loaded it, predicted in this process.
  static mf::Tensors predict_here(const std::string& model, const mf::Tensors& x) {
    auto m = mf::load_model(*dir_ + "/" + model + "/1", false);
    return m->predict(x, {.batch_size = 64, .verbose = 0, .callbacks = {}});
  }

  static std::string* dir_;
  static ServerProcess* server_;
};
std::string* RestServer::dir_ = nullptr;
ServerProcess* RestServer::server_ = nullptr;

TEST_F(RestServer, StatusOfEveryVersionAndOfOne) {
  for (const std::string path : {"/v1/models/mlp", "/v1/models/mlp/versions/1"}) {
    auto r = get(path);
    ASSERT_EQ(r.status, 200) << path << ": " << r.body;
    Json j = r.json();
    ASSERT_EQ(j["model_version_status"].size(), 1u) << r.body;
    EXPECT_EQ(j["model_version_status"][0]["version"], "1");
    EXPECT_EQ(j["model_version_status"][0]["state"], "AVAILABLE");
    EXPECT_EQ(j["model_version_status"][0]["status"]["error_code"], "OK");
  }
  EXPECT_EQ(get("/v1/models/mlp/versions/7").status, 404);
  EXPECT_EQ(get("/v1/models/nope").status, 404);
  auto r = get("/v1/models/mlp/labels/stable");
  EXPECT_EQ(r.status, 404) << r.body;  // no labels configured for mlp
  EXPECT_NE(r.json()["error"].get<std::string>().find("stable"), std::string::npos) << r.body;
}

// The server listens on 127.0.0.1 only: this machine's other addresses refuse the connection.
TEST_F(RestServer, ListensOnLoopbackOnly) {
  ifaddrs* list = nullptr;
  ASSERT_EQ(::getifaddrs(&list), 0);
  int tried = 0;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    if ((ntohl(addr.sin_addr.s_addr) >> 24) == 127) continue;
    addr.sin_port = htons(static_cast<uint16_t>(server_->rest_port()));
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    EXPECT_NE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << "reachable on " << a->ifa_name;
    ::close(fd);
    ++tried;
  }
  ::freeifaddrs(list);
  if (tried == 0) GTEST_SKIP() << "no address but loopback on this machine";
  EXPECT_EQ(get("/v1/models/mlp").status, 200);
}

TEST_F(RestServer, MetadataNamesInputsAndOutputsWithShapes) {
  auto r = get("/v1/models/multi/metadata");
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = r.json();
  EXPECT_EQ(j["model_spec"]["name"], "multi");
  EXPECT_EQ(j["model_spec"]["version"], "1");
  Json sig = j["metadata"]["signature_def"]["signature_def"]["serving_default"];
  ASSERT_TRUE(sig["inputs"].contains("a") && sig["inputs"].contains("b")) << sig.dump();
  EXPECT_EQ(sig["inputs"]["a"]["dtype"], "DT_FLOAT");
  EXPECT_EQ(sig["inputs"]["a"]["tensor_shape"]["dim"][0]["size"], "-1");
  EXPECT_EQ(sig["inputs"]["a"]["tensor_shape"]["dim"][1]["size"], "3");
  EXPECT_EQ(sig["inputs"]["b"]["tensor_shape"]["dim"][1]["size"], "2");
  ASSERT_TRUE(sig["outputs"].contains("score") && sig["outputs"].contains("cls")) << sig.dump();
  EXPECT_EQ(sig["outputs"]["score"]["tensor_shape"]["dim"][1]["size"], "1");
  EXPECT_EQ(sig["outputs"]["cls"]["tensor_shape"]["dim"][1]["size"], "2");
  EXPECT_EQ(get("/v1/models/multi/versions/1/metadata").status, 200);
  EXPECT_EQ(get("/v1/models/multi/versions/2/metadata").status, 404);
}

TEST_F(RestServer, PredictRowsEqualsModelPredict) {
  mf::Tensor x = random_rows(5, 4, 101);
  auto r = post("/v1/models/mlp:predict", {{"instances", rows_json(x)}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(compare(r.json()["predictions"], predict_here("mlp", {x})[0]), "") << r.body;
  // The same rows through /versions/1 and keyed by input name.
  Json keyed = Json::array();
  for (const auto& row : rows_json(x)) keyed.push_back({{"x", row}});
  r = post("/v1/models/mlp/versions/1:predict", {{"signature_name", "serving_default"}, {"instances", keyed}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(compare(r.json()["predictions"], predict_here("mlp", {x})[0]), "") << r.body;
}

TEST_F(RestServer, PredictColumnarEqualsModelPredict) {
  mf::Tensor x = random_rows(3, 4, 102);
  auto r = post("/v1/models/mlp:predict", {{"inputs", rows_json(x)}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(compare(r.json()["outputs"], predict_here("mlp", {x})[0]), "") << r.body;
  r = post("/v1/models/mlp:predict", {{"inputs", {{"x", rows_json(x)}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(compare(r.json()["outputs"], predict_here("mlp", {x})[0]), "") << r.body;
}

TEST_F(RestServer, TwoInputsTwoOutputsRowAndColumnar) {
  mf::Tensor a = random_rows(4, 3, 103), b = random_rows(4, 2, 104);
  mf::Tensors want = predict_here("multi", mf::Tensors{{"a", a}, {"b", b}});
  ASSERT_EQ(want.size(), 2u);
  Json instances = Json::array();
  Json ja = rows_json(a), jb = rows_json(b);
  for (size_t i = 0; i < 4; ++i) instances.push_back({{"b", jb[i]}, {"a", ja[i]}});  // key order does not matter
  auto r = post("/v1/models/multi:predict", {{"instances", instances}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json preds = r.json()["predictions"];
  ASSERT_EQ(preds.size(), 4u) << r.body;
  Json score = Json::array(), cls = Json::array();
  for (const auto& p : preds) {
    score.push_back(p["score"]);
    cls.push_back(p["cls"]);
  }
  EXPECT_EQ(compare(score, want[0]), "") << r.body;
  EXPECT_EQ(compare(cls, want[1]), "") << r.body;

  r = post("/v1/models/multi:predict", {{"inputs", {{"a", ja}, {"b", jb}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(compare(r.json()["outputs"]["score"], want[0]), "") << r.body;
  EXPECT_EQ(compare(r.json()["outputs"]["cls"], want[1]), "") << r.body;
}

TEST_F(RestServer, ClassifyAndRegress) {
  mf::Tensor x = random_rows(3, 4, 105);
  mf::Tensor probs = predict_here("mlp", {x})[0];
  auto r = post("/v1/models/mlp:classify", {{"examples", rows_json(x)}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json results = r.json()["results"];
  ASSERT_EQ(results.size(), 3u) << r.body;
  for (int64_t i = 0; i < 3; ++i) {
    ASSERT_EQ(results[i].size(), 3u) << r.body;
    for (int64_t c = 0; c < 3; ++c) {
      EXPECT_EQ(results[i][c][0], std::to_string(c));
      EXPECT_NEAR(results[i][c][1].get<double>(), probs.at({i, c}), 1e-5);
    }
  }
  mf::Tensor value = predict_here("reg", {x})[0];
  r = post("/v1/models/reg:regress", {{"examples", rows_json(x)}});
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.json()["results"].size(), 3u) << r.body;
  for (int64_t i = 0; i < 3; ++i) EXPECT_NEAR(r.json()["results"][i].get<double>(), value.at({i, 0}), 1e-5);

  // The other way round is a 400 that says why.
  r = post("/v1/models/reg:classify", {{"examples", rows_json(x)}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("softmax or sigmoid"), std::string::npos) << r.body;
  r = post("/v1/models/mlp:regress", {{"examples", rows_json(x)}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("one number per row"), std::string::npos) << r.body;
  r = post("/v1/models/multi:classify", {{"examples", Json::array()}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("2 outputs"), std::string::npos) << r.body;
}

TEST_F(RestServer, MetricsCountRequestsByStatus) {
  mf::Tensor x = random_rows(2, 4, 106);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(post("/v1/models/reg:predict", {{"instances", rows_json(x)}}).status, 200);
  ASSERT_EQ(http(server_->rest_port(), "POST", "/v1/models/reg:predict", "{not json").status, 400);
  auto r = get("/monitoring/prometheus/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("meshflow_serving_requests_total{model=\"reg\",api=\"predict\",status=\"200\"} 3\n"),
            std::string::npos) << r.body;
  EXPECT_NE(r.body.find("meshflow_serving_requests_total{model=\"reg\",api=\"predict\",status=\"400\"} 1\n"),
            std::string::npos) << r.body;
  EXPECT_NE(r.body.find("meshflow_serving_request_latency_seconds_count{model=\"reg\",api=\"predict\"} 4\n"),
            std::string::npos) << r.body;
  // A name that is not served is counted under "", so clients cannot grow the metrics at will.
  ASSERT_EQ(post("/v1/models/no_such_model_42:predict", {{"instances", rows_json(x)}}).status, 404);
  r = get("/monitoring/prometheus/metrics");
  EXPECT_EQ(r.body.find("no_such_model_42"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("meshflow_serving_requests_total{model=\"\",api=\"predict\",status=\"404\"}"),
            std::string::npos) << r.body;
}

// One model from --model_name/--model_base_path, stopped by SIGTERM with exit code 0.
TEST(RestServerFlags, SingleModelFromFlags) {
  const std::string dir = mf_test::temp_folder("serving_flags");
  std::filesystem::create_directories(dir + "/m");
  auto model = make_mlp(21);
  publish(*model, dir + "/m", 3);
  ServerProcess server;
  ASSERT_TRUE(server.start({"--model_name=my_model", "--model_base_path=" + dir + "/m"}, dir + "/log")) << server.error();
  mf::Tensor x = random_rows(2, 4, 107);
  auto r = http(server.rest_port(), "POST", "/v1/models/my_model:predict", Json{{"instances", rows_json(x)}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(compare(r.json()["predictions"], model->predict({x}, {.batch_size = 8, .verbose = 0, .callbacks = {}})[0]), "");
  EXPECT_EQ(http(server.rest_port(), "GET", "/v1/models/my_model").json()["model_version_status"][0]["version"], "3");
  EXPECT_EQ(server.stop(), 0) << server.log();
  std::filesystem::remove_all(dir);
}

TEST(RestServerFlags, BadFlagsFailToStartNamingTheFlag) {
  const std::string dir = mf_test::temp_folder("serving_badflags");
  ServerProcess server;
  EXPECT_FALSE(server.start({"--model_name=m", "--model_base_path=" + dir + "/missing"}, dir + "/log1"));
  EXPECT_NE(server.log().find("is not a folder"), std::string::npos) << server.log();
  server.stop();
  ServerProcess server2;
  EXPECT_FALSE(server2.start({"--model_base_path=" + dir, "--rest_api_port=99999"}, dir + "/log2"));
  EXPECT_NE(server2.log().find("--rest_api_port"), std::string::npos) << server2.log();
  server2.stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
