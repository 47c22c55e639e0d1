// Environment parsing for each launcher convention, Slurm nodelists, and malformed values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "meshflow/distributed/world.h"
#include "test_util.h"

namespace {

namespace dist = meshflow::distributed;
using Hosts = std::vector<std::string>;
using Env = std::vector<std::pair<const char*, const char*>>;

TEST(ExpandNodelist, SlurmForms) {
  EXPECT_EQ(dist::expand_nodelist("gpu[01-03,10]"), (Hosts{"gpu01", "gpu02", "gpu03", "gpu10"}));
  EXPECT_EQ(dist::expand_nodelist("a1,b[2-3]"), (Hosts{"a1", "b2", "b3"}));
  EXPECT_EQ(dist::expand_nodelist("node7"), (Hosts{"node7"}));
  EXPECT_EQ(dist::expand_nodelist("n[8-11]"), (Hosts{"n8", "n9", "n10", "n11"}));
  EXPECT_EQ(dist::expand_nodelist("c[098-101]-ib,login"), (Hosts{"c098-ib", "c099-ib", "c100-ib", "c101-ib", "login"}));
  EXPECT_EQ(dist::expand_nodelist("x[5]"), (Hosts{"x5"}));
  EXPECT_TRUE(dist::expand_nodelist("").empty());
}

TEST(ExpandNodelist, MalformedListsAreQuoted) {
  EXPECT_MF_ERROR(dist::expand_nodelist("gpu[01-03"), "gpu[01-03", "never closed");
  EXPECT_MF_ERROR(dist::expand_nodelist("gpu[3-1]"), "range 3-1 runs backwards");
  EXPECT_MF_ERROR(dist::expand_nodelist("gpu[a-b]"), "'a' is not a number");
  EXPECT_MF_ERROR(dist::expand_nodelist("gpu[]"), "empty brackets");
  EXPECT_MF_ERROR(dist::expand_nodelist("a,,b"), "empty host name");
  EXPECT_MF_ERROR(dist::expand_nodelist("gpu01]"), "']' without '['");
  EXPECT_MF_ERROR(dist::expand_nodelist("g[1-2]x[3-4]"), "more than one bracket group");
}

// Every variable detect_world reads: each case starts from none of them set and leaves none set.
void clear_world_env() {
  for (const char* k :
       {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
        "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE",
        "SLURM_NODEID", "SLURM_JOB_NODELIST", "SLURM_NODELIST", "RANK", "WORLD_SIZE", "LOCAL_RANK",
        "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID",
        "MPI_LOCALNRANKS"})
    unsetenv(k);
}

// A launcher's environment and the world detect_world must read from it.
struct DetectCase {
  const char* name;
  Env env;
  dist::WorldInfo expected;
};

// A malformed environment and the parts detect_world's error message must contain.
struct RejectCase {
  const char* name;
  Env env;
  std::vector<std::string> message_parts;
};

void PrintTo(const DetectCase& c, std::ostream* os) { *os << c.name; }
void PrintTo(const RejectCase& c, std::ostream* os) { *os << c.name; }

// Sets the case's variables on a clean environment and clears them again after.
template <typename Case>
class WorldEnv : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    clear_world_env();
    for (const auto& [key, value] : this->GetParam().env) setenv(key, value, 1);
  }
  void TearDown() override { clear_world_env(); }
};

using DetectWorld = WorldEnv<DetectCase>;
using RejectWorld = WorldEnv<RejectCase>;

template <typename Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

const Env kSlurmFourNodes = {{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "7"}, {"SLURM_LOCALID", "0"},
                             {"SLURM_NODEID", "3"}, {"SLURM_TASKS_PER_NODE", "2(x3),1"},
                             {"SLURM_JOB_NODELIST", "gpu[01-03,10]"}};
