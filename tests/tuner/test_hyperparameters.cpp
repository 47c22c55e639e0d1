// HyperParameters: declared values, sampling distributions, conditional scopes, bad spaces.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "meshflow/tuner/hyperparameters.h"
#include "test_util.h"

using namespace meshflow::tuner;

TEST(HyperParameters, DefaultsOnFirstBuild) {
  HyperParameters hp;
  EXPECT_EQ(hp.Int("units", 32, 128, {.step = 32}), 32);
  EXPECT_DOUBLE_EQ(hp.Float("lr", 1e-4, 1e-2, {.sampling = "log"}), 1e-4);
  EXPECT_EQ(hp.Choice("activation", {"relu", "tanh"}), "relu");
  EXPECT_EQ(hp.Choice("layers", {2, 3, 4}), 2);
  EXPECT_DOUBLE_EQ(hp.Choice("dropout", {0.5, 0.25}), 0.5);
  EXPECT_FALSE(hp.Boolean("batchnorm"));
  EXPECT_EQ(hp.Fixed("seed", 7), 7);
  EXPECT_EQ(hp.Int("width", 1, 9, {.default_value = 5}), 5);
  EXPECT_EQ(hp.space().size(), 8u);
  // A value an oracle set wins over the default.
  HyperParameters chosen = hp;
  chosen.set("units", 96);
  EXPECT_EQ(chosen.Int("units", 32, 128, {.step = 32}), 96);
}

TEST(HyperParameters, IntGridAndRandomDrawsStayOnTheStep) {
  HyperParameters hp;
  hp.Int("units", 32, 128, {.step = 32});
  const auto& p = hp.parameter("units");
  std::vector<int64_t> grid;
  for (const auto& v : p.grid_values()) grid.push_back(v.get<int64_t>());
  EXPECT_EQ(grid, (std::vector<int64_t>{32, 64, 96, 128}));
  std::mt19937_64 rng(3);
  std::map<int64_t, int> counts;
  for (int i = 0; i < 400; ++i) counts[p.random_value(rng).get<int64_t>()]++;
  ASSERT_EQ(counts.size(), 4u);  // only grid values, and every one of them
  for (auto [v, n] : counts) EXPECT_GT(n, 60) << v;  // ~100 each when uniform
}

TEST(HyperParameters, LogSamplingIsUniformInLogSpace) {
  HyperParameters hp;
  hp.Float("lr", 1e-4, 1e-1, {.sampling = "log"});
  const auto& p = hp.parameter("lr");
  std::mt19937_64 rng(5);
  std::vector<double> v;
  for (int i = 0; i < 4000; ++i) v.push_back(p.random_value(rng).get<double>());
  std::sort(v.begin(), v.end());
  // Median of a log-uniform on [1e-4, 1e-1] is their geometric mean, 3.16e-3 (a linear draw's is 0.05).
  EXPECT_NEAR(std::log10(v[2000]), std::log10(std::sqrt(1e-4 * 1e-1)), 0.08);
  // A quarter of the draws fall in each quarter of the decades.
  int first = static_cast<int>(std::count_if(v.begin(), v.end(), [](double x) { return x < std::pow(10.0, -3.25); }));
  EXPECT_NEAR(first / 4000.0, 0.25, 0.03);
  EXPECT_GE(v.front(), 1e-4);
  EXPECT_LE(v.back(), 1e-1);
  // The unit-cube map is the same warp: u = 0.5 is the geometric mean.
  EXPECT_NEAR(p.from_unit(0.5).get<double>(), std::sqrt(1e-5), 1e-9);
  EXPECT_NEAR(p.to_unit(Json(1e-3)), 1.0 / 3.0, 1e-9);
}

