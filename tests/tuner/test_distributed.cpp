// Distributed tuning on 127.0.0.1: three worker processes take trials from one OracleServer; they
// run disjoint trials and the oracle sees every result, also when one worker is SIGKILLed in the
// middle of its trial (that trial fails, the survivors finish the search).
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "meshflow/meshflow.h"
#include "meshflow/tuner/distributed.h"
#include "meshflow/tuner/tuner.h"
#include "test_util.h"

extern char** environ;

namespace mf = meshflow;
namespace L = meshflow::layers;
using namespace meshflow::tuner;

namespace {

// At its first epoch end a worker waits until all three workers hold trials (so they run at once),
// then carries on, or kills itself in the middle of its trial when `die`.
class Rendezvous : public mf::Callback {
 public:
  Rendezvous(std::shared_ptr<RemoteOracle> oracle, bool die) : oracle_(std::move(oracle)), die_(die) {}
  void on_epoch_end(int, mf::Logs&) override {
    if (met_) return;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      std::set<std::string> workers;
      for (const auto& t : oracle_->trials()) workers.insert(t.worker);
      if (workers.size() >= 3) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    met_ = true;
    if (die_) ::raise(SIGKILL);
  }

 private:
  std::shared_ptr<RemoteOracle> oracle_;
  bool die_;
  bool met_ = false;
};

pid_t spawn_worker(const std::string& id, uint16_t port, bool die) {
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.push_back("MF_TUNER_WORKER_ID=" + id);
  env.push_back("MF_TUNER_WORKER_PORT=" + std::to_string(port));
  if (die) env.push_back("MF_TUNER_WORKER_DIE=1");
  env.push_back("OMP_NUM_THREADS=1");
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string filter = "--gtest_filter=Distributed.Worker";
  char* argv[] = {self.data(), filter.data(), nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()) != 0) return -1;
  return pid;
}

// Waits for every child up to `limit`; kills what is left after it. Returns the wait statuses.
std::map<pid_t, int> reap(const std::vector<pid_t>& pids, std::chrono::seconds limit) {
  std::map<pid_t, int> status;
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (status.size() < pids.size()) {
    for (pid_t p : pids) {
      if (status.count(p)) continue;
      int st = 0;
      if (waitpid(p, &st, WNOHANG) == p) status[p] = st;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      for (pid_t p : pids)
        if (!status.count(p)) {
          ::kill(p, SIGKILL);
          int st = 0;
          waitpid(p, &st, 0);
          status[p] = -1;  // timed out
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status;
}

}  // namespace

// A worker: run by the test below with MF_TUNER_WORKER_* set.
TEST(Distributed, Worker) {
  const char* id = std::getenv("MF_TUNER_WORKER_ID");
  const char* port = std::getenv("MF_TUNER_WORKER_PORT");
  if (!id || !port) GTEST_SKIP() << "runs only as a worker of the Distributed tests below";
  bool die = std::getenv("MF_TUNER_WORKER_DIE") != nullptr;
  mf::Generator g(3);
  mf::Tensor x = mf::rand({256, 4}, {}, &g);
  mf::Tensor y = mf::sum(x, {1}, true);
  auto oracle = std::make_shared<RemoteOracle>("127.0.0.1", static_cast<uint16_t>(std::atoi(port)));
  Tuner tuner(
      [](HyperParameters& hp) {
        int64_t units = hp.Int("units", 1, 16);
        double lr = hp.Float("lr", 0.01, 0.1, {.sampling = "log"});
        auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
            mf::make_input_layer({4}), L::Dense(units, {.activation = "tanh"}), L::Dense(1)});
        model->compile({.optimizer = mf::optimizers::SGD({{.learning_rate = lr}}), .loss = "mse"});
        return std::shared_ptr<mf::Model>(model);
      },
      oracle, {.objective = "loss", .tuner_id = id, .verbose = 0});
  mf::FitOptions fit{.epochs = 2, .batch_size = 64, .verbose = 0};
  fit.callbacks.push_back(std::make_shared<Rendezvous>(oracle, die));
  tuner.search(x, y, fit);
  EXPECT_FALSE(die) << "a dying worker should not get here";
}

