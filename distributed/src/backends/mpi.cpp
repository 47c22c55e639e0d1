// The "mpi" backend: nonblocking MPI collectives on a duplicate of MPI_COMM_WORLD, polled to a timeout.
#include <mpi.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "../comm_util.h"
#include "../heartbeat.h"
#include "../progress_queue.h"
#include "backends.h"
#include "meshflow/distributed/failure.h"
#include "meshflow/core/optim.h"
#include "mpi_status.h"
#include "meshflow/core/error.h"

// Note [MPI threads]
// Each communicator owns one progress thread (ProgressQueue) that runs its collectives, in the
// order they were posted, with the blocking MPI calls. Why not MPI_Iallreduce polled by MPI_Test:
// Open MPI 4.1 runs nonblocking collectives through libnbc, which measured at half the bus
// bandwidth of its tuned blocking MPI_Allreduce (bench_allreduce, 2 ranks, 4 KiB..64 MiB), while
// the callers wait on the Work with a timeout and never block inside MPI themselves. Send/recv
// use MPI_Isend/MPI_Irecv polled by MPI_Test from the caller's thread. That needs
// MPI_THREAD_MULTIPLE, asked for when Meshflow initializes MPI; when the library grants less,
// every MPI call here takes one process-wide mutex (legal under MPI_THREAD_SERIALIZED), and a
// send/recv then waits while a collective blocks.
//
// Note [Timeouts]
// MPI cannot cancel a collective. A Work that times out throws but keeps its buffers; it may
// still finish when the late rank arrives, and later collectives queue behind it. After a
// timeout the usual next step is to fail the job, which is what the error says.

#define MF_MPI_CHECK(call)                                                                             \
  do {                                                                                                 \
    int mf_rc_ = (call);                                                                               \
    if (mf_rc_ != MPI_SUCCESS) ::meshflow::distributed::mpi_fail(#call, mf_rc_, __FILE__, __LINE__); \
  } while (0)

namespace meshflow::distributed {

[[noreturn]] void mpi_fail(const char* call, int rc, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  MF_THROW(call, " failed at ", file, ":", line, ": ", text);
}

namespace {

using Clock = std::chrono::steady_clock;
using internal::describe;

class MpiRuntime {
 public:
  static MpiRuntime& get() {
    static MpiRuntime runtime;
    return runtime;
  }
  bool serialized() const { return serialize_; }
  // Engaged only when MPI grants less than MPI_THREAD_MULTIPLE.
  std::unique_lock<std::mutex> guard() {
    return serialize_ ? std::unique_lock<std::mutex>(mu_) : std::unique_lock<std::mutex>();
  }
  ~MpiRuntime() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!we_initialized_ || finalized) return;
    if (internal::mpi_failed()) {  // Note [Ending a failed job]
      std::fflush(nullptr);
      std::fprintf(stderr, "meshflow: a collective failed on this rank (its error is above); MPI_Finalize would wait "
                           "for it forever, so this rank ends the job with MPI_Abort\n");
      std::fflush(stderr);
      // meshflow-run's summary: who this rank blames (Note [Failure reports]).
      int world_rank = 0;
      MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
      auto [blamed, why] = internal::blame();
      if (!why.empty())
        report_failure(world_rank, (blamed >= 0 ? "blames rank " + std::to_string(blamed) + ": " : std::string()) + why);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Finalize();
  }

 private:
  MpiRuntime() {
    int initialized = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&initialized);
    if (!initialized) {
      MF_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided));
      we_initialized_ = true;
    } else {
      MPI_Query_thread(&provided);
    }
    serialize_ = provided < MPI_THREAD_MULTIPLE;
  }
  bool we_initialized_ = false;
  bool serialize_ = true;
  std::mutex mu_;
};

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;  // halves: half_op
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    default: MF_THROW("mpi backend: dtype ", dtype_name(t), " is not supported");
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
    default: return MPI_SUM;  // Avg divides afterwards
  }
}

int to_count(int64_t n, const std::string& what) {
  MF_CHECK(n <= INT_MAX, what, ": ", n, " elements exceed MPI's int count; split the tensor");
  return static_cast<int>(n);
}

