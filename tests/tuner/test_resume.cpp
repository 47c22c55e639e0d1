// A search killed (SIGKILL) in its third trial resumes from the project folder: the finished
// trials are not run again, the interrupted one runs again with the same values.
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "meshflow/meshflow.h"
#include "meshflow/tuner/tuner.h"
#include "test_util.h"

extern char** environ;

namespace mf = meshflow;
namespace L = meshflow::layers;
using namespace meshflow::tuner;

namespace {

struct Built {
  int builds = 0;
  std::vector<Json> values;
};

HyperModel hypermodel(Built& b) {
  return [&b](HyperParameters& hp) {
    ++b.builds;
    int64_t units = hp.Int("units", 1, 8);
    double lr = hp.Float("lr", 0.01, 0.1, {.sampling = "log"});
    b.values.push_back(hp.values());
    auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
        mf::make_input_layer({3}), L::Dense(units, {.activation = "tanh"}), L::Dense(1)});
    model->compile({.optimizer = mf::optimizers::SGD({{.learning_rate = lr}}), .loss = "mse"});
    return std::shared_ptr<mf::Model>(model);
  };
}

// Kills this process at the first epoch end of the trial whose build is number `kill_at_build`.
class KillAt : public mf::Callback {
 public:
  KillAt(const Built& b, int at) : b_(b), at_(at) {}
  void on_epoch_end(int, mf::Logs&) override {
    if (b_.builds == at_) ::raise(SIGKILL);
  }

 private:
  const Built& b_;
  int at_;
};

void data(mf::Tensor& x, mf::Tensor& y) {
  mf::Generator g(2);
  x = mf::rand({128, 3}, {}, &g);
  y = mf::sum(x, {1}, true);
}

TunerOptions options(const std::string& dir) {
  return {.objective = "loss", .max_trials = 4, .directory = dir, .project_name = "resume", .seed = 9, .verbose = 0};
}

}  // namespace

// The child: run by ResumesWithoutRerunningFinishedTrials below with MF_TUNER_CHILD_DIR set.
TEST(Resume, Child) {
  const char* dir = std::getenv("MF_TUNER_CHILD_DIR");
  if (!dir) GTEST_SKIP() << "runs only as the child of Resume.ResumesWithoutRerunningFinishedTrials";
  Built b;
  mf::Tensor x, y;
  data(x, y);
  RandomSearch tuner(hypermodel(b), options(dir));
  // Build 1 declares the space; builds 2, 3, 4 are trials 0000, 0001, 0002: die in 0002.
  tuner.search(x, y, {.epochs = 2, .verbose = 0, .callbacks = {std::make_shared<KillAt>(b, 4)}});
  FAIL() << "the child should have been killed in its third trial";
}

TEST(Resume, ResumesWithoutRerunningFinishedTrials) {
  auto dir = mf_test::temp_folder("tuner_resume");
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string env_dir = "MF_TUNER_CHILD_DIR=" + dir;
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(env_dir);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string filter = "--gtest_filter=Resume.Child";
  char* argv[] = {self.data(), filter.data(), nullptr};
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()), 0);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      FAIL() << "the child search did not end within 60 s";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;

  // What the killed search left: two finished trials and one running.
  {
    RandomSearchOracle look({.objective = Objective::from_name("loss"), .max_trials = 4});
    look.attach(dir + "/resume", false);
    auto trials = look.trials();
    ASSERT_EQ(trials.size(), 3u);
    EXPECT_EQ(trials[0].status, TrialStatus::Completed);
    EXPECT_EQ(trials[1].status, TrialStatus::Completed);
    EXPECT_EQ(trials[2].status, TrialStatus::Running);
  }
  RandomSearchOracle before({.objective = Objective::from_name("loss"), .max_trials = 4});
  before.attach(dir + "/resume", false);
  auto old = before.trials();

  Built b;
  mf::Tensor x, y;
  data(x, y);
  RandomSearch tuner(hypermodel(b), options(dir));
  tuner.search(x, y, {.epochs = 2, .verbose = 0});
  // Trial 0002 again (same values) and the new 0003; no build to declare the known space.
  ASSERT_EQ(b.builds, 2);
  EXPECT_EQ(b.values[0], old[2].values);
  auto trials = tuner.oracle().trials();
  ASSERT_EQ(trials.size(), 4u);
  for (const auto& t : trials) EXPECT_EQ(t.status, TrialStatus::Completed) << t.trial_id << ": " << t.message;
  EXPECT_EQ(trials[0].score, old[0].score);
  EXPECT_EQ(trials[1].score, old[1].score);
  EXPECT_EQ(trials[0].values, old[0].values);
  EXPECT_EQ(b.values[1], trials[3].values);
  // The resumed search drew the same fourth trial an uninterrupted one would: the random state
  // was saved with the oracle.
  auto clean_dir = mf_test::temp_folder("tuner_resume_clean");
  Built c;
  RandomSearch clean(hypermodel(c), options(clean_dir));
  clean.search(x, y, {.epochs = 2, .verbose = 0});
  EXPECT_EQ(clean.oracle().trials().at(3).values, trials[3].values);
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(clean_dir);
}

TEST(Resume, OverwriteStartsAgainAndAnotherObjectiveIsRefused) {
  auto dir = mf_test::temp_folder("tuner_overwrite");
  Built b;
  mf::Tensor x, y;
  data(x, y);
  {
    RandomSearch t(hypermodel(b), {.objective = "loss", .max_trials = 1, .directory = dir, .project_name = "p", .verbose = 0});
    t.search(x, y, {.epochs = 1, .verbose = 0});
  }
  EXPECT_MF_ERROR(RandomSearch(hypermodel(b), {.objective = "mse", .max_trials = 1, .directory = dir, .project_name = "p"}),
                  "objective 'loss'", "not 'mse'", "overwrite");
  RandomSearch fresh(hypermodel(b), {.objective = "mse", .max_trials = 1, .directory = dir, .project_name = "p",
                                     .overwrite = true, .verbose = 0});
  EXPECT_TRUE(fresh.oracle().trials().empty());
  std::filesystem::remove_all(dir);
}
