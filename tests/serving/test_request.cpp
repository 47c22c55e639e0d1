// meshflow-serve's parts in one process: the request parser, the config and batching files, the
// flags, and the batcher merging concurrent requests (answers equal the model run alone).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <future>
#include <optional>
#include <thread>

#include "meshflow/meshflow.h"
#include "meshflow/serving/batcher.h"
#include "meshflow/serving/config.h"
#include "meshflow/serving/metrics.h"
#include "meshflow/serving/request_json.h"
#include "meshflow/serving/servable.h"
#include "request_fast.h"
#include "test_util.h"

namespace mf = meshflow;
namespace sv = meshflow::serving;

namespace meshflow::serving {
inline bool detail_parse_fast(const std::string& body, const Signature& sig, ParsedRequest& out) {
  return parse_numeric_fast(body, sig, ParseLimits{}, out);
}
}  // namespace meshflow::serving

namespace {

sv::Signature two_inputs() {
  sv::Signature s;
  s.inputs = {{"a", mf::DType::F32, {-1, 2}}, {"ids", mf::DType::I64, {-1}}};
  s.outputs = {{"y", mf::DType::F32, {-1, 1}}};
  return s;
}

// The status and message of the ServingError that parsing `body` raises ("" when it parses).
std::pair<int, std::string> parse_error(const std::string& body, const sv::Signature& sig, sv::ParseLimits limits = {}) {
  try {
    sv::parse_predict_request(body, sig, limits);
  } catch (const sv::ServingError& e) {
    return {e.http_status(), e.what()};
  }
  return {0, ""};
}

TEST(PredictRequest, RowsKeyedByInputName) {
  auto p = sv::parse_predict_request(R"({"instances": [{"a": [1, 2.5], "ids": 7}, {"ids": -3, "a": [3, 4]}]})", two_inputs());
  EXPECT_EQ(p.format, sv::RequestFormat::Row);
  ASSERT_EQ(p.rows, 2);
  ASSERT_EQ(p.inputs.size(), 2u);
  EXPECT_EQ(p.inputs[0].shape(), (mf::Shape{2, 2}));
  EXPECT_EQ(p.inputs[0].to_vector<float>(), (std::vector<float>{1, 2.5f, 3, 4}));
  EXPECT_EQ(p.inputs[1].dtype(), mf::DType::I64);
  EXPECT_EQ(p.inputs[1].to_vector<int64_t>(), (std::vector<int64_t>{7, -3}));
}

TEST(PredictRequest, ColumnarAndBareRows) {
  auto p = sv::parse_predict_request(R"({"inputs": {"a": [[1, 2], [3, 4], [5, 6]], "ids": [1, 2, 3]}})", two_inputs());
  EXPECT_EQ(p.format, sv::RequestFormat::Columnar);
  EXPECT_EQ(p.rows, 3);
  EXPECT_EQ(p.inputs[0].to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  sv::Signature one;
  one.inputs = {{"x", mf::DType::F64, {-1, 2, 2}}};
  auto q = sv::parse_predict_request(R"({"instances": [[[1, 2], [3, 4]]]})", one);
  EXPECT_EQ(q.inputs[0].shape(), (mf::Shape{1, 2, 2}));
  EXPECT_EQ(q.inputs[0].to_vector<double>(), (std::vector<double>{1, 2, 3, 4}));
  auto c = sv::parse_predict_request(R"({"inputs": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]})", one);
  EXPECT_EQ(c.rows, 2);
  EXPECT_EQ(c.inputs[0].to_vector<double>()[7], 8.0);
}

TEST(PredictRequest, MistakesAre400NamingWhatIsWrong) {
  const auto sig = two_inputs();
  struct Case {
    const char* body;
    const char* says;
  } cases[] = {
      {"{not json", "not valid JSON"},
      {"[1, 2]", "JSON object"},
      {R"({"rows": []})", "neither"},
      {R"({"instances": [], "inputs": {}})", "not both"},
      {R"({"instances": []})", "empty"},
      {R"({"instances": [[1, 2]]})", "keyed by input name"},
      {R"({"instances": [{"a": [1, 2]}]})", "no input 'ids'"},
      {R"({"instances": [{"a": [1, 2], "ids": 1, "c": 0}]})", "'c', which is not an input"},
      {R"({"instances": [{"a": [1, 2, 3], "ids": 1}]})", "expects [?, 2]"},
      {R"({"instances": [{"a": [1, 2], "ids": 1}, {"a": [1], "ids": 2}]})", "instance 1"},
      {R"({"instances": [{"a": [1, "2"], "ids": 1}]})", "got string"},
      {R"({"instances": [{"a": [1, 2], "ids": 1.5}]})", "expected an integer"},
      {R"({"instances": [{"a": [1, true], "ids": 1}]})", "got a boolean"},
      {R"({"instances": [{"a": [[1], [2]], "ids": 1}]})", "nested deeper than its shape"},
      {R"({"instances": [{"a": [1, {"b64": "AA=="}], "ids": 1}]})", "b64"},
      {R"({"inputs": {"a": [[1, 2]], "ids": [1, 2]}})", "rows"},
      {R"({"inputs": {"a": 5, "ids": [1]}})", "list of rows"},
      {R"({"signature_name": "other", "inputs": {"a": [[1, 2]], "ids": [1]}})", "signature_name"},
  };
  for (const auto& c : cases) {
    auto [status, message] = parse_error(c.body, sig);
    EXPECT_EQ(status, 400) << c.body;
    EXPECT_NE(message.find(c.says), std::string::npos) << c.body << " -> " << message;
  }
  sv::Signature i32;
  i32.inputs = {{"n", mf::DType::I32, {-1}}};
  EXPECT_NE(parse_error(R"({"instances": [3000000000]})", i32).second.find("int32"), std::string::npos);
  // Deep nesting is read only as deep as the shape; the rest is an error, not a recursion.
  std::string deep = R"({"instances": [)" + std::string(5000, '[') + std::string(5000, ']') + "]}";
  EXPECT_EQ(parse_error(deep, i32).first, 400);
  // The element budget.
  sv::ParseLimits small;
  small.max_elements = 3;
  EXPECT_NE(parse_error(R"({"inputs": {"a": [[1, 2], [3, 4]], "ids": [1, 2]}})", sig, small).second.find("more than 3"),
            std::string::npos);
}

TEST(PredictRequest, Base64DecodesStandardAndUrlSafeText) {
  EXPECT_EQ(sv::decode_base64("TWFu"), std::optional<std::string>("Man"));
  EXPECT_EQ(sv::decode_base64("TWE="), std::optional<std::string>("Ma"));
  EXPECT_EQ(sv::decode_base64("TQ=="), std::optional<std::string>("M"));
  EXPECT_EQ(sv::decode_base64("TQ"), std::optional<std::string>("M"));  // padding is optional
  EXPECT_EQ(sv::decode_base64(""), std::optional<std::string>(""));
  EXPECT_EQ(sv::decode_base64("AAECA/8="), std::optional<std::string>(std::string("\x00\x01\x02\x03\xff", 5)));
  EXPECT_EQ(sv::decode_base64("AAECA_8"), std::optional<std::string>(std::string("\x00\x01\x02\x03\xff", 5)));
  for (const char* bad : {"T", "TWFu!", "TW Fu", "=TWF", "TQ===", "T===", "TWFu\n"})
    EXPECT_FALSE(sv::decode_base64(bad).has_value()) << bad;
}

// {"b64": ...} values are TF Serving's strings: every model here has only numeric inputs, so each
// is a 400 naming the input (not the first one), its dtype and the value's size, wherever it sits.
TEST(PredictRequest, Base64ValuesAre400NamingTheInput) {
  const auto sig = two_inputs();
  sv::Signature one;
  one.inputs = {{"x", mf::DType::F32, {-1, 4}}};
  const struct {
    const char* body;
    const sv::Signature* sig;
    std::vector<const char*> says;
  } cases[] = {
      {R"({"instances": [{"b64": "AAECAw=="}]})", &one, {"input 'x', instance 0", "DT_FLOAT", "4 bytes", "no string inputs"}},
      {R"({"instances": [[1, 2, 3, 4], {"b64": "AA=="}]})", &one, {"input 'x', instance 1", "1 bytes"}},
      {R"({"inputs": {"b64": "AAAA"}})", &one, {"input 'x'", "3 bytes", "DT_FLOAT"}},
      {R"({"instances": [[1, {"b64": "AAA="}, 3, 4]]})", &one, {"input 'x', instance 0", "2 bytes"}},
      {R"({"instances": [{"a": [1, 2], "ids": {"b64": "AA=="}}]})", &sig, {"input 'ids'", "DT_INT64"}},
      {R"({"inputs": {"a": [[1, 2]], "ids": [{"b64": "AA=="}]}})", &sig, {"input 'ids'", "DT_INT64"}},
      {R"({"inputs": {"a": [[{"b64": "AA=="}, 2]], "ids": [1]}})", &sig, {"input 'a'", "DT_FLOAT"}},
      {R"({"instances": [{"b64": "**"}]})", &one, {"input 'x'", "not valid base64"}},
      {R"({"instances": [{"b64": 5}]})", &one, {"input 'x'", "{\"b64\": \"<base64 string>\"}"}},
      {R"({"instances": [{"b64": "AA==", "extra": 1}]})", &one, {"input 'x'", "nothing else"}},
  };
  for (const auto& c : cases) {
    auto [status, message] = parse_error(c.body, *c.sig);
    EXPECT_EQ(status, 400) << c.body;
    for (const char* w : c.says) EXPECT_NE(message.find(w), std::string::npos) << c.body << " -> " << message;
  }
}

// The numeric fast path reads numbers exactly as the general parser does, and leaves anything else to it.
TEST(PredictRequest, FastPathAgreesWithTheGeneralParser) {
  sv::Signature one;
  one.inputs = {{"x", mf::DType::F32, {-1, 3}}};
  const std::string body =
      R"({ "instances" : [[-0, 0.1, 12345678901234567890], [1e-3, -2.5E+2, -9223372036854775809]] })";
  sv::ParsedRequest fast;
  ASSERT_TRUE(sv::detail_parse_fast(body, one, fast));
  auto general = sv::parse_predict_request_general(body, one, {});
  ASSERT_EQ(fast.inputs[0].shape(), general.inputs[0].shape());
  EXPECT_EQ(std::memcmp(fast.inputs[0].raw_data(), general.inputs[0].raw_data(), 6 * sizeof(float)), 0);
  EXPECT_FALSE(std::signbit(fast.inputs[0].to_vector<float>()[0]));  // "-0" is the integer 0
  EXPECT_EQ(fast.inputs[0].to_vector<float>()[4], -250.0f);
  for (const char* other : {R"({"instances": [[1, 2, 3]], "signature_name": ""})", R"({"instances": [[1, 2]]})",
                            R"({"instances": [[1, 2, 3], [4, 5]]})", R"({"instances": []})", R"({"inputs": [[1, 2, 03]]})",
                            R"({"instances": [[1, 2, 3]]} x)", R"({"inst\u0061nces": [[1, 2, 3]]})"}) {
    sv::ParsedRequest out;
    EXPECT_FALSE(sv::detail_parse_fast(other, one, out)) << other;
  }
}

TEST(PredictRequest, AnswersInRowAndColumnarForm) {
  auto sig = two_inputs();
  sig.outputs = {{"y", mf::DType::F32, {-1, 2}}, {"n", mf::DType::I64, {-1}}};
  auto req = sv::parse_predict_request(R"({"instances": [{"a": [1, 2], "ids": 1}, {"a": [3, 4], "ids": 2}]})", sig);
  std::vector<mf::Tensor> outs{mf::from_vector(std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f}, {2, 2}),
                               mf::from_vector(std::vector<int64_t>{4, 5}, {2})};
  EXPECT_EQ(sv::predict_response(req, sig, outs),
            R"({"predictions":[{"n":4,"y":[0.5,1.5]},{"n":5,"y":[2.5,3.5]}]})");
  req.format = sv::RequestFormat::Columnar;
  EXPECT_EQ(sv::predict_response(req, sig, outs), R"({"outputs":{"n":[4,5],"y":[[0.5,1.5],[2.5,3.5]]}})");
  EXPECT_EQ(sv::error_json("bad \"x\""), R"({"error":"bad \"x\""})");
}

