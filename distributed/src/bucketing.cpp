// GradBucketer: gradient-ready hooks fill flat buckets whose async all-reduces overlap backward.
#include "meshflow/distributed/bucketing.h"

#include <sched.h>

#include <algorithm>
#include <thread>

#include "comm_util.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/optim.h"
#include "meshflow/core/parallel.h"
#include "meshflow/distributed/bucket_plan.h"
#include "meshflow/distributed/world.h"

namespace meshflow::distributed {

std::vector<std::vector<size_t>> assign_buckets(const std::vector<int64_t>& param_bytes, size_t bucket_bytes,
                                                const std::vector<int>& groups) {
  MF_CHECK(groups.empty() || groups.size() == param_bytes.size(), "assign_buckets: ", groups.size(),
           " groups for ", param_bytes.size(), " parameters");
  std::vector<std::vector<size_t>> buckets;
  size_t filled = 0;
  for (size_t k = param_bytes.size(); k-- > 0;) {
    MF_CHECK(param_bytes[k] >= 0, "assign_buckets: param_bytes[", k, "] must be >= 0, got ", param_bytes[k]);
    const auto bytes = static_cast<size_t>(param_bytes[k]);
    const bool other_group = !buckets.empty() && !groups.empty() && groups[buckets.back().front()] != groups[k];
    if (buckets.empty() || other_group || (filled > 0 && filled + bytes > bucket_bytes)) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(k);
    filled += bytes;
  }
  return buckets;
}

struct GradBucketer::State {
  struct Bucket {
    std::vector<size_t> params;     // indices into State::params
    std::vector<int64_t> offsets;   // element offset of each in flat
    int64_t numel = 0;
    DType param_dtype = DType::F32;
    DType wire = DType::F32;
    Tensor flat;                    // scatter: only while the bucket fills
    Tensor mine;                    // scatter: this rank's reduced rows
    bool prescaled = false;         // f32/f64 without compression: hooks divide, the wire sums
    int pending = 0;                // gradients still missing this step
    std::vector<bool> ready;
    WorkPtr work;
  };
  std::shared_ptr<Communicator> comm;
  std::vector<Tensor> params;
  BucketOptions options;
  std::vector<Bucket> buckets;
  std::vector<std::pair<int, int>> where;  // param -> (bucket, slot)
  int next_launch = 0;
  int launched_before_finish = 0;
  bool overlap = true;   // launch full buckets from the hooks, during backward
  std::vector<bool> unused_last_step;      // per param: no gradient arrived in the previous step
  std::vector<size_t> to_drop;             // scatter: packed parameters whose .grad is still held

  Tensor& flat(Bucket& b) {
    if (!b.flat.defined()) b.flat = zeros({b.numel}, {.dtype = b.wire});
    return b.flat;
  }
  // Scatter mode drops packed gradients; not the one whose hook is running (Note [Scattered buckets]).
  void drop_packed(size_t except = SIZE_MAX) {
    bool kept = false;
    for (size_t k : to_drop) {
      if (k == except) kept = true;
      else params[k].zero_grad();
    }
    to_drop.clear();
    if (kept) to_drop.push_back(except);
  }

  Tensor slot_view(Bucket& b, size_t slot) {
    const Shape& shape = params[b.params[slot]].shape();
    return make_view(flat(b), shape, contiguous_strides(shape), b.offsets[slot]);
  }

  void mark_zero(Bucket& b, size_t slot) {
    slot_view(b, slot).fill_(0.0);
    b.ready[slot] = true;
    b.pending--;
  }

  // Parameters unused last step are assumed unused again (zeros up front), so their bucket
  // does not wait for a gradient that never comes (Note [Gradient buckets]).
  void reset_step() {
    for (auto& b : buckets) {
      b.pending = static_cast<int>(b.params.size());
      b.ready.assign(b.params.size(), false);
      b.work.reset();
      for (size_t slot = 0; slot < b.params.size(); ++slot)
        if (unused_last_step[b.params[slot]]) mark_zero(b, slot);
    }
    next_launch = 0;
  }

