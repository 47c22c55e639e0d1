// The hierarchical backend: replicas that are threads of several processes (local group, then processes).
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "../comm_util.h"
#include "meshflow/core/error.h"

// Note [Hierarchical communicator]
// L local replicas (threads) in each of P processes form one group of P * L ranks; local replica l
// of process p is rank p * L + l. A collective runs in three stages:
//  1. the L threads meet in a LocalGroup round, which also checks that they made the same call
//     and names a missing thread: a reduce_scatter (sum for sum/avg, max, min) whose outputs are
//     the rows of one buffer owned by the round, or for a broadcast the root thread's value into
//     the leader's copy;
//  2. local replica 0 (the leader) hands the round's buffer to the group's progress thread, which
//     runs the process collective on it (sum, max, min or broadcast from the root's process)
//     over the process communicator;
//  3. each thread's wait() copies the round's buffer into its own tensor (dividing by P * L for
//     avg, rounding bf16/f16 once: stages 1 and 2 accumulate them in f32).
// The progress thread is the only user of the process communicator for these collectives, so a
// thread posting a gradient bucket never blocks on another thread or process: GradBucketer's
// all-reduces still overlap backward. The buffer is the round's own, not a thread's tensor, so a
// thread that returns early and refills its bucket cannot change what its peers still read.
// Timeouts: each stage waits until post time + CommOptions::timeout. A thread that times out
// waits a short grace for the progress thread's verdict, which names the missing thread (local
// group) or the missing rank and its host (MPI backend), before naming the local replicas that
// never posted itself. Every error starts with the replica: "... on replica g (process p, local
// replica l) of P * L: ...".

namespace meshflow::distributed {
namespace {

using internal::describe;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum class Kind { AllReduce, Broadcast, Barrier };

// The k-th collective of every local replica of this process.
struct Round {
  std::vector<bool> arrived;
  std::vector<std::string> calls;  // what each local replica called, e.g. "all_reduce(avg) f32[5]"
  int count = 0;
  Tensor buffer;  // the local result (reduce_scatter rows, or the leader's broadcast copy), then the process one
  bool done = false;
  std::string error;
};

// What the leader hands to the progress thread.
struct Job {
  std::shared_ptr<Round> round;
  WorkPtr local;
  Kind kind = Kind::Barrier;
  ReduceOp op = ReduceOp::Sum;
  int root_process = 0;
  Clock::time_point deadline;
};

milliseconds remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return std::max(left, milliseconds(1));
}

// Sum for sum and avg (avg divides once, at the end), max and min as they are.
ReduceOp stage_op(ReduceOp op) { return op == ReduceOp::Avg ? ReduceOp::Sum : op; }

}  // namespace

struct HierarchicalGroup::State {
  int local_size = 0;
  CommOptions options;
  std::shared_ptr<Communicator> process;
  std::unique_ptr<LocalGroup> local;
  std::vector<std::shared_ptr<Communicator>> local_comms;

  std::mutex mu;
  std::condition_variable cv;  // rounds done, jobs queued
  std::map<uint64_t, std::shared_ptr<Round>> rounds;
  std::vector<uint64_t> next_seq;
  std::deque<Job> jobs;
  std::vector<WorkPtr> abandoned;  // process collectives that timed out keep their buffers here
  bool stopping = false;
  std::thread progress;

  int rank_of(int local_rank) const { return process->rank() * local_size + local_rank; }
  int size() const { return process->size() * local_size; }

  // Finds or makes round `seq` and marks local_rank as arrived.
  std::shared_ptr<Round> join(uint64_t seq, int local_rank) {
    auto& r = rounds[seq];
    if (!r) {
      r = std::make_shared<Round>();
      r->arrived.assign(static_cast<size_t>(local_size), false);
      r->calls.resize(static_cast<size_t>(local_size));
    }
    auto round = r;
    round->arrived[static_cast<size_t>(local_rank)] = true;
    if (++round->count == local_size) rounds.erase(seq);
    return round;
  }

  void run_progress() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stopping || !jobs.empty(); });
        if (jobs.empty()) return;  // stopping, and every posted job has run
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      std::string error;
      try {
        job.local->wait(remaining(job.deadline));
        WorkPtr w;
        if (job.kind == Kind::AllReduce) w = process->all_reduce_async(job.round->buffer, stage_op(job.op));
        if (job.kind == Kind::Broadcast) w = process->broadcast_async(job.round->buffer, job.root_process);
        if (job.kind == Kind::Barrier) w = process->barrier_async();
        try {
          w->wait(remaining(job.deadline));
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          abandoned.push_back(w);
          throw;
        }
      } catch (const std::exception& e) {
        error = e.what();
      }
      std::lock_guard<std::mutex> lock(mu);
      job.round->error = error;
      job.round->done = true;
      cv.notify_all();
    }
  }

  ~State() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
    if (progress.joinable()) progress.join();
    local_comms.clear();  // before the LocalGroup they belong to
  }
};

