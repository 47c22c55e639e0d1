// Runs a servable's requests on its own threads; with batching on, requests that arrive close
// together are merged into one batch (TF Serving's knobs), run once, and split back.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/serving/config.h"
#include "meshflow/serving/servable.h"

namespace meshflow::serving {

class Metrics;

// What a request gets back: the outputs, or the error that stopped it (a ServingError's status
// says how to answer; any other exception is a 500).
struct RunResult {
  std::vector<Tensor> outputs;
  std::exception_ptr error;
};
using RunDone = std::function<void(RunResult)>;

class Batcher {
 public:
  // Without `batching` every request runs alone, on `threads` threads (0: one per core). Each
  // thread's model calls use `intra_op_threads` threads (0: the process's default, OMP_NUM_THREADS):
  // OpenMP's thread count is per thread, so it is set in each of them.
  Batcher(std::shared_ptr<Servable> servable, std::optional<BatchingOptions> batching, int threads,
          Metrics* metrics = nullptr, int intra_op_threads = 0);
  // Runs what is queued, then stops the threads.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  using Clock = std::chrono::steady_clock;
  // Queues `inputs` (one per signature input, `rows` rows each); `done` runs on a batcher thread
  // once the outputs are ready. A full queue, or more rows than max_batch_size, calls `done` at
  // once with a ServingError (503, 400). A request still queued at `deadline` is not run: `done`
  // gets a ServingError 504 (gRPC's DEADLINE_EXCEEDED).
  void submit(std::vector<Tensor> inputs, int64_t rows, RunDone done, Clock::time_point deadline = Clock::time_point::max());

  // From now on batches leave without waiting for batch_timeout_micros (shutdown: requests in
  // the queue are answered at once).
  void flush();

  const std::shared_ptr<Servable>& servable() const { return servable_; }
  int64_t queued_rows() const;

 private:
  struct Task {
    std::vector<Tensor> inputs;
    int64_t rows = 0;
    RunDone done;
    Clock::time_point enqueued;
    Clock::time_point deadline;
  };
  void work();
  // Takes the next batch off the queue (merged tasks up to max_batch_size rows); empty when stopping.
  // Tasks whose deadline passed leave the queue into `expired`, to be answered without running.
  std::vector<Task> next_batch(std::unique_lock<std::mutex>& lock, std::vector<Task>& expired);
  void run_batch(std::vector<Task>& batch);
  static bool same_rows(const Task& a, const Task& b);

  std::shared_ptr<Servable> servable_;
  std::optional<BatchingOptions> batching_;
  Metrics* metrics_;
  int intra_op_threads_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;
  int64_t queued_rows_ = 0;
  bool stopping_ = false;
  bool flushing_ = false;
  std::vector<std::thread> threads_;
};

// The smallest allowed size >= rows (rows itself when none are given); throws when rows is larger
// than every allowed size.
int64_t padded_batch_size(int64_t rows, const std::vector<int64_t>& allowed);

}  // namespace meshflow::serving