TEST(ServingConfig, ModelConfigTextProto) {
  auto specs = sv::parse_model_config(R"(
    model_config_list {
      config { name: "a" base_path: "/m/a" model_platform: "tensorflow"
               model_version_policy { specific { versions: 1 versions: 3 } }
               version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 } }
      config { name: 'b' base_path: '/m/b' model_version_policy { latest { num_versions: 2 } } }
      config { name: 'c' base_path: '/m/c' model_version_policy { all {} } }
    })", "test.config");
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].policy.kind, sv::VersionPolicy::Kind::Specific);
  EXPECT_EQ(specs[0].policy.versions, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(specs[0].labels.at("canary"), 3);
  EXPECT_EQ(specs[1].policy.kind, sv::VersionPolicy::Kind::Latest);
  EXPECT_EQ(specs[1].policy.latest, 2);
  EXPECT_EQ(specs[2].policy.kind, sv::VersionPolicy::Kind::All);
  EXPECT_MF_ERROR(sv::parse_model_config("model_config_list { config { name: 'a' base_pth: '/x' } }", "f.config"),
                  "line 1");
  EXPECT_MF_ERROR(sv::parse_model_config("model_config_list { config { name: 'a' } }", "f.config"), "no base_path");
  EXPECT_MF_ERROR(sv::parse_model_config("", "f.config"), "no model_config_list");
}

