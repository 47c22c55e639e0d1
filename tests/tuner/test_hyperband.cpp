// Hyperband: the bracket schedules against the paper's table and Keras Tuner's, the oracle's promotions on a
// synthetic objective, and a small search whose promoted trials train on from their parents.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "meshflow/meshflow.h"
#include "meshflow/tuner/tuner.h"
#include "test_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
using namespace meshflow::tuner;

using Table = std::vector<std::vector<std::pair<int64_t, int64_t>>>;  // (n_i, r_i) per round of each bracket

void expect_schedule(const std::vector<std::vector<BracketRound>>& got, const Table& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t b = 0; b < want.size(); ++b) {
    ASSERT_EQ(got[b].size(), want[b].size()) << what << " bracket " << b;
    for (size_t i = 0; i < want[b].size(); ++i) {
      EXPECT_EQ(got[b][i].configurations, want[b][i].first) << what << " bracket " << b << " round " << i;
      EXPECT_EQ(got[b][i].epochs, want[b][i].second) << what << " bracket " << b << " round " << i;
    }
  }
}

int64_t trials_in(const std::vector<std::vector<BracketRound>>& schedule) {
  int64_t n = 0;
  for (const auto& b : schedule)
    for (const auto& r : b) n += r.configurations;
  return n;
}

// Both tables of Note [Hyperband schedules] for max_epochs = 81, factor = 3: they cannot be one
// schedule (the paper keeps 11 of bracket 3's 34 configurations after its first round, Keras Tuner
// 12), so the paper's is HyperbandSchedule::Paper and Keras Tuner's is the default.
TEST(Hyperband, ScheduleEqualsThePapersTableFor81And3) {
  // Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization", JMLR
  // 18 (2018), Table 1: R = 81, eta = 3.
  const Table paper = {
      {{81, 1}, {27, 3}, {9, 9}, {3, 27}, {1, 81}},  // s = 4
      {{34, 3}, {11, 9}, {3, 27}, {1, 81}},          // s = 3
      {{15, 9}, {5, 27}, {1, 81}},                   // s = 2
      {{8, 27}, {2, 81}},                            // s = 1
      {{5, 81}},                                     // s = 0
  };
  expect_schedule(hyperband_schedule(81, 3, HyperbandSchedule::Paper), paper, "paper");
  EXPECT_EQ(trials_in(hyperband_schedule(81, 3, HyperbandSchedule::Paper)), 206);
  EXPECT_MF_ERROR(hyperband_schedule(81, 1), "factor", "1");
  EXPECT_MF_ERROR(hyperband_schedule(0, 3), "max_epochs", "0");
}

TEST(Hyperband, DefaultScheduleEqualsKerasTunersFor81And3) {
  // Keras Tuner's HyperbandOracle(max_epochs=81, factor=3, hyperband_iterations=1): every bracket
  // ends with 5 / (s + 1) models, each round rounded up; the same brackets and epochs as the paper.
  const Table keras_tuner = {
      {{81, 1}, {27, 3}, {9, 9}, {3, 27}, {1, 81}},  // s = 4
      {{34, 3}, {12, 9}, {4, 27}, {2, 81}},          // s = 3
      {{15, 9}, {5, 27}, {2, 81}},                   // s = 2
      {{8, 27}, {3, 81}},                            // s = 1
      {{5, 81}},                                     // s = 0
  };
  expect_schedule(hyperband_schedule(81, 3), keras_tuner, "default");
  expect_schedule(hyperband_schedule(81, 3, HyperbandSchedule::KerasTuner), keras_tuner, "keras_tuner");
  EXPECT_EQ(trials_in(hyperband_schedule(81, 3)), 211);
  // Keras Tuner's own test (hyperband_test.py, max_epochs=8, factor=2): 4 brackets, bracket 3 is
  // 8 models at 1 epoch down to 1 at 8, bracket 0 is 4 models at 8 epochs.
  auto eight = hyperband_schedule(8, 2);
  ASSERT_EQ(eight.size(), 4u);
  EXPECT_EQ(eight[0].front().configurations, 8);
  EXPECT_EQ(eight[0].front().epochs, 1);
  EXPECT_EQ(eight[0].back().configurations, 1);
  EXPECT_EQ(eight[0].back().epochs, 8);
  EXPECT_EQ(eight[3].size(), 1u);
  EXPECT_EQ(eight[3][0].configurations, 4);
  EXPECT_EQ(eight[3][0].epochs, 8);
  // Not a power of the factor: Keras Tuner's E = ceil(1 + log3(100)) = 6, so bracket 4 starts 98
  // configurations (ceil(6/5 * 81)) at 2 epochs (ceil(100/81)); the paper starts 81.
  const Table hundred = {
      {{98, 2}, {33, 4}, {11, 12}, {4, 34}, {2, 100}},
      {{41, 4}, {14, 12}, {5, 34}, {2, 100}},
      {{18, 12}, {6, 34}, {2, 100}},
      {{9, 34}, {3, 100}},
      {{6, 100}},
  };
  expect_schedule(hyperband_schedule(100, 3), hundred, "keras_tuner 100/3");
  EXPECT_EQ(hyperband_schedule(100, 3, HyperbandSchedule::Paper)[0][0].configurations, 81);
  ASSERT_EQ(hyperband_schedule(1, 3).size(), 1u);  // max_epochs 1: one bracket of one model at 1 epoch
  EXPECT_EQ(hyperband_schedule(1, 3)[0][0].configurations, 1);
}