TEST(Distributed, ThreeWorkersOneKilled) {
  auto dir = mf_test::temp_folder("tuner_distributed");
  auto oracle = std::make_shared<RandomSearchOracle>(
      OracleOptions{.objective = Objective::from_name("loss"), .max_trials = 10, .seed = 5});
  oracle->attach(dir + "/project", false);
  OracleServer server(oracle, "127.0.0.1", 0);
  ASSERT_GT(server.port(), 0);
  // w2 first: once it holds a trial, w0 and w1 join; w2 dies when they are running too.
  std::vector<pid_t> pids(3, -1);
  pids[2] = spawn_worker("w2", server.port(), /*die=*/true);
  ASSERT_GT(pids[2], 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto w2_has_trial = [&] {
    for (const auto& t : oracle->trials())
      if (t.worker == "w2") return true;
    return false;
  };
  while (!w2_has_trial() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (int w = 0; w < 2; ++w) {
    pids[static_cast<size_t>(w)] = spawn_worker("w" + std::to_string(w), server.port(), /*die=*/false);
    if (pids[static_cast<size_t>(w)] <= 0) break;
  }
  if (pids[0] <= 0 || pids[1] <= 0 || !w2_has_trial()) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGKILL), waitpid(p, nullptr, 0);
    FAIL() << "could not start the workers, or w2 took no trial within 30 s";
  }
  auto status = reap(pids, std::chrono::seconds(90));
  server.stop();
  for (int w = 0; w < 3; ++w) {
    int st = status[pids[static_cast<size_t>(w)]];
    ASSERT_NE(st, -1) << "worker w" << w << " did not finish within 90 s";
    if (w == 2) EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "w2 status " << st;
    else EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "w" << w << " status " << st;
  }
  auto trials = oracle->trials();
  ASSERT_EQ(trials.size(), 10u);  // every trial of the search was made and ended
  std::map<std::string, int> by_worker;
  std::set<std::string> values;
  int failed = 0;
  for (const auto& t : trials) {
    by_worker[t.worker]++;
    EXPECT_TRUE(values.insert(t.values.dump()).second) << "two trials with the same values";
    if (t.worker == "w2") {
      EXPECT_EQ(t.status, TrialStatus::Failed);
      EXPECT_NE(t.message.find("worker w2 disconnected during the trial"), std::string::npos) << t.message;
      ++failed;
    } else {
      EXPECT_EQ(t.status, TrialStatus::Completed) << t.trial_id << " by " << t.worker << ": " << t.message;
      ASSERT_TRUE(t.score.has_value());
      EXPECT_TRUE(std::filesystem::exists(oracle->trial_dir(t.trial_id) + "/checkpoint.safetensors"));
    }
  }
  EXPECT_EQ(failed, 1);         // the killed worker's one trial, and no other
  EXPECT_EQ(by_worker["w2"], 1);
  EXPECT_GE(by_worker["w0"], 1);  // both survivors took part
  EXPECT_GE(by_worker["w1"], 1);
  EXPECT_EQ(by_worker["w0"] + by_worker["w1"], 9);
  // The state on disk says the same to a fresh oracle.
  RandomSearchOracle reread({.objective = Objective::from_name("loss"), .max_trials = 10});
  reread.attach(dir + "/project", false);
  EXPECT_EQ(reread.trials().size(), 10u);
  std::filesystem::remove_all(dir);
}

TEST(Distributed, ThreeWorkersRunDisjointTrials) {
  auto dir = mf_test::temp_folder("tuner_distributed3");
  auto oracle = std::make_shared<RandomSearchOracle>(
      OracleOptions{.objective = Objective::from_name("loss"), .max_trials = 9, .seed = 6});
  oracle->attach(dir + "/project", false);
  OracleServer server(oracle, "127.0.0.1", 0);
  std::vector<pid_t> pids;
  for (int w = 0; w < 3; ++w) {
    pid_t p = spawn_worker("w" + std::to_string(w), server.port(), /*die=*/false);
    ASSERT_GT(p, 0);
    pids.push_back(p);
  }
  auto status = reap(pids, std::chrono::seconds(90));
  server.stop();
  for (int w = 0; w < 3; ++w) {
    int st = status[pids[static_cast<size_t>(w)]];
    EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << "w" << w << " status " << st;
  }
  auto trials = oracle->trials();
  ASSERT_EQ(trials.size(), 9u);
  std::map<std::string, int> by_worker;
  std::set<std::string> values;
  for (const auto& t : trials) {
    EXPECT_EQ(t.status, TrialStatus::Completed) << t.trial_id << ": " << t.message;
    EXPECT_TRUE(values.insert(t.values.dump()).second) << "two trials with the same values";
    by_worker[t.worker]++;
  }
  // Each trial was run by one worker, and all three took part (they met at their first epoch).
  EXPECT_EQ(by_worker.size(), 3u);
  EXPECT_EQ(by_worker["w0"] + by_worker["w1"] + by_worker["w2"], 9);
  std::filesystem::remove_all(dir);
}

TEST(Distributed, RemoteOracleNamesAMissingServer) {
  // A port nothing listens on (bound and closed at once); 300 ms of retries.
  uint16_t port = 0;
  {
    auto probe = std::make_shared<RandomSearchOracle>(OracleOptions{.objective = {"loss", "min"}});
    OracleServer s(probe, "127.0.0.1", 0);
    port = s.port();
  }
  EXPECT_MF_ERROR(RemoteOracle("127.0.0.1", port, std::chrono::milliseconds(300)), "no oracle server at 127.0.0.1:",
                  "300 ms");
  EXPECT_MF_ERROR(OracleServer(nullptr), "oracle is null");
  auto o = std::make_shared<RandomSearchOracle>(OracleOptions{.objective = {"loss", "min"}});
  EXPECT_MF_ERROR(OracleServer(o, "not-an-address", 0), "not-an-address", "not an IP address");
}
