// All-reduce bus bandwidth: Meshflow's MPI communicator (without and with call verification) next to
// raw MPI_Allreduce, same program and buffers.
//   mpirun --allow-run-as-root --oversubscribe -np 2 ./build/benchmarks/bench_allreduce
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "meshflow/core/core.h"
#include "meshflow/distributed/communicator.h"
#include "timing.h"

namespace mf = meshflow;
namespace dist = meshflow::distributed;

namespace {

// Seconds per all-reduce over `iters` calls, ranks aligned by a barrier first; the slowest rank counts.
template <typename F>
double time_per_op(int iters, F&& op) {
  MPI_Barrier(MPI_COMM_WORLD);
  double local = bench::seconds_per_call(iters, op), slowest = 0;
  MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

}  // namespace

int main() {
  auto comm = dist::make_communicator("mpi", {.verify_calls = false});  // initializes MPI (MPI_THREAD_MULTIPLE)
  auto checked = dist::make_communicator("mpi", {.verify_calls = true});
  MPI_Comm raw_comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &raw_comm);
  const int n = comm->size(), rank = comm->rank();
  const double bus_factor = 2.0 * (n - 1) / n;  // nccl-tests: busbw = algbw * 2(n-1)/n
  if (rank == 0) {
    std::printf("all_reduce(sum) f32, %d ranks; busbw = algbw * 2(n-1)/n; 7 alternating runs: median and best\n", n);
    std::printf("%10s %8s %14s %14s %8s %10s %16s %8s\n", "bytes", "iters", "raw MPI GB/s", "Meshflow GB/s", "ratio",
                "best ratio", "verified GB/s", "ratio");
  }
  for (int64_t bytes = 4 << 10; bytes <= (64 << 20); bytes *= 2) {
    const int64_t count = bytes / 4;
    mf::Tensor t = mf::full({count}, 1.0);
    float* data = t.data<float>();
    const int iters = static_cast<int>(std::clamp<int64_t>((256ll << 20) / bytes, 5, 1000));
    auto raw = [&] { MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_FLOAT, MPI_SUM, raw_comm); };
    auto ours = [&] { comm->all_reduce(t, dist::ReduceOp::Sum); };
    auto verified = [&] { checked->all_reduce(t, dist::ReduceOp::Sum); };
    for (int w = 0; w < 3; ++w) {
      raw();
      ours();
      verified();
    }
    std::vector<double> t_raw, t_ours, t_verified;
    for (int rep = 0; rep < 7; ++rep) {
      t_raw.push_back(time_per_op(iters, raw));
      t_ours.push_back(time_per_op(iters, ours));
      t_verified.push_back(time_per_op(iters, verified));
    }
    double bw_raw = bytes / bench::median(t_raw) * bus_factor / 1e9;
    double bw_ours = bytes / bench::median(t_ours) * bus_factor / 1e9;
    double bw_verified = bytes / bench::median(t_verified) * bus_factor / 1e9;
    double best = bench::best(t_raw) / bench::best(t_ours);
    if (rank == 0)
      std::printf("%10lld %8d %14.2f %14.2f %7.2fx %9.2fx %16.2f %7.2fx\n", static_cast<long long>(bytes), iters, bw_raw,
                  bw_ours, bw_ours / bw_raw, best, bw_verified, bw_verified / bw_raw);
  }
  MPI_Comm_free(&raw_comm);
  return 0;
}
