// Under mpirun: rank 1 throws, hangs, dies, is stopped (SIGSTOP) or killed (SIGKILL) mid-fit
// (argv[1]: throw | hang | exit | stop | kill); every other
// rank's fit fails within the communicator timeout with an error naming rank 1, its host and the
// collective. ctest judges the printed verdicts (Note [Failure verdicts]). `exit` needs mpirun's
// --mca orte_abort_on_non_zero_status 0, or mpirun itself would kill the survivors first. In `stop`
// and `kill` the survivors return from main as a program would: the job must then end by itself
// (Note [Ending a failed job], distributed/src/comm_util.h), which tests/parallel/failed_rank.sh checks.
// With --devices N after the mode each rank runs N replica threads (the hierarchical communicator);
// --timeout-ms T sets the collective timeout (2000 by default): with T = 120000 a stopped or
// killed rank must be found by the heartbeat (Note [Heartbeats]) in seconds. `slow`: rank 1
// spends 8 s in one step (its heartbeat goes on) and, with a long timeout, nobody fails.
// --pipeline 1: the ranks are stages of a PipelineStrategy instead, and the others must name
// "pipeline stage 1 (rank 1)" in the receive that waited for it. --pipeline 2: the same on a 2-D
// mesh, 2 copies (data) of a pipeline of N/2 stages, where the other copy must name rank 1 too.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "dp_models.h"

namespace {

using namespace dp_test;
using Clock = std::chrono::steady_clock;

// Note [Failure verdicts]
// After the failure, rank 0's communicator still holds the all-reduce rank 1 never joined (MPI
// cannot cancel it), so no rank can finalize MPI cleanly. Each rank prints a verdict line, stays
// alive until a common deadline (mpirun kills the job when the first rank leaves, and rank 1 must
// still answer the others' "where are you?" queries) and leaves with _exit; ctest passes on the chief's "PASS" line and fails on any "FAIL" line,
// whatever mpirun's exit code.
class FailAtBatch : public mf::Callback {
 public:
  explicit FailAtBatch(std::string mode) : mode_(std::move(mode)) {}
  void on_train_batch_begin(int64_t batch, mf::Logs&) override {
    if (batch != 3) return;
    if (mode_ == "exit") {
      std::fflush(stdout);
      _exit(3);  // dies without a word: no verdict line from this rank
    }
    if (mode_ == "stop" || mode_ == "kill") {
      std::fflush(stdout);
      ::raise(mode_ == "stop" ? SIGSTOP : SIGKILL);  // frozen (never answers, never exits) or gone
    }
    if (mode_ == "slow") {
      std::this_thread::sleep_for(std::chrono::seconds(8));  // a long but legitimate step
      return;
    }
    if (mode_ == "hang") std::this_thread::sleep_for(std::chrono::seconds(5));  // outlives the peers' timeout
    throw mf::Error("simulated crash of this rank at batch 3");
  }

