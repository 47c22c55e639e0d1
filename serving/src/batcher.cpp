// The request queue of one model version: lone runs, or merged batches (Note [Merged batches]).
#include "meshflow/serving/batcher.h"

#include <algorithm>
#include <cstring>

#include "meshflow/core/parallel.h"
#include "meshflow/serving/metrics.h"

namespace meshflow::serving {

// Note [Merged batches]: as TF Serving's basic batch scheduler. Requests queue in arrival order;
// a batch thread takes the oldest ones whose rows fit in max_batch_size, as soon as they fill it
// or once the oldest has waited batch_timeout_micros. The batch's inputs are concatenated row-wise
// (padded by repeating the first row up to the next allowed_batch_sizes entry), the model runs
// once, and each request gets its own rows of every output back. The queue holds at most
// max_enqueued_batches * max_batch_size rows: a request beyond that is answered 503 at once, so a
// server that cannot keep up sheds load instead of letting every request time out.

int64_t padded_batch_size(int64_t rows, const std::vector<int64_t>& allowed) {
  if (allowed.empty()) return rows;
  for (int64_t a : allowed)
    if (a >= rows) return a;
  MF_THROW("a batch of ", rows, " rows is larger than the largest allowed batch size ", allowed.back());
}

Batcher::Batcher(std::shared_ptr<Servable> servable, std::optional<BatchingOptions> batching, int threads,
                 Metrics* metrics, int intra_op_threads)
    : servable_(std::move(servable)), batching_(std::move(batching)), metrics_(metrics), intra_op_threads_(intra_op_threads) {
  MF_CHECK(servable_, "Batcher: no servable");
  MF_CHECK(intra_op_threads >= 0, "Batcher: intra_op_threads must be 0 or more, got ", intra_op_threads);
  int n = threads;
  if (batching_ && batching_->num_batch_threads > 0) n = static_cast<int>(batching_->num_batch_threads);
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void Batcher::flush() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    flushing_ = true;
  }
  wake_.notify_all();
}

int64_t Batcher::queued_rows() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_rows_;
}

void Batcher::submit(std::vector<Tensor> inputs, int64_t rows, RunDone done, Clock::time_point deadline) {
  MF_CHECK(done, "Batcher::submit: no completion callback");
  MF_CHECK(rows >= 1, "Batcher::submit: a request needs at least one row, got ", rows);
  MF_CHECK(inputs.size() == servable_->signature().inputs.size(), "Batcher::submit: model '",
           servable_->model_name(), "' takes ", servable_->signature().inputs.size(), " inputs, got ", inputs.size());
  for (const auto& t : inputs)
    MF_CHECK(t.defined() && t.dim() >= 1 && t.size(0) == rows, "Batcher::submit: every input must have ", rows,
             " rows (the request's), got shape ", t.defined() ? shape_str(t.shape()) : "(undefined)");
  std::exception_ptr refused;
  bool wake = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    try {
      if (stopping_) throw ServingError(503, "model '" + servable_->model_name() + "' version " +
                                                 std::to_string(servable_->version()) + " is unloading");
      if (batching_) {
        if (rows > batching_->max_batch_size)
          throw ServingError(400, "the request has " + std::to_string(rows) + " rows, more than max_batch_size " +
                                      std::to_string(batching_->max_batch_size));
        const int64_t capacity = batching_->max_enqueued_batches * batching_->max_batch_size;
        if (queued_rows_ + rows > capacity)
          throw ServingError(503, "the batching queue of model '" + servable_->model_name() + "' is full (" +
                                      std::to_string(queued_rows_) + " rows waiting, max_enqueued_batches " +
                                      std::to_string(batching_->max_enqueued_batches) + "); try again later");
      }
      // Note [Waking the batch thread]: a thread that is gathering a batch only needs waking when the
      // queue stops being empty or the batch fills; a wake-up per request (a futex call and two
      // context switches) cost more than the request's share of the model on a busy 2-core machine.
      wake = !batching_ || queue_.empty() || flushing_ || queued_rows_ + rows >= batching_->max_batch_size;
      queue_.push_back({std::move(inputs), rows, std::move(done), Clock::now(), deadline});
      queued_rows_ += rows;
    } catch (...) {
      refused = std::current_exception();
    }
  }
  if (refused) {
    done(RunResult{{}, refused});
    return;
  }
  if (wake) wake_.notify_one();
}

// Requests merge only when every input's rows have the same shape (an input with an unknown
// dimension may differ between requests; those run in separate batches).
bool Batcher::same_rows(const Task& a, const Task& b) {
  if (a.inputs.size() != b.inputs.size()) return false;
  for (size_t k = 0; k < a.inputs.size(); ++k) {
    const Shape& x = a.inputs[k].shape();
    const Shape& y = b.inputs[k].shape();
    if (x.size() != y.size() || !std::equal(x.begin() + 1, x.end(), y.begin() + 1)) return false;
  }
  return true;
}

