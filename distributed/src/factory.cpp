// make_communicator: the one place a backend is chosen, by name, so callers never write #ifdef.
#include "backends/backends.h"
#include "meshflow/core/error.h"
#include "meshflow/distributed/communicator.h"

namespace meshflow::distributed {

std::shared_ptr<Communicator> make_communicator(const std::string& backend, CommOptions options, LocalGroup* group,
                                                int local_rank) {
  MF_CHECK(options.timeout.count() > 0, "make_communicator(\"", backend, "\"): CommOptions::timeout must be positive, got ",
           options.timeout.count(), " ms");
  if (backend == "mpi") return make_mpi_communicator(options);
  if (backend == "stub") return make_stub_communicator(options);
  if (backend == "local") {
    MF_CHECK(group != nullptr, "make_communicator(\"local\"): pass the LocalGroup whose rank this thread is"
             " (or call group.communicator(rank))");
    return group->communicator(local_rank);
  }
  MF_THROW("make_communicator: unknown backend '", backend, "'; expected \"mpi\", \"local\" or \"stub\"");
}

std::shared_ptr<Communicator> Communicator::split(int color, int key) {
  MF_CHECK(color >= 0, "split: color ", color, " must be >= 0");
  (void)key;
  MF_CHECK(size() == 1, "split: the ", backend(), " backend cannot split a communicator of ", size(), " ranks");
  return make_stub_communicator(options());
}

}  // namespace meshflow::distributed