bool is_half(DType t) { return t == DType::BF16 || t == DType::F16; }

// Note [Halves on the wire]
// MPI has no bf16/f16 arithmetic. Widening to f32 before the collective would send twice the
// bytes and make gradient compression pointless, so halves travel as 16-bit words and reduce
// through user-defined ops that widen each pair to float and round the result: half the bytes, at
// the price of one rounding per reduction step of MPI's algorithm instead of one in all.
template <typename H, ReduceOp O>
void reduce_halves(void* in, void* inout, int* len, MPI_Datatype*) {
  if constexpr (O == ReduceOp::Sum) {
    // The hot one: the accumulate op (vectorized on the CPU) over MPI's own buffers.
    Tensor sum = borrow_host(inout, {*len}, dtype_of<H>::value);
    optim::accumulate_(sum, borrow_host(in, {*len}, dtype_of<H>::value));
  } else {
    const H* a = static_cast<const H*>(in);
    H* b = static_cast<H*>(inout);
    for (int i = 0; i < *len; ++i) {
      const float x = static_cast<float>(a[i]), y = static_cast<float>(b[i]);
      b[i] = H(O == ReduceOp::Max ? std::max(x, y) : std::min(x, y));
    }
  }
}

MPI_Op half_op(DType dt, ReduceOp op) {
  static const auto ops = [] {  // first use is after MPI_Init (a collective needs it)
    std::array<MPI_Op, 6> made{};
    MPI_User_function* fns[6] = {reduce_halves<bf16, ReduceOp::Sum>, reduce_halves<bf16, ReduceOp::Max>,
                                 reduce_halves<bf16, ReduceOp::Min>, reduce_halves<f16, ReduceOp::Sum>,
                                 reduce_halves<f16, ReduceOp::Max>, reduce_halves<f16, ReduceOp::Min>};
    for (int k = 0; k < 6; ++k) MF_MPI_CHECK(MPI_Op_create(fns[k], 1, &made[k]));
    return made;
  }();
  const int which = op == ReduceOp::Max ? 1 : op == ReduceOp::Min ? 2 : 0;  // Avg sums, then divides
  return ops[(dt == DType::F16 ? 3 : 0) + which];
}

// Avg of halves: the sum, divided in place, rounded once more.
void divide_halves(DType dt, void* data, int64_t n, int ranks) {
  auto run = [&]<typename H>() {
    H* d = static_cast<H*>(data);
    for (int64_t i = 0; i < n; ++i) d[i] = H(static_cast<float>(d[i]) / static_cast<float>(ranks));
  };
  if (dt == DType::F16) {
    run.operator()<f16>();
  } else {
    run.operator()<bf16>();
  }
}

// Note [Call fingerprints]
// With CommOptions::verify_calls, each collective first all-gathers a fixed-size description of
// the call; the gather itself always matches (every rank makes it), so a rank that called a
// different collective, op, dtype, root or shape is caught before any data moves.
enum FingerprintField { kKind, kOp, kRoot, kDType, kRank, kDim0, kNumel = kDim0 + 4, kFields };
using Fingerprint = std::array<int64_t, kFields>;
const char* const kKindNames[] = {"all_reduce", "broadcast", "all_gather", "reduce_scatter", "barrier", "split"};

// `shaped` is the tensor whose shape must agree on every rank (all_gather: out; else the input).
Fingerprint fingerprint(int kind, ReduceOp op, int root, const Tensor* shaped) {
  Fingerprint f{};
  f[kKind] = kind;
  f[kOp] = kind == 0 || kind == 3 ? static_cast<int64_t>(op) : -1;
  f[kRoot] = root;
  f[kDType] = shaped ? static_cast<int64_t>(shaped->dtype()) : -1;
  f[kRank] = shaped ? shaped->dim() : -1;
  for (int d = 0; shaped && d < 4 && d < shaped->dim(); ++d) f[kDim0 + d] = shaped->size(d);
  f[kNumel] = shaped ? shaped->numel() : 0;
  return f;
}

