// ProgressQueue: one thread that runs a communicator's blocking collectives in the order they were posted.
#include "progress_queue.h"

#include "comm_util.h"
#include "meshflow/core/error.h"

namespace meshflow::distributed::internal {

using Clock = std::chrono::steady_clock;

// Note [Handoff spins]
// A sleeping thread takes tens of microseconds to wake, which is a fifth of a 1 MiB all-reduce.
// So a waiter polls (yielding) for a while before it sleeps, and the progress thread polls for
// the next job for a while after finishing one: back-to-back collectives (gradient buckets,
// benchmarks) then hand off without sleeping, and an idle communicator still sleeps.
constexpr auto kWaiterSpin = std::chrono::microseconds(2000);
constexpr auto kWorkerSpin = std::chrono::microseconds(200);

QueuedWork::QueuedWork(std::chrono::milliseconds timeout, int rank, int size, std::string name, std::string tensor,
                       std::function<void()> run)
    : Work(timeout), rank_(rank), size_(size), name_(std::move(name)), tensor_(std::move(tensor)),
      job_(std::move(run)), start_(Clock::now()) {}

void QueuedWork::run() {
  std::string error;
  try {
    job_();
  } catch (const std::exception& e) {
    error = e.what();
  }
  job_ = nullptr;  // drops the tensors it held
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(error);
    done_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

void QueuedWork::wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const auto spin_until = Clock::now() + kWaiterSpin;
  while (!is_completed() && Clock::now() < spin_until) std::this_thread::yield();
  std::unique_lock<std::mutex> lock(mu_);
  // Wakes every 100 ms to ask whether a peer is known to be gone (Note [Heartbeats]).
  for (auto step = deadline; peer_failure && !done_.load(std::memory_order_acquire) && Clock::now() < deadline;) {
    step = std::min(deadline, Clock::now() + std::chrono::milliseconds(100));
    if (cv_.wait_until(lock, step, [&] { return done_.load(std::memory_order_acquire); })) break;
    lock.unlock();
    std::string gone = peer_failure();
    if (!gone.empty()) {
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_);
      throw_peer_failure(name_, tensor_, rank_, size_, waited, timeout, gone);
    }
    lock.lock();
  }
  if (!cv_.wait_until(lock, deadline, [&] { return done_.load(std::memory_order_acquire); })) {
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_);
    lock.unlock();
    throw_timeout(name_, tensor_, rank_, size_, "mpi", waited, timeout,
                  explain_timeout ? explain_timeout()
                                  : "some rank did not reach this call or an earlier one (MPI does not say which)");
  }
  if (!error_.empty()) MF_THROW(name_, " on tensor ", tensor_, " failed on rank ", rank_, ": ", error_);
}

ProgressQueue::ProgressQueue() : thread_(&ProgressQueue::loop, shared_) {}

bool ProgressQueue::shutdown(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return true;
  Shared& s = *shared_;
  std::unique_lock<std::mutex> lock(s.mu);
  bool drained = s.cv.wait_for(lock, grace, [&] { return s.queue.empty() && !s.running; });
  s.stop = true;
  s.cv.notify_all();
  lock.unlock();
  if (drained) {
    thread_.join();
  } else {
    thread_.detach();
  }
  return drained;
}

ProgressQueue::~ProgressQueue() { shutdown(std::chrono::milliseconds(0)); }

void ProgressQueue::post(std::shared_ptr<QueuedWork> work) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->queue.push_back(std::move(work));
    shared_->posted.fetch_add(1);
  }
  shared_->cv.notify_all();
}

void ProgressQueue::loop(std::shared_ptr<Shared> shared) {
  Shared& s = *shared;
  std::unique_lock<std::mutex> lock(s.mu);
  for (;;) {
    s.cv.wait(lock, [&] { return s.stop || !s.queue.empty(); });
    if (s.queue.empty()) return;  // stopped and nothing left
    s.running = std::move(s.queue.front());
    s.queue.pop_front();
    s.posted.fetch_sub(1);
    auto work = s.running;
    lock.unlock();
    work->run();
    lock.lock();
    s.running.reset();
    s.cv.notify_all();  // shutdown() may be waiting for the queue to drain
    lock.unlock();
    for (auto until = Clock::now() + kWorkerSpin; Clock::now() < until && s.posted.load() == 0;)
      std::this_thread::yield();
    lock.lock();
  }
}

}  // namespace meshflow::distributed::internal