namespace {

class HierarchicalWork final : public Work {
 public:
  struct Parts {
    std::shared_ptr<HierarchicalGroup::State> state;
    std::shared_ptr<Round> round;
    WorkPtr local;  // this thread's LocalGroup stage; null for the leader (its progress thread waits)
    int local_rank = 0;
    std::string name, tensor;
    Kind kind = Kind::Barrier;
    ReduceOp op = ReduceOp::Sum;
    Tensor target;        // where the result goes (undefined for a barrier)
    int64_t offset = 0;   // first element of the round's buffer that is this thread's
  };

  explicit HierarchicalWork(Parts p) : Work(p.state->options.timeout), p_(std::move(p)), start_(Clock::now()) {}

  // True once the result is in the tensor (the copy out happens here or in wait()).
  bool is_completed() override {
    if (copied_) return true;
    {
      std::lock_guard<std::mutex> lock(p_.state->mu);
      if (!p_.round->done || !p_.round->error.empty()) return p_.round->done;
    }
    if (p_.local && !p_.local->is_completed()) return false;
    copy_out();
    return true;
  }

  void wait(milliseconds timeout) override {
    if (copied_) return;
    const auto deadline = start_ + timeout;
    State& s = *p_.state;
    try {
      if (p_.local) p_.local->wait(remaining(deadline));
    } catch (const std::exception& e) {
      MF_THROW(where(), mismatch().empty() ? e.what() : mismatch());
    }
    std::unique_lock<std::mutex> lock(s.mu);
    if (!s.cv.wait_until(lock, deadline, [&] { return p_.round->done; })) {
      // The progress thread's stages time out at about the same moment, and their verdicts say
      // more (the local group names the missing thread, the MPI backend the missing rank and its
      // host): wait a little for one before giving this thread's own.
      const auto grace = std::min<milliseconds>(timeout, milliseconds(1500));
      s.cv.wait_for(lock, grace, [&] { return p_.round->done; });
      if (!p_.round->done) {
        std::string missing;
        for (size_t l = 0; l < p_.round->arrived.size(); ++l)
          if (!p_.round->arrived[l]) missing += (missing.empty() ? "" : ", ") + std::to_string(l);
        auto waited = std::chrono::duration_cast<milliseconds>(Clock::now() - start_);
        std::string detail =
            missing.empty() ? "every local replica of process " + std::to_string(s.process->rank()) +
                                  " arrived, but the collective across the " + std::to_string(s.process->size()) +
                                  " processes (" + s.process->backend() + " backend) has not finished"
                            : "missing local replica(s) " + missing + " of process " +
                                  std::to_string(s.process->rank()) + " never joined";
        lock.unlock();
        try {
          internal::throw_timeout(p_.name, p_.tensor, s.rank_of(p_.local_rank), s.size(), "hierarchical", waited,
                                  timeout, detail);
        } catch (const Error& e) {
          MF_THROW(where(), e.what());
        }
      }
    }
    if (!p_.round->error.empty()) {
      std::string error = p_.round->error;
      lock.unlock();
      MF_THROW(where(), mismatch().empty() ? error : mismatch());
    }
    lock.unlock();
    copy_out();
  }

 private:
  using State = HierarchicalGroup::State;

  std::string where() const {
    const State& s = *p_.state;
    return p_.name + " on replica " + std::to_string(s.rank_of(p_.local_rank)) + " (process " +
           std::to_string(s.process->rank()) + ", local replica " + std::to_string(p_.local_rank) + ") of " +
           std::to_string(s.size()) + ": ";
  }

  // When the local replicas made different calls, says so in their own terms (the local group
  // saw their stage-1 collectives, e.g. a reduce_scatter for an all_reduce); "" otherwise.
  std::string mismatch() const {
    State& s = *p_.state;
    std::lock_guard<std::mutex> lock(s.mu);
    const auto& calls = p_.round->calls;
    bool same = true;
    for (const auto& c : calls) {
      if (c.empty()) return "";  // someone has not arrived: a timeout, not a mismatch
      same = same && c == calls[0];
    }
    if (same) return "";
    std::string text = "collective mismatch between the local replicas of process " + std::to_string(s.process->rank()) + ":";
    for (size_t l = 0; l < calls.size(); ++l)
      text += " local replica " + std::to_string(l) + " called " + calls[l] + ";";
    return text + " every replica must call the same collective with the same shapes and dtype";
  }