std::string fingerprint_text(const int64_t* f) {
  std::string s = kKindNames[f[kKind]];
  if (f[kOp] >= 0) s += std::string("(") + reduce_op_name(static_cast<ReduceOp>(f[kOp])) + ")";
  if (f[kKind] == 1) s += "(root " + std::to_string(f[kRoot]) + ")";
  if (f[kDType] < 0) return s;
  s += std::string(" ") + dtype_name(static_cast<DType>(f[kDType])) + "[";
  for (int64_t d = 0; d < f[kRank] && d < 4; ++d) s += (d ? ", " : "") + std::to_string(f[kDim0 + d]);
  return s + (f[kRank] > 4 ? ", ...]" : "]");
}

void verify_call(MPI_Comm comm, int size, const Fingerprint& mine) {
  std::vector<int64_t> all(static_cast<size_t>(size) * kFields);
  {
    auto lock = MpiRuntime::get().guard();
    MF_MPI_CHECK(MPI_Allgather(mine.data(), kFields, MPI_INT64_T, all.data(), kFields, MPI_INT64_T, comm));
  }
  bool same = true;
  for (int r = 1; r < size; ++r) same = same && std::equal(mine.begin(), mine.end(), all.begin() + r * kFields) &&
                                    std::equal(all.begin(), all.begin() + kFields, all.begin() + r * kFields);
  if (same) return;
  std::string text = "collective mismatch between ranks:";
  for (int r = 0; r < size; ++r) text += " rank " + std::to_string(r) + " called " + fingerprint_text(&all[r * kFields]) + ";";
  MF_THROW(text, " every rank must call the same collective with the same shapes and dtype");
}

class MpiWork final : public Work {
 public:
  MpiWork(std::chrono::milliseconds timeout, int rank, int size, std::string name, std::string tensor)
      : Work(timeout), rank_(rank), size_(size), name_(std::move(name)), tensor_(std::move(tensor)),
        start_(Clock::now()) {}

  MPI_Request request = MPI_REQUEST_NULL;
  std::vector<Tensor> keep;               // buffers MPI reads or writes until done
  std::function<void(const MPI_Status&)> on_done;
  int peer = -1;                          // the other rank of a send or receive
  std::function<std::string()> peer_failure;  // the heartbeat's verdict ("" while every rank beats)

  bool is_completed() override {
    if (done_) return true;
    int flag = 0;
    MPI_Status status;
    {
      auto lock = MpiRuntime::get().guard();
      MF_MPI_CHECK(MPI_Test(&request, &flag, &status));
    }
    if (flag) {
      done_ = true;
      if (on_done) on_done(status);
      keep.clear();
    }
    return done_;
  }

