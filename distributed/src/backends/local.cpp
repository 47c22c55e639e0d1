// The local backend: N threads of one process exchange tensors through shared memory.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>

#include "../comm_util.h"
#include "meshflow/core/error.h"

// Note [Local backend]
// Each rank numbers its collectives 0, 1, 2, ...; the k-th collective of every rank meets in one
// Round (a reusable barrier keyed by k, so async calls may run ahead). A rank posts its tensors
// into its slot and returns a Work at once; the last rank to arrive checks that every rank called
// the same thing, then does the whole exchange for everybody, reducing in rank order 0..N-1 so
// the result is bitwise the same on every run. Slots hold the tensors, so buffers stay alive even
// when a waiter gave up after a timeout. Sends copy their data into a mailbox and finish at once.

namespace meshflow::distributed {
namespace {

using internal::describe;
using Clock = std::chrono::steady_clock;

enum class Kind { AllReduce, Broadcast, AllGather, ReduceScatter, Barrier };

struct Slot {
  bool arrived = false;
  std::string call;  // what this rank called, e.g. "all_reduce(sum) f32[4]"
  Kind kind = Kind::Barrier;
  ReduceOp op = ReduceOp::Sum;
  int root = 0;
  Tensor in, out;
};

struct Round {
  std::vector<Slot> slots;
  int arrived = 0;
  bool done = false;
  std::string error;  // set when the ranks' calls do not match
};

struct Message {
  Tensor data;
};

struct PendingRecv {
  Tensor out;
  bool done = false;
  std::string error;
};

}  // namespace

struct LocalGroup::State {
  int size = 0;
  CommOptions options;
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::shared_ptr<Round>> rounds;
  std::vector<uint64_t> next_seq;
  struct Channel {
    std::deque<Tensor> messages;
    std::deque<std::shared_ptr<PendingRecv>> receivers;
  };
  std::map<std::tuple<int, int, int>, Channel> channels;  // (src, dst, tag)
  // split(): the groups made by each rank's n-th split, by (n, color); the first rank to arrive
  // makes one, the others join it. Kept for the parent's lifetime (communicators share them).
  std::vector<uint64_t> next_split;
  std::map<std::pair<uint64_t, int>, std::shared_ptr<State>> splits;
};

namespace {

// Checks that all ranks made the same call; returns the mismatch text or "".
std::string mismatch(const Round& round) {
  const Slot& a = round.slots[0];
  bool same = true;
  for (const Slot& s : round.slots) {
    if (s.kind != a.kind || s.op != a.op || s.root != a.root) {
      same = false;
      break;
    }
    if (s.kind != Kind::Barrier) same = same && s.in.dtype() == a.in.dtype();
    if (s.kind == Kind::AllReduce || s.kind == Kind::Broadcast || s.kind == Kind::ReduceScatter)
      same = same && s.in.shape() == a.in.shape();
    if (s.kind == Kind::AllGather) same = same && s.out.shape() == a.out.shape();
  }
  if (same) return "";
  std::string text = "collective mismatch between ranks:";
  for (size_t r = 0; r < round.slots.size(); ++r) text += " rank " + std::to_string(r) + " called " + round.slots[r].call + ";";
  return text + " every rank must call the same collective with the same shapes and dtype";
}

void* bytes_of(const Tensor& t) { return t.raw_data(); }

void execute(Round& round) {
  const int n = static_cast<int>(round.slots.size());
  const Slot& first = round.slots[0];
  switch (first.kind) {
    case Kind::Barrier: return;
    case Kind::Broadcast: {
      const Slot& root = round.slots[first.root];
      size_t bytes = static_cast<size_t>(root.in.numel()) * dtype_size(root.in.dtype());
      for (auto& s : round.slots)
        if (&s != &root && bytes) std::memcpy(bytes_of(s.out), bytes_of(root.in), bytes);
      return;
    }
    case Kind::AllGather: {
      const size_t row_bytes = static_cast<size_t>(internal::row_numel(first.out.shape())) * dtype_size(first.out.dtype());
      const int64_t rows = first.out.size(0);
      for (auto& dst : round.slots)
        for (int src = 0; src < n; ++src) {
          size_t bytes = static_cast<size_t>(round.slots[src].in.size(0)) * row_bytes;
          char* to = static_cast<char*>(bytes_of(dst.out)) + internal::split_start(rows, n, src) * row_bytes;
          if (bytes) std::memcpy(to, bytes_of(round.slots[src].in), bytes);
        }
      return;
    }
    case Kind::AllReduce:
    case Kind::ReduceScatter: {
      const DType dt = first.in.dtype();
      const int64_t numel = first.in.numel();
      std::vector<char> acc(static_cast<size_t>(numel) * dtype_size(internal::accum_dtype(dt)) + 1);
      for (int r = 0; r < n; ++r)
        if (numel) internal::reduce_into(dt, acc.data(), bytes_of(round.slots[r].in), numel, first.op, r == 0);
      const size_t acc_size = dtype_size(internal::accum_dtype(dt));
      for (int r = 0; r < n; ++r) {
        Slot& s = round.slots[r];
        int64_t offset = 0, count = numel;
        if (first.kind == Kind::ReduceScatter) {
          int64_t row = internal::row_numel(first.in.shape());
          offset = internal::split_start(first.in.size(0), n, r) * row;
          count = s.out.numel();
        }
        if (count) internal::finish_reduce(dt, acc.data() + offset * acc_size, bytes_of(s.out), count, first.op, n);
      }
      return;
    }
  }
}

class LocalWork final : public Work {
 public:
  LocalWork(std::shared_ptr<LocalGroup::State> state, std::shared_ptr<Round> round, int rank, std::string name,
            std::string tensor)
      : Work(state->options.timeout), state_(std::move(state)), round_(std::move(round)), rank_(rank),
        name_(std::move(name)), tensor_(std::move(tensor)), start_(Clock::now()) {}

