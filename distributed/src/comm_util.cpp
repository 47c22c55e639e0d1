// Helpers shared by the backends: argument checks, error texts, reductions in rank order, row splits.
#include "comm_util.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <cstring>
#include <type_traits>

#include "meshflow/core/error.h"

namespace meshflow::distributed {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Avg: return "avg";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "?";
}

void Communicator::finish(const WorkPtr& work) {
  try {
    work->wait();
  } catch (...) {
    if (!work->is_completed()) timed_out_.push_back(work);
    throw;
  }
}

namespace internal {

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  return std::string(dtype_name(t.dtype())) + shape_str(t.shape());
}

void check_tensor(const Tensor& t, const std::string& what, bool written) {
  MF_CHECK(t.defined(), what, ": the tensor is undefined");
  MF_CHECK(!t.is_symbolic(), what, ": the tensor ", describe(t), " is symbolic (no data)");
  MF_CHECK(t.device().is_cpu(), what, ": tensor ", describe(t), " is on ", t.device().str(),
           "; this backend moves host memory (copy it with .to(cpu()))");
  DType d = t.dtype();
  MF_CHECK(d != DType::Bool, what, ": bool tensors are not supported; cast to i32 first");
  MF_CHECK(!written || t.is_contiguous(), what, ": the tensor ", describe(t),
           " is written in place and must be contiguous; pass t.contiguous() and use the result");
}

void check_reduce_dtype(const Tensor& t, ReduceOp op, const std::string& what) {
  MF_CHECK(op != ReduceOp::Avg || is_floating(t.dtype()), what, ": avg of integer tensor ", describe(t),
           " would truncate; use sum and divide, or cast to a floating dtype");
}

Tensor contiguous_input(const Tensor& t) { return t.is_contiguous() ? t : t.contiguous(); }

namespace {
std::atomic<bool> g_mpi_failed{false};
}

void note_mpi_failure() { g_mpi_failed.store(true); }
bool mpi_failed() { return g_mpi_failed.load(); }

namespace {
std::mutex g_blame_mu;
int g_blamed = -1;
std::string g_blame_message;
}  // namespace

void note_blame(int rank, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_blame_mu);
  if (!g_blame_message.empty()) return;  // the first failure is the one that counts
  g_blamed = rank;
  g_blame_message = message;
}

std::pair<int, std::string> blame() {
  std::lock_guard<std::mutex> lock(g_blame_mu);
  return {g_blamed, g_blame_message};
}

void throw_timeout(const std::string& what, const std::string& tensor, int rank, int size, const std::string& backend,
                   std::chrono::milliseconds waited, std::chrono::milliseconds timeout, const std::string& detail) {
  // The missing rank when the status channel named exactly one: "rank K (host ..." or "rank(s) K (host ...".
  int blamed = -1;
  const size_t host = detail.find("(host ");
  if (host != std::string::npos && detail.find("(host ", host + 1) == std::string::npos &&
      std::sscanf(detail.c_str(), "rank %d (host", &blamed) != 1 &&
      std::sscanf(detail.c_str(), "rank(s) %d (host", &blamed) != 1)
    blamed = -1;
  note_blame(blamed, what + " on tensor " + tensor + " timed out on rank " + std::to_string(rank) + ": " + detail);
  MF_THROW(what, " on tensor ", tensor, " timed out on rank ", rank, " of ", size, " after ", waited.count(),
           " ms (timeout ", timeout.count(), " ms, backend ", backend, "): ", detail,
           ". Hint: every rank must call the same collectives in the same order; a rank may have died or hung,"
           " or CommOptions::timeout is too short");
}

void throw_peer_failure(const std::string& what, const std::string& tensor, int rank, int size,
                        std::chrono::milliseconds waited, std::chrono::milliseconds timeout,
                        const std::string& failure) {
  note_mpi_failure();
  const std::string message = what + " on tensor " + tensor + " failed on rank " + std::to_string(rank) + " of " +
                              std::to_string(size) + " after " + std::to_string(waited.count()) + " ms: " + failure +
                              " (found by the heartbeat, before the " + std::to_string(timeout.count()) +
                              " ms collective timeout). The job cannot go on: restart it from its last checkpoint "
                              "(meshflow-run --max-restarts does)";
  int blamed = -1;
  std::sscanf(failure.c_str(), "rank %d", &blamed);  // the heartbeat's sentences start "rank K (host ...)"
  note_blame(blamed, message);
  MF_THROW(message);
}

