// The exact mpirun/srun argv and environment meshflow-run builds for each config and option combination.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cluster_config.h"
#include "launch_plan.h"
#include "options.h"
#include "test_util.h"

namespace {

namespace ml = meshflow::launcher;
using Words = std::vector<std::string>;
using ml::EnvList;

const std::string kSelf = "/opt/mf/meshflow-run";

ml::MachineFacts facts(int cores = 2, bool root = false) {
  ml::MachineFacts f;
  f.cores = cores;
  f.is_root = root;
  f.hostname = "vm";
  f.self_path = kSelf;
  f.temp_dir = "/tmp";
  f.launcher_pid = 42;
  return f;
}

ml::LaunchPlan plan(const Words& args, const ml::MachineFacts& f, const ml::ClusterConfig& c = {}, int attempt = 0) {
  return ml::build_launch_plan(ml::parse_options(args), c, f, attempt);
}

ml::ClusterConfig repo_config(const std::string& name) {
  return ml::load_cluster_config(std::string(MESHFLOW_SOURCE_ROOT) + "/cluster_configs/" + name);
}

const Words kLocal = {"--bind-to", "none", "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"};

Words concat(std::initializer_list<Words> parts) {
  Words out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(LaunchPlan, LocalTwoRanks) {
  auto p = plan({"-np", "2", "--", "./train", "--epochs", "1"}, facts());
  EXPECT_EQ(p.launcher, "mpirun");
  EXPECT_TRUE(p.local);
  EXPECT_EQ(p.argv, concat({{"mpirun", "-np", "2"}, kLocal,
                            {"-x", "OMP_NUM_THREADS=1", "-x", "MESHFLOW_FAILURE_DIR=/tmp/meshflow-run-42/attempt-0", "-x",
                             "MESHFLOW_RESTART_ATTEMPT=0", kSelf, "--rank-wrapper", "--", "./train", "--epochs", "1"}}));
  EXPECT_EQ(p.env, (EnvList{{"OMP_NUM_THREADS", "1"},
                            {"MESHFLOW_FAILURE_DIR", "/tmp/meshflow-run-42/attempt-0"},
                            {"MESHFLOW_RESTART_ATTEMPT", "0"}}));
  EXPECT_EQ(p.max_restarts, 0);
  EXPECT_FALSE(p.timeout_s.has_value());
}

TEST(LaunchPlan, RootAndMoreRanksThanCoresOversubscribe) {
  auto p = plan({"-np", "4", "--max-restarts", "2", "--timeout", "30", "--", "./t"}, facts(2, true), {}, 1);
  EXPECT_EQ(p.argv, concat({{"mpirun", "-np", "4", "--allow-run-as-root", "--oversubscribe"}, kLocal,
                            {"-x", "OMP_NUM_THREADS=1", "-x", "MESHFLOW_FAILURE_DIR=/tmp/meshflow-run-42/attempt-1", "-x",
                             "MESHFLOW_RESTART_ATTEMPT=1", kSelf, "--rank-wrapper", "--", "./t"}}));
  EXPECT_EQ(p.max_restarts, 2);
  EXPECT_DOUBLE_EQ(*p.timeout_s, 30.0);
}

TEST(LaunchPlan, ThreadsAreCoresPerRankUnlessSet) {
  EXPECT_EQ(plan({"-np", "4", "--", "./t"}, facts(16)).env[0], (std::pair<std::string, std::string>{"OMP_NUM_THREADS", "4"}));
  EXPECT_EQ(plan({"-np", "3", "--", "./t"}, facts(16)).env[0].second, "5");
  auto f = facts(16);
  f.env["OMP_NUM_THREADS"] = "7";
  EXPECT_EQ(plan({"-np", "4", "--", "./t"}, f).env[0].second, "7");
}

TEST(LaunchPlan, HostsString) {
  auto p = plan({"-np", "4", "--hosts", "h1:2,h2:2", "--", "./t", "a b"}, facts(8));
  EXPECT_FALSE(p.local);
  EXPECT_EQ(p.argv, (Words{"mpirun", "-np", "4", "--host", "h1:2,h2:2", "-x", "OMP_NUM_THREADS=4", "-x",
                           "MESHFLOW_FAILURE_DIR=/tmp/meshflow-run-42/attempt-0", "-x", "MESHFLOW_RESTART_ATTEMPT=0",
                           kSelf, "--rank-wrapper", "--", "./t", "a b"}));
}

TEST(LaunchPlan, HostfileIsPassedThrough) {
  std::string path = ::testing::TempDir() + "/hosts.txt";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("# two nodes\nnodeA slots=3\nnodeB slots=1 max_slots=2\n\n", f);
    std::fclose(f);
  }
  auto p = plan({"-np", "4", "--hostfile", path, "--", "./t"}, facts(8, true));
  EXPECT_EQ(p.hosts, (std::vector<ml::HostSlots>{{"nodeA", 3}, {"nodeB", 1}}));
  EXPECT_EQ(p.argv, (Words{"mpirun", "-np", "4", "--allow-run-as-root", "--hostfile", path, "-x", "OMP_NUM_THREADS=4",
                           "-x", "MESHFLOW_FAILURE_DIR=/tmp/meshflow-run-42/attempt-0", "-x",
                           "MESHFLOW_RESTART_ATTEMPT=0", kSelf, "--rank-wrapper", "--", "./t"}));
}

TEST(LaunchPlan, OnlyThisMachineInHostsIsLocal) {
  auto p = plan({"-np", "2", "--hosts", "vm:2", "--", "./t"}, facts());
  EXPECT_TRUE(p.local);
  EXPECT_EQ(Words(p.argv.begin(), p.argv.begin() + 11), concat({{"mpirun", "-np", "2"}, kLocal}));
}

TEST(LaunchPlan, InsideSlurmUsesSrunWithPmix) {
  auto f = facts(32);
  f.env = {{"SLURM_JOB_ID", "17"}, {"SLURM_CPUS_PER_TASK", "3"}};
  auto p = plan({"-np", "2", "--", "./t"}, f);
  EXPECT_EQ(p.launcher, "srun");
  EXPECT_EQ(p.argv, (Words{"srun", "--mpi=pmix", "-n", "2", "--kill-on-bad-exit=1", kSelf, "--rank-wrapper", "--", "./t"}));
  EXPECT_EQ(p.env, (EnvList{{"OMP_NUM_THREADS", "3"},
                            {"MESHFLOW_FAILURE_DIR", "/tmp/meshflow-run-42/attempt-0"},
                            {"MESHFLOW_RESTART_ATTEMPT", "0"}}));
  // Without --cpus-per-task: this node's CPUs over the ranks per node.
  f.env = {{"SLURM_JOB_ID", "17"}, {"SLURM_CPUS_ON_NODE", "8"}, {"SLURM_JOB_NUM_NODES", "2"}};
  EXPECT_EQ(plan({"-np", "4", "--", "./t"}, f).env[0].second, "4");
}

TEST(LaunchPlan, InsideSlurmWithMpirunHasNoLocalFlags) {
  auto f = facts(2, true);
  f.env = {{"SLURM_JOB_ID", "17"}, {"SLURM_CPUS_PER_TASK", "1"}};
  auto p = plan({"--launcher", "mpirun", "-np", "4", "--", "./t"}, f);
  EXPECT_FALSE(p.local);
  EXPECT_EQ(p.argv, (Words{"mpirun", "-np", "4", "--allow-run-as-root", "-x", "OMP_NUM_THREADS=1", "-x",
                           "MESHFLOW_FAILURE_DIR=/tmp/meshflow-run-42/attempt-0", "-x", "MESHFLOW_RESTART_ATTEMPT=0",
                           kSelf, "--rank-wrapper", "--", "./t"}));
}

TEST(LaunchPlan, ConfigLocalCpu2Ranks) {
  auto c = repo_config("local_cpu_2ranks.yaml");
  auto p = plan({"--", "./t"}, facts(8), c);
  EXPECT_TRUE(p.local);
  EXPECT_EQ(p.argv, concat({{"mpirun", "-np", "2"}, kLocal,
                            {"-x", "OMP_NUM_THREADS=1", "-x", "MESHFLOW_FAILURE_DIR=/tmp/meshflow-run-42/attempt-0", "-x",
                             "MESHFLOW_RESTART_ATTEMPT=0", "-x", "MESHFLOW_CLUSTER_CONFIG=" + c.path, kSelf,
                             "--rank-wrapper", "--", "./t"}}));
  EXPECT_DOUBLE_EQ(*p.timeout_s, 600.0);
  // The command line wins over the file.
  auto p4 = plan({"-np", "1", "--timeout", "5", "--", "./t"}, facts(8), c);
  EXPECT_EQ(p4.argv[2], "1");
  EXPECT_DOUBLE_EQ(*p4.timeout_s, 5.0);
}

TEST(LaunchPlan, ConfigSingleNode8Gpu) {
  auto c = repo_config("single_node_8gpu.yaml");
  auto p = plan({"--", "./t"}, facts(32, true), c);
  EXPECT_TRUE(p.local);
  EXPECT_EQ(p.max_restarts, 1);
  EXPECT_EQ(p.argv, concat({{"mpirun", "-np", "8", "--allow-run-as-root"}, kLocal,
                            {"-x", "OMP_NUM_THREADS=4", "-x", "MESHFLOW_FAILURE_DIR=/tmp/meshflow-run-42/attempt-0",
                             "-x", "MESHFLOW_RESTART_ATTEMPT=0", "-x", "MESHFLOW_CLUSTER_CONFIG=" + c.path, "-x",
                             "NCCL_DEBUG=WARN", "--map-by", "numa", kSelf, "--rank-wrapper", "--", "./t"}}));
}

TEST(LaunchPlan, ConfigMultiNode) {
  auto c = repo_config("multi_node.yaml");
  auto p = plan({"--", "./t"}, facts(2), c, 2);
  EXPECT_FALSE(p.local);
  EXPECT_EQ(p.max_restarts, 3);
  EXPECT_DOUBLE_EQ(*p.timeout_s, 7200.0);
  const std::string dir = "/shared/meshflow/failures/meshflow-run-42/attempt-2";
  EXPECT_EQ(p.failure_dir, dir);
  EXPECT_EQ(p.argv, (Words{"mpirun", "-np", "8", "--host", "node01:4,node02:4", "-x", "OMP_NUM_THREADS=8", "-x",
                           "MESHFLOW_FAILURE_DIR=" + dir, "-x", "MESHFLOW_RESTART_ATTEMPT=2", "-x",
                           "MESHFLOW_CLUSTER_CONFIG=" + c.path, "-x", "MESHFLOW_LOG_LEVEL=info", "--mca",
                           "btl_tcp_if_include", "eth0", kSelf, "--rank-wrapper", "--", "./t"}));
}

// Note [Every rank reports]: the ranks are counted only where all of them write to a folder
// meshflow-run reads: this machine, a one-node allocation, or the config's (shared) failure_dir.
TEST(LaunchPlan, RanksAreCountedWhereEveryRankCanReport) {
  EXPECT_TRUE(plan({"-np", "2", "--", "./t"}, facts()).ranks_countable);
  EXPECT_TRUE(plan({"-np", "2", "--hosts", "vm:2", "--", "./t"}, facts()).ranks_countable);
  EXPECT_FALSE(plan({"-np", "4", "--hosts", "h1:2,h2:2", "--", "./t"}, facts(8)).ranks_countable);
  EXPECT_FALSE(plan({"-np", "2", "--hosts", "h1:2", "--", "./t"}, facts()).ranks_countable);
  auto f = facts();
  f.env = {{"SLURM_JOB_ID", "17"}, {"SLURM_JOB_NUM_NODES", "1"}};
  EXPECT_TRUE(plan({"-np", "2", "--", "./t"}, f).ranks_countable);
  EXPECT_TRUE(plan({"--launcher", "mpirun", "-np", "2", "--", "./t"}, f).ranks_countable);
  f.env["SLURM_JOB_NUM_NODES"] = "2";
  EXPECT_FALSE(plan({"-np", "2", "--", "./t"}, f).ranks_countable);
  ml::ClusterConfig shared;
  shared.failure_dir = "/shared/failures";
  EXPECT_TRUE(plan({"-np", "2", "--", "./t"}, f, shared).ranks_countable);
  EXPECT_TRUE(plan({"--", "./t"}, facts(2), repo_config("multi_node.yaml")).ranks_countable);
}

TEST(LaunchPlan, UsageErrors) {
  EXPECT_MF_ERROR(plan({"--", "./t"}, facts()), "number of ranks is missing", "-np N");
  EXPECT_MF_ERROR(plan({"-np", "5", "--hosts", "h1:2,h2:2", "--", "./t"}, facts()), "-np 5 exceeds the 4 slots",
                  "h1:2,h2:2");
  EXPECT_MF_ERROR(plan({"--launcher", "srun", "-np", "2", "--", "./t"}, facts()), "needs a Slurm allocation");
  auto f = facts();
  f.env = {{"SLURM_JOB_ID", "3"}};
  EXPECT_MF_ERROR(plan({"-np", "2", "--hosts", "a:2", "--", "./t"}, f), "hosts were given (a:2)", "--launcher mpirun");
}

TEST(LaunchPlan, ShellQuote) {
  EXPECT_EQ(ml::shell_quote("./train"), "./train");
  EXPECT_EQ(ml::shell_quote("a b"), "'a b'");
  EXPECT_EQ(ml::shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(ml::shell_quote(""), "''");
}

}  // namespace