  void copy_out() {
    copied_ = true;
    const Tensor& buf = p_.round->buffer;
    const int64_t n = p_.target.defined() ? p_.target.numel() : 0;
    if (n == 0) return;
    if (p_.kind == Kind::Broadcast) {
      std::memcpy(p_.target.raw_data(), buf.raw_data(), static_cast<size_t>(n) * dtype_size(buf.dtype()));
      return;
    }
    const char* acc = static_cast<const char*>(buf.raw_data()) + p_.offset * static_cast<int64_t>(dtype_size(buf.dtype()));
    internal::finish_reduce(p_.target.dtype(), acc, p_.target.raw_data(), n, p_.op, p_.state->size());
  }

  Parts p_;
  Clock::time_point start_;
  bool copied_ = false;
};

class HierarchicalCommunicator final : public Communicator {
 public:
  HierarchicalCommunicator(std::shared_ptr<HierarchicalGroup::State> state, int local_rank)
      : Communicator(state->options), state_(std::move(state)), local_rank_(local_rank) {}
  int rank() const override { return state_->rank_of(local_rank_); }
  int size() const override { return state_->size(); }
  std::string backend() const override { return "hierarchical"; }

  WorkPtr all_reduce_async(Tensor& t, ReduceOp op) override {
    std::string what = std::string("all_reduce(") + reduce_op_name(op) + ")";
    internal::check_tensor(t, what, true);
    internal::check_reduce_dtype(t, op, what);
    return post_reduce(op, t, t, 0, what, describe(t));
  }

  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override {
    std::string what = std::string("reduce_scatter(") + reduce_op_name(op) + ")";
    internal::check_tensor(in, what, false);
    internal::check_reduce_dtype(in, op, what);
    Shape s = internal::scattered_shape(in.shape(), size(), rank());
    if (!out.defined()) out = empty(s, {.dtype = in.dtype(), .device = in.device()});
    internal::check_tensor(out, what, true);
    MF_CHECK(out.shape() == s && out.dtype() == in.dtype(), what, ": out ", describe(out), " should be ",
             dtype_name(in.dtype()), shape_str(s), " on rank ", rank(), " (numpy.array_split of ", in.size(0), " rows)");
    const int64_t offset = internal::split_start(in.size(0), size(), rank()) * internal::row_numel(in.shape());
    return post_reduce(op, in, out, offset, what, describe(in));
  }

  WorkPtr broadcast_async(Tensor& t, int root) override {
    internal::check_tensor(t, "broadcast", true);
    MF_CHECK(root >= 0 && root < size(), "broadcast: root rank ", root, " is not in the hierarchical group of size ",
             size(), " (", state_->process->size(), " processes x ", state_->local_size, " local replicas)");
    const int local_root = root % state_->local_size;
    // The leader's copy is the round's buffer; the others' own tensors take the local root's value.
    Tensor stage = local_rank_ == 0 ? t.clone() : t;
    const std::string what = "broadcast(root " + std::to_string(root) + ")";
    auto round = arrive(what + " " + describe(t), [&](Round& r) {
      if (local_rank_ == 0) r.buffer = stage;
    });
    WorkPtr local = local_comm().broadcast_async(stage, local_root);
    return launch(round, local, Kind::Broadcast, ReduceOp::Sum, root / state_->local_size, t, 0, what, describe(t));
  }

  WorkPtr barrier_async() override {
    auto round = arrive("barrier", [](Round&) {});
    WorkPtr local = local_comm().barrier_async();
    return launch(round, local, Kind::Barrier, ReduceOp::Sum, 0, Tensor(), 0, "barrier", "(none)");
  }

  WorkPtr all_gather_async(const Tensor&, Tensor&) override { unsupported("all_gather"); }
  WorkPtr send_async(const Tensor&, int, int) override { unsupported("send"); }
  WorkPtr recv_async(Tensor&, int, int) override { unsupported("recv"); }

 private:
  [[noreturn]] void unsupported(const char* what) const {
    MF_THROW(what, ": the hierarchical backend (rank ", rank(), " of ", size(), ") has all_reduce, reduce_scatter, ",
             "broadcast and barrier only; use the process communicator (Strategy::process_communicator()) for ", what);
  }

  Communicator& local_comm() const { return *state_->local_comms[static_cast<size_t>(local_rank_)]; }

