// PipelineStrategy: schedules, balanced cuts, and pipelined training (stages as threads of one
// process joined by a LocalGroup) against training on one device, in float64.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <thread>

#include "meshflow/meshflow.h"
#include "test_util.h"

namespace {

namespace mf = meshflow;
namespace L = meshflow::layers;
using mf::DType;
using mf::Tensor;
using K = mf::PipelineAction::Kind;

// --- Schedules --------------------------------------------------------------------------------

// Runs every stage's schedule against the others' as the messages allow (F(s,k) needs F(s-1,k);
// B(s,k) needs B(s+1,k)); returns false on a deadlock. Counts each stage's live activations.
bool schedules_complete(mf::PipelineSchedule kind, int p, int m, std::vector<int>* max_live) {
  std::vector<std::vector<mf::PipelineAction>> plan;
  for (int s = 0; s < p; ++s) plan.push_back(mf::pipeline_schedule(kind, p, s, m));
  std::vector<size_t> next(static_cast<size_t>(p), 0);
  std::vector<std::vector<bool>> fdone(p, std::vector<bool>(m)), bdone(p, std::vector<bool>(m));
  std::vector<int> live(static_cast<size_t>(p), 0);
  max_live->assign(static_cast<size_t>(p), 0);
  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < p; ++s) {
      if (next[s] == plan[s].size()) continue;
      const auto a = plan[s][next[s]];
      bool ready = a.kind == K::Forward ? (s == 0 || fdone[s - 1][a.micro])
                                        : (fdone[s][a.micro] && (s == p - 1 || bdone[s + 1][a.micro]));
      if (!ready) continue;
      (a.kind == K::Forward ? fdone : bdone)[s][a.micro] = true;
      live[s] += a.kind == K::Forward ? 1 : -1;
      (*max_live)[s] = std::max((*max_live)[s], live[s]);
      ++next[s];
      progress = true;
    }
  }
  for (int s = 0; s < p; ++s)
    if (next[s] != plan[s].size()) return false;
  return true;
}

TEST(PipelineSchedule, EveryMicroBatchOnceForwardBeforeBackwardAndNoDeadlock) {
  for (auto kind : {mf::PipelineSchedule::GPipe, mf::PipelineSchedule::OneFOneB})
    for (int p : {1, 2, 3, 4, 6})
      for (int m : {1, 2, 3, 4, 8}) {
        for (int s = 0; s < p; ++s) {
          auto plan = mf::pipeline_schedule(kind, p, s, m);
          ASSERT_EQ(plan.size(), size_t(2 * m));
          std::vector<int> f(m, -1), b(m, -1);
          for (size_t i = 0; i < plan.size(); ++i) (plan[i].kind == K::Forward ? f : b)[plan[i].micro] = int(i);
          for (int k = 0; k < m; ++k) {
            EXPECT_GE(f[k], 0);
            EXPECT_GT(b[k], f[k]) << "micro-batch " << k << " stage " << s;
          }
        }
        std::vector<int> max_live;
        ASSERT_TRUE(schedules_complete(kind, p, m, &max_live)) << "p=" << p << " m=" << m;
        for (int s = 0; s < p; ++s) {
          if (kind == mf::PipelineSchedule::GPipe) EXPECT_EQ(max_live[s], m);
          else EXPECT_EQ(max_live[s], std::min(p - s, m)) << "1F1B holds at most p - s micro-batches";
        }
      }
}

TEST(PipelineSchedule, OneFOneBStageZeroOfTwoAlternates) {
  auto plan = mf::pipeline_schedule(mf::PipelineSchedule::OneFOneB, 2, 0, 3);
  std::vector<mf::PipelineAction> want{{K::Forward, 0}, {K::Forward, 1}, {K::Backward, 0},
                                       {K::Forward, 2}, {K::Backward, 1}, {K::Backward, 2}};
  EXPECT_EQ(plan, want);
}

TEST(PipelineSchedule, BadInputNamesIt) {
  EXPECT_MF_ERROR(mf::pipeline_schedule(mf::PipelineSchedule::GPipe, 2, 2, 4), "stage 2 of 2");
  EXPECT_MF_ERROR(mf::pipeline_schedule(mf::PipelineSchedule::GPipe, 2, 0, 0), "micro_batches");
}

