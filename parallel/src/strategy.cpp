// The strategy base (scopes, gradient averaging, metric sums, broadcasts), DefaultStrategy and
// MultiWorkerMirroredStrategy.
#include "meshflow/parallel/strategy.h"

#include <exception>
#include <thread>

#include "local_devices.h"
#include "meshflow/core/error.h"
#include "meshflow/distributed/world.h"

namespace meshflow {
namespace {

[[gnu::tls_model("initial-exec")]] thread_local Strategy* t_current = nullptr;  // Note [Hot thread-locals] (core/src/op.cpp)

}  // namespace

Strategy* current_strategy() { return t_current; }

Strategy& get_strategy() {
  if (t_current) return *t_current;
  static DefaultStrategy default_strategy;
  return default_strategy;
}

StrategyScope::StrategyScope(Strategy* strategy) : strategy_(strategy), previous_(t_current) {
  MF_CHECK(strategy != nullptr, "StrategyScope: the strategy is null");
  t_current = strategy;
}

StrategyScope::StrategyScope(StrategyScope&& other) noexcept
    : strategy_(other.strategy_), previous_(other.previous_), active_(other.active_) {
  other.active_ = false;
}

StrategyScope::~StrategyScope() {
  if (active_) t_current = previous_;
}

StrategyScope Strategy::scope() { return StrategyScope(this); }

void Strategy::run_replicas(const std::function<void(int)>& fn) {
  const int n = num_local_replicas();
  if (n == 1) return fn(0);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  auto guarded = [&](int r) {
    try {
      fn(r);
    } catch (...) {
      errors[static_cast<size_t>(r)] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int r = 1; r < n; ++r) threads.emplace_back(guarded, r);
  guarded(0);
  for (auto& t : threads) t.join();
  const auto devices = local_devices();
  for (int r = 0; r < n; ++r)
    if (errors[static_cast<size_t>(r)]) {
      try {
        std::rethrow_exception(errors[static_cast<size_t>(r)]);
      } catch (const std::exception& e) {
        const std::string on = " on " + devices[static_cast<size_t>(r)].str();
        if (num_processes() == 1) MF_THROW(name(), ": replica ", r, on, " failed: ", e.what());
        MF_THROW(name(), ": replica ", process_rank() * n + r, " (process ", process_rank(), ", local replica ", r, on,
                 ") failed: ", e.what());
      }
    }
}

std::unique_ptr<distributed::GradBucketer> Strategy::make_gradient_averager(int local_replica,
                                                                            std::vector<Tensor> params) const {
  return std::make_unique<distributed::GradBucketer>(replica_communicator(local_replica), std::move(params),
                                                     averager_options());
}

std::vector<Tensor> Strategy::gather_slices(const std::vector<Tensor>& slices, const std::vector<Shape>& full_shapes,
                                            const std::vector<int64_t>& offsets) const {
  MF_CHECK(slices.size() == full_shapes.size() && slices.size() == offsets.size(), name(), "::gather_slices: ",
           slices.size(), " slices, ", full_shapes.size(), " shapes and ", offsets.size(), " offsets");
  std::vector<Tensor> out;
  for (size_t i = 0; i < slices.size(); ++i) {
    MF_CHECK(slices[i].numel() == shape_numel(full_shapes[i]) && offsets[i] == 0, name(), "::gather_slices: slice ", i,
             " is part of a tensor, but ", name(), " keeps whole ones");
    out.push_back(slices[i].reshape(full_shapes[i]));
  }
  return out;
}

void Strategy::reduce_sums(std::vector<double>& values) const {
  auto comm = process_communicator();
  if (comm->size() == 1 || values.empty()) return;
  Tensor t = from_vector(values, {static_cast<int64_t>(values.size())}, {.dtype = DType::F64});
  comm->all_reduce(t, distributed::ReduceOp::Sum);
  values = t.to_vector<double>();
}

void Strategy::broadcast_from_chief(std::vector<Tensor>& tensors) const {
  detail::broadcast_tensors(*process_communicator(), tensors, 0);
}

DefaultStrategy::DefaultStrategy(Device device) : device_(device), comm_(distributed::make_communicator("stub")) {}

namespace detail {

std::shared_ptr<distributed::Communicator> process_communicator_for(const char* strategy,
                                                                    distributed::CommOptions options) {
  distributed::WorldInfo world = distributed::detect_world();
  if (world.size > 1) {
    MF_CHECK(distributed::mpi_available(), strategy, ": launched as rank ", world.rank, " of ", world.size, " (",
             world.launcher, ") but Meshflow was built without MPI; rebuild with MPI or run one process");
    return distributed::make_communicator("mpi", options);
  }
  return distributed::make_communicator("stub", options);
}

void broadcast_tensors(distributed::Communicator& comm, std::vector<Tensor>& tensors, int root) {
  if (comm.size() == 1) return;
  for (auto& t : tensors) {
    if (t.is_contiguous()) {
      comm.broadcast(t, root);
    } else {
      Tensor tmp = t.contiguous().clone();
      comm.broadcast(tmp, root);
      t.copy_(tmp);
    }
  }
}

}  // namespace detail

MultiWorkerMirroredStrategy::MultiWorkerMirroredStrategy(distributed::CommOptions options)
    : MultiWorkerMirroredStrategy(std::vector<Device>{Device()}, options) {}

MultiWorkerMirroredStrategy::MultiWorkerMirroredStrategy(std::vector<Device> devices, distributed::CommOptions options)
    : devices_(std::move(devices)) {
  detail::check_local_devices(devices_, "MultiWorkerMirroredStrategy");
  comm_ = detail::process_communicator_for("MultiWorkerMirroredStrategy", options);
  // The replicas' group gets a communicator of its own, so its progress thread never shares one
  // with the strategy's process-level calls (metric sums, broadcasts).
  if (devices_.size() > 1) make_replica_group(detail::process_communicator_for("MultiWorkerMirroredStrategy", options), options);
}

MultiWorkerMirroredStrategy::MultiWorkerMirroredStrategy(std::shared_ptr<distributed::Communicator> comm,
                                                         std::vector<Device> devices)
    : comm_(std::move(comm)), devices_(std::move(devices)) {
  MF_CHECK(comm_ != nullptr, "MultiWorkerMirroredStrategy: the communicator is null");
  detail::check_local_devices(devices_, "MultiWorkerMirroredStrategy");
  if (devices_.size() > 1) make_replica_group(comm_, comm_->options());
}

MultiWorkerMirroredStrategy::~MultiWorkerMirroredStrategy() = default;

void MultiWorkerMirroredStrategy::make_replica_group(std::shared_ptr<distributed::Communicator> process,
                                                     distributed::CommOptions options) {
  group_ = std::make_unique<distributed::HierarchicalGroup>(std::move(process), num_local_replicas(), options);
  for (int l = 0; l < num_local_replicas(); ++l) replica_comms_.push_back(group_->communicator(l));
}

std::shared_ptr<distributed::Communicator> MultiWorkerMirroredStrategy::replica_communicator(int local_replica) const {
  MF_CHECK(local_replica >= 0 && local_replica < num_local_replicas(), "MultiWorkerMirroredStrategy: local replica ",
           local_replica, " of ", num_local_replicas());
  return replica_comms_.empty() ? comm_ : replica_comms_[static_cast<size_t>(local_replica)];
}

}  // namespace meshflow
