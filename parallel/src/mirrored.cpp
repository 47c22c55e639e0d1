// MirroredStrategy: one replica per local device, one thread each, joined by the local backend.
#include "local_devices.h"
#include "meshflow/core/error.h"
#include "meshflow/parallel/strategy.h"

namespace meshflow {

void detail::check_local_devices(const std::vector<Device>& devices, const char* strategy) {
  MF_CHECK(!devices.empty(), strategy, ": give at least one device (e.g. {\"cpu:0\", \"cpu:1\"})");
  for (size_t i = 0; i < devices.size(); ++i) {
    MF_CHECK(devices[i].is_cpu(), strategy, ": device ", i, " is not a CPU device; only cpu:N is supported so far");
    for (size_t j = 0; j < i; ++j)
      MF_CHECK(!(devices[i] == devices[j]), strategy, ": device ", i, " repeats device ", j);
  }
}

MirroredStrategy::MirroredStrategy(std::vector<Device> devices, distributed::CommOptions options)
    : devices_(std::move(devices)), stub_(distributed::make_communicator("stub", options)) {
  detail::check_local_devices(devices_, "MirroredStrategy");
  group_ = std::make_unique<distributed::LocalGroup>(static_cast<int>(devices_.size()), options);
  for (int r = 0; r < group_->size(); ++r) comms_.push_back(group_->communicator(r));
}

MirroredStrategy::~MirroredStrategy() {
  comms_.clear();  // the group must outlive its communicators
}

std::shared_ptr<distributed::Communicator> MirroredStrategy::replica_communicator(int local_replica) const {
  MF_CHECK(local_replica >= 0 && local_replica < num_local_replicas(), "MirroredStrategy: replica ", local_replica,
           " of ", num_local_replicas());
  return comms_[static_cast<size_t>(local_replica)];
}

}  // namespace meshflow