  bool is_completed() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    return round_->done;
  }

  void wait(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(state_->mu);
    if (!state_->cv.wait_for(lock, timeout, [&] { return round_->done; })) {
      std::string missing, present;
      for (size_t r = 0; r < round_->slots.size(); ++r) {
        std::string& list = round_->slots[r].arrived ? present : missing;
        list += (list.empty() ? "" : ", ") + std::to_string(r);
      }
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_);
      internal::throw_timeout(name_, tensor_, rank_, state_->size, "local", waited, timeout,
                              "missing rank(s) " + missing + " never joined (arrived: " + present + ")");
    }
    if (!round_->error.empty()) MF_THROW(name_, " on rank ", rank_, ": ", round_->error);
  }

 private:
  std::shared_ptr<LocalGroup::State> state_;
  std::shared_ptr<Round> round_;
  int rank_;
  std::string name_, tensor_;
  Clock::time_point start_;
};

class RecvWork final : public Work {
 public:
  RecvWork(std::shared_ptr<LocalGroup::State> state, std::shared_ptr<PendingRecv> recv, int rank, std::string call)
      : Work(state->options.timeout), state_(std::move(state)), recv_(std::move(recv)), rank_(rank),
        call_(std::move(call)), start_(Clock::now()) {}
  bool is_completed() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    return recv_->done;
  }
  void wait(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(state_->mu);
    if (!state_->cv.wait_for(lock, timeout, [&] { return recv_->done; })) {
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_);
      internal::throw_timeout(call_, describe(recv_->out), rank_, state_->size, "local", waited, timeout,
                              "no matching message was sent");
    }
    if (!recv_->error.empty()) MF_THROW(recv_->error);
  }

 private:
  std::shared_ptr<LocalGroup::State> state_;
  std::shared_ptr<PendingRecv> recv_;
  int rank_;
  std::string call_;
  Clock::time_point start_;
};

