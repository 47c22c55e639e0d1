// The collectives of partitioned programs as autograd ops (Note [Partitioned programs]): each is
// an op in the registry whose backward is its transpose, so a partitioned forward differentiates
// like any other. A communicator is named in the ops' attributes by a handle from register_comm.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "meshflow/core/tensor.h"
#include "meshflow/distributed/communicator.h"

namespace meshflow::spmd {

// Handles live until unregister_comm; ops called with an unknown handle throw naming it.
int64_t register_comm(std::shared_ptr<distributed::Communicator> comm);
void unregister_comm(int64_t handle);

// Part `index` of `parts` of n items (numpy.array_split): {first, count}.
std::pair<int64_t, int64_t> piece(int64_t n, int parts, int index);

// Sum over the communicator's ranks; backward: the gradient as it is (it is whole everywhere).
Tensor all_reduce(const Tensor& x, int64_t comm);
// Concatenates the ranks' parts along `dim` into `full` items; backward: this rank's part.
Tensor all_gather(const Tensor& x, int64_t comm, int64_t dim, int64_t full);
// This rank's part along `dim` (no traffic); backward: all-gather of the parts' gradients.
Tensor split(const Tensor& x, int64_t comm, int64_t dim);
// Sums over the ranks and keeps this rank's part along `dim`; backward: all-gather.
Tensor reduce_scatter(const Tensor& x, int64_t comm, int64_t dim);
// The identity (a view); backward: all-reduce of the gradient (Megatron's f).
Tensor grad_sync(const Tensor& x, int64_t comm);

}  // namespace meshflow::spmd