DType accum_dtype(DType t) { return (t == DType::BF16 || t == DType::F16) ? DType::F32 : t; }

namespace {

template <typename Acc, typename T>
void reduce_typed(Acc* acc, const T* src, int64_t n, ReduceOp op, bool first) {
  if (first) {
    for (int64_t i = 0; i < n; ++i) acc[i] = static_cast<Acc>(src[i]);
    return;
  }
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<Acc>(src[i]);
      break;
    case ReduceOp::Max:
      for (int64_t i = 0; i < n; ++i) acc[i] = std::max(acc[i], static_cast<Acc>(src[i]));
      break;
    case ReduceOp::Min:
      for (int64_t i = 0; i < n; ++i) acc[i] = std::min(acc[i], static_cast<Acc>(src[i]));
      break;
  }
}

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, bf16> || std::is_same_v<T, f16>, float, T>;

}  // namespace

void reduce_into(DType t, void* acc, const void* src, int64_t n, ReduceOp op, bool first) {
  dispatch_dtype(t, "reduce", [&]<typename T>() {
    reduce_typed(static_cast<acc_t<T>*>(acc), static_cast<const T*>(src), n, op, first);
  });
}

void finish_reduce(DType t, const void* acc, void* dst, int64_t n, ReduceOp op, int ranks) {
  dispatch_dtype(t, "reduce", [&]<typename T>() {
    using A = acc_t<T>;
    const A* a = static_cast<const A*>(acc);
    T* d = static_cast<T*>(dst);
    if (op == ReduceOp::Avg) {
      if constexpr (std::is_floating_point_v<A>) {
        const A scale = static_cast<A>(ranks);
        for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(a[i] / scale);
      }
    } else if (static_cast<const void*>(a) != static_cast<void*>(d)) {
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(a[i]);
    }
  });
}

void convert(DType from, const void* src, DType to, void* dst, int64_t n) {
  if (from == to) {
    if (src != dst) std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(from));
    return;
  }
  dispatch_dtype(from, "convert", [&]<typename S>() {
    dispatch_dtype(to, "convert", [&]<typename D>() {
      const S* s = static_cast<const S*>(src);
      D* d = static_cast<D*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(static_cast<float>(s[i]));
    });
  });
}

int64_t split_start(int64_t rows, int ranks, int r) {
  int64_t base = rows / ranks, extra = rows % ranks;
  return r * base + std::min<int64_t>(r, extra);
}

int64_t split_count(int64_t rows, int ranks, int r) { return rows / ranks + (r < rows % ranks ? 1 : 0); }

int64_t row_numel(const Shape& s) {
  int64_t n = 1;
  for (size_t i = 1; i < s.size(); ++i) n *= s[i];
  return n;
}

Shape scattered_shape(const Shape& in, int ranks, int r) {
  MF_CHECK(!in.empty(), "reduce_scatter: the input must have at least one axis (rows are split over ranks)");
  Shape s = in;
  s[0] = split_count(in[0], ranks, r);
  return s;
}

Shape gathered_shape(const Tensor& in, const Tensor& out, int ranks, int r, const std::string& what) {
  MF_CHECK(in.dim() >= 1, what, ": the input ", describe(in), " must have at least one axis (rows are gathered)");
  if (!out.defined()) {
    Shape s = in.shape();
    s[0] *= ranks;
    return s;
  }
  MF_CHECK(out.dtype() == in.dtype(), what, ": out ", describe(out), " and input ", describe(in), " differ in dtype");
  Shape tail_in(in.shape().begin() + 1, in.shape().end());
  Shape tail_out(out.shape().begin() + std::min<int64_t>(1, out.dim()), out.shape().end());
  MF_CHECK(out.dim() == in.dim() && tail_in == tail_out, what, ": out ", describe(out), " must have the input's ",
           describe(in), " trailing dims");
  int64_t want = split_count(out.size(0), ranks, r);
  MF_CHECK(in.size(0) == want, what, ": rank ", r, " holds ", in.size(0), " rows but out ", describe(out),
           " split over ", ranks, " ranks gives it ", want, " (numpy.array_split rule)");
  return out.shape();
}

}  // namespace internal
}  // namespace meshflow::distributed