TEST(ServingConfig, BatchingParametersAndFlags) {
  auto b = sv::parse_batching_parameters(
      "max_batch_size { value: 32 }\nbatch_timeout_micros { value: 2000 }\nmax_enqueued_batches { value: 4 }\n"
      "num_batch_threads { value: 2 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 32\n", "b.txt");
  EXPECT_EQ(b.max_batch_size, 32);
  EXPECT_EQ(b.batch_timeout_micros, 2000);
  EXPECT_EQ(b.max_enqueued_batches, 4);
  EXPECT_EQ(b.allowed_batch_sizes, (std::vector<int64_t>{8, 32}));
  EXPECT_MF_ERROR(sv::parse_batching_parameters("max_batch_size { value: 16 } allowed_batch_sizes: 8", "b.txt"),
                  "must equal max_batch_size");
  EXPECT_EQ(sv::padded_batch_size(5, {8, 32}), 8);
  EXPECT_EQ(sv::padded_batch_size(9, {8, 32}), 32);
  EXPECT_EQ(sv::padded_batch_size(5, {}), 5);
  EXPECT_MF_ERROR(sv::padded_batch_size(33, {8, 32}), "larger than the largest");

  auto o = sv::parse_flags({"--rest_api_port=0", "--port", "0", "--model_name=m", "--model_base_path=/x",
                            "--enable_batching", "--max_request_bytes=100"});
  EXPECT_EQ(o.rest_api_port, 0);
  EXPECT_EQ(o.grpc_port, 0);
  EXPECT_TRUE(o.enable_batching);
  EXPECT_EQ(o.max_request_bytes, 100);
  EXPECT_MF_ERROR(sv::parse_flags({"--model_base_path=/x", "--bogus=1"}), "unknown flag '--bogus'");
  EXPECT_MF_ERROR(sv::parse_flags({"--model_base_path=/x", "--rest_api_port=abc"}), "--rest_api_port");
  EXPECT_MF_ERROR(sv::parse_flags({"--model_name=m"}), "--model_base_path");
  EXPECT_EQ(o.intra_op_parallelism, 0);
  EXPECT_EQ(sv::parse_flags({"--model_base_path=/x", "--tensorflow_intra_op_parallelism=1"}).intra_op_parallelism, 1);
  EXPECT_MF_ERROR(sv::parse_flags({"--model_base_path=/x", "--tensorflow_intra_op_parallelism=-1"}),
                  "--tensorflow_intra_op_parallelism");
}