TEST(Hyperband, ResumingWithAnotherScheduleIsRefused) {
  auto dir = mf_test::temp_folder("tuner_hyperband_schedule");
  HyperParameters hp;
  hp.Float("x", 0.0, 1.0);
  {
    HyperbandOracle first({.objective = {"loss", "min"}, .max_trials = 1000}, {.max_epochs = 9, .factor = 3});
    first.attach(dir + "/p", false);
    first.update_space(hp);
    ASSERT_EQ(first.create_trial("w").status, TrialStatus::Running);
  }
  HyperbandOracle paper({.objective = {"loss", "min"}, .max_trials = 1000},
                        {.max_epochs = 9, .factor = 3, .schedule = HyperbandSchedule::Paper});
  EXPECT_MF_ERROR(paper.attach(dir + "/p", false), "max_epochs 9, factor 3 and the keras_tuner schedule",
                  "the paper schedule");
  HyperbandOracle longer({.objective = {"loss", "min"}, .max_trials = 1000}, {.max_epochs = 27, .factor = 3});
  EXPECT_MF_ERROR(longer.attach(dir + "/p", false), "not max_epochs 27");
  std::filesystem::remove_all(dir);
}

class HyperbandOracleRun : public ::testing::TestWithParam<HyperbandSchedule> {};

