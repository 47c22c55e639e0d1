// TensorBoard HParams: a search with hparams_log_dir writes the experiment (every parameter's
// domain, the objective metric) and one session per trial; libprotobuf decodes them here.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "hparams_check.pb.h"
#include "meshflow/meshflow.h"
#include "meshflow/tuner/tuner.h"
#include "test_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
namespace hc = meshflow::hparams_check;
using namespace meshflow::tuner;

namespace {

// The plugin payloads of every event in every file of `folder` (not recursive), in file order.
std::vector<std::pair<std::string, hc::Summary::Value>> values_in(const std::string& folder) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(folder))
    if (e.is_regular_file()) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::vector<std::pair<std::string, hc::Summary::Value>> out;
  for (const auto& f : files) {
    auto records = mf::read_tfrecords(f);  // CRCs checked
    for (const auto& r : records) {
      hc::Event ev;
      EXPECT_TRUE(ev.ParseFromString(r)) << f;
      for (const auto& v : ev.summary().value()) out.emplace_back(v.tag(), v);
    }
  }
  return out;
}

}  // namespace

TEST(HParams, SearchWritesTheExperimentAndOneSessionPerTrial) {
  auto dir = mf_test::temp_folder("tuner_hparams");
  mf::Generator g(1);
  mf::Tensor x = mf::rand({64, 2}, {}, &g), y = mf::sum(x, {1}, true);
  GridSearch tuner(
      [](HyperParameters& hp) {
        int64_t units = hp.Int("units", 1, 2);
        std::string act = hp.Choice("activation", {"tanh", "relu"});
        auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
            mf::make_input_layer({2}), L::Dense(units, {.activation = act}), L::Dense(1)});
        model->compile({.optimizer = "sgd", .loss = "mse"});
        return std::shared_ptr<mf::Model>(model);
      },
      {.objective = "loss", .max_trials = 2, .directory = dir, .project_name = "p", .verbose = 0,
       .hparams_log_dir = dir + "/hparams"});
  tuner.search(x, y, {.epochs = 1, .verbose = 0});

  // The experiment, at the top of the log folder.
  auto top = values_in(dir + "/hparams");
  ASSERT_EQ(top.size(), 1u);  // the last trial's experiment replaced the first's
  const auto& [tag, v] = top.back();
  EXPECT_EQ(tag, "_hparams_/experiment");
  EXPECT_EQ(v.metadata().plugin_data().plugin_name(), "hparams");
  hc::HParamsPluginData data;
  ASSERT_TRUE(data.ParseFromString(v.metadata().plugin_data().content()));
  ASSERT_TRUE(data.has_experiment());
  const auto& ex = data.experiment();
  ASSERT_EQ(ex.hparam_infos_size(), 2);
  EXPECT_EQ(ex.hparam_infos(0).name(), "units");
  EXPECT_EQ(ex.hparam_infos(0).type(), 3);  // float64
  ASSERT_EQ(ex.hparam_infos(0).domain_discrete().values_size(), 2);
  EXPECT_EQ(ex.hparam_infos(0).domain_discrete().values(1).number_value(), 2.0);
  EXPECT_EQ(ex.hparam_infos(1).name(), "activation");
  EXPECT_EQ(ex.hparam_infos(1).type(), 1);  // string
  EXPECT_EQ(ex.hparam_infos(1).domain_discrete().values(1).string_value(), "relu");
  ASSERT_EQ(ex.metric_infos_size(), 1);
  EXPECT_EQ(ex.metric_infos(0).name().tag(), "loss");

  // One session per trial: its values, its objective as a scalar, its end.
  for (const auto& t : tuner.oracle().trials()) {
    auto vals = values_in(dir + "/hparams/trial_" + t.trial_id);
    ASSERT_EQ(vals.size(), 3u) << t.trial_id;
    EXPECT_EQ(vals[0].first, "_hparams_/session_start_info");
    hc::HParamsPluginData start;
    ASSERT_TRUE(start.ParseFromString(vals[0].second.metadata().plugin_data().content()));
    ASSERT_TRUE(start.has_session_start_info());
    const auto& hp = start.session_start_info().hparams();
    EXPECT_EQ(hp.at("units").number_value(), t.values.at("units").get<double>());
    EXPECT_EQ(hp.at("activation").string_value(), t.values.at("activation").get<std::string>());
    EXPECT_EQ(start.session_start_info().group_name(), "trial_" + t.trial_id);
    EXPECT_EQ(vals[1].first, "loss");
    EXPECT_FLOAT_EQ(vals[1].second.simple_value(), static_cast<float>(*t.score));
    hc::HParamsPluginData end;
    ASSERT_TRUE(end.ParseFromString(vals[2].second.metadata().plugin_data().content()));
    ASSERT_TRUE(end.has_session_end_info());
    EXPECT_EQ(end.session_end_info().status(), 1);
  }
  std::filesystem::remove_all(dir);
}
