// meshflow-run --tuner without running anything: options, the exact environment of the chief and
// each worker, the refusals, the dry run, and the summary of lost workers and their trials.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cluster_config.h"
#include "launch_plan.h"
#include "options.h"
#include "test_util.h"
#include "tuner_job.h"
#include "tuner_plan.h"

namespace {

namespace ml = meshflow::launcher;
using Words = std::vector<std::string>;
using ml::EnvList;

ml::MachineFacts facts(int cores = 8) {
  ml::MachineFacts f;
  f.cores = cores;
  f.hostname = "vm";
  f.self_path = "/opt/mf/meshflow-run";
  f.temp_dir = "/tmp";
  f.launcher_pid = 42;
  return f;
}

ml::TunerPlan plan(const Words& args, const ml::ClusterConfig& c = {}, int attempt = 0, int port = 5555) {
  return ml::build_tuner_plan(ml::parse_options(args), c, facts(), attempt, port);
}

}  // namespace

TEST(TunerOptions, ParsesTheModeAndTakesTheProgramWithoutDashes) {
  auto o = ml::parse_options({"--tuner", "-np", "3", "./build/examples/seed_keras_tuner", "--quick", "-np", "9"});
  EXPECT_TRUE(o.tuner);
  EXPECT_EQ(o.ranks, 3);
  EXPECT_EQ(o.program, (Words{"./build/examples/seed_keras_tuner", "--quick", "-np", "9"}));  // the program's own
  EXPECT_FALSE(o.heartbeat_timeout_s);
  o = ml::parse_options({"--tuner", "-np", "2", "--heartbeat-timeout=2.5", "--", "p"});
  EXPECT_EQ(o.heartbeat_timeout_s, 2.5);
  EXPECT_MF_ERROR(ml::parse_options({"-np", "2", "--heartbeat-timeout", "2", "--", "p"}), "--heartbeat-timeout",
                  "add --tuner");
  EXPECT_MF_ERROR(ml::parse_options({"--tuner", "-np", "2", "--heartbeat-timeout", "0", "--", "p"}),
                  "--heartbeat-timeout: '0'", "0.001 to 1e6");
  EXPECT_MF_ERROR(ml::parse_options({"--tuner", "-np", "2", "--heartbeat-timeout", "soon", "p"}), "'soon'");
  EXPECT_MF_ERROR(ml::parse_options({"--tuner", "-np", "2"}), "no program to run");
}

TEST(TunerPlan, EveryProcessLearnsItsRoleAndTheOraclesAddress) {
  auto p = plan({"--tuner", "-np", "3", "--heartbeat-timeout", "2", "--", "./search", "--quick"});
  EXPECT_EQ(p.workers, 3);
  EXPECT_EQ(p.describe(), "a chief and 3 workers on this machine (oracle on 127.0.0.1:5555)");
  const EnvList shared = {{"OMP_NUM_THREADS", "2"},  // 8 cores over 3 workers; the chief only answers them
                          {"MESHFLOW_FAILURE_DIR", "/tmp/meshflow-run-42/attempt-0"},
                          {"MESHFLOW_RESTART_ATTEMPT", "0"},
                          {"MESHFLOW_TUNER_ORACLE_IP", "127.0.0.1"},
                          {"MESHFLOW_TUNER_ORACLE_PORT", "5555"},
                          {"MESHFLOW_TUNER_WORKERS", "3"},
                          {"MESHFLOW_TUNER_HEARTBEAT_TIMEOUT", "2"}};
  EXPECT_EQ(p.env, shared);
  EnvList chief = shared, worker2 = shared;
  chief.emplace_back("MESHFLOW_TUNER_ID", "chief");
  worker2.emplace_back("MESHFLOW_TUNER_ID", "worker2");
  EXPECT_EQ(p.env_for(-1), chief);
  EXPECT_EQ(p.env_for(2), worker2);
  EXPECT_EQ(p.program, (Words{"./search", "--quick"}));
  EXPECT_EQ(ml::tuner_dry_run(p),
            "# meshflow-run --tuner: a chief and 3 workers on this machine (oracle on 127.0.0.1:5555); up to 0 "
            "restart(s)\n"
            "OMP_NUM_THREADS=2\nMESHFLOW_FAILURE_DIR=/tmp/meshflow-run-42/attempt-0\nMESHFLOW_RESTART_ATTEMPT=0\n"
            "MESHFLOW_TUNER_ORACLE_IP=127.0.0.1\nMESHFLOW_TUNER_ORACLE_PORT=5555\nMESHFLOW_TUNER_WORKERS=3\n"
            "MESHFLOW_TUNER_HEARTBEAT_TIMEOUT=2\n"
            "MESHFLOW_TUNER_ID=chief ./search --quick\nMESHFLOW_TUNER_ID=worker0 ./search --quick\n"
            "MESHFLOW_TUNER_ID=worker1 ./search --quick\nMESHFLOW_TUNER_ID=worker2 ./search --quick\n");
  // Defaults: a 30 s heartbeat timeout; one worker gets every core; the config's threads, env,
  // timeout and restarts apply; attempt 1 has its own failure folder.
  ml::ClusterConfig c;
  c.ranks = 2;
  c.threads_per_rank = 3;
  c.env = {{"DATA", "/d"}};
  c.timeout_s = 60;
  c.max_restarts = 1;
  auto q = plan({"--tuner", "p"}, c, 1, 6000);
  EXPECT_EQ(q.workers, 2);
  EXPECT_EQ(q.env[0], (std::pair<std::string, std::string>{"OMP_NUM_THREADS", "3"}));
  EXPECT_EQ(q.env[1].second, "/tmp/meshflow-run-42/attempt-1");
  EXPECT_EQ(q.env[3], (std::pair<std::string, std::string>{"DATA", "/d"}));
  EXPECT_EQ(q.env.back(), (std::pair<std::string, std::string>{"MESHFLOW_TUNER_HEARTBEAT_TIMEOUT", "30"}));
  EXPECT_EQ(q.timeout_s, 60);
  EXPECT_EQ(q.max_restarts, 1);
  EXPECT_EQ(plan({"--tuner", "-np", "1", "p"}).env[0].second, "8");
}