// --- Balanced cuts ----------------------------------------------------------------------------

double largest_stage(const std::vector<double>& c, const std::vector<int>& starts) {
  double worst = 0;
  for (size_t s = 0; s < starts.size(); ++s) {
    int e = s + 1 < starts.size() ? starts[s + 1] : int(c.size());
    double sum = 0;
    for (int i = starts[s]; i < e; ++i) sum += c[i];
    worst = std::max(worst, sum);
  }
  return worst;
}

// Every way to cut n items into p non-empty runs, the best largest stage.
double brute_force(const std::vector<double>& c, int p) {
  const int n = int(c.size());
  double best = 1e300;
  std::function<void(std::vector<int>&)> rec = [&](std::vector<int>& starts) {
    if (int(starts.size()) == p) {
      best = std::min(best, largest_stage(c, starts));
      return;
    }
    for (int i = starts.back() + 1; i <= n - (p - int(starts.size())); ++i) {
      starts.push_back(i);
      rec(starts);
      starts.pop_back();
    }
  };
  std::vector<int> starts{0};
  rec(starts);
  return best;
}

TEST(BalancedCuts, EqualsTheBruteForceOptimum) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.1, 10.0);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + int(rng() % 9), p = 1 + int(rng() % std::min(n, 5));
    std::vector<double> c(n);
    for (auto& v : c) v = trial % 3 == 0 ? double(1 + rng() % 4) : u(rng);  // ties too
    auto starts = mf::balanced_cuts(c, p);
    ASSERT_EQ(int(starts.size()), p);
    EXPECT_EQ(starts[0], 0);
    for (int s = 1; s < p; ++s) EXPECT_GT(starts[s], starts[s - 1]);
    EXPECT_LT(starts.back(), n);
    EXPECT_DOUBLE_EQ(largest_stage(c, starts), brute_force(c, p));
  }
  // A known case: one heavy layer gets a stage of its own.
  EXPECT_EQ(mf::balanced_cuts({1, 1, 8, 1, 1}, 3), (std::vector<int>{0, 2, 3}));
  EXPECT_MF_ERROR(mf::balanced_cuts({1, 2}, 3), "3 stages need at least as many layers");
}

// --- Training ---------------------------------------------------------------------------------

// Dense layers (and optionally dropout / batch norm) in float64, with fixed names so every
// stage's copy agrees on the cut points.
std::shared_ptr<mf::Model> build_functional(bool residual);

std::shared_ptr<mf::Model> build(const std::string& kind) {
  if (kind == "functional" || kind == "residual") return build_functional(kind == "residual");
  std::vector<std::shared_ptr<mf::Layer>> layers{mf::make_input_layer({5})};
  layers.push_back(L::Dense(12, {.activation = "tanh", .name = "d1", .dtype = DType::F64}));
  if (kind == "dropout") layers.push_back(L::Dropout(0.3, {.seed = 17, .name = "drop", .dtype = DType::F64}));
  if (kind == "batchnorm") layers.push_back(L::BatchNormalization({.name = "bn", .dtype = DType::F64}));
  layers.push_back(L::Dense(10, {.activation = "relu", .name = "d2", .dtype = DType::F64}));
  layers.push_back(L::Dense(8, {.activation = "tanh", .name = "d3", .dtype = DType::F64}));
  layers.push_back(L::Dense(2, {.name = "d4", .dtype = DType::F64}));
  return std::make_shared<mf::Sequential>(layers);
}

// The same network as a functional model, plus a residual block (a skip connection: no cut
// inside it) when `residual`.
std::shared_ptr<mf::Model> build_functional(bool residual) {
  auto in = mf::Input({5}, {.dtype = DType::F64});
  auto h = L::Dense(12, {.activation = "tanh", .name = "d1", .dtype = DType::F64})(in);
  auto h2 = L::Dense(12, {.activation = "relu", .name = "d2", .dtype = DType::F64})(h);
  if (residual) h2 = L::Add({.name = "skip", .dtype = DType::F64})({h, h2});
  auto h3 = L::Dense(8, {.activation = "tanh", .name = "d3", .dtype = DType::F64})(h2);
  auto out = L::Dense(2, {.name = "d4", .dtype = DType::F64})(h3);
  return std::make_shared<mf::Model>(mf::Tensors(in), mf::Tensors(out));
}