TEST(HyperParameters, ConditionalScopes) {
  HyperParameters hp;
  std::string model = hp.Choice("model", {"mlp", "cnn"});
  EXPECT_EQ(model, "mlp");
  {
    auto scope = hp.conditional_scope("model", {"cnn"});
    EXPECT_EQ(hp.Int("filters", 8, 32, {.step = 8}), 8);  // inactive: its default, not stored
  }
  {
    auto scope = hp.conditional_scope("model", {"mlp"});
    EXPECT_EQ(hp.Int("units", 16, 64, {.step = 16}), 16);
  }
  EXPECT_FALSE(hp.is_active("filters"));
  EXPECT_TRUE(hp.is_active("units"));
  EXPECT_EQ(hp.values(), (Json{{"model", "mlp"}, {"units", 16}}));
  EXPECT_MF_ERROR(hp.get("filters"), "filters", "not active");
  HyperParameters cnn = hp;
  cnn.set("model", "cnn");
  EXPECT_TRUE(cnn.is_active("filters"));
  EXPECT_FALSE(cnn.is_active("units"));
  EXPECT_EQ(cnn.values(), (Json{{"model", "cnn"}, {"filters", 8}}));
  // Parameters declared outside the scope have no condition.
  EXPECT_TRUE(hp.parameter("model").conditions.empty());
  EXPECT_EQ(hp.parameter("filters").conditions.at(0).parent, "model");
}

TEST(HyperParameters, BadSpacesNameTheParameter) {
  HyperParameters hp;
  EXPECT_MF_ERROR(hp.Int("units", 128, 32), "units", "min_value 128 > max_value 32");
  EXPECT_MF_ERROR(hp.Float("lr", 0.1, 0.01), "lr", "min_value");
  EXPECT_MF_ERROR(hp.Choice("act", std::vector<std::string>{}), "act", "choice list is empty");
  EXPECT_MF_ERROR(hp.Choice("act2", {"relu", "relu"}), "act2", "listed twice");
  EXPECT_MF_ERROR(hp.Int("steps", 1, 10, {.step = 0}), "steps", "step");
  EXPECT_MF_ERROR(hp.Float("decay", 0.0, 1.0, {.sampling = "log"}), "decay", "log sampling needs min_value > 0");
  EXPECT_MF_ERROR(hp.Float("mom", 0.1, 0.9, {.sampling = "cubic"}), "mom", "unknown sampling 'cubic'");
  EXPECT_MF_ERROR(hp.Int("w", 1, 5, {.default_value = 9}), "w", "default 9 is outside");
  hp.Int("units", 32, 128, {.step = 32});
  EXPECT_MF_ERROR(hp.Float("units", 0.0, 1.0), "units", "declared as Int and again as Float");
  EXPECT_MF_ERROR(hp.Boolean("units"), "units", "duplicate name with another type");
  EXPECT_MF_ERROR(hp.conditional_scope("nothing", {Json("x")}), "nothing", "not declared");
  hp.Choice("kind", {"a", "b"});
  EXPECT_MF_ERROR(hp.conditional_scope("kind", {Json("c")}), "kind", "\"c\" is not a value it can take");
  EXPECT_MF_ERROR(hp.set("units", 100), "units", "100 is not a value");  // in range, off the step of 32
}

TEST(HyperParameters, SetChecksTheRange) {
  HyperParameters hp;
  hp.Int("units", 32, 128, {.step = 32});
  hp.Choice("act", {"relu", "tanh"});
  EXPECT_MF_ERROR(hp.set("units", 256), "units", "256 is not a value of this Int");
  EXPECT_MF_ERROR(hp.set("act", "gelu"), "act", "\"gelu\"");
  hp.set("units", 64);
  EXPECT_EQ(hp.get("units"), 64);
}

TEST(HyperParameters, JsonRoundTrip) {
  HyperParameters hp;
  hp.Int("units", 32, 128, {.step = 32});
  hp.Float("lr", 1e-4, 1e-2, {.sampling = "log"});
  hp.Choice("model", {"mlp", "cnn"});
  {
    auto s = hp.conditional_scope("model", {"cnn"});
    hp.Int("filters", 8, 32, {.step = 8});
  }
  hp.set("units", 96);
  HyperParameters back = HyperParameters::from_json(hp.to_json());
  EXPECT_EQ(back.to_json(), hp.to_json());
  EXPECT_EQ(back.get("units"), 96);
  EXPECT_EQ(back.parameter("lr").sampling, Sampling::Log);
  EXPECT_EQ(back.parameter("filters").conditions.at(0).values.at(0), "cnn");
}