TEST(TunerPlan, RefusesWhatWouldLeaveThisMachine) {
  EXPECT_MF_ERROR(plan({"--tuner", "p"}), "number of workers is missing", "-np N");
  EXPECT_MF_ERROR(plan({"--tuner", "-np", "2", "--hosts", "a:1,b:1", "p"}), "on this machine", "127.0.0.1 only",
                  "drop --hosts");
  EXPECT_MF_ERROR(plan({"--tuner", "-np", "2", "--launcher", "mpirun", "p"}), "without mpirun or srun",
                  "drop --launcher mpirun");
  ml::ClusterConfig remote;
  remote.path = "multi.yaml";
  remote.hosts = {{"node7", 4}};
  EXPECT_MF_ERROR(plan({"--tuner", "-np", "2", "p"}, remote), "the config multi.yaml names host 'node7'");
  ml::ClusterConfig here;
  here.hosts = {{"localhost", 4}};
  EXPECT_EQ(plan({"--tuner", "-np", "2", "p"}, here).workers, 2);  // this machine by name is fine
  EXPECT_MF_ERROR(plan({"--tuner", "-np", "2", "p"}, {}, 0, 0), "port 0 is not in 1..65535");
  int port = ml::pick_free_port();
  EXPECT_GT(port, 0);
  EXPECT_LE(port, 65535);
}

TEST(TunerSummary, NamesEachLostWorkerWithItsTrials) {
  auto dir = mf_test::temp_folder("tuner_summary");
  std::ofstream(dir + "/tuner-lost-trials.tsv")
      << "worker1\t0003\tdisconnected\n"
      << "worker2\t0007\tsent no heartbeat for 2.1 s (timeout 2.0 s; hung or stopped)\n"
      << "torn line without tabs\n";
  ml::TunerAttemptResult r;
  r.lost = ml::read_lost_trials(dir);
  ASSERT_EQ(r.lost.size(), 2u);
  EXPECT_EQ(r.lost[1].trial_id, "0007");
  r.workers = {{.id = "worker0", .pid = 10},
               {.id = "worker1", .pid = 11, .exit_code = 137, .signal = SIGKILL},
               {.id = "worker2", .pid = 12, .exit_code = 137, .signal = SIGKILL, .stop_signal = SIGSTOP,
                .killed_at_end = true},
               {.id = "worker3", .pid = 13, .exit_code = 2}};
  auto lines = ml::describe_lost_workers(r);
  ASSERT_EQ(lines.size(), 3u);  // worker0 finished
  EXPECT_EQ(lines[0], "worker1 (pid 11) killed by signal 9 (Killed); failed with it: trial 0003 (disconnected)");
  EXPECT_EQ(lines[1], "worker2 (pid 12) stopped by signal 19 (Stopped (signal)), killed when the search ended; "
                      "failed with it: trial 0007 (sent no heartbeat for 2.1 s (timeout 2.0 s; hung or stopped))");
  EXPECT_EQ(lines[2], "worker3 (pid 13) exited with code 2; it lost no trial");
  EXPECT_TRUE(ml::read_lost_trials(dir + "/none").empty());
  std::filesystem::remove_all(dir);
}
