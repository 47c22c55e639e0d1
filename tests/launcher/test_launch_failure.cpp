// meshflow-run when srun or mpirun starts fewer ranks than asked for: a fake launcher first on PATH
// (no Slurm, no MPI needed) prints an error and starts none, some or all of the ranks, then exits 0
// or not. The job succeeds only when every rank ran and exited 0 (Note [Every rank reports]).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "launcher_process.h"

namespace {

using launcher_test::last_line;
using launcher_test::run;

const std::string kRun = MESHFLOW_RUN_PATH;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class FakeLauncher : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/meshflow-fake-launcher-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    ASSERT_NE(mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();
    const char* path = std::getenv("PATH");
    old_path_ = path ? path : "/usr/bin:/bin";
    setenv("PATH", (dir_ + ":" + old_path_).c_str(), 1);
    for (const char* k : {"OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "SLURM_NTASKS"}) unsetenv(k);
  }
  void TearDown() override {
    setenv("PATH", old_path_.c_str(), 1);
    unsetenv("SLURM_JOB_ID");
    unsetenv("SLURM_JOB_NUM_NODES");
    std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  // Writes `dir_/name` (srun or mpirun): prints `message` on stderr, starts the ranks in
  // `ranks` (e.g. "0 1") as a real launcher would (the words from meshflow-run's own path on,
  // with OMPI_COMM_WORLD_RANK/SIZE set), waits for them, and exits with `exit_code`.
  // MESHFLOW_RESTART_ATTEMPT=1 starts `ranks_on_restart` instead.
  void fake(const std::string& name, const std::string& ranks, int exit_code, const std::string& message,
            const std::string& ranks_on_restart = "") {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n"
                        << "n=0; while [ $# -gt 1 ] && [ \"$2\" != --rank-wrapper ]; do\n"
                        << "  [ \"$1\" = -n ] || [ \"$1\" = -np ] && n=$2; shift; done\n"
                        << "ranks='" << ranks << "'\n"
                        << "[ \"$MESHFLOW_RESTART_ATTEMPT\" = 1 ] && ranks='" << ranks_on_restart << "'\n"
                        << "for r in $ranks; do OMPI_COMM_WORLD_RANK=$r OMPI_COMM_WORLD_SIZE=$n \"$@\" & done\n"
                        << "wait\n"
                        << (message.empty() ? "" : "echo '" + message + "' >&2\n") << "exit " << exit_code << "\n";
    ASSERT_EQ(chmod(path.c_str(), 0755), 0);
  }
  void inside_slurm() {
    setenv("SLURM_JOB_ID", "7", 1);
    setenv("SLURM_JOB_NUM_NODES", "1", 1);
  }
  std::string log() { return dir_ + "/log" + std::to_string(++logs_) + ".txt"; }

  std::string dir_, old_path_;
  int logs_ = 0;
};

const char* kLaunchFailed = "srun: error: task 0 launch failed: Unspecified error";

// The bug: srun --mpi=pmix could not set up the step (another run's /tmp/spmix_appdir_0_1.0), no
// rank ran, srun exited 0, and meshflow-run said "job succeeded".
TEST_F(FakeLauncher, SrunThatStartsNoRankAndExits0FailsTheJob) {
  inside_slurm();
  fake("srun", "", 0, kLaunchFailed);
  auto r = run({kRun, "-np", "2", "--", "/bin/true"}, log());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_FALSE(contains(r.output, "job succeeded")) << r.output;
  std::string summary = last_line(r.output);
  EXPECT_TRUE(contains(summary, "job failed with exit code 1 after 1 attempt(s): srun started 0 of 2 ranks"))
      << summary;
  EXPECT_TRUE(contains(summary, "srun exited with code 0")) << summary;
  EXPECT_TRUE(contains(summary, std::string("its last line on stderr: ") + kLaunchFailed)) << summary;
}

TEST_F(FakeLauncher, SrunThatStartsNoRankAndFailsNamesItsCodeAndError) {
  inside_slurm();
  fake("srun", "", 1, kLaunchFailed);
  auto r = run({kRun, "-np", "2", "--", "/bin/true"}, log());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  std::string summary = last_line(r.output);
  EXPECT_TRUE(contains(summary, "job failed with exit code 1 after 1 attempt(s): srun started 0 of 2 ranks"))
      << summary;
  EXPECT_TRUE(contains(summary, "srun exited with code 1")) << summary;
  EXPECT_TRUE(contains(summary, kLaunchFailed)) << summary;
}

TEST_F(FakeLauncher, SrunThatStartsOneOfTwoRanksFailsTheJob) {
  inside_slurm();
  fake("srun", "0", 0, "");
  auto r = run({kRun, "-np", "2", "--", "/bin/true"}, log());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  std::string summary = last_line(r.output);
  EXPECT_TRUE(contains(summary, "srun started 1 of 2 ranks (rank 1 did not start; srun exited with code 0"))
      << summary;
}

TEST_F(FakeLauncher, MpirunThatStartsNoRankAndExits0FailsTheJob) {
  fake("mpirun", "", 0, "");
  auto r = run({kRun, "-np", "3", "--", "/bin/true"}, log());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_FALSE(contains(r.output, "job succeeded")) << r.output;
  EXPECT_TRUE(contains(last_line(r.output), "mpirun started 0 of 3 ranks (ranks 0, 1, 2 did not start; mpirun "
                                            "exited with code 0 and printed nothing on stderr)"))
      << r.output;
}

// A rank that failed fails the job even when the launcher says 0.
TEST_F(FakeLauncher, ARankThatFailedFailsTheJobWhateverTheLauncherSays) {
  inside_slurm();
  fake("srun", "0 1", 0, "");
  auto r = run({kRun, "-np", "2", "--", "/bin/sh", "-c", "exit $((OMPI_COMM_WORLD_RANK * 5))"}, log());
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_TRUE(contains(last_line(r.output), "first failure rank 1 on host")) << r.output;
}

// Every rank ran and exited 0: the check does not get in the way.
TEST_F(FakeLauncher, EveryRankRanAndExited0IsSuccess) {
  inside_slurm();
  fake("srun", "0 1", 0, "");
  auto r = run({kRun, "-np", "2", "--", "/bin/true"}, log());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(last_line(r.output), "job succeeded: 2 ranks on the Slurm allocation via srun, attempt 1, "
                                            "exit code 0"))
      << r.output;
}

// A launch failure is a failed attempt like any other: --max-restarts tries again.
TEST_F(FakeLauncher, ALaunchFailureIsRestarted) {
  inside_slurm();
  fake("srun", "", 0, kLaunchFailed, "0 1");
  auto r = run({kRun, "-np", "2", "--max-restarts", "1", "--", "/bin/true"}, log());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "attempt 1 failed (exit code 1): srun started 0 of 2 ranks")) << r.output;
  EXPECT_TRUE(contains(r.output, "; restarting")) << r.output;
  EXPECT_TRUE(contains(last_line(r.output), "job succeeded: 2 ranks on the Slurm allocation via srun, attempt 2"))
      << r.output;
}

}  // namespace
