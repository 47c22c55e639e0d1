// Model versions on the real server: a new version folder becomes the default under load with no
// failed request, a removed one is unloaded, policies (latest N, all, specific) and labels pick
// versions, and a version that fails to load is reported without taking the server down.
#include <gtest/gtest.h>

#include <atomic>

#include "serving_test_util.h"

using namespace serving_test;

namespace {

mf::Tensor predict_folder(const std::string& folder, const mf::Tensor& x) {
  return mf::load_model(folder, false)->predict({x}, {.batch_size = 64, .verbose = 0, .callbacks = {}})[0];
}

Json predict_json(int port, const std::string& path, const mf::Tensor& x) {
  auto r = http(port, "POST", path, Json{{"instances", rows_json(x)}}.dump());
  return r.status == 200 ? r.json()["predictions"] : Json();
}

TEST(Versions, NewVersionTakesOverUnderLoadWithNoFailedRequest) {
  const std::string dir = mf_test::temp_folder("serving_swap");
  const std::string base = dir + "/m";
  std::filesystem::create_directories(base);
  publish(*make_mlp(31), base, 1);
  std::ofstream(dir + "/models.config") << "model_config_list { config { name: 'm' base_path: '" << base
                                        << "' model_version_policy { latest { num_versions: 2 } } } }";
  ServerProcess server;
  ASSERT_TRUE(server.start({"--model_config_file=" + dir + "/models.config", "--file_system_poll_wait_seconds=1"},
                           dir + "/log")) << server.error();
  const mf::Tensor x = random_rows(3, 4, 501);
  const mf::Tensor v1 = predict_folder(base + "/1", x);

  // Two clients predict without pause; each answer must be version 1's or version 2's.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, saw_v2{0};
  std::mutex mutex;
  mf::Tensor v2;
  std::vector<std::string> failures;
  auto client = [&] {
    while (!stop) {
      Json got = predict_json(server.rest_port(), "/v1/models/m:predict", x);
      bool is_v1 = !got.is_null() && compare(got, v1).empty();
      bool is_v2 = false;
      {
        std::lock_guard<std::mutex> lock(mutex);
        is_v2 = v2.defined() && !got.is_null() && compare(got, v2).empty();
        if (!is_v1 && !is_v2 && failures.size() < 5) failures.push_back(got.dump());
      }
      (is_v1 || is_v2 ? ok : failed)++;
      if (is_v2 && !is_v1) saw_v2++;
    }
  };
  std::thread c1(client), c2(client);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  {
    auto m2 = make_mlp(32);
    publish(*m2, base, 2);
    std::lock_guard<std::mutex> lock(mutex);
    v2 = predict_folder(base + "/2", x);
  }
  // Version 2 becomes the default within 20 s.
  for (int i = 0; i < 200 && saw_v2 < 20; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_GE(saw_v2.load(), 20) << "answers never switched to version 2";
  // Version 1 (still loaded: latest 2) is removed while the clients keep going.
  EXPECT_EQ(http(server.rest_port(), "GET", "/v1/models/m/versions/1").json()["model_version_status"][0]["state"],
            "AVAILABLE");
  std::filesystem::remove_all(base + "/1");
  bool unloaded = false;
  for (int i = 0; i < 200 && !unloaded; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    unloaded = http(server.rest_port(), "GET", "/v1/models/m/versions/1").json()["model_version_status"][0]["state"] == "END";
  }
  EXPECT_TRUE(unloaded) << "version 1 was not unloaded after its folder went";
  const int ok_at_unload = ok;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  c1.join();
  c2.join();
  EXPECT_EQ(failed.load(), 0) << "first wrong answers: " << (failures.empty() ? "" : failures[0]);
  EXPECT_GT(ok.load(), ok_at_unload);
  EXPECT_GT(ok.load(), 40);
  EXPECT_EQ(http(server.rest_port(), "POST", "/v1/models/m/versions/1:predict", Json{{"instances", rows_json(x)}}.dump()).status,
            404);
  EXPECT_EQ(compare(predict_json(server.rest_port(), "/v1/models/m/versions/2:predict", x), v2), "");
  EXPECT_EQ(server.stop(), 0) << server.log();
  std::filesystem::remove_all(dir);
}

TEST(Versions, PoliciesAndLabels) {
  const std::string dir = mf_test::temp_folder("serving_policies");
  for (const char* m : {"all", "specific"}) std::filesystem::create_directories(dir + "/" + m);
  for (int v = 1; v <= 3; ++v) {
    publish(*make_mlp(40 + v), dir + "/all", v);
    publish(*make_mlp(50 + v), dir + "/specific", v);
  }
  std::ofstream(dir + "/models.config")
      << "model_config_list {\n"
      << "  config { name: 'all' base_path: '" << dir << "/all' model_version_policy { all {} }\n"
      << "           version_labels { key: 'stable' value: 1 } version_labels { key: 'canary' value: 3 } }\n"
      << "  config { name: 'specific' base_path: '" << dir << "/specific'\n"
      << "           model_version_policy { specific { versions: 2 } } }\n}\n";
  ServerProcess server;
  ASSERT_TRUE(server.start({"--model_config_file=" + dir + "/models.config"}, dir + "/log")) << server.error();
  const int port = server.rest_port();
  Json status = http(port, "GET", "/v1/models/all").json()["model_version_status"];
  ASSERT_EQ(status.size(), 3u) << status.dump();
  for (const auto& s : status) EXPECT_EQ(s["state"], "AVAILABLE");
  const mf::Tensor x = random_rows(2, 4, 502);
  EXPECT_EQ(compare(predict_json(port, "/v1/models/all:predict", x), predict_folder(dir + "/all/3", x)), "");
  EXPECT_EQ(compare(predict_json(port, "/v1/models/all/labels/stable:predict", x), predict_folder(dir + "/all/1", x)), "");
  EXPECT_EQ(compare(predict_json(port, "/v1/models/all/labels/canary:predict", x), predict_folder(dir + "/all/3", x)), "");
  EXPECT_EQ(compare(predict_json(port, "/v1/models/all/versions/2:predict", x), predict_folder(dir + "/all/2", x)), "");
  EXPECT_EQ(http(port, "GET", "/v1/models/all/labels/canary").json()["model_version_status"][0]["version"], "3");
  EXPECT_EQ(http(port, "GET", "/v1/models/all/labels/beta").status, 404);
  // specific { versions: 2 }: only 2 is served, and it is the default although 3 exists.
  EXPECT_EQ(compare(predict_json(port, "/v1/models/specific:predict", x), predict_folder(dir + "/specific/2", x)), "");
  EXPECT_EQ(http(port, "GET", "/v1/models/specific/versions/3").status, 404);
  EXPECT_EQ(http(port, "GET", "/v1/models/specific").json()["model_version_status"].size(), 1u);
  EXPECT_EQ(server.stop(), 0) << server.log();
  std::filesystem::remove_all(dir);
}

TEST(Versions, AVersionThatFailsToLoadIsReportedAndTheOldOneKeepsServing) {
  const std::string dir = mf_test::temp_folder("serving_badversion");
  const std::string base = dir + "/m";
  std::filesystem::create_directories(base);
  publish(*make_mlp(61), base, 1);
  ServerProcess server;
  ASSERT_TRUE(server.start({"--model_name=m", "--model_base_path=" + base, "--file_system_poll_wait_seconds=1"},
                           dir + "/log")) << server.error();
  const int port = server.rest_port();
  std::filesystem::create_directories(dir + "/broken");
  std::ofstream(dir + "/broken/config.json") << "{\"class_name\": \"Functional\", \"config\": {\"layers\": [";
  std::filesystem::rename(dir + "/broken", base + "/2");
  Json v2;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    v2 = http(port, "GET", "/v1/models/m/versions/2").json();
    if (v2.contains("model_version_status") && v2["model_version_status"][0]["state"] == "END") break;
  }
  ASSERT_TRUE(v2.contains("model_version_status")) << v2.dump();
  EXPECT_EQ(v2["model_version_status"][0]["state"], "END");
  EXPECT_EQ(v2["model_version_status"][0]["status"]["error_code"], "UNKNOWN");
  EXPECT_NE(v2["model_version_status"][0]["status"]["error_message"].get<std::string>().find("version 2"),
            std::string::npos) << v2.dump();
  const mf::Tensor x = random_rows(2, 4, 503);
  EXPECT_EQ(compare(predict_json(port, "/v1/models/m:predict", x), predict_folder(base + "/1", x)), "");
  // A good version 3 replaces both.
  publish(*make_mlp(63), base, 3);
  Json got;
  const mf::Tensor v3 = predict_folder(base + "/3", x);
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    got = predict_json(port, "/v1/models/m:predict", x);
    if (compare(got, v3).empty()) break;
  }
  EXPECT_EQ(compare(got, v3), "");
  EXPECT_EQ(server.stop(), 0) << server.log();
  std::filesystem::remove_all(dir);
}

}  // namespace