// One worker runs the whole of one iteration: every round holds its scheduled trials at its epochs,
// and a promoted trial is the next best of the round before (206 trials for the paper, 211 for
// Keras Tuner's sizes).
TEST_P(HyperbandOracleRun, PromotesTheBestOfEachRound) {
  HyperParameters hp;
  hp.Float("x", 0.0, 1.0);
  HyperbandOracle oracle({.objective = {"loss", "min"}, .max_trials = 100000, .seed = 1},
                         {.max_epochs = 81, .factor = 3, .schedule = GetParam()});
  oracle.update_space(hp);
  // The loss falls with epochs and is smallest near x = 0.3.
  auto loss = [](double x, int64_t epochs) { return (x - 0.3) * (x - 0.3) + 1.0 / static_cast<double>(epochs); };
  std::map<std::pair<int, int>, std::vector<Trial>> rounds;
  int made = 0;
  for (; made < 1000; ++made) {
    Trial t = oracle.create_trial("w");
    if (t.status == TrialStatus::Stopped) break;
    ASSERT_EQ(t.status, TrialStatus::Running);  // one worker never waits
    int64_t epochs = t.info.at("epochs").get<int64_t>();
    t.status = TrialStatus::Completed;
    t.score = loss(t.values.at("x").get<double>(), epochs);
    oracle.end_trial(t);
    rounds[{t.info.at("bracket").get<int>(), t.info.at("round").get<int>()}].push_back(t);
  }
  auto schedule = hyperband_schedule(81, 3, GetParam());
  EXPECT_EQ(made, GetParam() == HyperbandSchedule::Paper ? 206 : 211);
  for (size_t k = 0; k < schedule.size(); ++k) {
    int bracket = static_cast<int>(schedule.size() - 1 - k);
    for (size_t i = 0; i < schedule[k].size(); ++i) {
      const auto& got = rounds[{bracket, static_cast<int>(i)}];
      ASSERT_EQ(static_cast<int64_t>(got.size()), schedule[k][i].configurations) << "bracket " << bracket << " round " << i;
      for (const auto& t : got) EXPECT_EQ(t.info.at("epochs").get<int64_t>(), schedule[k][i].epochs);
      if (i == 0) continue;
      // The promoted are the best of the previous round, best first, with its values.
      auto prev = rounds[{bracket, static_cast<int>(i - 1)}];
      std::sort(prev.begin(), prev.end(), [](const Trial& a, const Trial& b) { return *a.score < *b.score; });
      for (size_t j = 0; j < got.size(); ++j) {
        EXPECT_EQ(got[j].info.at("parent").get<std::string>(), prev[j].trial_id);
        EXPECT_EQ(got[j].values, prev[j].values);
        EXPECT_EQ(got[j].info.at("initial_epoch").get<int64_t>(), schedule[k][i - 1].epochs);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Schedules, HyperbandOracleRun,
                         ::testing::Values(HyperbandSchedule::KerasTuner, HyperbandSchedule::Paper),
                         [](const auto& info) { return schedule_name(info.param); });

TEST(Hyperband, WaitsForTheRoundBeforePromoting) {
  HyperParameters hp;
  hp.Float("x", 0.0, 1.0);
  HyperbandOracle oracle({.objective = {"loss", "min"}, .max_trials = 1000}, {.max_epochs = 3, .factor = 3});
  oracle.update_space(hp);
  // Bracket s = 1: 3 trials at 1 epoch, then 1 at 3.
  std::vector<Trial> first;
  for (int i = 0; i < 3; ++i) first.push_back(oracle.create_trial("w" + std::to_string(i)));
  EXPECT_EQ(oracle.create_trial("w3").status, TrialStatus::Idle);  // the round is not over
  for (size_t i = 0; i < 3; ++i) {
    first[i].status = TrialStatus::Completed;
    first[i].score = 3.0 - static_cast<double>(i);  // the last is best
    oracle.end_trial(first[i]);
  }
  Trial promoted = oracle.create_trial("w0");
  ASSERT_EQ(promoted.status, TrialStatus::Running);
  EXPECT_EQ(promoted.info.at("parent"), first[2].trial_id);
  EXPECT_EQ(promoted.info.at("epochs"), 3);
  EXPECT_EQ(promoted.info.at("initial_epoch"), 1);
}

TEST(Hyperband, PromotedTrialsTrainOnFromTheirParents) {
  auto dir = mf_test::temp_folder("tuner_hyperband");
  mf::Generator g(5);
  mf::Tensor x = mf::rand({128, 2}, {}, &g);
  mf::Tensor y = mf::sum(x, {1}, true);
  std::vector<int> initial_epochs;
  struct Record : mf::Callback {
    std::vector<int>* out;
    void on_epoch_begin(int epoch, mf::Logs&) override {
      if (first) out->push_back(epoch);
      first = false;
    }
    void on_train_begin(mf::Logs&) override { first = true; }
    bool first = true;
  };
  auto record = std::make_shared<Record>();
  record->out = &initial_epochs;
  Hyperband tuner(
      [](HyperParameters& hp) {
        double lr = hp.Float("lr", 0.01, 0.2, {.sampling = "log"});
        auto model = std::make_shared<mf::Sequential>(
            std::vector<std::shared_ptr<mf::Layer>>{mf::make_input_layer({2}), L::Dense(1)});
        model->compile({.optimizer = mf::optimizers::SGD({{.learning_rate = lr}}), .loss = "mse"});
        return std::shared_ptr<mf::Model>(model);
      },
      {.max_epochs = 3, .factor = 3}, {.objective = "loss", .directory = dir, .project_name = "hb", .verbose = 0});
  tuner.search(x, y, {.epochs = 99, .verbose = 0, .callbacks = {record}});
  auto trials = tuner.oracle().trials();
  // Bracket s = 1: 3 trials at 1 epoch and the best at 3; bracket s = 0: 2 trials at 3 epochs.
  ASSERT_EQ(trials.size(), 6u);
  EXPECT_EQ(initial_epochs, (std::vector<int>{0, 0, 0, 1, 0, 0}));
  const Trial& promoted = trials[3];
  ASSERT_EQ(promoted.status, TrialStatus::Completed) << promoted.message;
  const Trial& parent = *tuner.oracle().trial(promoted.info.at("parent").get<std::string>());
  // Two more epochs from the parent's weights with the same learning rate cannot be worse than
  // where the parent ended on this smooth problem.
  EXPECT_LE(*promoted.score, *parent.score);
  for (const auto& t : trials) EXPECT_EQ(t.status, TrialStatus::Completed) << t.message;
  std::filesystem::remove_all(dir);
}