const Hosts kSlurmHosts = {"gpu01", "gpu02", "gpu03", "gpu10"};
const Env kTorchrun = {{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                       {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29500"}};

// `base` with some variables replaced or added.
Env with(Env base, const Env& changes) {
  for (const auto& [key, value] : changes) {
    auto it = std::find_if(base.begin(), base.end(), [&](const auto& kv) { return std::string(kv.first) == key; });
    if (it != base.end())
      it->second = value;
    else
      base.emplace_back(key, value);
  }
  return base;
}

const DetectCase kDetectCases[] = {
    {"no_launcher_is_one_process", {}, {}},
    // Open MPI wins over torchrun variables left in the environment.
    {"openmpi_over_torchrun_leftovers",
     {{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
      {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}, {"RANK", "0"}, {"WORLD_SIZE", "1"}},
     {.rank = 5, .size = 8, .local_rank = 1, .local_size = 4, .launcher = "openmpi"}},
    // The fourth node has one task (SLURM_TASKS_PER_NODE=2(x3),1).
    {"slurm_nodelist_and_tasks_per_node",
     kSlurmFourNodes,
     {.rank = 6, .size = 7, .local_rank = 0, .local_size = 1, .launcher = "slurm", .hosts = kSlurmHosts}},
    {"slurm_tasks_per_node_of_second_node",
     with(kSlurmFourNodes, {{"SLURM_NODEID", "1"}, {"SLURM_LOCALID", "1"}}),
     {.rank = 6, .size = 7, .local_rank = 1, .local_size = 2, .launcher = "slurm", .hosts = kSlurmHosts}},
    {"slurm_ntasks_per_node_wins_over_tasks_per_node",
     with(kSlurmFourNodes, {{"SLURM_NODEID", "1"}, {"SLURM_LOCALID", "1"}, {"SLURM_NTASKS_PER_NODE", "3"}}),
     {.rank = 6, .size = 7, .local_rank = 1, .local_size = 3, .launcher = "slurm", .hosts = kSlurmHosts}},
    {"torchrun",
     kTorchrun,
     {.rank = 3, .size = 4, .local_rank = 1, .local_size = 2, .launcher = "torchrun", .master_addr = "10.0.0.7",
      .master_port = 29500}},
    {"mpich",
     {{"PMI_RANK", "1"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "1"}, {"MPI_LOCALNRANKS", "3"}},
     {.rank = 1, .size = 3, .local_rank = 1, .local_size = 3, .launcher = "mpich"}},
};

TEST_P(DetectWorld, ReadsTheLaunchersVariables) {
  const dist::WorldInfo w = dist::detect_world();
  const dist::WorldInfo& want = GetParam().expected;
  EXPECT_EQ(w.launcher, want.launcher);
  EXPECT_EQ(w.rank, want.rank);
  EXPECT_EQ(w.size, want.size);
  EXPECT_EQ(w.local_rank, want.local_rank);
  EXPECT_EQ(w.local_size, want.local_size);
  EXPECT_EQ(w.hosts, want.hosts);
  EXPECT_EQ(w.master_addr, want.master_addr);
  EXPECT_EQ(w.master_port, want.master_port);
}

INSTANTIATE_TEST_SUITE_P(Launchers, DetectWorld, ::testing::ValuesIn(kDetectCases), case_name<DetectCase>);

const Env kSlurmTwoTasks = {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}};
const Env kSlurmOneNode = with(kSlurmTwoTasks, {{"SLURM_JOB_NODELIST", "gpu01"}, {"SLURM_TASKS_PER_NODE", "2"}});
const Env kOpenMpiRank4 = {{"OMPI_COMM_WORLD_RANK", "4"}};

const RejectCase kRejectCases[] = {
    {"slurm_nodelist_unclosed",
     with(kSlurmTwoTasks, {{"SLURM_JOB_NODELIST", "gpu[01-"}}),
     {"SLURM_JOB_NODELIST", "gpu[01-"}},
    {"slurm_tasks_per_node_not_a_list",
     with(kSlurmTwoTasks, {{"SLURM_JOB_NODELIST", "gpu01"}, {"SLURM_TASKS_PER_NODE", "2(3)"}}),
     {"SLURM_TASKS_PER_NODE='2(3)'"}},
    {"slurm_nodeid_past_the_nodes", with(kSlurmOneNode, {{"SLURM_NODEID", "4"}}), {"SLURM_NODEID=4"}},
    {"slurm_procid_not_an_integer",
     with(kSlurmOneNode, {{"SLURM_NODEID", "4"}, {"SLURM_PROCID", "two"}}),
     {"SLURM_PROCID", "'two'", "not a non-negative integer"}},
    {"torchrun_port_too_high", with(kTorchrun, {{"MASTER_PORT", "70000"}}), {"MASTER_PORT", "'70000'", "below 65536"}},
    {"torchrun_local_rank_past_local_size",
     with(kTorchrun, {{"LOCAL_RANK", "2"}}),
     {"torchrun", "local rank 2", "local size 2"}},
    {"openmpi_rank_not_below_size",
     with(kOpenMpiRank4, {{"OMPI_COMM_WORLD_SIZE", "4"}}),
     {"openmpi", "rank 4 is not below size 4"}},
    {"openmpi_negative_size", with(kOpenMpiRank4, {{"OMPI_COMM_WORLD_SIZE", "-2"}}), {"OMPI_COMM_WORLD_SIZE", "'-2'"}},
    {"openmpi_size_with_suffix",
     with(kOpenMpiRank4, {{"OMPI_COMM_WORLD_SIZE", "8x"}}),
     {"OMPI_COMM_WORLD_SIZE", "'8x'"}},
    {"torchrun_world_size_zero", {{"RANK", "0"}, {"WORLD_SIZE", "0"}}, {"torchrun", "world size 0"}},
    {"torchrun_local_world_size_not_an_integer",
     {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_WORLD_SIZE", "1.5"}},
     {"LOCAL_WORLD_SIZE", "'1.5'"}},
};

TEST_P(RejectWorld, ThrowsNamingTheProblem) {
  try {
    dist::detect_world();
    ADD_FAILURE() << "expected meshflow::Error";
  } catch (const meshflow::Error& e) {
    const std::string message = e.what();
    for (const std::string& part : GetParam().message_parts)
      EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nmissing: " << part;
  }
}

INSTANTIATE_TEST_SUITE_P(Launchers, RejectWorld, ::testing::ValuesIn(kRejectCases), case_name<RejectCase>);

}  // namespace
