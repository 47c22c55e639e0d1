// A communicator that counts what passes through another: calls and payload bytes per collective.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "meshflow/distributed/communicator.h"

namespace meshflow::distributed {

// Payload bytes this rank handed to each kind of collective: all_reduce and broadcast count the
// tensor, all_gather what it receives (`out`), reduce_scatter what it sends (`in`), send/recv the
// message. Shared by a counting communicator and every communicator split from it.
struct TrafficCounts {
  std::atomic<int64_t> all_reduce_bytes{0}, all_gather_bytes{0}, reduce_scatter_bytes{0}, broadcast_bytes{0},
      p2p_bytes{0};
  std::atomic<int64_t> calls{0};
  int64_t total_bytes() const {
    return all_reduce_bytes + all_gather_bytes + reduce_scatter_bytes + broadcast_bytes + p2p_bytes;
  }
  void reset();
};

// Wraps `inner` (same rank, size and backend); every collective is counted, then forwarded.
class CountingCommunicator : public Communicator {
 public:
  explicit CountingCommunicator(std::shared_ptr<Communicator> inner,
                                std::shared_ptr<TrafficCounts> counts = std::make_shared<TrafficCounts>());
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string backend() const override { return inner_->backend(); }
  WorkPtr all_reduce_async(Tensor& tensor, ReduceOp op = ReduceOp::Sum) override;
  WorkPtr broadcast_async(Tensor& tensor, int root) override;
  WorkPtr all_gather_async(const Tensor& in, Tensor& out) override;
  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::Sum) override;
  WorkPtr send_async(const Tensor& tensor, int dst, int tag = 0) override;
  WorkPtr recv_async(Tensor& tensor, int src, int tag = 0) override;
  WorkPtr barrier_async() override;
  // The split communicator, counted into the same TrafficCounts.
  std::shared_ptr<Communicator> split(int color, int key) override;
  const std::shared_ptr<TrafficCounts>& counts() const { return counts_; }

 private:
  std::shared_ptr<Communicator> inner_;
  std::shared_ptr<TrafficCounts> counts_;
};

}  // namespace meshflow::distributed