// Eight threads submit one or two rows each at once: the batcher merges them (the batch-size
// histogram sees batches of more than one request) and each answer equals the model run alone.
TEST(Batcher, MergedBatchesAnswerEachRequestWithItsOwnRows) {
  const std::string dir = mf_test::temp_folder("serving_batcher");
  mf::manual_seed(5);
  auto x = mf::Input({4}, {.name = "x"});
  auto y = mf::layers::Dense(3, {.activation = "softmax", .name = "p"})(mf::layers::Dense(6, {.activation = "relu"})(x));
  mf::Model model({x}, {y});
  model.save(dir + "/1", false);
  auto servable = sv::Servable::load("m", 1, dir + "/1");
  EXPECT_TRUE(servable->signature().can_classify);
  EXPECT_FALSE(servable->signature().can_regress);
  EXPECT_MF_ERROR(servable->run({mf::zeros({2, 5})}), "input 'x' has shape [2, 5]", "[?, 4]");
  EXPECT_MF_ERROR(servable->run({mf::zeros({2, 4}, {.dtype = mf::DType::F64})}), "input 'x' is f64");
  EXPECT_MF_ERROR(servable->run({}), "takes 1 inputs, got 0");
  sv::BatchingOptions opts;
  opts.max_batch_size = 16;
  opts.batch_timeout_micros = 1000000;  // long enough for a loaded machine to queue all eight
  opts.num_batch_threads = 1;
  opts.allowed_batch_sizes = {4, 16};
  sv::Metrics metrics;
  sv::Batcher batcher(servable, opts, 1, &metrics);
  EXPECT_MF_ERROR(batcher.submit({mf::zeros({2, 4})}, 3, [](sv::RunResult) {}), "every input must have 3 rows");
  EXPECT_MF_ERROR(batcher.submit({mf::zeros({2, 4})}, 2, nullptr), "no completion callback");
  std::vector<std::future<std::vector<mf::Tensor>>> answers;
  std::vector<mf::Tensor> inputs;
  for (int i = 0; i < 8; ++i) {
    inputs.push_back(mf_test::random_tensor({1 + i % 2, 4}, 300 + i, -1, 1, mf::DType::F32));
    auto promise = std::make_shared<std::promise<std::vector<mf::Tensor>>>();
    answers.push_back(promise->get_future());
    batcher.submit({inputs.back()}, inputs.back().size(0), [promise](sv::RunResult r) {
      if (r.error) promise->set_exception(r.error);
      else promise->set_value(r.outputs);
    });
  }
  for (int i = 0; i < 8; ++i) {
    auto got = answers[i].get();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(mf_test::tensors_near(got[0], servable->run({inputs[i]})[0], 1e-6, 1e-5)) << "request " << i;
  }
  const std::string text = metrics.prometheus_text();
  // 12 rows in 8 requests, all queued within the 1 s window: one batch of 12, padded to 16.
  EXPECT_NE(text.find("meshflow_serving_batch_size_sum 12\n"), std::string::npos) << text;
  EXPECT_NE(text.find("meshflow_serving_padded_batch_size_sum 16\n"), std::string::npos) << text;

  // A queue of one batch: a second request that does not fit is refused at once with 503.
  sv::BatchingOptions tight = opts;
  tight.max_batch_size = 4;
  tight.allowed_batch_sizes = {};
  tight.max_enqueued_batches = 1;
  tight.batch_timeout_micros = 2000000;
  sv::Batcher small(servable, tight, 1);
  std::promise<int> first, second;
  auto t0 = std::chrono::steady_clock::now();
  small.submit({mf_test::random_tensor({3, 4}, 1, -1, 1, mf::DType::F32)}, 3,
               [&](sv::RunResult r) { first.set_value(r.error ? 1 : 0); });
  small.submit({mf_test::random_tensor({3, 4}, 2, -1, 1, mf::DType::F32)}, 3, [&](sv::RunResult r) {
    try {
      if (r.error) std::rethrow_exception(r.error);
      second.set_value(200);
    } catch (const sv::ServingError& e) {
      second.set_value(e.http_status());
    }
  });
  EXPECT_EQ(second.get_future().get(), 503);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));  // not after the timeout
  EXPECT_EQ(first.get_future().get(), 0);
  std::filesystem::remove_all(dir);
}