  void wait(std::chrono::milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    auto next_check = Clock::now() + std::chrono::milliseconds(100);
    for (uint64_t spins = 0; !is_completed(); ++spins) {
      auto now = Clock::now();
      if (now >= deadline)
        internal::throw_timeout(name_, tensor_, rank_, size_, "mpi",
                                std::chrono::duration_cast<std::chrono::milliseconds>(now - start_), timeout,
                                peer >= 0 ? "rank " + std::to_string(peer) + " did not post the matching call"
                                          : std::string("some rank did not reach this call (MPI does not say which)"));
      // A stopped or dead peer is named by the heartbeat within seconds, whatever the timeout.
      if (peer_failure && now >= next_check) {
        next_check = now + std::chrono::milliseconds(100);
        std::string gone = peer_failure();
        if (!gone.empty())
          internal::throw_peer_failure(name_, tensor_, rank_, size_,
                                       std::chrono::duration_cast<std::chrono::milliseconds>(now - start_), timeout,
                                       gone);
      }
      // Spin while the transfer is young (MPI progresses inside MPI_Test); back off on long waits.
      if (now - start_ > std::chrono::seconds(1)) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      } else if ((spins & 1023) == 1023) {
        std::this_thread::yield();
      }
    }
  }

 private:
  int rank_, size_;
  std::string name_, tensor_;
  Clock::time_point start_;
  bool done_ = false;
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(CommOptions options) : Communicator(options) {
    MpiRuntime::get();
    auto lock = MpiRuntime::get().guard();
    MF_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    MF_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    MF_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MF_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    if (!MpiRuntime::get().serialized()) status_ = std::make_shared<internal::MpiStatusChannel>(comm_);
    if (status_ && size_ > 1 && options.heartbeat.count() > 0 && internal::heartbeat_available()) {
      std::vector<std::string> hosts;
      for (int r = 0; r < size_; ++r) hosts.push_back(status_->host(r));
      auto share_port = [this](int port) {
        auto lock = MpiRuntime::get().guard();
        MF_MPI_CHECK(MPI_Bcast(&port, 1, MPI_INT, 0, comm_));
        return port;
      };
      heartbeat_ = std::make_shared<internal::Heartbeat>(rank_, size_, std::move(hosts), share_port, options.heartbeat);
    }
  }
  // A communicator split from another (split()): adopts `sub`; the parent's heartbeat, which
  // watches every rank of the job, names failed peers for it too.
  MpiCommunicator(MPI_Comm sub, CommOptions options, std::shared_ptr<internal::Heartbeat> heartbeat, int color,
                  int job_rank)
      : Communicator(options), comm_(sub), heartbeat_(std::move(heartbeat)) {
    auto lock = MpiRuntime::get().guard();
    MF_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    MF_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MF_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    // Its messages number ranks within the split; say so, with this rank's number in the job.
    label_ = " [split " + std::to_string(color) + ": rank " + std::to_string(rank_) + " here is job rank " +
             std::to_string(job_rank) + "]";
    if (!MpiRuntime::get().serialized()) status_ = std::make_shared<internal::MpiStatusChannel>(comm_);
  }
  ~MpiCommunicator() override {
    if (mpi_finalized()) return;
    // Late peers get one more timeout to finish what they owe; past it the thread is left behind,
    // and MPI cannot finalize: the job must end (Note [Ending a failed job]). After a failure the
    // heartbeat saw, nobody is late: they are gone.
    if (!queue_.shutdown(internal::mpi_failed() ? std::chrono::milliseconds(0) : options().timeout))
      internal::note_mpi_failure();
    if (status_) status_->stop();
    heartbeat_.reset();  // goodbye: this rank ends cleanly
    for (auto& w : timed_out_)
      if (!w->is_completed()) return;  // freeing the communicator under a live operation is unsafe: leak it
    auto lock = MpiRuntime::get().guard();
    MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  WorkPtr all_reduce_async(Tensor& t, ReduceOp op) override {
    std::string what = std::string("all_reduce(") + reduce_op_name(op) + ")";
    internal::check_tensor(t, what, true);
    internal::check_reduce_dtype(t, op, what);
    const DType dt = t.dtype();
    const int n = to_count(t.numel(), what);
    return queued(what, describe(t), fingerprint(0, op, 0, &t), [comm = comm_, size = size_, t, dt, n, op] {
      if (is_half(dt)) {  // 16-bit words, reduced by half_op (Note [Halves on the wire])
        {
          auto lock = MpiRuntime::get().guard();
          MF_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), n, MPI_UINT16_T, half_op(dt, op), comm));
        }
        if (n && op == ReduceOp::Avg) divide_halves(dt, t.raw_data(), n, size);
        return;
      }
      {
        auto lock = MpiRuntime::get().guard();
        MF_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), n, mpi_type(dt), mpi_op(op), comm));
      }
      if (n && op == ReduceOp::Avg) internal::finish_reduce(dt, t.raw_data(), t.raw_data(), n, op, size);
    });
  }

  WorkPtr broadcast_async(Tensor& t, int root) override {
    internal::check_tensor(t, "broadcast", true);
    check_peer(root, "broadcast", "root");
    int bytes = to_count(t.numel() * static_cast<int64_t>(dtype_size(t.dtype())), "broadcast");
    return queued("broadcast(root " + std::to_string(root) + ")", describe(t), fingerprint(1, ReduceOp::Sum, root, &t),
                  [comm = comm_, t, bytes, root] {
      auto lock = MpiRuntime::get().guard();
      MF_MPI_CHECK(MPI_Bcast(t.raw_data(), bytes, MPI_BYTE, root, comm));
    });
  }

  WorkPtr all_gather_async(const Tensor& in, Tensor& out) override {
    internal::check_tensor(in, "all_gather", false);
    Shape s = internal::gathered_shape(in, out, size_, rank_, "all_gather");
    if (!out.defined()) out = empty(s, {.dtype = in.dtype(), .device = in.device()});
    internal::check_tensor(out, "all_gather", true);
    Tensor src = internal::contiguous_input(in);
    const int64_t row_bytes = internal::row_numel(s) * static_cast<int64_t>(dtype_size(in.dtype()));
    std::vector<int> counts, displs;
    for (int r = 0; r < size_; ++r) {
      counts.push_back(to_count(internal::split_count(s[0], size_, r) * row_bytes, "all_gather"));
      displs.push_back(to_count(internal::split_start(s[0], size_, r) * row_bytes, "all_gather"));
    }
    return queued("all_gather", describe(in) + " -> " + describe(out), fingerprint(2, ReduceOp::Sum, 0, &out),
                  [comm = comm_, rank = rank_, src, out, counts, displs] {
      auto lock = MpiRuntime::get().guard();
      MF_MPI_CHECK(MPI_Allgatherv(src.raw_data(), counts[rank], MPI_BYTE, out.raw_data(), counts.data(),
                                  displs.data(), MPI_BYTE, comm));
    });
  }

  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override {
    std::string what = std::string("reduce_scatter(") + reduce_op_name(op) + ")";
    internal::check_tensor(in, what, false);
    internal::check_reduce_dtype(in, op, what);
    Shape s = internal::scattered_shape(in.shape(), size_, rank_);
    if (!out.defined()) out = empty(s, {.dtype = in.dtype(), .device = in.device()});
    internal::check_tensor(out, what, true);
    MF_CHECK(out.shape() == s && out.dtype() == in.dtype(), what, ": out ", describe(out), " should be ",
             dtype_name(in.dtype()), shape_str(s), " on rank ", rank_, " (numpy.array_split of ", in.size(0), " rows)");
    const DType dt = in.dtype();
    Tensor src = internal::contiguous_input(in);
    const int64_t row = internal::row_numel(in.shape());
    std::vector<int> counts;
    for (int r = 0; r < size_; ++r) counts.push_back(to_count(internal::split_count(in.size(0), size_, r) * row, what));
    to_count(in.numel(), what);
    return queued(what, describe(in), fingerprint(3, op, 0, &src), [comm = comm_, size = size_, src, out, dt, op, counts] {
      const bool half = is_half(dt);  // 16-bit words, reduced by half_op (Note [Halves on the wire])
      {
        auto lock = MpiRuntime::get().guard();
        MF_MPI_CHECK(MPI_Reduce_scatter(src.raw_data(), out.raw_data(), counts.data(), half ? MPI_UINT16_T : mpi_type(dt),
                                        half ? half_op(dt, op) : mpi_op(op), comm));
      }
      if (out.numel() && op == ReduceOp::Avg) {
        if (half) {
          divide_halves(dt, out.raw_data(), out.numel(), size);
        } else {
          internal::finish_reduce(dt, out.raw_data(), out.raw_data(), out.numel(), op, size);
        }
      }
    });
  }

  WorkPtr send_async(const Tensor& t, int dst, int tag) override {
    internal::check_tensor(t, "send", false);
    check_peer(dst, "send", "destination");
    MF_CHECK(tag >= 0, "send: tag ", tag, " must be non-negative");
    Tensor src = internal::contiguous_input(t);
    auto w = work("send(to rank " + std::to_string(dst) + ", tag " + std::to_string(tag) + ")", describe(t));
    w->keep = {src};
    w->peer = dst;
    int bytes = to_count(t.numel() * static_cast<int64_t>(dtype_size(t.dtype())), "send");
    auto lock = MpiRuntime::get().guard();
    MF_MPI_CHECK(MPI_Isend(src.raw_data(), bytes, MPI_BYTE, dst, tag, comm_, &w->request));
    return w;
  }

  WorkPtr recv_async(Tensor& t, int src, int tag) override {
    internal::check_tensor(t, "recv", true);
    check_peer(src, "recv", "source");
    MF_CHECK(tag >= 0, "recv: tag ", tag, " must be non-negative");
    std::string what = "recv(from rank " + std::to_string(src) + ", tag " + std::to_string(tag) + ")";
    auto w = work(what, describe(t));
    w->keep = {t};
    w->peer = src;
    int bytes = to_count(t.numel() * static_cast<int64_t>(dtype_size(t.dtype())), "recv");
    w->on_done = [bytes, what, desc = describe(t)](const MPI_Status& status) {
      int got = 0;
      MPI_Get_count(&status, MPI_BYTE, &got);
      MF_CHECK(got == bytes, what, ": received ", got, " bytes but the buffer ", desc, " holds ", bytes);
    };
    auto lock = MpiRuntime::get().guard();
    MF_MPI_CHECK(MPI_Irecv(t.raw_data(), bytes, MPI_BYTE, src, tag, comm_, &w->request));
    return w;
  }

  std::shared_ptr<Communicator> split(int color, int key) override {
    MF_CHECK(color >= 0, "split: color ", color, " must be >= 0");
    auto sub = std::make_shared<MPI_Comm>(MPI_COMM_NULL);
    // Through the queue, so the split keeps its place among this communicator's collectives.
    auto w = queued("split(color " + std::to_string(color) + ")", "(none)", fingerprint(5, ReduceOp::Sum, 0, nullptr),
                    [comm = comm_, sub, color, key] {
                      auto lock = MpiRuntime::get().guard();
                      MF_MPI_CHECK(MPI_Comm_split(comm, color, key, sub.get()));
                    });
    finish(w);
    int job_rank = 0;
    {
      auto lock = MpiRuntime::get().guard();
      MF_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &job_rank));
    }
    return std::make_shared<MpiCommunicator>(*sub, options(), heartbeat_, color, job_rank);
  }

  WorkPtr barrier_async() override {
    return queued("barrier", "(none)", fingerprint(4, ReduceOp::Sum, 0, nullptr), [comm = comm_] {
      auto lock = MpiRuntime::get().guard();
      MF_MPI_CHECK(MPI_Barrier(comm));
    });
  }

 private:
  WorkPtr queued(const std::string& name, const std::string& tensor, const Fingerprint& call,
                 std::function<void()> job) {
    if (options().verify_calls)
      job = [comm = comm_, size = size_, call, inner = std::move(job)] {
        verify_call(comm, size, call);
        inner();
      };
    auto w = std::make_shared<internal::QueuedWork>(options().timeout, rank_, size_, name, tensor + label_, std::move(job));
    if (status_)
      w->explain_timeout = [status = status_, seq = status_->note_posted()] {
        return status->explain(seq, std::chrono::milliseconds(500));
      };
    if (heartbeat_) w->peer_failure = [hb = heartbeat_] { return hb->failure(); };
    queue_.post(w);
    return w;
  }
  std::shared_ptr<MpiWork> work(const std::string& name, const std::string& tensor) const {
    auto w = std::make_shared<MpiWork>(options().timeout, rank_, size_, name, tensor + label_);
    if (heartbeat_) w->peer_failure = [hb = heartbeat_] { return hb->failure(); };
    return w;
  }
  void check_peer(int peer, const char* what, const char* role) const {
    MF_CHECK(peer >= 0 && peer < size_, what, ": ", role, " rank ", peer, " is not in the MPI world of size ", size_);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::string label_;  // split communicators: which split, and this rank's number in the job
  std::shared_ptr<internal::MpiStatusChannel> status_;  // null under MPI_THREAD_SERIALIZED
  std::shared_ptr<internal::Heartbeat> heartbeat_;      // null: one rank, serialized MPI, or turned off
  internal::ProgressQueue queue_;  // last member: its thread stops before the rest is destroyed
};

}  // namespace

bool mpi_available() { return true; }

std::shared_ptr<Communicator> make_mpi_communicator(CommOptions options) {
  return std::make_shared<MpiCommunicator>(options);
}

}  // namespace meshflow::distributed
