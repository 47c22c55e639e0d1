// ProgressQueue: one thread that runs a communicator's blocking collectives in the order they were posted.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "meshflow/distributed/communicator.h"

namespace meshflow::distributed::internal {

// A Work finished by the queue's thread. wait() spins a few microseconds (a handoff is usually
// that quick), then sleeps on a condition variable until done or the timeout.
class QueuedWork final : public Work {
 public:
  QueuedWork(std::chrono::milliseconds timeout, int rank, int size, std::string name, std::string tensor,
             std::function<void()> run);
  bool is_completed() override { return done_.load(std::memory_order_acquire); }
  void wait(std::chrono::milliseconds timeout) override;

  void run();  // called by the queue's thread: runs the job and records its error, if any
  // On timeout, says which ranks are missing (set by backends that can find out).
  std::function<std::string()> explain_timeout;
  // Polled while waiting: non-empty when a peer is known to be gone (the heartbeat says which);
  // the wait then throws at once instead of at the timeout.
  std::function<std::string()> peer_failure;

 private:
  int rank_, size_;
  std::string name_, tensor_;
  std::function<void()> job_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<bool> done_{false};
  std::string error_;
  std::mutex mu_;
  std::condition_variable cv_;
};

class ProgressQueue {
 public:
  ProgressQueue();
  // Waits up to `grace` for queued work to finish, then joins; a thread still blocked in MPI
  // (a peer never came) is detached, as it cannot be interrupted.
  // Returns whether everything finished (false: a job is still blocked in MPI, left behind).
  bool shutdown(std::chrono::milliseconds grace);
  ~ProgressQueue();
  void post(std::shared_ptr<QueuedWork> work);

 private:
  // Shared with the thread, so a detached thread never touches a destroyed queue.
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::shared_ptr<QueuedWork>> queue;
    std::shared_ptr<QueuedWork> running;
    bool stop = false;
    std::atomic<int> posted{0};  // queue size, readable without the lock while spinning
  };
  static void loop(std::shared_ptr<Shared> shared);
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  std::thread thread_;
};

}  // namespace meshflow::distributed::internal
