// Distributed tuning on 127.0.0.1: three worker processes take trials from one OracleServer; they
// run disjoint trials and the oracle sees every result, also when one worker is SIGKILLed in the
// middle of its trial (that trial fails, the survivors finish the search) or SIGSTOPped (its
// trial fails once it has sent no heartbeat for the timeout; Note [Worker leases]).
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
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
// then carries on, or kills itself in the middle of its trial when `die` is SIGKILL, or stops
// itself when it is SIGSTOP (and goes on from there if it is continued).
class Rendezvous : public mf::Callback {
 public:
  Rendezvous(std::shared_ptr<RemoteOracle> oracle, int die) : oracle_(std::move(oracle)), die_(die) {}
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
    if (die_) ::raise(die_);
  }

 private:
  std::shared_ptr<RemoteOracle> oracle_;
  int die_;
  bool met_ = false;
};

// die: 0, SIGKILL or SIGSTOP (see Rendezvous); error_file: where the worker writes the error its
// search threw.
pid_t spawn_worker(const std::string& id, uint16_t port, int die, const std::string& error_file = "") {
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.push_back("MF_TUNER_WORKER_ID=" + id);
  env.push_back("MF_TUNER_WORKER_PORT=" + std::to_string(port));
  if (die) env.push_back("MF_TUNER_WORKER_DIE=" + std::to_string(die));
  if (!error_file.empty()) env.push_back("MF_TUNER_WORKER_ERROR_FILE=" + error_file);
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
  const int die = std::getenv("MF_TUNER_WORKER_DIE") ? std::atoi(std::getenv("MF_TUNER_WORKER_DIE")) : 0;
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
  try {
    tuner.search(x, y, fit);
  } catch (const mf::Error& e) {
    if (const char* f = std::getenv("MF_TUNER_WORKER_ERROR_FILE")) std::ofstream(f) << e.what();
    FAIL() << e.what();
  }
  EXPECT_NE(die, SIGKILL) << "a dying worker should not get here";
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
  pids[2] = spawn_worker("w2", server.port(), SIGKILL);
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
    pids[static_cast<size_t>(w)] = spawn_worker("w" + std::to_string(w), server.port(), 0);
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
    pid_t p = spawn_worker("w" + std::to_string(w), server.port(), 0);
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

namespace {

// A bare client of the oracle protocol: one JSON line out, one in, and no heartbeat thread.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    timeval tv{10, 0};  // a read never waits past 10 s
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  void send(const mf::Json& j) {
    std::string line = j.dump() + "\n";
    ASSERT_EQ(::write(fd_, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  }
  // The next line, or "" at the end of the stream.
  std::string read_line() {
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      char chunk[4096];
      ssize_t n = ::read(fd_, chunk, sizeof(chunk));
      if (n <= 0) return "";
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
  std::string buf_;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::shared_ptr<RandomSearchOracle> oracle_with_space(const std::string& dir, int max_trials) {
  auto oracle = std::make_shared<RandomSearchOracle>(
      OracleOptions{.objective = Objective::from_name("loss"), .max_trials = max_trials, .seed = 7});
  oracle->attach(dir + "/project", false);
  HyperParameters hp;
  hp.Float("x", 0.0, 1.0);
  oracle->update_space(hp);
  return oracle;
}

}  // namespace

// Note [Worker leases]: a worker that takes a trial and then sends nothing loses it after the
// timeout (not before), is told why in a last line, and its connection is closed.
TEST(Distributed, SilentWorkerLosesItsTrialAfterTheHeartbeatTimeout) {
  auto dir = mf_test::temp_folder("tuner_lease");
  auto oracle = oracle_with_space(dir, 5);
  std::vector<LostTrial> reported;
  std::mutex reported_mu;
  OracleServer server(oracle, "127.0.0.1", 0,
                      {.heartbeat_timeout = std::chrono::milliseconds(1000), .on_lost_trial = [&](const LostTrial& t) {
                         std::lock_guard<std::mutex> lock(reported_mu);
                         reported.push_back(t);
                       }});
  RawClient silent(server.port());
  ASSERT_TRUE(silent.ok());
  silent.send({{"op", "create_trial"}, {"worker", "quiet"}});
  auto answer = mf::Json::parse(silent.read_line());
  const std::string id = answer.at("result").at("trial_id").get<std::string>();
  auto took = std::chrono::steady_clock::now();
  // Running at 0.7 s (within the lease), failed by 2.5 s.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(oracle->trial(id)->status, TrialStatus::Running);
  while (oracle->trial(id)->status == TrialStatus::Running && seconds_since(took) < 5)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double failed_after = seconds_since(took);
  Trial t = *oracle->trial(id);
  EXPECT_EQ(t.status, TrialStatus::Failed);
  EXPECT_GE(failed_after, 1.0);
  EXPECT_LT(failed_after, 2.5);
  EXPECT_NE(t.message.find("worker quiet sent no heartbeat for 1."), std::string::npos) << t.message;
  EXPECT_NE(t.message.find("timeout 1.0 s; hung or stopped"), std::string::npos) << t.message;
  // The last line says why, then the stream ends.
  auto last = mf::Json::parse(silent.read_line());
  EXPECT_TRUE(last.value("closed", false));
  EXPECT_NE(last.at("error").get<std::string>().find("closed this connection"), std::string::npos);
  EXPECT_EQ(silent.read_line(), "");
  ASSERT_EQ(server.lost_trials().size(), 1u);
  EXPECT_EQ(server.lost_trials()[0].worker, "quiet");
  EXPECT_EQ(server.lost_trials()[0].trial_id, id);
  {
    std::lock_guard<std::mutex> lock(reported_mu);
    ASSERT_EQ(reported.size(), 1u);
    EXPECT_EQ(reported[0].trial_id, id);
  }
  // Another connection cannot end a trial it does not hold, failed or not.
  RawClient other(server.port());
  Trial done = t;
  done.status = TrialStatus::Completed;
  done.score = 1.0;
  other.send({{"op", "end_trial"}, {"trial", done.to_json()}});
  const std::string refused = mf::Json::parse(other.read_line()).at("error").get<std::string>();
  EXPECT_NE(refused.find("ends trial " + id + " that it does not hold (it is FAILED: worker quiet sent no heartbeat"),
            std::string::npos)
      << refused;
  EXPECT_EQ(oracle->trial(id)->status, TrialStatus::Failed);
  server.stop();
  EXPECT_MF_ERROR(OracleServer(oracle, "127.0.0.1", 0, {.heartbeat_timeout = std::chrono::milliseconds(0)}),
                  "heartbeat_timeout must be > 0", "0 ms");
  std::filesystem::remove_all(dir);
}

// A RemoteOracle's heartbeat thread keeps the trial of a worker whose own thread is busy (here:
// asleep) for three timeouts.
TEST(Distributed, HeartbeatsKeepABusyWorkersTrial) {
  auto dir = mf_test::temp_folder("tuner_heartbeat");
  auto oracle = oracle_with_space(dir, 5);
  OracleServer server(oracle, "127.0.0.1", 0, {.heartbeat_timeout = std::chrono::milliseconds(400)});
  RemoteOracle remote("127.0.0.1", server.port());
  Trial t = remote.create_trial("busy");
  ASSERT_EQ(t.status, TrialStatus::Running);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(oracle->trial(t.trial_id)->status, TrialStatus::Running);
  t.status = TrialStatus::Completed;
  t.score = 0.5;
  remote.end_trial(t);
  EXPECT_EQ(oracle->trial(t.trial_id)->status, TrialStatus::Completed);
  EXPECT_TRUE(server.lost_trials().empty());
  EXPECT_EQ(server.workers(), 1);
  server.stop();
  std::filesystem::remove_all(dir);
}

// A worker process SIGSTOPped in the middle of its trial: after 2 s without a heartbeat its trial
// fails and the two others finish the search; continued afterwards, it cannot end the trial (its
// search throws the chief's reason).
TEST(Distributed, StoppedWorkerLosesItsTrialAfterTheHeartbeatTimeout) {
  auto dir = mf_test::temp_folder("tuner_stopped");
  auto oracle = std::make_shared<RandomSearchOracle>(
      OracleOptions{.objective = Objective::from_name("loss"), .max_trials = 10, .seed = 8});
  oracle->attach(dir + "/project", false);
  OracleServer server(oracle, "127.0.0.1", 0, {.heartbeat_timeout = std::chrono::seconds(2)});
  const std::string error_file = dir + "/w2.error";
  std::vector<pid_t> pids = {spawn_worker("w0", server.port(), 0), spawn_worker("w1", server.port(), 0),
                             spawn_worker("w2", server.port(), SIGSTOP, error_file)};
  auto kill_all = [&] {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGKILL), waitpid(p, nullptr, 0);
  };
  for (pid_t p : pids) {
    if (p <= 0) {
      kill_all();
      FAIL() << "could not start the workers";
    }
  }
  // Wait for w2 to stop itself (at its first epoch end, once all three hold trials).
  auto start = std::chrono::steady_clock::now();
  int st = 0;
  bool stopped = false;
  while (!stopped && seconds_since(start) < 60) {
    if (waitpid(pids[2], &st, WNOHANG | WUNTRACED) == pids[2] && WIFSTOPPED(st)) stopped = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!stopped) {
    kill_all();
    FAIL() << "w2 did not stop within 60 s";
  }
  auto stopped_at = std::chrono::steady_clock::now();
  auto w2_trial = [&]() -> std::optional<Trial> {
    for (const auto& t : oracle->trials())
      if (t.worker == "w2") return t;
    return std::nullopt;
  };
  while (w2_trial() && w2_trial()->status == TrialStatus::Running && seconds_since(stopped_at) < 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double lost_after = seconds_since(stopped_at);
  std::printf("w2's trial failed %.2f s after it stopped (timeout 2 s)\n", lost_after);
  auto survivors = reap({pids[0], pids[1]}, std::chrono::seconds(90));
  // Continued, w2 finds its trial gone; then it is ended in any case.
  ::kill(pids[2], SIGCONT);
  auto w2 = reap({pids[2]}, std::chrono::seconds(30));
  server.stop();
  ASSERT_TRUE(w2_trial().has_value());
  EXPECT_EQ(w2_trial()->status, TrialStatus::Failed);
  EXPECT_NE(w2_trial()->message.find("worker w2 sent no heartbeat for 2."), std::string::npos) << w2_trial()->message;
  // The lease runs from w2's last line, which is at most a beat (0.5 s) older than its stop.
  EXPECT_GE(lost_after, 1.4);
  EXPECT_LT(lost_after, 4.0);
  for (pid_t p : {pids[0], pids[1]}) EXPECT_TRUE(WIFEXITED(survivors[p]) && WEXITSTATUS(survivors[p]) == 0);
  EXPECT_TRUE(w2[pids[2]] != -1 && WIFEXITED(w2[pids[2]]) && WEXITSTATUS(w2[pids[2]]) != 0) << w2[pids[2]];
  std::ifstream in(error_file);
  std::string error((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(error.find("sent no heartbeat"), std::string::npos) << error;
  EXPECT_NE(error.find("closed this"), std::string::npos) << error;
  auto trials = oracle->trials();
  ASSERT_EQ(trials.size(), 10u);
  int completed = 0;
  for (const auto& t : trials) completed += t.status == TrialStatus::Completed;
  EXPECT_EQ(completed, 9);
  ASSERT_EQ(server.lost_trials().size(), 1u);
  EXPECT_EQ(server.lost_trials()[0].worker, "w2");
  std::filesystem::remove_all(dir);
}

// What meshflow-run --tuner sets, read back; each malformed variable is named.
TEST(Distributed, RolesFromTheEnvironment) {
  const char* names[] = {"MESHFLOW_TUNER_ID", "MESHFLOW_TUNER_ORACLE_IP", "MESHFLOW_TUNER_ORACLE_PORT",
                         "MESHFLOW_TUNER_WORKERS", "MESHFLOW_TUNER_HEARTBEAT_TIMEOUT", "MESHFLOW_FAILURE_DIR"};
  auto set = [&](std::vector<std::string> values) {
    for (size_t i = 0; i < 6; ++i) {
      if (i < values.size() && !values[i].empty()) setenv(names[i], values[i].c_str(), 1);
      else unsetenv(names[i]);
    }
  };
  set({});
  EXPECT_EQ(DistributedTuning::from_environment().role, DistributedTuning::Role::None);
  set({"worker2", "127.0.0.1", "4567", "3", "2.5", "/tmp/f"});
  auto d = DistributedTuning::from_environment();
  EXPECT_TRUE(d.is_worker());
  EXPECT_EQ(d.tuner_id, "worker2");
  EXPECT_EQ(d.oracle_port, 4567);
  EXPECT_EQ(d.expected_workers, 3);
  EXPECT_EQ(d.heartbeat_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(d.report_dir, "/tmp/f");
  set({"chief", "::1", "80"});
  d = DistributedTuning::from_environment();
  EXPECT_TRUE(d.is_chief());
  EXPECT_EQ(d.expected_workers, 1);
  EXPECT_EQ(d.heartbeat_timeout, std::chrono::seconds(30));
  set({"chief", "", "80"});
  EXPECT_MF_ERROR(DistributedTuning::from_environment(), "MESHFLOW_TUNER_ID=chief", "MESHFLOW_TUNER_ORACLE_IP is not set");
  set({"chief", "localhost", "80"});
  EXPECT_MF_ERROR(DistributedTuning::from_environment(), "MESHFLOW_TUNER_ORACLE_IP='localhost'", "not an IP address");
  set({"chief", "127.0.0.1", "70000"});
  EXPECT_MF_ERROR(DistributedTuning::from_environment(), "MESHFLOW_TUNER_ORACLE_PORT='70000'", "1 to 65535");
  set({"w", "127.0.0.1", "80", "0"});
  EXPECT_MF_ERROR(DistributedTuning::from_environment(), "MESHFLOW_TUNER_WORKERS='0'");
  set({"w", "127.0.0.1", "80", "2", "-1"});
  EXPECT_MF_ERROR(DistributedTuning::from_environment(), "MESHFLOW_TUNER_HEARTBEAT_TIMEOUT='-1'", "seconds");
  set({});
  // Given in the options, a role is checked too.
  auto build = [](HyperParameters& hp) {
    hp.Int("u", 1, 2);
    auto m = std::make_shared<mf::Sequential>(
        std::vector<std::shared_ptr<mf::Layer>>{mf::make_input_layer({1}), L::Dense(1)});
    m->compile({.optimizer = "sgd", .loss = "mse"});
    return std::shared_ptr<mf::Model>(m);
  };
  EXPECT_MF_ERROR(RandomSearch(build, {.distributed = DistributedTuning{.role = DistributedTuning::Role::Chief,
                                                                        .tuner_id = "chief", .oracle_port = 0}}),
                  "oracle's port is 0");
  EXPECT_MF_ERROR(RandomSearch(build, {.distributed = DistributedTuning{.role = DistributedTuning::Role::Worker,
                                                                        .oracle_port = 9}}),
                  "tuner id is empty");
}