void compile(mf::Model& m) { m.compile({.optimizer = mf::optimizers::Adam({{.learning_rate = 0.01}}), .loss = "mse"}); }

std::pair<Tensor, Tensor> data(int64_t n) {
  mf::Generator g(3);
  Tensor x = mf::randn({n, 5}, {.dtype = DType::F64}, &g);
  Tensor y = mf::randn({n, 2}, {.dtype = DType::F64}, &g);
  return {x, y};
}

std::vector<Tensor> initial_weights(const std::string& kind) {
  auto m = build(kind);
  mf::Generator g(11);
  std::vector<Tensor> w;
  for (const auto& v : m->weights()) w.push_back(mf::rand(v.shape(), {.dtype = DType::F64}, &g) - 0.5);
  return w;
}

void set_all(mf::Model& m, const std::vector<Tensor>& w) {
  auto vars = m.weights();
  ASSERT_EQ(vars.size(), w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    Tensor v = vars[i];
    v.copy_(w[i]);
  }
}

double max_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, mf::max(mf::abs(a[i] - b[i])).item());
  return d;
}

std::vector<Tensor> values(mf::Model& m) {
  std::vector<Tensor> out;
  for (const auto& v : m.weights()) out.push_back(v.clone());
  return out;
}

struct StageResult {
  std::vector<Tensor> weights;  // every stage's weights, as this stage holds them after fit
  mf::History history;
  int max_live = 0;
};

// Runs body(stage, strategy) for each of p stages, one thread each over a LocalGroup; returns each
// stage's error message ("" when it finished).
std::vector<std::string> on_stages(int p, const mf::PipelineOptions& options,
                                   const std::function<void(int, mf::PipelineStrategy&)>& body,
                                   mf::distributed::CommOptions comm = {}) {
  mf::distributed::LocalGroup group(p, comm);
  std::vector<std::string> errors(p);
  auto run = [&](int s) {
    try {
      mf::PipelineStrategy strategy(group.communicator(s), options);
      auto scope = strategy.scope();
      body(s, strategy);
    } catch (const std::exception& e) {
      errors[s] = e.what();
    }
  };
  std::vector<std::thread> threads;
  for (int s = 0; s < p; ++s) threads.emplace_back(run, s);
  for (auto& t : threads) t.join();
  return errors;
}

// Trains `kind` with p stages (threads) and the given schedule and micro-batches; every stage's
// result after fit (which settles every stage's weights onto every rank).
std::vector<StageResult> train_pipelined(const std::string& kind, int p, mf::PipelineOptions options, int epochs,
                                         int batch) {
  auto [x, y] = data(24);
  auto init = initial_weights(kind);
  std::vector<StageResult> results(p);
  auto errors = on_stages(p, options, [&](int s, mf::PipelineStrategy& strategy) {
    auto m = build(kind);
    set_all(*m, init);
    compile(*m);
    results[s].history = m->fit({x}, {y}, {.epochs = epochs, .batch_size = batch, .verbose = 0, .shuffle = false});
    results[s].weights = values(*m);
    results[s].max_live = strategy.last_step_stats().max_live_activations;
  });
  for (int s = 0; s < p; ++s) EXPECT_EQ(errors[s], "") << "stage " << s;
  return results;
}

