// PipelineStrategy: the schedules, the balanced cuts, and one pipelined step of a stage with its
// messages (Note [Pipeline stages], pipeline.h).
#include "meshflow/parallel/pipeline.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "local_devices.h"

namespace meshflow {

std::vector<PipelineAction> pipeline_schedule(PipelineSchedule schedule, int stages, int stage, int micro_batches) {
  MF_CHECK(stages >= 1 && stage >= 0 && stage < stages, "pipeline_schedule: stage ", stage, " of ", stages,
           " stages does not exist");
  MF_CHECK(micro_batches >= 1, "pipeline_schedule: micro_batches must be >= 1, got ", micro_batches);
  using K = PipelineAction::Kind;
  std::vector<PipelineAction> out;
  if (schedule == PipelineSchedule::GPipe) {
    for (int k = 0; k < micro_batches; ++k) out.push_back({K::Forward, k});
    for (int k = 0; k < micro_batches; ++k) out.push_back({K::Backward, k});
    return out;
  }
  // 1F1B: fill the pipe with the forwards the later stages need before their first backward.
  const int warmup = std::min(stages - 1 - stage, micro_batches);
  for (int k = 0; k < warmup; ++k) out.push_back({K::Forward, k});
  for (int k = warmup; k < micro_batches; ++k) {
    out.push_back({K::Forward, k});
    out.push_back({K::Backward, k - warmup});
  }
  for (int k = micro_batches - warmup; k < micro_batches; ++k) out.push_back({K::Backward, k});
  return out;
}

std::vector<int> balanced_cuts(const std::vector<double>& costs, int stages) {
  const int n = static_cast<int>(costs.size());
  MF_CHECK(stages >= 1, "balanced_cuts: stages must be >= 1, got ", stages);
  MF_CHECK(n >= stages, "balanced_cuts: ", stages, " stages need at least as many layers, got ", n);
  for (int i = 0; i < n; ++i)
    MF_CHECK(costs[static_cast<size_t>(i)] >= 0, "balanced_cuts: cost ", i, " is negative (",
             costs[static_cast<size_t>(i)], ")");
  std::vector<double> prefix(static_cast<size_t>(n) + 1, 0.0);
  for (int i = 0; i < n; ++i) prefix[static_cast<size_t>(i) + 1] = prefix[static_cast<size_t>(i)] + costs[static_cast<size_t>(i)];
  auto sum = [&](int a, int b) { return prefix[static_cast<size_t>(b)] - prefix[static_cast<size_t>(a)]; };
  // best[s][i]: the smallest largest-stage cost of items [0, i) in s stages; from[s][i]: where the
  // last of those stages starts. O(stages * n^2): models have at most a few hundred layers.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(static_cast<size_t>(stages) + 1, std::vector<double>(static_cast<size_t>(n) + 1, inf));
  std::vector<std::vector<int>> from(static_cast<size_t>(stages) + 1, std::vector<int>(static_cast<size_t>(n) + 1, 0));
  best[0][0] = 0;
  for (int s = 1; s <= stages; ++s)
    for (int i = s; i <= n; ++i)
      for (int j = s - 1; j < i; ++j) {
        const double c = std::max(best[static_cast<size_t>(s) - 1][static_cast<size_t>(j)], sum(j, i));
        if (c < best[static_cast<size_t>(s)][static_cast<size_t>(i)]) {
          best[static_cast<size_t>(s)][static_cast<size_t>(i)] = c;
          from[static_cast<size_t>(s)][static_cast<size_t>(i)] = j;
        }
      }
  std::vector<int> starts(static_cast<size_t>(stages));
  for (int s = stages, i = n; s >= 1; --s) {
    i = from[static_cast<size_t>(s)][static_cast<size_t>(i)];
    starts[static_cast<size_t>(s) - 1] = i;
  }
  return starts;
}

namespace {

void check_options(const PipelineOptions& o) {
  MF_CHECK(o.micro_batches >= 1, "PipelineStrategy: micro_batches must be >= 1, got ", o.micro_batches);
}

// Message tags: an activation's header (dtype, rank, dims) and its data, and an activation's
// gradient (its shape is the activation's, known to both sides).
constexpr int kHeaderTag = 11, kActivationTag = 12, kGradientTag = 13;
constexpr int kMaxDims = 8;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

PipelineStrategy::PipelineStrategy(PipelineOptions options)
    : comm_(detail::process_communicator_for("PipelineStrategy", options.comm)), options_(std::move(options)) {
  check_options(options_);
  mesh_ = Mesh({{"pipe", comm_->size()}});
  make_axes();
}

PipelineStrategy::PipelineStrategy(std::shared_ptr<distributed::Communicator> comm, PipelineOptions options)
    : comm_(std::move(comm)), options_(std::move(options)) {
  MF_CHECK(comm_ != nullptr, "PipelineStrategy: the communicator is null");
  check_options(options_);
  mesh_ = Mesh({{"pipe", comm_->size()}});
  make_axes();
}

PipelineStrategy::PipelineStrategy(Mesh mesh, PipelineOptions options)
    : comm_(detail::process_communicator_for("PipelineStrategy", options.comm)), mesh_(std::move(mesh)),
      options_(std::move(options)) {
  check_options(options_);
  make_axes();
}

PipelineStrategy::PipelineStrategy(std::shared_ptr<distributed::Communicator> comm, Mesh mesh, PipelineOptions options)
    : comm_(std::move(comm)), mesh_(std::move(mesh)), options_(std::move(options)) {
  MF_CHECK(comm_ != nullptr, "PipelineStrategy: the communicator is null");
  check_options(options_);
  make_axes();
}

void PipelineStrategy::make_axes() {
  MF_CHECK(mesh_.size() == comm_->size(), "PipelineStrategy: ", mesh_.str(), " has ", mesh_.size(),
           " devices but the job has ", comm_->size(), " rank", comm_->size() == 1 ? "" : "s",
           " (one device per rank); make the axis sizes multiply to the number of ranks");
  MF_CHECK(mesh_.has_axis("pipe"), "PipelineStrategy: ", mesh_.str(), " has no 'pipe' axis to hold the stages");
  for (const auto& a : mesh_.axes())
    MF_CHECK(a.name == "pipe" || a.name == "data" || a.size == 1, "PipelineStrategy: ", mesh_.str(), ": axis '",
             a.name, "' of size ", a.size, " is neither 'pipe' (stages) nor 'data' (copies of the pipeline)");
  // One communicator per axis, split once: the ranks that share every other coordinate. Every
  // rank takes the same branches (they depend on the mesh only), so the splits line up.
  auto split_along = [&](const char* axis) -> std::shared_ptr<distributed::Communicator> {
    if (!mesh_.has_axis(axis) || mesh_.axis_size(axis) == 1) return distributed::make_communicator("stub", comm_->options());
    if (mesh_.axis_size(axis) == comm_->size()) return comm_;
    auto c = mesh_.coords(comm_->rank());
    const int along = mesh_.axis_index(axis), position = c[static_cast<size_t>(along)];
    c[static_cast<size_t>(along)] = 0;
    return comm_->split(mesh_.rank_of(c), position);
  };
  stage_comm_ = split_along("pipe");
  data_comm_ = split_along("data");
}

int PipelineStrategy::rank_of_stage(int stage) const {
  auto c = mesh_.coords(comm_->rank());
  c[static_cast<size_t>(mesh_.axis_index("pipe"))] = stage;
  return mesh_.rank_of(c);
}

int64_t PipelineStrategy::global_rows(int64_t local_rows) const {
  if (data_comm_->size() == 1) return local_rows;
  Tensor t = from_vector(std::vector<int64_t>{local_rows}, {1}, {.dtype = DType::I64});
  data_comm_->all_reduce(t, distributed::ReduceOp::Sum);
  return t.to_vector<int64_t>()[0];
}

void PipelineStrategy::sum_gradients_over_data(const std::vector<Tensor>& weights) const {
  if (data_comm_->size() == 1 || weights.empty()) return;
  // One flat buffer per dtype, one all-reduce each, in the weights' order on every replica.
  NoGradGuard no_grad;
  std::vector<DType> dtypes;
  for (const auto& w : weights)
    if (std::find(dtypes.begin(), dtypes.end(), w.dtype()) == dtypes.end()) dtypes.push_back(w.dtype());
  for (DType dt : dtypes) {
    int64_t total = 0;
    for (const auto& w : weights)
      if (w.dtype() == dt) total += w.numel();
    Tensor flat = zeros({total}, {.dtype = dt});
    int64_t at = 0;
    for (const auto& w : weights) {
      if (w.dtype() != dt) continue;
      Tensor g = w.grad();
      if (g.defined()) flat.slice(0, at, at + w.numel()).copy_(g.reshape({w.numel()}));
      at += w.numel();
    }
    data_comm_->all_reduce(flat, distributed::ReduceOp::Sum);
    at = 0;
    for (const auto& w : weights) {
      if (w.dtype() != dt) continue;
      Tensor(w).set_grad(flat.slice(0, at, at + w.numel()).reshape(w.shape()));  // views of `flat`, as GradBucketer's
      at += w.numel();
    }
  }
}

void PipelineStrategy::broadcast_over_data(std::vector<Tensor>& tensors) const {
  if (data_comm_->size() == 1) return;
  detail::broadcast_tensors(*data_comm_, tensors, 0);
}

void PipelineStrategy::average_over_data(std::vector<Tensor>& tensors) const {
  if (data_comm_->size() == 1) return;
  NoGradGuard no_grad;
  for (auto& t : tensors) {
    if (!is_floating(t.dtype())) continue;
    Tensor v = t.detach().contiguous().clone();
    data_comm_->all_reduce(v, distributed::ReduceOp::Avg);
    t.detach().copy_(v);
  }
}

std::shared_ptr<distributed::Communicator> PipelineStrategy::replica_communicator(int local_replica) const {
  MF_CHECK(local_replica == 0, "PipelineStrategy: one replica per stage, asked for local replica ", local_replica);
  return comm_;
}

void PipelineStrategy::combine_metric_states(std::vector<double>& values) const {
  if (values.empty() || comm_->size() == 1) return;
  Tensor t = from_vector(values, {static_cast<int64_t>(values.size())}, {.dtype = DType::F64});
  // The data replicas' shares first (only the last stage's sums mean anything), then the last
  // stage's totals to every stage.
  if (data_comm_->size() > 1) data_comm_->all_reduce(t, distributed::ReduceOp::Sum);
  if (stage_comm_->size() > 1) stage_comm_->broadcast(t, stage_comm_->size() - 1);
  values = t.to_vector<double>();
}

void PipelineStrategy::share_last_stage_states(std::vector<double>& values) const {
  if (values.empty() || stage_comm_->size() == 1) return;
  Tensor t = from_vector(values, {static_cast<int64_t>(values.size())}, {.dtype = DType::F64});
  stage_comm_->broadcast(t, stage_comm_->size() - 1);
  values = t.to_vector<double>();
}

void PipelineStrategy::broadcast_from_stage(std::vector<Tensor>& tensors, int owner) const {
  MF_CHECK(owner >= 0 && owner < num_stages(), "PipelineStrategy: stage ", owner, " of ", num_stages(),
           " does not exist");
  detail::broadcast_tensors(*stage_comm_, tensors, owner);
}

void PipelineStrategy::run_step(ReplicaGroup&, const TrainStep&) {
  MF_THROW("PipelineStrategy: a pipelined model trains stage by stage (Model::fit and train_on_batch call "
           "run_pipeline); it has no replica step");
}

void PipelineStrategy::run_pipeline(const PipelineStep& step) {
  MF_CHECK(step.forward && step.backward && step.update, "PipelineStrategy: the step has no forward, backward or update");
  MF_CHECK(step.micro_batches >= 1, "PipelineStrategy: micro_batches must be >= 1, got ", step.micro_batches);
  const int p = num_stages(), s = stage(), m = step.micro_batches;
  const bool first = s == 0, last = s == p - 1;
  auto where = [&](int peer) {
    return "pipeline stage " + std::to_string(peer) + " (rank " + std::to_string(rank_of_stage(peer)) + ")";
  };
  // Activations this stage sent on, kept until the next stage's gradient for them comes back (it
  // has the activation's shape); sends in flight, waited for before the step ends.
  std::vector<Tensor> sent(static_cast<size_t>(m));
  std::vector<std::pair<distributed::WorkPtr, int>> in_flight;  // with the destination stage
  auto send = [&](const Tensor& t, int dst, int tag) { in_flight.emplace_back(stage_comm_->send_async(t, dst, tag), dst); };
  auto wait_for = [&](const distributed::WorkPtr& w, int peer, const char* what, int micro) {
    try {
      w->wait();
    } catch (const Error& e) {
      MF_THROW("PipelineStrategy: stage ", s, " (rank ", comm_->rank(), ") waited for ", what,
               micro >= 0 ? " of micro-batch " + std::to_string(micro) : std::string(), " from ", where(peer), ": ",
               e.what());
    }
  };

  stats_ = {};
  int live = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const PipelineAction& a : pipeline_schedule(options_.schedule, p, s, m)) {
    if (a.kind == PipelineAction::Kind::Forward) {
      Tensor input;
      if (!first) {
        Tensor header = empty({2 + kMaxDims}, {.dtype = DType::I64});
        wait_for(stage_comm_->recv_async(header, s - 1, kHeaderTag), s - 1, "the activation's header", a.micro);
        auto h = header.to_vector<int64_t>();
        MF_CHECK(h[1] >= 0 && h[1] <= kMaxDims, "PipelineStrategy: stage ", s, " got a header with ", h[1],
                 " dimensions from ", where(s - 1));
        Shape shape(h.begin() + 2, h.begin() + 2 + h[1]);
        input = empty(shape, {.dtype = static_cast<DType>(h[0])});
        wait_for(stage_comm_->recv_async(input, s - 1, kActivationTag), s - 1, "the activation", a.micro);
      }
      const auto b0 = std::chrono::steady_clock::now();
      Tensor out = step.forward(a.micro, input);
      stats_.busy_seconds += seconds_since(b0);
      if (!last) {
        MF_CHECK(out.defined() && !out.is_symbolic(), "PipelineStrategy: stage ", s,
                 " produced no activation for micro-batch ", a.micro);
        MF_CHECK(out.dim() <= kMaxDims, "PipelineStrategy: stage ", s, "'s output has ", out.dim(),
                 " dimensions; at most ", kMaxDims, " cross a stage boundary");
        std::vector<int64_t> h(2 + kMaxDims, 0);
        h[0] = static_cast<int64_t>(out.dtype());
        h[1] = out.dim();
        for (int64_t d = 0; d < out.dim(); ++d) h[static_cast<size_t>(2 + d)] = out.size(d);
        Tensor data = out.detach().contiguous();
        send(from_vector(h, {static_cast<int64_t>(h.size())}, {.dtype = DType::I64}), s + 1, kHeaderTag);
        send(data, s + 1, kActivationTag);
        sent[static_cast<size_t>(a.micro)] = data;
      }
      stats_.max_live_activations = std::max(stats_.max_live_activations, ++live);
    } else {
      Tensor grad_output;
      if (!last) {
        const Tensor& act = sent[static_cast<size_t>(a.micro)];
        grad_output = empty(act.shape(), {.dtype = act.dtype()});
        wait_for(stage_comm_->recv_async(grad_output, s + 1, kGradientTag), s + 1, "the gradient", a.micro);
        sent[static_cast<size_t>(a.micro)] = Tensor();
      }
      const auto b0 = std::chrono::steady_clock::now();
      Tensor grad_input = step.backward(a.micro, grad_output);
      stats_.busy_seconds += seconds_since(b0);
      if (!first) {
        MF_CHECK(grad_input.defined(), "PipelineStrategy: stage ", s, " produced no input gradient for micro-batch ",
                 a.micro, " (does its input reach its loss?)");
        send(grad_input.contiguous(), s - 1, kGradientTag);
      }
      --live;
    }
  }
  const auto u0 = std::chrono::steady_clock::now();
  step.update();
  stats_.busy_seconds += seconds_since(u0);
  for (const auto& [w, dst] : in_flight) wait_for(w, dst, "the delivery of its sends", -1);
  stats_.seconds = seconds_since(t0);
}

}  // namespace meshflow
