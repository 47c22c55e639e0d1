// Batching on the real server (--enable_batching with TF Serving's parameters file): concurrent
// one-row requests are merged (the metrics' batch sizes say so) and each answer equals
// Model::predict on its own row; a full queue answers 503 at once; SIGTERM answers a request that
// is waiting in the queue at once, before the server exits 0.
#include <gtest/gtest.h>

#include <future>

#include "serving_test_util.h"

using namespace serving_test;

namespace {

struct BatchingServer {
  std::string dir;
  ServerProcess server;
  std::shared_ptr<mf::Model> model;

  bool start(const std::string& tag, const std::string& params, const std::vector<std::string>& extra = {}) {
    dir = mf_test::temp_folder(tag);
    std::filesystem::create_directories(dir + "/m");
    model = make_mlp(81);
    publish(*model, dir + "/m", 1);
    std::ofstream(dir + "/batching.txt") << params;
    std::vector<std::string> args{"--model_name=m", "--model_base_path=" + dir + "/m", "--enable_batching=true",
                                  "--batching_parameters_file=" + dir + "/batching.txt", "--rest_api_num_threads=4"};
    args.insert(args.end(), extra.begin(), extra.end());
    return server.start(args, dir + "/log");
  }
  ~BatchingServer() { std::filesystem::remove_all(dir); }
  HttpResult predict(const mf::Tensor& x) {
    return http(server.rest_port(), "POST", "/v1/models/m:predict", Json{{"instances", rows_json(x)}}.dump());
  }
  mf::Tensor want(const mf::Tensor& x) { return model->predict({x}, {.batch_size = 64, .verbose = 0, .callbacks = {}})[0]; }
};

// The value of a metric line "name value" in Prometheus text (-1 when absent).
double metric(const std::string& text, const std::string& name) {
  auto at = text.find(name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 1));
}

TEST(Batching, ConcurrentRequestsAreMergedAndAnsweredWithTheirOwnRows) {
  BatchingServer s;
  ASSERT_TRUE(s.start("serving_batching",
                      "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 100000 }\n"
                      "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 1 }\n"
                      "allowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"))
      << s.server.error();
  const int n = 16;
  std::vector<mf::Tensor> xs;
  for (int i = 0; i < n; ++i) xs.push_back(random_rows(1, 4, 800 + i));
  std::vector<std::future<HttpResult>> answers;
  for (int i = 0; i < n; ++i) answers.push_back(std::async(std::launch::async, [&, i] { return s.predict(xs[i]); }));
  for (int i = 0; i < n; ++i) {
    HttpResult r = answers[i].get();
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(compare(r.json()["predictions"], s.want(xs[i])), "") << "request " << i;
  }
  const std::string text = http(s.server.rest_port(), "GET", "/monitoring/prometheus/metrics").body;
  EXPECT_EQ(metric(text, "meshflow_serving_batch_size_sum"), n) << text;
  const double batches = metric(text, "meshflow_serving_batch_size_count");
  EXPECT_GE(batches, 2) << text;          // at most 8 rows per batch
  EXPECT_LT(batches, n) << text;          // but requests were merged
  // Every padded batch is an allowed size: 4 or 8 rows.
  const double padded = metric(text, "meshflow_serving_padded_batch_size_sum");
  EXPECT_EQ(static_cast<int64_t>(padded) % 4, 0) << text;
  EXPECT_GE(padded, n) << text;
  EXPECT_EQ(s.server.stop(), 0) << s.server.log();
}

TEST(Batching, FullQueueIs503AtOnceAndSigtermFinishesQueuedRequests) {
  BatchingServer s;
  ASSERT_TRUE(s.start("serving_batching_full",
                      "max_batch_size { value: 4 }\nbatch_timeout_micros { value: 5000000 }\n"
                      "max_enqueued_batches { value: 1 }\nnum_batch_threads { value: 1 }\n"))
      << s.server.error();
  const mf::Tensor x3 = random_rows(3, 4, 900);
  // The first request waits in the queue for the 5 s timeout (3 rows < 4); the second does not fit.
  // (1 s is ample for the first to arrive, even on a loaded machine.)
  auto first = std::async(std::launch::async, [&] { return s.predict(x3); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const auto t0 = std::chrono::steady_clock::now();
  HttpResult refused = s.predict(random_rows(3, 4, 901));
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("full"), std::string::npos) << refused.body;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
  // SIGTERM while the first is still queued: it is answered at once (not after the 5 s batch
  // timeout), then the server exits 0.
  EXPECT_EQ(first.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  const auto term = std::chrono::steady_clock::now();
  ::kill(s.server.pid(), SIGTERM);
  HttpResult r = first.get();
  EXPECT_LT(std::chrono::steady_clock::now() - term, std::chrono::milliseconds(2500));
  ASSERT_EQ(r.status, 200) << r.body << "\n" << s.server.log();
  EXPECT_EQ(compare(r.json()["predictions"], s.want(x3)), "");
  EXPECT_EQ(s.server.stop(), 0) << s.server.log();
}

}  // namespace

// --tensorflow_intra_op_parallelism=N: the server runs itself again with OMP_NUM_THREADS=N (Note
// [Intra-op threads] in meshflow_serve.cpp), so every thread's kernels see it; answers are unchanged.
TEST(Batching, IntraOpParallelismSetsTheServersThreads) {
  BatchingServer s;
  ASSERT_TRUE(s.start("serving_intra_op", "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000 }\n",
                      {"--tensorflow_intra_op_parallelism=3"}))
      << s.server.error();
  std::ifstream environ_file("/proc/" + std::to_string(s.server.pid()) + "/environ", std::ios::binary);
  std::string environ((std::istreambuf_iterator<char>(environ_file)), std::istreambuf_iterator<char>());
  EXPECT_NE(environ.find(std::string("OMP_NUM_THREADS=3\0", 18)), std::string::npos);
  const mf::Tensor x = random_rows(3, 4, 91);
  HttpResult r = s.predict(x);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(compare(r.json()["predictions"], s.want(x)), "");
  EXPECT_EQ(s.server.stop(), 0);
}
