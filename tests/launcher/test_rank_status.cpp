// The per-rank failure records: written by the wrapper, read back earliest first, described in one line.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include "meshflow/distributed/failure.h"
#include "rank_status.h"

namespace {

namespace ml = meshflow::launcher;

TEST(RankStatus, EarliestFailureComesFirstWithItsMessage) {
  std::string dir = ::testing::TempDir() + "/rank-status-" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()), 0);
  // Rank 0 was killed after rank 2 failed: a later time, so rank 2 is the first failure.
  ml::write_rank_status(dir, {0, "node-a", 128 + SIGTERM, SIGTERM, 2000, ""});
  ml::write_rank_status(dir, {2, "node-c", 7, 0, 1000, ""});
  std::ofstream(meshflow::distributed::failure_message_path(dir, 2)) << "bad shape\n(2, 3) vs (3, 2)\n";
  auto failures = ml::read_rank_failures(dir);
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[0].rank, 2);
  EXPECT_EQ(failures[0].host, "node-c");
  EXPECT_EQ(failures[0].exit_code, 7);
  EXPECT_EQ(failures[0].time_ns, 1000);
  EXPECT_EQ(ml::describe_failure(failures[0]), "rank 2 on host node-c: exit code 7: bad shape (2, 3) vs (3, 2)");
  EXPECT_EQ(failures[1].rank, 0);
  EXPECT_EQ(ml::describe_failure(failures[1]), "rank 0 on host node-a: killed by signal 15 (Terminated)");
  EXPECT_TRUE(ml::read_rank_failures(dir + "/missing").empty());
  std::system(("rm -rf '" + dir + "'").c_str());
}

// Ranks that aborted because of another say so ("blames rank K: "); the summary names that rank
// as the culprit and lists the others with the collective they were in.
TEST(RankStatus, CulpritComesBeforeTheRanksThatBlameIt) {
  std::vector<ml::RankFailure> failures(3);
  failures[0] = {.rank = 2, .host = "b", .exit_code = 1, .message = "blames rank 1: all_reduce(sum) on tensor "
                                                                     "f32[8] failed on rank 2 of 3 after 3004 ms: "
                                                                     "rank 1 (host a) sent no heartbeat"};
  failures[1] = {.rank = 0, .host = "a", .exit_code = 1, .message = "blames rank 1: all_reduce(sum) on tensor f32[8] "
                                                                     "failed on rank 0 of 3"};
  failures[2] = {.rank = 1, .host = "a", .exit_code = 137, .signal = 9};
  const std::string s = ml::describe_culprit(failures);
  EXPECT_NE(s.find("rank 1 on host a is the culprit"), std::string::npos) << s;
  EXPECT_NE(s.find("rank(s) 2, 0 ended because of it"), std::string::npos) << s;
  EXPECT_NE(s.find("(last collective: all_reduce(sum) on tensor f32[8])"), std::string::npos) << s;
  EXPECT_NE(s.find("sent no heartbeat"), std::string::npos) << s;
  failures[0].message = failures[1].message = "uncaught meshflow::Error: bad input";
  EXPECT_EQ(ml::describe_culprit(failures), "");  // nobody blamed: the first failure speaks
}

// Note [Every rank reports]: rank-<R>.started and rank-<R>.ended, counted against the ranks asked for.
TEST(RankStatus, CountsTheRanksThatStartedAndEnded) {
  std::string dir = ::testing::TempDir() + "/rank-count-" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()), 0);
  EXPECT_EQ(ml::count_ranks(dir, 3).not_started, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(ml::count_ranks(dir + "/missing", 2).not_started, (std::vector<int>{0, 1}));
  ml::write_rank_marker(dir, 0, "started");
  ml::write_rank_marker(dir, 0, "ended", 0);
  ml::write_rank_marker(dir, 1, "started");
  ml::write_rank_marker(dir, 7, "started");  // not one of the 3 asked for
  ml::write_rank_marker(dir, -1, "started");
  std::ofstream(dir + "/rank-2.started.tmp") << "rank=2\n";  // half written: does not count
  auto c = ml::count_ranks(dir, 3);
  EXPECT_EQ(c.not_started, (std::vector<int>{2}));
  EXPECT_EQ(c.not_ended, (std::vector<int>{1}));
  EXPECT_FALSE(c.complete());
  const std::string said = ml::describe_launcher_end("srun", 0, "srun: error: task 2 launch failed");
  EXPECT_EQ(said, "srun exited with code 0; its last line on stderr: srun: error: task 2 launch failed");
  EXPECT_EQ(ml::describe_missing_ranks(c, "srun", said),
            "srun started 2 of 3 ranks (rank 2 did not start; rank 1 did not report how it ended (killed with the "
            "rank wrapper, or the node was lost); " + said + ")");
  EXPECT_EQ(ml::describe_launcher_end("mpirun", 1, ""), "mpirun exited with code 1 and printed nothing on stderr");
  ml::write_rank_marker(dir, 1, "ended", 3);
  ml::write_rank_marker(dir, 2, "ended", 0);  // an end without its start still shows the rank ran
  EXPECT_TRUE(ml::count_ranks(dir, 3).complete());
  EXPECT_EQ(ml::describe_missing_ranks(ml::count_ranks(dir, 3), "srun", said), "");
  EXPECT_EQ(ml::count_ranks(dir, 13).not_started, (std::vector<int>{3, 4, 5, 6, 8, 9, 10, 11, 12}));
  EXPECT_EQ(ml::describe_missing_ranks(ml::count_ranks(dir, 13), "mpirun", "x"),
            "mpirun started 4 of 13 ranks (ranks 3, 4, 5, 6, 8, 9, 10, 11, ... (1 more) did not start; rank 7 did not "
            "report how it ended (killed with the rank wrapper, or the node was lost); x)");
  std::system(("rm -rf '" + dir + "'").c_str());
}

TEST(FailureReporter, WritesOnlyInsideMeshflowRun) {
  std::string dir = ::testing::TempDir() + "/failure-report-" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()), 0);
  unsetenv("MESHFLOW_FAILURE_DIR");
  meshflow::distributed::report_failure(4, "ignored");
  setenv("MESHFLOW_FAILURE_DIR", dir.c_str(), 1);
  EXPECT_EQ(std::ifstream(meshflow::distributed::failure_message_path(dir, 4)).good(), false);
  meshflow::distributed::report_failure(4, "rank 4 ran out of data");
  std::ifstream in(dir + "/rank-4.message");
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "rank 4 ran out of data");
  unsetenv("MESHFLOW_FAILURE_DIR");
  std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
