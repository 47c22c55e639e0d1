// meshflow-run --tuner end to end: a chief and three workers of this very program on 127.0.0.1;
// one worker is SIGKILLed (or SIGSTOPped) in the middle of its trial. The search finishes with all
// ten trials accounted for, the summary names the worker and its trial, no process is left, and
// it all takes bounded time (Note [Tuner mode] in launcher/src/tuner_job.cpp).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "../launcher/launcher_process.h"
#include "meshflow/meshflow.h"
#include "meshflow/tuner/tuner.h"
#include "test_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
namespace fs = std::filesystem;
using namespace meshflow::tuner;

namespace {

const std::string kRun = MESHFLOW_RUN_PATH;

bool exists(const std::string& path) { return fs::exists(path); }

std::string read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// At its first epoch end a worker marks itself running and waits (at most 30 s) until every worker
// has, so all hold a trial at once; the victim then waits up to 60 s for the test to kill or stop it.
class Hold : public mf::Callback {
 public:
  Hold(std::string dir, std::string id, int workers, bool victim)
      : dir_(std::move(dir)), id_(std::move(id)), workers_(workers), victim_(victim) {}
  void on_epoch_end(int, mf::Logs&) override {
    if (held_) return;
    held_ = true;
    std::ofstream(dir_ + "/running-" + id_) << "1";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    auto all_running = [&] {
      for (int w = 0; w < workers_; ++w)
        if (!exists(dir_ + "/running-worker" + std::to_string(w))) return false;
      return true;
    };
    while (!all_running() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!victim_) return;
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

 private:
  std::string dir_, id_;
  int workers_;
  bool victim_, held_ = false;
};

}  // namespace

// The program meshflow-run starts as the chief and as each worker: one Tuner, no distributed code
// (the library reads its role from the environment meshflow-run sets).
TEST(LauncherTunerProcess, Run) {
  const char* dir = std::getenv("MF_LT_DIR");
  const char* id = std::getenv("MESHFLOW_TUNER_ID");
  if (!dir || !id) GTEST_SKIP() << "runs only under meshflow-run --tuner, started by the tests below";
  std::ofstream(std::string(dir) + "/pid-" + id) << ::getpid();
  mf::Generator g(3);
  mf::Tensor x = mf::rand({256, 4}, {}, &g);
  mf::Tensor y = mf::sum(x, {1}, true);
  RandomSearch tuner(
      [](HyperParameters& hp) {
        int64_t units = hp.Int("units", 1, 16);
        double lr = hp.Float("lr", 0.01, 0.1, {.sampling = "log"});
        auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
            mf::make_input_layer({4}), L::Dense(units, {.activation = "tanh"}), L::Dense(1)});
        model->compile({.optimizer = mf::optimizers::SGD({{.learning_rate = lr}}), .loss = "mse"});
        return std::shared_ptr<mf::Model>(model);
      },
      {.objective = "loss", .max_trials = 10, .directory = dir, .project_name = "p", .seed = 4, .verbose = 0});
  const char* victim = std::getenv("MF_LT_VICTIM");
  mf::FitOptions fit{.epochs = 2, .batch_size = 64, .verbose = 0};
  fit.callbacks.push_back(std::make_shared<Hold>(dir, id, tuner.distributed().expected_workers,
                                                 victim && std::string(victim) == id));
  tuner.search(x, y, fit);
  if (tuner.distributed().is_chief()) std::ofstream(std::string(dir) + "/chief-done") << "1";
}