// Requests whose rows differ in an unknown dimension are not merged: each is answered as if alone.
// --tensorflow_intra_op_parallelism: each batch thread sets its own OpenMP thread count (it is per
// thread), seen from the completion callback, which runs on that thread; 0 keeps the default.
TEST(Batcher, IntraOpThreadsApplyOnTheBatchThreads) {
  const std::string dir = mf_test::temp_folder("serving_batcher_intra_op");
  mf::manual_seed(7);
  auto x = mf::Input({4}, {.name = "x"});
  mf::Model model({x}, {mf::layers::Dense(2)(x)});
  model.save(dir + "/1", false);
  auto servable = sv::Servable::load("m", 1, dir + "/1");
  auto threads_seen = [&](std::optional<sv::BatchingOptions> batching, int intra_op) {
    sv::Batcher batcher(servable, batching, 1, nullptr, intra_op);
    std::promise<int> seen;
    batcher.submit({mf::zeros({1, 4})}, 1, [&](sv::RunResult r) { seen.set_value(r.error ? -1 : mf::num_threads()); });
    return seen.get_future().get();
  };
  sv::BatchingOptions opts;
  opts.max_batch_size = 4;
  opts.batch_timeout_micros = 100;
  EXPECT_EQ(threads_seen(opts, 3), 3);
  EXPECT_EQ(threads_seen(std::nullopt, 5), 5);
  std::promise<int> default_threads;  // what a new thread gets without the flag
  std::thread([&] { default_threads.set_value(mf::num_threads()); }).join();
  EXPECT_EQ(threads_seen(std::nullopt, 0), default_threads.get_future().get());
  EXPECT_MF_ERROR(sv::Batcher(servable, std::nullopt, 1, nullptr, -2), "intra_op_threads must be 0 or more");
}

