// CountingCommunicator: counts, then forwards to the wrapped communicator.
#include "meshflow/distributed/counting.h"

#include "meshflow/core/error.h"

namespace meshflow::distributed {

namespace {
int64_t bytes_of(const Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(dtype_size(t.dtype())) : 0;
}
}  // namespace

void TrafficCounts::reset() {
  all_reduce_bytes = all_gather_bytes = reduce_scatter_bytes = broadcast_bytes = p2p_bytes = 0;
  calls = 0;
}

CountingCommunicator::CountingCommunicator(std::shared_ptr<Communicator> inner, std::shared_ptr<TrafficCounts> counts)
    : Communicator(inner ? inner->options() : CommOptions{}), inner_(std::move(inner)), counts_(std::move(counts)) {
  MF_CHECK(inner_ != nullptr, "CountingCommunicator: the wrapped communicator is null");
  MF_CHECK(counts_ != nullptr, "CountingCommunicator: the counts are null");
}

WorkPtr CountingCommunicator::all_reduce_async(Tensor& tensor, ReduceOp op) {
  counts_->all_reduce_bytes += bytes_of(tensor);
  counts_->calls++;
  return inner_->all_reduce_async(tensor, op);
}
WorkPtr CountingCommunicator::broadcast_async(Tensor& tensor, int root) {
  counts_->broadcast_bytes += bytes_of(tensor);
  counts_->calls++;
  return inner_->broadcast_async(tensor, root);
}
WorkPtr CountingCommunicator::all_gather_async(const Tensor& in, Tensor& out) {
  counts_->all_gather_bytes += out.defined() ? bytes_of(out) : bytes_of(in) * size();
  counts_->calls++;
  return inner_->all_gather_async(in, out);
}
WorkPtr CountingCommunicator::reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) {
  counts_->reduce_scatter_bytes += bytes_of(in);
  counts_->calls++;
  return inner_->reduce_scatter_async(in, out, op);
}
WorkPtr CountingCommunicator::send_async(const Tensor& tensor, int dst, int tag) {
  counts_->p2p_bytes += bytes_of(tensor);
  counts_->calls++;
  return inner_->send_async(tensor, dst, tag);
}
WorkPtr CountingCommunicator::recv_async(Tensor& tensor, int src, int tag) {
  counts_->p2p_bytes += bytes_of(tensor);
  counts_->calls++;
  return inner_->recv_async(tensor, src, tag);
}
WorkPtr CountingCommunicator::barrier_async() { return inner_->barrier_async(); }

std::shared_ptr<Communicator> CountingCommunicator::split(int color, int key) {
  return std::make_shared<CountingCommunicator>(inner_->split(color, key), counts_);
}

}  // namespace meshflow::distributed