  // Stage 1 of a reduction: a reduce_scatter over the local group whose outputs are the rows of
  // one buffer the round keeps (in the accumulation dtype: f32 for bf16/f16), so the local sum is
  // written once and no thread's own tensor is copied or written before the result is in. A call
  // that does not fit the buffer (a mismatch) gets a scratch output; the local group names it.
  WorkPtr post_reduce(ReduceOp op, const Tensor& in, const Tensor& target, int64_t offset, const std::string& what,
                      const std::string& tensor) {
    const DType acc = internal::accum_dtype(in.dtype());
    Tensor stage = in.dtype() == acc ? internal::contiguous_input(in) : in.to(acc).contiguous();
    if (stage.dim() == 0) stage = stage.reshape({1});
    const int64_t rows = stage.size(0);
    const int64_t first = internal::split_start(rows, state_->local_size, local_rank_);
    const int64_t count = internal::split_count(rows, state_->local_size, local_rank_);
    Tensor part;
    auto round = arrive(what + " " + tensor, [&](Round& r) {
      if (!r.buffer.defined()) r.buffer = empty(stage.shape(), {.dtype = acc});
      if (r.buffer.shape() == stage.shape() && r.buffer.dtype() == acc) part = r.buffer.slice(0, first, first + count);
    });
    if (!part.defined()) part = empty(internal::scattered_shape(stage.shape(), state_->local_size, local_rank_), {.dtype = acc});
    WorkPtr local = local_comm().reduce_scatter_async(stage, part, stage_op(op));
    return launch(round, local, Kind::AllReduce, op, 0, target, offset, what, tensor);
  }

  // Joins this thread's next round; `setup` runs under the group's lock (the buffer is made there).
  template <typename Setup>
  std::shared_ptr<Round> arrive(const std::string& call, Setup&& setup) {
    State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mu);
    auto round = s.join(s.next_seq[static_cast<size_t>(local_rank_)]++, local_rank_);
    round->calls[static_cast<size_t>(local_rank_)] = call;
    setup(*round);
    return round;
  }

  // The leader hands stage 2 to the progress thread; every thread gets a Work that copies out.
  WorkPtr launch(const std::shared_ptr<Round>& round, WorkPtr local, Kind kind, ReduceOp op, int root_process,
                 const Tensor& target, int64_t offset, const std::string& what, const std::string& tensor) {
    State& s = *state_;
    HierarchicalWork::Parts parts{state_, round, local, local_rank_, what, tensor, kind, op, target, offset};
    if (local_rank_ == 0) {
      std::lock_guard<std::mutex> lock(s.mu);
      s.jobs.push_back(Job{round, local, kind, op, root_process, Clock::now() + s.options.timeout});
      s.cv.notify_all();
      parts.local = nullptr;  // the progress thread waits on it
    }
    return std::make_shared<HierarchicalWork>(std::move(parts));
  }

  using State = HierarchicalGroup::State;
  std::shared_ptr<State> state_;
  int local_rank_;
};

}  // namespace

HierarchicalGroup::HierarchicalGroup(std::shared_ptr<Communicator> process, int local_size, CommOptions options)
    : state_(std::make_shared<State>()) {
  MF_CHECK(process != nullptr, "HierarchicalGroup: the process communicator is null");
  MF_CHECK(local_size >= 1, "HierarchicalGroup: local_size ", local_size, " must be at least 1");
  MF_CHECK(options.timeout.count() > 0, "HierarchicalGroup: CommOptions::timeout must be positive, got ",
           options.timeout.count(), " ms");
  State& s = *state_;
  s.local_size = local_size;
  s.options = options;
  s.process = std::move(process);
  s.local = std::make_unique<LocalGroup>(local_size, options);
  for (int l = 0; l < local_size; ++l) s.local_comms.push_back(s.local->communicator(l));
  s.next_seq.assign(static_cast<size_t>(local_size), 0);
  s.progress = std::thread([st = state_.get()] { st->run_progress(); });
}

HierarchicalGroup::~HierarchicalGroup() = default;

int HierarchicalGroup::local_size() const { return state_->local_size; }

std::shared_ptr<Communicator> HierarchicalGroup::communicator(int local_rank) {
  MF_CHECK(local_rank >= 0 && local_rank < state_->local_size, "HierarchicalGroup::communicator: local rank ",
           local_rank, " is not in [0, ", state_->local_size, ")");
  return std::make_shared<HierarchicalCommunicator>(state_, local_rank);
}

}  // namespace meshflow::distributed
