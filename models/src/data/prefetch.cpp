// Dataset::prefetch: one background thread runs the stages before it into a bounded queue.
#include <omp.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "data/plan.h"
#include "meshflow/core/error.h"

namespace meshflow {
namespace data {
namespace {

// Note [Prefetch thread]: the producer is one plain thread, not a pool: the pipeline's job is to
// stay ahead of the training step with one core, leaving the OpenMP pool to the step. Its own
// OpenMP regions are limited to one thread so kernels it calls do not start a second team.
class PrefetchStage : public Stage {
 public:
  PrefetchStage(std::unique_ptr<Stage> parent, size_t capacity) : parent_(std::move(parent)), capacity_(capacity) {
    worker_ = std::thread([this] { produce(); });
  }
  ~PrefetchStage() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    not_full_.notify_all();
    worker_.join();
  }

  std::optional<Element> next() override {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !queue_.empty() || done_; });
    if (!queue_.empty()) {
      Element e = std::move(queue_.front());
      queue_.pop_front();
      not_full_.notify_one();
      return e;
    }
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return std::nullopt;
  }

 private:
  void produce() {
    omp_set_num_threads(1);
    while (true) {
      std::optional<Element> e;
      try {
        e = parent_->next();
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        error_ = std::current_exception();
        done_ = true;
        not_empty_.notify_all();
        return;
      }
      std::unique_lock<std::mutex> lock(mu_);
      not_full_.wait(lock, [&] { return stop_ || queue_.size() < capacity_; });
      if (stop_) return;
      if (!e) {
        done_ = true;
        not_empty_.notify_all();
        return;
      }
      queue_.push_back(std::move(*e));
      not_empty_.notify_one();
    }
  }

  std::unique_ptr<Stage> parent_;
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<Element> queue_;
  bool done_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread worker_;  // last: starts after every member it uses exists
};

}  // namespace
}  // namespace data

Dataset Dataset::prefetch(int64_t n) const {
  MF_CHECK(n > 0, "Dataset::prefetch: the buffer size must be positive, got ", n);
  auto parent = plan_;
  auto plan = std::make_shared<data::Plan>();
  plan->shards = parent->shards;
  plan->make = [parent, n](uint64_t pass) {
    return std::make_unique<data::PrefetchStage>(parent->make(pass), static_cast<size_t>(n));
  };
  plan->cardinality = parent->cardinality;
  return Dataset(plan);
}

}  // namespace meshflow