// The same training on one device: the whole batch at once (fit) when micro-batches change
// nothing, or micro-batch by micro-batch with the gradients accumulated (batch norm's statistics
// are per micro-batch in a pipeline, as in GPipe).
std::pair<std::vector<Tensor>, std::vector<double>> train_reference(const std::string& kind, int m, int epochs,
                                                                    int batch) {
  auto [x, y] = data(24);
  auto model = build(kind);
  set_all(*model, initial_weights(kind));
  compile(*model);
  if (m == 1 || kind != "batchnorm") {
    auto h = model->fit({x}, {y}, {.epochs = epochs, .batch_size = batch, .verbose = 0, .shuffle = false});
    return {values(*model), h.history.at("loss")};
  }
  auto opt = mf::optimizers::Adam({{.learning_rate = 0.01}});
  auto loss = mf::losses::MeanSquaredError();
  std::vector<double> losses;
  const int64_t rows = batch / m;
  for (int e = 0; e < epochs; ++e) {
    double sum = 0;
    int64_t seen = 0;
    for (int64_t b = 0; b < x.size(0); b += batch) {
      double step_loss = 0;
      for (int k = 0; k < m; ++k) {
        mf::TrainingScope training(true);
        Tensor xk = x.slice(0, b + k * rows, b + (k + 1) * rows), yk = y.slice(0, b + k * rows, b + (k + 1) * rows);
        Tensor l = (*loss)(yk, (*model)(xk));
        step_loss += l.item() / m;
        (l * (1.0 / m)).backward();
      }
      opt->step(model->trainable_weights());
      sum += step_loss * batch;
      seen += batch;
    }
    losses.push_back(sum / double(seen));
  }
  return {values(*model), losses};
}

void expect_pipeline_equals_reference(const std::string& kind, int p, mf::PipelineSchedule schedule, int m,
                                      std::vector<std::string> cuts = {}) {
  SCOPED_TRACE(kind + " p=" + std::to_string(p) + " m=" + std::to_string(m) +
               (schedule == mf::PipelineSchedule::GPipe ? " GPipe" : " 1F1B"));
  const int epochs = 2, batch = 8;
  auto stages = train_pipelined(kind, p, {.micro_batches = m, .schedule = schedule, .cuts = cuts}, epochs, batch);
  auto [ref, ref_loss] = train_reference(kind, m, epochs, batch);
  for (int s = 0; s < p; ++s) {
    ASSERT_EQ(stages[s].weights.size(), ref.size());
    EXPECT_LT(max_diff(stages[s].weights, ref), 1e-10) << "stage " << s << "'s copy of the model";
    const auto& loss = stages[s].history.history.at("loss");
    ASSERT_EQ(loss.size(), ref_loss.size());
    for (size_t e = 0; e < loss.size(); ++e) EXPECT_NEAR(loss[e], ref_loss[e], 1e-10) << "epoch " << e;
  }
  // The weights changed at all (the test would pass on a no-op otherwise).
  EXPECT_GT(max_diff(ref, initial_weights(kind)), 1e-3);
  for (int s = 0; s < p; ++s) {
    const int bound = schedule == mf::PipelineSchedule::GPipe ? m : std::min(p - s, m);
    EXPECT_EQ(stages[s].max_live, bound) << "stage " << s << " live activations";
  }
}

TEST(PipelineStrategy, TwoStagesEqualOneDevice) {
  for (auto schedule : {mf::PipelineSchedule::GPipe, mf::PipelineSchedule::OneFOneB})
    for (int m : {1, 2, 4}) expect_pipeline_equals_reference("plain", 2, schedule, m, {"d3"});
}

TEST(PipelineStrategy, FourStagesEqualOneDevice) {
  for (auto schedule : {mf::PipelineSchedule::GPipe, mf::PipelineSchedule::OneFOneB})
    for (int m : {1, 4, 8}) expect_pipeline_equals_reference("plain", 4, schedule, m, {"d2", "d3", "d4"});
}

// A functional model is cut where one tensor crosses; a residual block stays whole.
TEST(PipelineStrategy, FunctionalModelsEqualOneDevice) {
  expect_pipeline_equals_reference("functional", 2, mf::PipelineSchedule::OneFOneB, 4, {"d3"});
  expect_pipeline_equals_reference("functional", 4, mf::PipelineSchedule::GPipe, 2, {"d2", "d3", "d4"});
  expect_pipeline_equals_reference("residual", 3, mf::PipelineSchedule::OneFOneB, 4, {"d2", "d3"});
  expect_pipeline_equals_reference("residual", 2, mf::PipelineSchedule::OneFOneB, 2);  // automatic
}