namespace {

struct Outcome {
  launcher_test::Finished run;
  pid_t victim = -1;
  std::map<std::string, pid_t> pids;  // MESHFLOW_TUNER_ID -> pid
  std::vector<Trial> trials;
};

// Runs meshflow-run --tuner -np 3 over this program; `signal` goes to worker1 once every worker
// holds a trial.
Outcome run_search(const std::string& dir, int signal) {
  Outcome o;
  setenv("MF_LT_DIR", dir.c_str(), 1);
  setenv("MF_LT_VICTIM", "worker1", 1);
  setenv("OMP_NUM_THREADS", "1", 1);
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  launcher_test::LauncherProcess launcher({kRun, "--tuner", "-np", "3", "--heartbeat-timeout", "2", "--timeout", "150",
                                           "--", self, "--gtest_filter=LauncherTunerProcess.Run"},
                                          dir + "/launcher.log");
  unsetenv("MF_LT_DIR");
  unsetenv("MF_LT_VICTIM");
  auto start = std::chrono::steady_clock::now();
  while (!(exists(dir + "/running-worker1") && exists(dir + "/pid-worker1")) &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (exists(dir + "/pid-worker1")) {
    o.victim = static_cast<pid_t>(std::stol(read(dir + "/pid-worker1")));
    ::kill(o.victim, signal);
  }
  o.run = launcher.wait(180);
  for (const char* id : {"chief", "worker0", "worker1", "worker2"})
    if (exists(dir + "/pid-" + id)) o.pids[id] = static_cast<pid_t>(std::stol(read(dir + "/pid-" + id)));
  if (exists(dir + "/p/oracle.json")) {
    RandomSearchOracle reread({.objective = Objective::from_name("loss"), .max_trials = 10});
    reread.attach(dir + "/p", false);
    o.trials = reread.trials();
  }
  return o;
}

// No process of the search is left once meshflow-run has returned (and none is left by the test).
void expect_none_left(const Outcome& o) {
  for (const auto& [id, pid] : o.pids) {
    bool alive = ::kill(pid, 0) == 0;
    EXPECT_FALSE(alive) << id << " (pid " << pid << ") outlived meshflow-run";
    if (alive) ::kill(pid, SIGKILL);
  }
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Every trial made and ended: the victim's one failed with `why`, the nine others completed by
// the two survivors. Returns the victim's trial id.
std::string expect_trials(const Outcome& o, const std::string& why) {
  EXPECT_EQ(o.trials.size(), 10u);
  std::string victim_trial;
  std::map<std::string, int> completed;
  for (const auto& t : o.trials) {
    if (t.worker == "worker1") {
      EXPECT_TRUE(victim_trial.empty()) << "worker1 ran two trials";
      victim_trial = t.trial_id;
      EXPECT_EQ(t.status, TrialStatus::Failed);
      EXPECT_TRUE(contains(t.message, "worker worker1 " + why)) << t.message;
    } else {
      EXPECT_EQ(t.status, TrialStatus::Completed) << t.trial_id << " by " << t.worker << ": " << t.message;
      completed[t.worker]++;
    }
  }
  EXPECT_EQ(completed["worker0"] + completed["worker2"], 9);
  EXPECT_GE(completed["worker0"], 1);
  EXPECT_GE(completed["worker2"], 1);
  return victim_trial;
}

}  // namespace

TEST(LauncherTuner, KilledWorkerFailsItsTrialNotTheSearch) {
  auto dir = mf_test::temp_folder("launcher_tuner_kill");
  Outcome o = run_search(dir, SIGKILL);
  std::printf("meshflow-run --tuner with worker1 SIGKILLed: %.1f s\n", o.run.seconds);
  ASSERT_GT(o.victim, 0) << "worker1 never held a trial:\n" << o.run.output;
  EXPECT_EQ(o.run.exit_code, 0) << o.run.output;
  EXPECT_LT(o.run.seconds, 120);
  EXPECT_TRUE(exists(dir + "/chief-done")) << o.run.output;
  const std::string trial = expect_trials(o, "disconnected during the trial");
  const std::string who = "worker1 (pid " + std::to_string(o.victim) + ") killed by signal 9 (Killed)";
  EXPECT_TRUE(contains(o.run.output, "meshflow-run: " + who + "; its trial fails, the other workers go on"))
      << o.run.output;
  const std::string last = launcher_test::last_line(o.run.output);
  EXPECT_TRUE(contains(last, "meshflow-run: tuner search succeeded: a chief and 3 workers on this machine")) << last;
  EXPECT_TRUE(contains(last, "2 of 3 workers finished; " + who + "; failed with it: trial " + trial +
                                 " (disconnected)"))
      << last;
  expect_none_left(o);
  fs::remove_all(dir);
}

TEST(LauncherTuner, StoppedWorkerLosesItsTrialAndIsKilledAtTheEnd) {
  auto dir = mf_test::temp_folder("launcher_tuner_stop");
  Outcome o = run_search(dir, SIGSTOP);
  std::printf("meshflow-run --tuner with worker1 SIGSTOPped (heartbeat timeout 2 s): %.1f s\n", o.run.seconds);
  ASSERT_GT(o.victim, 0) << "worker1 never held a trial:\n" << o.run.output;
  EXPECT_EQ(o.run.exit_code, 0) << o.run.output;
  EXPECT_LT(o.run.seconds, 120);
  const std::string trial = expect_trials(o, "sent no heartbeat for 2.");
  const std::string who = "worker1 (pid " + std::to_string(o.victim) + ") stopped by signal 19 (Stopped (signal))";
  EXPECT_TRUE(contains(o.run.output, "meshflow-run: " + who + "; the chief fails its trial after 2 s without a heartbeat"))
      << o.run.output;
  const std::string last = launcher_test::last_line(o.run.output);
  EXPECT_TRUE(contains(last, "2 of 3 workers finished; " + who + ", killed when the search ended; failed with it: "
                             "trial " + trial + " (sent no heartbeat for 2."))
      << last;
  expect_none_left(o);
  fs::remove_all(dir);
}
