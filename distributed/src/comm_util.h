// Helpers shared by the backends: argument checks, error texts, reductions in rank order, row splits.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/distributed/communicator.h"

namespace meshflow::distributed::internal {

// "f32[2, 3]"
std::string describe(const Tensor& t);

// Checks a collective's tensor: defined, CPU, supported dtype; `written` also needs contiguity.
void check_tensor(const Tensor& t, const std::string& what, bool written);
// Avg of an integer dtype is refused (it would truncate).
void check_reduce_dtype(const Tensor& t, ReduceOp op, const std::string& what);
// A contiguous version of t (itself when already contiguous).
Tensor contiguous_input(const Tensor& t);

// Note [Ending a failed job]
// MPI cannot cancel a collective: after one timed out or failed on this process, MPI_Finalize
// would wait for it forever (the rank it waits for is dead, stopped or elsewhere), so the job
// would never end. A communicator destroyed while a collective is still stuck in MPI (past one
// more timeout of grace), or a peer the heartbeat found gone, records it here; at exit the MPI
// runtime then calls MPI_Abort, after flushing output, instead of MPI_Finalize: mpirun (and
// meshflow-run) end at once, killing the others. A collective that timed out and completed
// later (a slow peer) leaves nothing stuck and the job ends normally.
void note_mpi_failure();
bool mpi_failed();
// The error that ended this rank's part, and the rank it blames (-1: none known): written as the
// rank's failure report before MPI_Abort, so meshflow-run can tell the culprit from its victims
// (a report starting "blames rank K: ").
void note_blame(int rank, const std::string& message);
std::pair<int, std::string> blame();

// The error a Work throws when its peers do not arrive in time.
[[noreturn]] void throw_timeout(const std::string& what, const std::string& tensor, int rank, int size,
                                const std::string& backend, std::chrono::milliseconds waited,
                                std::chrono::milliseconds timeout, const std::string& detail);

// The error a Work throws when the heartbeat says a peer is gone before the timeout (noted, as
// an mpi timeout is).
[[noreturn]] void throw_peer_failure(const std::string& what, const std::string& tensor, int rank, int size,
                                     std::chrono::milliseconds waited, std::chrono::milliseconds timeout,
                                     const std::string& failure);

// The dtype a reduction accumulates in: f32 for bf16/f16, the dtype itself otherwise.
DType accum_dtype(DType t);
// acc (accum dtype) = src (dtype t) when first, else acc op= src. Max/Min keep NaN out of nothing:
// they compare with std::max/std::min order (acc first), the same on every backend.
void reduce_into(DType t, void* acc, const void* src, int64_t n, ReduceOp op, bool first);
// dst (dtype t) = acc (accum dtype), divided by `ranks` for Avg.
void finish_reduce(DType t, const void* acc, void* dst, int64_t n, ReduceOp op, int ranks);
// Converts n elements between dtypes (bf16/f16 <-> f32 for backends without half types).
void convert(DType from, const void* src, DType to, void* dst, int64_t n);

// numpy.array_split of `rows` over `ranks`: first row and row count of rank r.
int64_t split_start(int64_t rows, int ranks, int r);
int64_t split_count(int64_t rows, int ranks, int r);
// Elements in one row (product of dims after the first; 1 for 0-d).
int64_t row_numel(const Shape& s);

// The shape reduce_scatter gives rank r, and the shape all_gather's out must have.
Shape scattered_shape(const Shape& in, int ranks, int r);
Shape gathered_shape(const Tensor& in, const Tensor& out, int ranks, int r, const std::string& what);

}  // namespace meshflow::distributed::internal

namespace meshflow::distributed::internal {

// A Work that finished when it was made (stub backend, sends that copy their data).
class DoneWork final : public Work {
 public:
  DoneWork() : Work(std::chrono::milliseconds(0)) {}
  bool is_completed() override { return true; }
  void wait(std::chrono::milliseconds) override {}
};

}  // namespace meshflow::distributed::internal