TEST(PipelineStrategy, AutomaticCutsTrainTheSame) {
  expect_pipeline_equals_reference("plain", 2, mf::PipelineSchedule::OneFOneB, 2);
}

// Dropout draws each micro-batch's mask from its layer's generator in row order, so the masks of
// the micro-batches together are the whole batch's mask: training equals one device's.
TEST(PipelineStrategy, DropoutSeededPerMicroBatchEqualsOneDevice) {
  expect_pipeline_equals_reference("dropout", 2, mf::PipelineSchedule::OneFOneB, 4, {"d2"});
  expect_pipeline_equals_reference("dropout", 3, mf::PipelineSchedule::GPipe, 2, {"drop", "d3"});
}

// Batch norm normalizes each micro-batch with its own statistics (GPipe's rule): equal to one
// device that runs the micro-batches one by one and accumulates their gradients.
TEST(PipelineStrategy, BatchNormStatisticsArePerMicroBatch) {
  expect_pipeline_equals_reference("batchnorm", 2, mf::PipelineSchedule::OneFOneB, 2, {"bn"});
  expect_pipeline_equals_reference("batchnorm", 2, mf::PipelineSchedule::GPipe, 4, {"d2"});
  // And that differs from normalizing the whole batch at once.
  auto [whole, l1] = train_reference("batchnorm", 1, 2, 8);
  auto [micro, l2] = train_reference("batchnorm", 4, 2, 8);
  EXPECT_GT(max_diff(whole, micro), 1e-6);
}

// --- Pipeline x data (a 2-D mesh) ----------------------------------------------------------------

