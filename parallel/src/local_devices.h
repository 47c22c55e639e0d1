// Private to parallel/src: the check of the local devices a strategy runs its replica threads on,
// the process communicator a strategy opens, and broadcasting a list of tensors from one rank.
#pragma once

#include <memory>
#include <vector>

#include "meshflow/core/device.h"
#include "meshflow/distributed/communicator.h"

namespace meshflow::detail {

// At least one device, each a CPU device (cpu:N; cuda:N comes with the CUDA backend), none twice.
void check_local_devices(const std::vector<Device>& devices, const char* strategy);

// MPI when an MPI launcher started this process and the build has MPI; otherwise a size-1 stub.
std::shared_ptr<distributed::Communicator> process_communicator_for(const char* strategy,
                                                                    distributed::CommOptions options);

// Overwrites each tensor with rank `root`'s value (every rank calls it with the same list).
void broadcast_tensors(distributed::Communicator& comm, std::vector<Tensor>& tensors, int root);

}  // namespace meshflow::detail