std::vector<Batcher::Task> Batcher::next_batch(std::unique_lock<std::mutex>& lock, std::vector<Task>& expired) {
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return {};  // stopping with nothing left
    if (!batching_ || stopping_ || flushing_) break;
    if (queued_rows_ >= batching_->max_batch_size) break;
    auto deadline = queue_.front().enqueued + std::chrono::microseconds(batching_->batch_timeout_micros);
    if (std::chrono::steady_clock::now() >= deadline) break;
    wake_.wait_until(lock, deadline,
                     [&] { return stopping_ || flushing_ || queued_rows_ >= batching_->max_batch_size; });
    if (queue_.empty()) continue;  // another thread took them
    break;
  }
  const auto now = Clock::now();
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    queued_rows_ -= it->rows;
    expired.push_back(std::move(*it));
    it = queue_.erase(it);
  }
  std::vector<Task> batch;
  int64_t rows = 0;
  const int64_t limit = batching_ ? batching_->max_batch_size : 0;
  while (!queue_.empty()) {
    if (!batch.empty() && (!batching_ || rows + queue_.front().rows > limit || !same_rows(batch[0], queue_.front())))
      break;
    rows += queue_.front().rows;
    queued_rows_ -= queue_.front().rows;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  if (!queue_.empty()) wake_.notify_one();  // more work for another thread
  return batch;
}

void Batcher::work() {
  if (intra_op_threads_ > 0) set_num_threads(intra_op_threads_);
  for (;;) {
    std::vector<Task> batch, expired;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      batch = next_batch(lock, expired);
    }
    for (auto& t : expired) {
      try {
        t.done(RunResult{{}, std::make_exception_ptr(ServingError(
                                 504, "the request's deadline passed while it waited for model '" +
                                          servable_->model_name() + "' (not run)"))});
      } catch (...) {
      }
    }
    if (batch.empty()) {
      if (!expired.empty()) continue;
      return;
    }
    run_batch(batch);
  }
}

namespace {

// Rows [0, rows) of every task's input `k`, then `pad` copies of the first row.
Tensor merge_rows(const std::vector<std::vector<Tensor>*>& inputs, size_t k, int64_t total, int64_t pad) {
  const Tensor& first = (*inputs[0])[k];
  Shape shape = first.shape();
  shape[0] = total + pad;
  Tensor out = empty(shape, {.dtype = first.dtype(), .device = cpu()});
  const size_t row_bytes = static_cast<size_t>(first.numel() / std::max<int64_t>(first.size(0), 1)) * dtype_size(first.dtype());
  char* dst = static_cast<char*>(out.raw_data());
  for (auto* in : inputs) {
    Tensor t = (*in)[k].contiguous();
    MF_CHECK(t.dim() == first.dim() && std::equal(t.shape().begin() + 1, t.shape().end(), first.shape().begin() + 1),
             "merged requests disagree on input ", k, "'s row shape: ", shape_str(t.shape()), " vs ",
             shape_str(first.shape()));
    const size_t bytes = static_cast<size_t>(t.size(0)) * row_bytes;
    std::memcpy(dst, t.raw_data(), bytes);
    dst += bytes;
  }
  const char* row0 = static_cast<const char*>(out.raw_data());
  for (int64_t p = 0; p < pad; ++p, dst += row_bytes) std::memcpy(dst, row0, row_bytes);
  return out;
}

}  // namespace

void Batcher::run_batch(std::vector<Task>& batch) {
  std::vector<std::vector<Tensor>> outputs(batch.size());
  std::exception_ptr error;
  try {
    if (batch.size() == 1 && (!batching_ || batching_->allowed_batch_sizes.empty())) {
      outputs[0] = servable_->run(batch[0].inputs);
      if (metrics_ && batching_) metrics_->observe_batch(batch[0].rows, batch[0].rows);
    } else {
      int64_t total = 0;
      std::vector<std::vector<Tensor>*> ins;
      for (auto& t : batch) {
        total += t.rows;
        ins.push_back(&t.inputs);
      }
      const int64_t padded = padded_batch_size(total, batching_->allowed_batch_sizes);
      std::vector<Tensor> merged;
      for (size_t k = 0; k < batch[0].inputs.size(); ++k) merged.push_back(merge_rows(ins, k, total, padded - total));
      if (metrics_) metrics_->observe_batch(total, padded);
      std::vector<Tensor> out = servable_->run(merged);
      int64_t start = 0;
      for (size_t i = 0; i < batch.size(); ++i) {
        for (const auto& o : out) outputs[i].push_back(o.slice(0, start, start + batch[i].rows).contiguous());
        start += batch[i].rows;
      }
    }
  } catch (const ServingError&) {
    error = std::current_exception();
  } catch (const Error& e) {
    // The model refused the inputs (shapes it cannot take): the request's fault.
    error = std::make_exception_ptr(ServingError(400, e.what()));
  } catch (...) {
    error = std::current_exception();
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    RunResult r;
    if (error) r.error = error;
    else r.outputs = std::move(outputs[i]);
    try {
      batch[i].done(std::move(r));
    } catch (...) {
      // A callback that throws must not take the batch thread (and the other requests) with it.
    }
  }
}

}  // namespace meshflow::serving