// D copies of a P-stage pipeline on D * P threads: every rank's copy of the model after fit, and
// its History, must equal one device's training on the whole batches (no batch norm: its
// statistics are per replica and micro-batch, as on any data-parallel pipeline).
void expect_mesh_equals_reference(int d, int p, int m, int batch, std::vector<std::string> cuts) {
  SCOPED_TRACE("data=" + std::to_string(d) + " pipe=" + std::to_string(p) + " m=" + std::to_string(m) +
               " batch=" + std::to_string(batch));
  auto [x, y] = data(24);
  auto init = initial_weights("plain");
  const int n = d * p;
  std::vector<StageResult> results(n);
  mf::distributed::LocalGroup group(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        mf::PipelineStrategy strategy(group.communicator(r), mf::Mesh({{"data", d}, {"pipe", p}}),
                                      {.micro_batches = m, .cuts = cuts});
        EXPECT_EQ(strategy.num_stages(), p);
        EXPECT_EQ(strategy.stage(), r % p);
        EXPECT_EQ(strategy.data_replica(), r / p);
        auto scope = strategy.scope();
        auto model = build("plain");
        // Each replica starts from other weights: replica 0's must win.
        std::vector<Tensor> mine;
        for (const auto& w : init) mine.push_back(w + 0.1 * (r / p));
        set_all(*model, mine);
        compile(*model);
        results[r].history = model->fit({x}, {y}, {.epochs = 2, .batch_size = batch, .verbose = 0, .shuffle = false});
        results[r].weights = values(*model);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
  auto reference = build("plain");
  set_all(*reference, init);
  compile(*reference);
  auto h = reference->fit({x}, {y}, {.epochs = 2, .batch_size = batch, .verbose = 0, .shuffle = false});
  auto ref = values(*reference);
  EXPECT_GT(max_diff(ref, init), 1e-3);
  for (int r = 0; r < n; ++r) {
    EXPECT_LT(max_diff(results[r].weights, ref), 1e-10) << "rank " << r << "'s copy of the model";
    const auto& loss = results[r].history.history.at("loss");
    const auto& want = h.history.at("loss");
    ASSERT_EQ(loss.size(), want.size());
    for (size_t e = 0; e < loss.size(); ++e) EXPECT_NEAR(loss[e], want[e], 1e-10) << "rank " << r << " epoch " << e;
  }
}

TEST(PipelineStrategy, TwoByTwoMeshEqualsOneDevice) { expect_mesh_equals_reference(2, 2, 2, 8, {"d3"}); }
TEST(PipelineStrategy, DataOnlyMeshEqualsOneDevice) { expect_mesh_equals_reference(2, 1, 2, 8, {}); }
// Batches of 10 over 3 replicas: 4, 3, 3 rows and a last batch of 4 as 2, 1, 1.
TEST(PipelineStrategy, UnevenDataSharesEqualOneDevice) { expect_mesh_equals_reference(3, 2, 1, 10, {"d2"}); }

TEST(PipelineStrategy, BadMeshesAreNamed) {
  mf::distributed::LocalGroup group(4);
  auto comm = group.communicator(0);
  EXPECT_MF_ERROR(mf::PipelineStrategy(comm, mf::Mesh({{"data", 2}, {"pipe", 3}}), {}),
                  "Mesh(data=2, pipe=3) has 6 devices but the job has 4 ranks");
  EXPECT_MF_ERROR(mf::PipelineStrategy(comm, mf::Mesh({{"data", 4}}), {}), "has no 'pipe' axis");
  EXPECT_MF_ERROR(mf::PipelineStrategy(comm, mf::Mesh({{"model", 2}, {"pipe", 2}}), {}), "axis 'model' of size 2",
                  "neither 'pipe'");
}

// Bad input on every stage: the same error on each.
void expect_error(const std::string& kind, int p, mf::PipelineOptions options, int batch, const std::string& want,
                  const std::string& want2 = "") {
  auto [x, y] = data(24);
  auto errors = on_stages(
      p, options,
      [&](int, mf::PipelineStrategy&) {
        auto m = build(kind);
        compile(*m);
        m->fit({x}, {y}, {.epochs = 1, .batch_size = batch, .verbose = 0});
      },
      {.timeout = std::chrono::milliseconds(5000)});
  for (int s = 0; s < p; ++s) {
    EXPECT_NE(errors[s].find(want), std::string::npos) << "stage " << s << ": " << errors[s];
    EXPECT_NE(errors[s].find(want2), std::string::npos) << "stage " << s << ": " << errors[s];
  }
}

TEST(PipelineStrategy, BadInputIsNamed) {
  expect_error("plain", 2, {.cuts = {"nope"}}, 8, "cut point 'nope' is not a layer of model");
  expect_error("plain", 3, {.cuts = {"d3", "d2"}}, 8, "cut point 'd2' (layer 1) must come after the previous cut point");
  expect_error("plain", 2, {.cuts = {"d2", "d3"}}, 8, "2 stages need 1 cut point(s), got 2");
  expect_error("plain", 5, {}, 8, "5 stages but model");
  expect_error("plain", 2, {.micro_batches = 3, .cuts = {"d2"}}, 8, "a batch of 8 rows does not divide into 3 micro-batches");
  expect_error("residual", 2, {.cuts = {"skip"}}, 8, "cut point 'skip' is a layer of model",
               "more than one tensor crosses there (a skip connection); cut at one of: d1, d2, d3, d4");
  EXPECT_MF_ERROR(mf::PipelineStrategy(nullptr, {}), "the communicator is null");
  EXPECT_MF_ERROR(mf::PipelineStrategy(mf::distributed::make_communicator("stub"), {.micro_batches = 0}),
                   "micro_batches must be >= 1");
}

// A stage that stops answering: its neighbour's receive fails after the timeout, naming it.
TEST(PipelineStrategy, ASilentStageIsNamed) {
  auto [x, y] = data(8);
  mf::distributed::LocalGroup group(2, {.timeout = std::chrono::milliseconds(1500)});
  std::string error;
  std::thread stage0([&] {
    try {
      mf::PipelineStrategy strategy(group.communicator(0), {.cuts = {"d3"}});
      auto scope = strategy.scope();
      auto m = build("plain");
      compile(*m);
      m->train_on_batch({x}, {y});
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  stage0.join();  // stage 1 never runs
  EXPECT_NE(error.find("stage 0 (rank 0) waited for the gradient of micro-batch 0 from pipeline stage 1 (rank 1)"),
            std::string::npos)
      << error;
}

}  // namespace
