// Hyperband: the bracket schedule against the paper's table, the oracle's promotions on a
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

TEST(Hyperband, ScheduleEqualsThePapersTableFor81And3) {
  // Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization", JMLR
  // 18 (2018), Table 1: R = 81, eta = 3; (n_i, r_i) per round of each bracket s.
  const std::vector<std::vector<std::pair<int64_t, int64_t>>> paper = {
      {{81, 1}, {27, 3}, {9, 9}, {3, 27}, {1, 81}},  // s = 4
      {{34, 3}, {11, 9}, {3, 27}, {1, 81}},          // s = 3
      {{15, 9}, {5, 27}, {1, 81}},                   // s = 2
      {{8, 27}, {2, 81}},                            // s = 1
      {{5, 81}},                                     // s = 0
  };
  auto s = hyperband_schedule(81, 3);
  ASSERT_EQ(s.size(), paper.size());
  for (size_t b = 0; b < paper.size(); ++b) {
    ASSERT_EQ(s[b].size(), paper[b].size()) << "bracket " << b;
    for (size_t i = 0; i < paper[b].size(); ++i) {
      EXPECT_EQ(s[b][i].configurations, paper[b][i].first) << "bracket " << b << " round " << i;
      EXPECT_EQ(s[b][i].epochs, paper[b][i].second) << "bracket " << b << " round " << i;
    }
  }
  EXPECT_MF_ERROR(hyperband_schedule(81, 1), "factor", "1");
  EXPECT_MF_ERROR(hyperband_schedule(0, 3), "max_epochs", "0");
}

TEST(Hyperband, OraclePromotesTheBestOfEachRound) {
  HyperParameters hp;
  hp.Float("x", 0.0, 1.0);
  HyperbandOracle oracle({.objective = {"loss", "min"}, .max_trials = 100000, .seed = 1}, {.max_epochs = 81, .factor = 3});
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
  auto schedule = hyperband_schedule(81, 3);
  int64_t total = 0;
  for (const auto& b : schedule)
    for (const auto& r : b) total += r.configurations;
  EXPECT_EQ(made, total);  // 206 trials
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