TEST(Batcher, RowsOfDifferentShapesRunInSeparateBatches) {
  const std::string dir = mf_test::temp_folder("serving_batcher_shapes");
  mf::manual_seed(6);
  auto x = mf::Input({-1, 2}, {.name = "seq"});
  mf::Model model({x}, {mf::layers::Dense(3, {.name = "per_step"})(x)});
  model.save(dir + "/1", false);
  auto servable = sv::Servable::load("m", 1, dir + "/1");
  ASSERT_EQ(servable->signature().inputs[0].shape, (mf::Shape{-1, -1, 2}));
  sv::BatchingOptions opts;
  opts.max_batch_size = 8;
  opts.batch_timeout_micros = 200000;
  opts.num_batch_threads = 1;
  sv::Batcher batcher(servable, opts, 1);
  std::vector<mf::Tensor> inputs{mf_test::random_tensor({1, 2, 2}, 1, -1, 1, mf::DType::F32),
                                 mf_test::random_tensor({1, 3, 2}, 2, -1, 1, mf::DType::F32),
                                 mf_test::random_tensor({2, 2, 2}, 3, -1, 1, mf::DType::F32)};
  std::vector<std::future<std::vector<mf::Tensor>>> answers;
  for (const auto& in : inputs) {
    auto promise = std::make_shared<std::promise<std::vector<mf::Tensor>>>();
    answers.push_back(promise->get_future());
    batcher.submit({in}, in.size(0), [promise](sv::RunResult r) {
      if (r.error) promise->set_exception(r.error);
      else promise->set_value(r.outputs);
    });
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto got = answers[i].get();
    EXPECT_TRUE(mf_test::tensors_near(got[0], servable->run({inputs[i]})[0], 1e-6, 1e-5)) << "request " << i;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