// Copies a message into a waiting receive buffer, or records why it does not fit.
void deliver(const Tensor& message, PendingRecv& recv, const std::string& what) {
  if (message.shape() != recv.out.shape() || message.dtype() != recv.out.dtype()) {
    recv.error = what + ": message " + describe(message) + " does not fit the receive buffer " + describe(recv.out);
  } else if (message.numel()) {
    std::memcpy(recv.out.raw_data(), message.raw_data(), static_cast<size_t>(message.numel()) * dtype_size(message.dtype()));
  }
  recv.done = true;
}

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<LocalGroup::State> state, int rank)
      : Communicator(state->options), state_(std::move(state)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return state_->size; }
  std::string backend() const override { return "local"; }

  WorkPtr all_reduce_async(Tensor& t, ReduceOp op) override {
    std::string what = std::string("all_reduce(") + reduce_op_name(op) + ")";
    internal::check_tensor(t, what, true);
    internal::check_reduce_dtype(t, op, what);
    return post(Kind::AllReduce, op, 0, t, t, what, describe(t));
  }
  WorkPtr broadcast_async(Tensor& t, int root) override {
    internal::check_tensor(t, "broadcast", true);
    check_peer(root, "broadcast", "root");
    return post(Kind::Broadcast, ReduceOp::Sum, root, t, t, "broadcast(root " + std::to_string(root) + ")", describe(t));
  }
  WorkPtr all_gather_async(const Tensor& in, Tensor& out) override {
    internal::check_tensor(in, "all_gather", false);
    Shape s = internal::gathered_shape(in, out, size(), rank_, "all_gather");
    if (!out.defined()) out = empty(s, {.dtype = in.dtype(), .device = in.device()});
    internal::check_tensor(out, "all_gather", true);
    return post(Kind::AllGather, ReduceOp::Sum, 0, internal::contiguous_input(in), out,
                "all_gather", describe(in) + " -> " + describe(out));
  }
  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override {
    std::string what = std::string("reduce_scatter(") + reduce_op_name(op) + ")";
    internal::check_tensor(in, what, false);
    internal::check_reduce_dtype(in, op, what);
    Shape s = internal::scattered_shape(in.shape(), size(), rank_);
    if (!out.defined()) out = empty(s, {.dtype = in.dtype(), .device = in.device()});
    internal::check_tensor(out, what, true);
    MF_CHECK(out.shape() == s && out.dtype() == in.dtype(), what, ": out ", describe(out), " should be ",
             dtype_name(in.dtype()), shape_str(s), " on rank ", rank_, " (numpy.array_split of ", in.size(0), " rows)");
    return post(Kind::ReduceScatter, op, 0, internal::contiguous_input(in), out, what, describe(in));
  }
  std::shared_ptr<Communicator> split(int color, int key) override {
    MF_CHECK(color >= 0, "split: color ", color, " must be >= 0");
    Tensor mine = from_vector(std::vector<int64_t>{color, key}, {2}, {.dtype = DType::I64});
    Tensor all;
    all_gather(mine, all);
    auto v = all.to_vector<int64_t>();
    std::vector<std::pair<int64_t, int>> members;  // (key, rank) of the ranks with my color
    for (int r = 0; r < size(); ++r)
      if (v[2 * r] == color) members.emplace_back(v[2 * r + 1], r);
    std::sort(members.begin(), members.end());
    const int sub_rank = static_cast<int>(std::find(members.begin(), members.end(), std::make_pair<int64_t, int>(key, int(rank_))) -
                                          members.begin());
    std::shared_ptr<LocalGroup::State> sub;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      auto& slot = state_->splits[{state_->next_split[rank_]++, color}];
      if (!slot) {
        slot = std::make_shared<LocalGroup::State>();
        slot->size = static_cast<int>(members.size());
        slot->options = state_->options;
        slot->next_seq.assign(members.size(), 0);
        slot->next_split.assign(members.size(), 0);
      }
      sub = slot;
    }
    return std::make_shared<LocalCommunicator>(sub, sub_rank);
  }
  WorkPtr send_async(const Tensor& t, int dst, int tag) override {
    internal::check_tensor(t, "send", false);
    check_peer(dst, "send", "destination");
    Tensor copy = t.contiguous().clone();
    std::lock_guard<std::mutex> lock(state_->mu);
    auto& ch = state_->channels[{rank_, dst, tag}];
    if (!ch.receivers.empty()) {
      deliver(copy, *ch.receivers.front(), "recv from rank " + std::to_string(rank_));
      ch.receivers.pop_front();
      state_->cv.notify_all();
    } else {
      ch.messages.push_back(copy);
    }
    return std::make_shared<internal::DoneWork>();
  }
  WorkPtr recv_async(Tensor& t, int src, int tag) override {
    internal::check_tensor(t, "recv", true);
    check_peer(src, "recv", "source");
    auto recv = std::make_shared<PendingRecv>();
    recv->out = t;
    std::string what = "recv(from rank " + std::to_string(src) + ", tag " + std::to_string(tag) + ")";
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      auto& ch = state_->channels[{src, rank_, tag}];
      if (!ch.messages.empty()) {
        deliver(ch.messages.front(), *recv, what);
        ch.messages.pop_front();
      } else {
        ch.receivers.push_back(recv);
      }
    }
    return std::make_shared<RecvWork>(state_, recv, rank_, what);
  }
  WorkPtr barrier_async() override { return post(Kind::Barrier, ReduceOp::Sum, 0, Tensor(), Tensor(), "barrier", "(none)"); }

 private:
  void check_peer(int peer, const char* what, const char* role) const {
    MF_CHECK(peer >= 0 && peer < size(), what, ": ", role, " rank ", peer, " is not in the local group of size ", size());
  }

  WorkPtr post(Kind kind, ReduceOp op, int root, const Tensor& in, const Tensor& out, const std::string& name,
               const std::string& tensor) {
    const std::string call = name + " " + tensor;
    std::shared_ptr<Round> round;
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      uint64_t seq = state_->next_seq[rank_]++;
      auto& slot_round = state_->rounds[seq];
      if (!slot_round) {
        slot_round = std::make_shared<Round>();
        slot_round->slots.resize(state_->size);
      }
      round = slot_round;
      Slot& s = round->slots[rank_];
      s = Slot{true, call, kind, op, root, in, out};
      last = ++round->arrived == state_->size;
      if (last) state_->rounds.erase(seq);
    }
    if (last) {
      // Every rank has arrived and none touches the slots again until done: exchange unlocked.
      std::string error = mismatch(*round);
      if (error.empty()) execute(*round);
      std::lock_guard<std::mutex> lock(state_->mu);
      round->error = error;
      round->done = true;
      state_->cv.notify_all();
    }
    return std::make_shared<LocalWork>(state_, round, rank_, name, tensor);
  }

  std::shared_ptr<LocalGroup::State> state_;
  int rank_;
};

}  // namespace

LocalGroup::LocalGroup(int size, CommOptions options) : state_(std::make_shared<State>()) {
  MF_CHECK(size >= 1, "LocalGroup: size ", size, " must be at least 1");
  state_->size = size;
  state_->options = options;
  state_->next_seq.assign(size, 0);
  state_->next_split.assign(size, 0);
}

LocalGroup::~LocalGroup() = default;

int LocalGroup::size() const { return state_->size; }

std::shared_ptr<Communicator> LocalGroup::communicator(int rank) {
  MF_CHECK(rank >= 0 && rank < state_->size, "LocalGroup::communicator: rank ", rank, " is not in [0, ",
           state_->size, ")");
  return std::make_shared<LocalCommunicator>(state_, rank);
}

}  // namespace meshflow::distributed
