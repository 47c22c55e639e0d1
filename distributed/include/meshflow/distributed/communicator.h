// Communicator: collectives and point-to-point over a group of ranks, synchronous or async with timeouts.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "meshflow/core/tensor.h"

namespace meshflow::distributed {

enum class ReduceOp { Sum, Avg, Max, Min };
const char* reduce_op_name(ReduceOp op);  // "sum", "avg", "max", "min"

struct CommOptions {
  // How long a collective may wait for its peers before it throws meshflow::Error naming the
  // collective, the tensor, this rank and the time waited (Note [Timeouts]).
  std::chrono::milliseconds timeout{30000};
  // MPI backend: before each collective, exchange a fingerprint of the call (op, dtype, shape,
  // root) in one small extra all-gather, so a rank calling something else makes every rank throw,
  // naming each rank's call, instead of corrupting data or hanging. The local backend always checks.
  // It costs one small-message latency per collective (bench_allreduce prints both); turn it off
  // only for many small collectives whose calls are known to agree.
  bool verify_calls = true;
  // MPI backend: a rank whose heartbeat is silent this long is stopped or unreachable, and one
  // whose heartbeat connection closes without a goodbye is dead; a collective waiting on it then
  // throws naming it, without waiting for `timeout`, while a merely slow rank (its heartbeat
  // thread still beats) trips nothing (Note [Heartbeats]). 0 turns the heartbeat off.
  std::chrono::milliseconds heartbeat{3000};
};

// A collective or message in flight. wait() throws meshflow::Error on timeout or failure; a
// timeout does not cancel the operation (MPI cannot), so the buffers stay owned by the Work
// and a later wait() may still succeed when the late peer arrives.
class Work {
 public:
  virtual ~Work() = default;
  virtual bool is_completed() = 0;                       // polls; true once finished
  virtual void wait(std::chrono::milliseconds timeout) = 0;
  void wait() { wait(default_timeout_); }                // the communicator's CommOptions::timeout

 protected:
  explicit Work(std::chrono::milliseconds default_timeout) : default_timeout_(default_timeout) {}

 private:
  std::chrono::milliseconds default_timeout_;
};
using WorkPtr = std::shared_ptr<Work>;

// Note [Collective rules]
// - Tensors live on the CPU and are contiguous where they are written (all_reduce, broadcast,
//   recv, and a given `out`); inputs of any strides are copied first.
// - Dtypes f32, f64, bf16, f16, i32, i64. bf16/f16 travel as 16-bit words; each reduction step
//   widens to f32 and rounds (local backend: once at the end; MPI: once per step of its algorithm).
//   Avg needs a floating dtype (an integer average would silently truncate).
// - Rows (axis 0) are split over ranks like numpy.array_split: with N rows and n ranks, rank r
//   holds N/n rows plus one more when r < N % n. reduce_scatter gives rank r its rows of the
//   reduced input; all_gather concatenates each rank's rows along axis 0. When all_gather's `out`
//   is undefined, every rank must pass the same shape and out gets n times its rows.
// - Every rank calls the same collectives in the same order; sizes 0 are allowed.
// - One thread at a time uses a given Communicator object.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "mpi", "local", "stub" or "hierarchical"
  const CommOptions& options() const { return options_; }

  virtual WorkPtr all_reduce_async(Tensor& tensor, ReduceOp op = ReduceOp::Sum) = 0;
  virtual WorkPtr broadcast_async(Tensor& tensor, int root) = 0;
  virtual WorkPtr all_gather_async(const Tensor& in, Tensor& out) = 0;
  virtual WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::Sum) = 0;
  virtual WorkPtr send_async(const Tensor& tensor, int dst, int tag = 0) = 0;
  virtual WorkPtr recv_async(Tensor& tensor, int src, int tag = 0) = 0;
  virtual WorkPtr barrier_async() = 0;
  // The ranks that pass the same `color` (>= 0), as a communicator of their own, ranked by (key,
  // rank) as MPI_Comm_split does; mesh axes get theirs this way (parallel/mesh.h). A collective:
  // every rank calls it, in order with the others, and waits for it. mpi, local and (size 1) stub
  // split; the hierarchical backend throws.
  virtual std::shared_ptr<Communicator> split(int color, int key);

  // Blocking forms: the async call, then wait() with the default timeout.
  void all_reduce(Tensor& tensor, ReduceOp op = ReduceOp::Sum) { finish(all_reduce_async(tensor, op)); }
  void broadcast(Tensor& tensor, int root) { finish(broadcast_async(tensor, root)); }
  void all_gather(const Tensor& in, Tensor& out) { finish(all_gather_async(in, out)); }
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::Sum) {
    finish(reduce_scatter_async(in, out, op));
  }
  void send(const Tensor& tensor, int dst, int tag = 0) { finish(send_async(tensor, dst, tag)); }
  void recv(Tensor& tensor, int src, int tag = 0) { finish(recv_async(tensor, src, tag)); }
  void barrier() { finish(barrier_async()); }

 protected:
  explicit Communicator(CommOptions options) : options_(options) {}
  // Waits; a Work that timed out is kept here so the buffers it may still write stay alive.
  void finish(const WorkPtr& work);
  std::vector<WorkPtr> timed_out_;

 private:
  CommOptions options_;
};

class LocalGroup;

// Makes a communicator of the given backend: "mpi" (every process of MPI_COMM_WORLD; throws
// when Meshflow was built without MPI), "stub" (size 1), or "local" (rank `local_rank` of
// `group`, which then must be given). Callers never need #ifdef: the choice is a string.
std::shared_ptr<Communicator> make_communicator(const std::string& backend, CommOptions options = {},
                                                LocalGroup* group = nullptr, int local_rank = 0);

// Whether this build has the "mpi" backend.
bool mpi_available();

// N communicators for N threads of one process, over shared memory (Note [Local backend]).
// Reductions run in rank order 0..N-1, so results are bitwise reproducible.
class LocalGroup {
 public:
  explicit LocalGroup(int size, CommOptions options = {});
  ~LocalGroup();
  int size() const;
  // Rank i's communicator; the group must outlive it. Each thread uses its own.
  std::shared_ptr<Communicator> communicator(int rank);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// Replicas that are threads of several processes (Note [Hierarchical communicator]): local_size
// threads per process joined by a LocalGroup, the processes by `process` (size P, rank p). Local
// replica l is rank p * local_size + l of P * local_size. A collective reduces across the threads,
// runs once across the processes on the group's progress thread, then hands the result to every
// thread. It has all_reduce, reduce_scatter, broadcast and barrier (what gradient averaging needs);
// all_gather and send/recv throw. While collectives are in flight the progress thread is the
// process communicator's user: call it yourself only between them.
class HierarchicalGroup {
 public:
  HierarchicalGroup(std::shared_ptr<Communicator> process, int local_size, CommOptions options = {});
  ~HierarchicalGroup();
  int local_size() const;
  // Local replica l's communicator. Each thread uses its own.
  std::shared_ptr<Communicator> communicator(int local_rank);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace meshflow::distributed