  void launch_ready() {
    while (next_launch < static_cast<int>(buckets.size()) && buckets[next_launch].pending == 0) {
      Bucket& b = buckets[next_launch++];
      const ReduceOp op = b.prescaled ? ReduceOp::Sum : ReduceOp::Avg;
      if (options.scatter) {
        b.mine = Tensor();
        b.work = comm->reduce_scatter_async(flat(b), b.mine, op);
        b.flat = Tensor();  // the collective holds the buffer until it is done
      } else {
        b.work = comm->all_reduce_async(b.flat, op);
      }
    }
  }

  // A prescaled bucket takes grad / comm size in one pass, so summing it averages (no division
  // pass after the reduce); others take a plain copy_ (which converts to the wire dtype). Both are
  // ops, so a bucket on a GPU packs there.
  void pack(const Bucket& bucket, Tensor slot, const Tensor& given) {
    if (!bucket.prescaled) {
      slot.copy_(given);
      return;
    }
    Tensor grad = given.dtype() == slot.dtype() ? given.contiguous() : given.to(slot.dtype());
    optim::scaled_copy_(slot, grad.device() == slot.device() ? grad : grad.to(slot.device()), 1.0 / comm->size());
  }

  void on_ready(size_t param, const Tensor& grad) {
    auto [bi, slot] = where[param];
    Bucket& b = buckets[bi];
    MF_CHECK(!b.work, "GradBucketer: the gradient of parameter ", param, " ", internal::describe(params[param]),
             " arrived after its bucket ", bi, " was sent: either a second backward before finish() (call finish()"
             " after each backward) or a parameter unused in the previous step is used again");
    if (options.scatter) {
      // This parameter's own .grad may still be held (its hook ran last): then the engine has
      // accumulated into it and `grad` is the whole sum; once dropped, `grad` is only the new part.
      const bool held = std::find(to_drop.begin(), to_drop.end(), param) != to_drop.end();
      drop_packed(param);
      Tensor view = slot_view(b, slot);
      if (b.ready[slot] && !held) {  // a second gradient after .grad was dropped: accumulate it here
        Tensor before = view.clone();
        pack(b, view, grad);
        view.copy_(add(view, before));
      } else {
        pack(b, view, grad);
      }
      if (!held) to_drop.push_back(param);
    } else {
      pack(b, slot_view(b, slot), grad);
    }
    if (!b.ready[slot]) {
      b.ready[slot] = true;
      b.pending--;
    }
    if (overlap) launch_ready();
  }
};

namespace {

DType wire_dtype(DType param, GradCompression c) {
  if (!is_floating(param) || c == GradCompression::None) return param;
  return c == GradCompression::BF16 ? DType::BF16 : DType::F16;
}

// Note [Bucket overlap]
// A bucket sent during backward is moved by the communicator's progress thread. On a CPU whose
// cores all run compute threads, that thread takes a core from backward (the kernel lets a woken
// thread preempt the running one) and stretches the step more than the overlap saves: measured
// on 2 ranks of 1 thread each, one core per rank, the MLP step took 4.3-4.9 ms, 3.2-3.8 without. Auto
// overlaps only when this process's share of the cores outnumbers its compute threads: the cores
// it is bound to, or, when it may run anywhere (mpirun --bind-to none), the machine's cores
// divided among the ranks on this host.
bool resolve_overlap(BucketOverlap o) {
  if (o != BucketOverlap::Auto) return o == BucketOverlap::Always;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return true;
  int cores = CPU_COUNT(&set);
  const int online = static_cast<int>(std::thread::hardware_concurrency());
  if (cores >= online) {
    int ranks_here = 1;
    try {
      ranks_here = std::max(1, detect_world().local_size);
    } catch (const Error&) {
      // a malformed launcher variable is reported by whoever builds the world; assume one rank here
    }
    cores = std::max(1, online / ranks_here);
  }
  return cores > num_threads();
}

}  // namespace

GradBucketer::GradBucketer(std::shared_ptr<Communicator> comm, std::vector<Tensor> params, BucketOptions options)
    : state_(std::make_shared<State>()) {
  MF_CHECK(comm != nullptr, "GradBucketer: the communicator is null");
  State& s = *state_;
  s.comm = std::move(comm);
  s.params = std::move(params);
  s.options = options;
  s.overlap = resolve_overlap(options.overlap);
  s.where.resize(s.params.size());
  s.unused_last_step.assign(s.params.size(), false);
  std::vector<int64_t> bytes(s.params.size());
  std::vector<int> dtypes(s.params.size());
  for (size_t k = 0; k < s.params.size(); ++k) {
    const Tensor& p = s.params[k];
    MF_CHECK(p.defined() && p.requires_grad() && p.is_leaf(), "GradBucketer: parameter ", k, " (",
             internal::describe(p), ") must be a leaf tensor that requires grad");
    MF_CHECK(is_floating(p.dtype()), "GradBucketer: parameter ", k, " has dtype ", dtype_name(p.dtype()),
             "; gradients are averaged, which needs a floating dtype");
    bytes[k] = p.numel() * static_cast<int64_t>(dtype_size(p.dtype()));
    dtypes[k] = static_cast<int>(p.dtype());
  }
  for (const auto& members : assign_buckets(bytes, options.bucket_bytes, dtypes)) {
    auto& b = s.buckets.emplace_back();
    b.param_dtype = s.params[members.front()].dtype();
    for (size_t k : members) {
      s.where[k] = {static_cast<int>(s.buckets.size()) - 1, static_cast<int>(b.params.size())};
      b.params.push_back(k);
      b.offsets.push_back(b.numel);
      b.numel += s.params[k].numel();
    }
  }
  for (auto& b : s.buckets) {
    b.wire = wire_dtype(b.param_dtype, options.compression);
    if (!options.scatter) b.flat = zeros({b.numel}, {.dtype = b.wire});
    b.prescaled = b.wire == DType::F32 || b.wire == DType::F64;
  }
  s.reset_step();
  std::weak_ptr<State> weak = state_;
  for (size_t k = 0; k < s.params.size(); ++k)
    s.params[k].on_grad_ready([weak, k](const Tensor& grad) {
      if (auto st = weak.lock()) st->on_ready(k, grad);  // a destroyed bucketer leaves inert hooks
    });
}

GradBucketer::~GradBucketer() = default;

void GradBucketer::finish() {
  State& s = *state_;
  s.launched_before_finish = s.next_launch;
  std::fill(s.unused_last_step.begin(), s.unused_last_step.end(), false);
  for (auto& b : s.buckets)  // parameters that got no gradient this step contribute zeros
    for (size_t slot = 0; slot < b.params.size(); ++slot)
      if (!b.ready[slot]) {
        s.unused_last_step[b.params[slot]] = true;
        s.mark_zero(b, slot);
      }
  s.launch_ready();
  s.drop_packed();
  for (auto& b : s.buckets) {
    b.work->wait();
    if (s.options.scatter) continue;
    for (size_t slot = 0; slot < b.params.size(); ++slot) {
      Tensor& p = s.params[b.params[slot]];
      Tensor g = s.slot_view(b, slot);
      p.set_grad(g.dtype() == p.dtype() ? g : g.to(p.dtype()));
    }
  }
  s.reset_step();
}

bool GradBucketer::overlaps() const { return state_->overlap; }

int GradBucketer::num_buckets() const { return static_cast<int>(state_->buckets.size()); }

std::vector<size_t> GradBucketer::bucket_params(int b) const {
  MF_CHECK(b >= 0 && b < num_buckets(), "GradBucketer::bucket_params: bucket ", b, " of ", num_buckets());
  return state_->buckets[b].params;
}

int64_t GradBucketer::bucket_numel(int b) const {
  MF_CHECK(b >= 0 && b < num_buckets(), "GradBucketer::bucket_numel: bucket ", b, " of ", num_buckets());
  return state_->buckets[b].numel;
}

Tensor GradBucketer::scattered(int b) const {
  MF_CHECK(state_->options.scatter, "GradBucketer::scattered: the bucketer was made without BucketOptions::scatter");
  MF_CHECK(b >= 0 && b < num_buckets(), "GradBucketer::scattered: bucket ", b, " of ", num_buckets());
  const auto& bucket = state_->buckets[b];
  MF_CHECK(bucket.mine.defined(), "GradBucketer::scattered: bucket ", b, " has not been reduced; call finish() first");
  return bucket.mine.dtype() == bucket.param_dtype ? bucket.mine : bucket.mine.to(bucket.param_dtype);
}

int GradBucketer::launched_before_finish() const { return state_->launched_before_finish; }

}  // namespace meshflow::distributed
