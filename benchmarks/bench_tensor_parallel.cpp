// Tensor parallelism vs data parallelism at equal ranks, on a Megatron MLP block
// (x -> relu(x W1 + b1) W2 + b2, d -> 4d -> d, f32) whose input needs its gradient (a block inside a
// network), through the same partitioner (parallel/partitioner.h):
//   TP: Mesh(model=N), W1 split by columns, b1 with it, W2 by rows; every rank sees every row.
//   DP: Mesh(data=N), rows split, weights whole (their gradients all-reduced).
// For each: the bytes one step hands the communicator, measured by a CountingCommunicator, next to
// the analytic count (TP: one all-reduce of the block's output [B, d] forward and one of its
// input's gradient [B, d] backward, 2 B d 4 bytes; DP: every weight's gradient, 4 (2 d 4d + 5d)
// bytes, the 4-byte loss, and the all-gather of the input's gradient B d 4), and the median step time (forward, backward, SGD on this rank's
// parts) over 10 steps after 2 warm-up steps.
//   OMP_NUM_THREADS=1 mpirun -np 2 ./bench_tensor_parallel [d] [batch]
//   ./bench_tensor_parallel [d] [batch]      # one process: 2 devices as threads
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "meshflow/distributed/counting.h"
#include "meshflow/distributed/world.h"
#include "meshflow/meshflow.h"
#include "meshflow/parallel/partitioner.h"

namespace mf = meshflow;
namespace dist = meshflow::distributed;
using mf::Replicated;

namespace {

struct Result {
  int64_t measured = 0, planned = 0;
  double step_ms = 0;
};

Result run(std::shared_ptr<dist::Communicator> comm, bool tensor_parallel, int64_t d, int64_t batch) {
  const int n = comm->size();
  mf::Tensor w1 = mf::full({d, 4 * d}, 0.01), b1 = mf::zeros({4 * d}), w2 = mf::full({4 * d, d}, 0.01),
             b2 = mf::zeros({d});
  for (auto* w : {&w1, &b1, &w2, &b2}) w->set_requires_grad(true);
  auto fn = [&](const std::vector<mf::Tensor>& xs) {
    mf::Tensor y = mf::matmul(mf::relu(mf::matmul(xs[0], w1) + b1), w2) + b2 - xs[1];
    return std::vector<mf::Tensor>{mf::mean(y * y)};
  };
  mf::SpmdOptions o;
  o.input_requires_grad = {true, false};  // x's gradient (the block's input), not the target's
  std::vector<std::pair<mf::Tensor, mf::Layout>> annotations;
  mf::Mesh mesh = tensor_parallel ? mf::Mesh({{"model", n}}) : mf::Mesh({{"data", n}});
  if (tensor_parallel) {
    annotations = {{w1, mf::layout({Replicated, "model"})}, {b1, mf::layout({"model"})},
                   {w2, mf::layout({"model", Replicated})}};
  } else {
    o.inputs = {mf::layout({"data", Replicated}), mf::layout({"data", Replicated})};
  }
  mf::SpmdProgram p(fn, {{{batch, d}}, {{batch, d}}}, mesh, annotations, o);
  auto counted = std::make_shared<dist::CountingCommunicator>(comm);
  p.bind(counted);
  mf::Tensor x = mf::full({batch, d}, 0.5), t = mf::full({batch, d}, 0.25);
  std::vector<double> times;
  for (int step = 0; step < 12; ++step) {
    if (step == 2) counted->counts()->reset();
    mf::Tensor xi = x.detach().set_requires_grad(true);
    comm->barrier();
    auto start = std::chrono::steady_clock::now();
    mf::Tensor loss = p.run({xi, t})[0];
    loss.backward();
    {
      mf::NoGradGuard ng;
      for (mf::Tensor w : p.local_weights()) {
        w.copy_(w - w.grad() * 0.01);
        w.zero_grad();
      }
    }
    comm->barrier();
    if (step >= 2) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  Result r;
  r.measured = counted->counts()->total_bytes() / 10;
  r.planned = p.bytes_per_step(comm->rank());
  r.step_ms = 1e3 * times[times.size() / 2];
  return r;
}

void report(int rank, int n, int64_t d, int64_t batch, const Result& tp, const Result& dp) {
  if (rank != 0) return;
  const int64_t analytic_tp = 2 * batch * d * 4, analytic_dp = 4 * (2 * d * 4 * d + 5 * d) + 4 + batch * d * 4;
  std::printf("Megatron MLP block d=%lld (4d hidden), batch %lld, f32, %d ranks\n", static_cast<long long>(d),
              static_cast<long long>(batch), n);
  std::printf("%-22s %14s %14s %14s %10s\n", "", "measured B", "planned B", "analytic B", "step ms");
  std::printf("%-22s %14lld %14lld %14lld %10.2f\n", "tensor parallel", static_cast<long long>(tp.measured),
              static_cast<long long>(tp.planned), static_cast<long long>(analytic_tp), tp.step_ms);
  std::printf("%-22s %14lld %14lld %14lld %10.2f\n", "data parallel", static_cast<long long>(dp.measured),
              static_cast<long long>(dp.planned), static_cast<long long>(analytic_dp), dp.step_ms);
  std::printf("TP / DP: bytes %.3fx, step time %.2fx\n", double(tp.measured) / double(dp.measured), tp.step_ms / dp.step_ms);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t d = argc > 1 ? std::atoll(argv[1]) : 1024, batch = argc > 2 ? std::atoll(argv[2]) : 64;
  auto world = dist::detect_world();
  if (world.size > 1) {
    auto comm = dist::make_communicator("mpi");
    Result tp = run(comm, true, d, batch), dp = run(comm, false, d, batch);
    report(comm->rank(), comm->size(), d, batch, tp, dp);
    return 0;
  }
  dist::LocalGroup group(2);
  Result tp[2], dp[2];
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      tp[r] = run(group.communicator(r), true, d, batch);
      dp[r] = run(group.communicator(r), false, d, batch);
    });
  for (auto& t : threads) t.join();
  report(0, 2, d, batch, tp[0], dp[0]);
  return 0;
}