 private:
  std::string mode_;
};

int run(const std::string& mode, int devices, int timeout_ms, int pipeline) {
  std::vector<mf::Device> list;
  for (int d = 0; d < devices; ++d) list.emplace_back("cpu:" + std::to_string(d));
  const mf::distributed::CommOptions comm{.timeout = std::chrono::milliseconds(timeout_ms)};
  std::unique_ptr<mf::Strategy> strategy;
  const int world = mf::distributed::detect_world().size;
  if (pipeline == 2)  // 2 copies of a pipeline of world / 2 stages: rank 1 is stage 1 of copy 0
    strategy = std::make_unique<mf::PipelineStrategy>(mf::Mesh({{"data", 2}, {"pipe", world / 2}}),
                                                      mf::PipelineOptions{.micro_batches = 2, .comm = comm});
  else if (pipeline)
    strategy = std::make_unique<mf::PipelineStrategy>(mf::PipelineOptions{.micro_batches = 2, .comm = comm});
  else strategy = std::make_unique<mf::MultiWorkerMirroredStrategy>(list, comm);
  mf::Strategy& s = *strategy;
  const int rank = s.process_rank();
  if (s.num_processes() < 2) {
    std::printf("FAIL: run under mpirun -np 2 or more\n");
    return 1;
  }
  auto [x, y] = data(64, {6}, 4);
  std::shared_ptr<mf::Model> model;
  {
    auto scope = s.scope();
    model = mf::replicate_model(mlp);
    compile(*model);
  }
  mf::FitOptions fo{.epochs = 2, .batch_size = 8, .verbose = 0};
  if (rank == 1) fo.callbacks.push_back(std::make_shared<FailAtBatch>(mode));
  auto start = Clock::now();
  std::string message;
  try {
    model->fit({x}, {y}, fo);
  } catch (const mf::Error& e) {
    message = e.what();
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  bool ok;
  if (mode == "slow") {
    ok = message.empty() && (rank != 0 || secs > 8);  // everyone waited for the slow rank, no error
  } else if (rank == 1) {
    ok = message.find("simulated crash") != std::string::npos;
  } else if (pipeline == 2 && rank >= world / 2) {
    // The other copy of the pipeline meets rank 1 only in the gradients' sum over the data axis
    // (or waits on a stage that does): it must name rank 1 too, as quickly.
    ok = message.find("rank 1") != std::string::npos && secs < 4.5;
  } else if (pipeline) {
    // The stage that waited on rank 1 names it; the others (stage 2 of 3 waits on stage 1 too).
    const bool silent = mode == "exit" || mode == "stop" || mode == "kill";
    ok = message.find("from pipeline stage 1 (rank 1)") != std::string::npos &&
         message.find(silent && timeout_ms > 10000 ? "found by the heartbeat" : "") != std::string::npos &&
         (silent || message.find("rank 1 did not post the matching call") != std::string::npos) && secs < 4.5;
  } else {
    // A live rank (thrown or hung) answers the status query with how far it got; a dead one cannot.
    const bool silent = mode == "exit" || mode == "stop" || mode == "kill";
    const char* how = silent ? "did not answer (dead or hung)" : "has not reached it";
    // With a long timeout only the heartbeat can name it: silent (stopped) or gone without a goodbye.
    const bool by_heartbeat = message.find("found by the heartbeat") != std::string::npos &&
                              (message.find(mode == "stop" ? "sent no heartbeat" : "without a goodbye") !=
                                   std::string::npos ||
                               message.find("stopped sending heartbeats") != std::string::npos);
    ok = message.find("1 (host ") != std::string::npos && (message.find(how) != std::string::npos || by_heartbeat) &&
         message.find("all_reduce(sum)") != std::string::npos && secs < 4.5;
    for (int other = 0; other < s.num_processes(); ++other)  // only rank 1 is to blame
      if (other != 1) ok = ok && message.find(" " + std::to_string(other) + " (host ") == std::string::npos;
  }
  std::printf("%s on rank %d after %.1f s: %s\n", ok ? (rank == 0 ? "PASS" : "ok") : "FAIL", rank, secs,
              message.c_str());
  std::fflush(stdout);
  if (mode == "stop" || mode == "kill" || mode == "slow") {
    // main returns and the MPI runtime ends the job; the others give rank 0 a second to print its
    // verdict first (the first rank to abort takes the whole job down).
    if (rank != 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    return ok ? 0 : 1;
  }
  std::this_thread::sleep_until(start + std::chrono::seconds(mode == "hang" ? 7 : 6));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int rc = 1;
  const std::string mode = argc > 1 ? argv[1] : "throw";
  try {
    if (mode != "throw" && mode != "hang" && mode != "exit" && mode != "stop" && mode != "kill" && mode != "slow")
      throw mf::Error("usage: " + std::string(argv[0]) + " throw|hang|exit|stop|kill|slow [--devices N] [--timeout-ms T] [--pipeline 1|2]");
    int devices = 1, timeout_ms = 2000;
    int pipeline = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag == "--devices") devices = std::stoi(argv[i + 1]);
      else if (flag == "--timeout-ms") timeout_ms = std::stoi(argv[i + 1]);
      else if (flag == "--pipeline") pipeline = std::stoi(argv[i + 1]);
      else throw mf::Error("unknown option " + flag);
    }
    rc = run(mode, devices, timeout_ms, pipeline);
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  if (mode == "stop" || mode == "kill" || mode == "slow") return rc;  // static destructors run: MPI ends the job
  _exit(rc);
}
