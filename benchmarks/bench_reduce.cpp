// Reductions and normalizations on the CPU: sum bandwidth against memcpy, softmax rows,
// layer_norm forward and backward, with PyTorch's time for the same work when torch is installed.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "meshflow/core/core.h"
#include "timing.h"

namespace mf = meshflow;

namespace {

// Median seconds of 15 runs after two warm-up runs, as the PyTorch script below times its side.
double time_it(const std::function<void()>& fn) { return bench::median_seconds({.repeats = 15, .warmups = 2}, fn); }

// The same workloads in PyTorch (median of 15), printed as "name seconds" lines.
const char* kTorchScript = R"PY(
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
def med(fn):
    fn(); fn(); ts = []
    for _ in range(15):
        a = time.perf_counter(); fn(); ts.append(time.perf_counter() - a)
    return sorted(ts)[len(ts) // 2]
x = torch.rand(16 << 20)
print('sum', med(lambda: x.sum()))
s = torch.rand(128, 10000)
print('softmax', med(lambda: torch.softmax(s, -1)))
l = torch.rand(4096, 1024, requires_grad=True)
g, b = torch.ones(1024, requires_grad=True), torch.zeros(1024, requires_grad=True)
w = torch.rand(4096, 1024)
print('layer_norm', med(lambda: torch.nn.functional.layer_norm(l, (1024,), g, b)))
print('layer_norm_fwd_bwd', med(lambda: torch.autograd.grad((torch.nn.functional.layer_norm(l, (1024,), g, b) * w).sum(), [l, g, b])))
x = torch.rand(64, 32, 32, 64).permute(0, 3, 1, 2).requires_grad_()  # NHWC memory, as ours
g, b = torch.ones(64, requires_grad=True), torch.zeros(64, requires_grad=True)
rm, rv, w = torch.zeros(64), torch.ones(64), torch.rand(64, 32, 32, 64).permute(0, 3, 1, 2)
bn = lambda: torch.nn.functional.batch_norm(x, rm, rv, g, b, training=True)
with torch.no_grad():
    print('batch_norm', med(bn))
print('batch_norm_fwd_bwd', med(lambda: torch.autograd.grad((bn() * w).sum(), [x, g, b])))
)PY";

double torch_time(const std::string& text, const std::string& name) {
  auto p = text.find(name + " ");
  return p == std::string::npos ? 0 : std::atof(text.c_str() + p + name.size() + 1);
}

void row(const char* what, double seconds, double bytes, double torch_seconds) {
  std::printf("%-34s %9.3f ms %8.2f GB/s", what, seconds * 1e3, bytes / seconds / 1e9);
  if (torch_seconds > 0) std::printf("   torch %9.3f ms (ours/torch %.2fx time)", torch_seconds * 1e3, seconds / torch_seconds);
  std::printf("\n");
}

}  // namespace

int main() {
  const int threads = mf::num_threads();
  std::string torch_out;
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0) {
    std::FILE* f = std::fopen("/tmp/mf_bench_reduce.py", "w");
    std::fputs(kTorchScript, f);
    std::fclose(f);
    std::FILE* p = popen(("/usr/bin/python3 /tmp/mf_bench_reduce.py " + std::to_string(threads)).c_str(), "r");
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) torch_out.append(buf, n);
    pclose(p);
  }
  std::printf("threads: %d (bytes counted: data read + written once)\n", threads);

  const int64_t n = 16 << 20;
  mf::Tensor x = mf::rand({n});
  std::vector<float> dst(static_cast<size_t>(n));
  const float* src = x.data<float>();
  row("memcpy 16M f32 (read+write)", time_it([&] { std::memcpy(dst.data(), src, n * sizeof(float)); }), 2.0 * n * 4, 0);
  row("sum 16M f32 (read)", time_it([&] { mf::sum(x); }), 1.0 * n * 4, torch_time(torch_out, "sum"));
  mf::Tensor x2 = x.reshape({4096, 4096});
  row("sum 4096x4096 axis 0 (columns)", time_it([&] { mf::sum(x2, {0}); }), 1.0 * n * 4, 0);
  row("max 4096x4096 axis 1 (rows)", time_it([&] { mf::max(x2, {1}); }), 1.0 * n * 4, 0);

  mf::Tensor s = mf::rand({128, 10000});
  row("softmax 128x10000 axis -1", time_it([&] { mf::softmax(s, -1); }), 2.0 * s.numel() * 4, torch_time(torch_out, "softmax"));
  row("log_softmax 128x10000 axis -1", time_it([&] { mf::log_softmax(s, -1); }), 2.0 * s.numel() * 4, 0);
  row("softmax 128x10000 axis 0", time_it([&] { mf::softmax(s, 0); }), 2.0 * s.numel() * 4, 0);

  mf::Tensor l = mf::rand({4096, 1024});
  l.set_requires_grad();
  mf::Tensor gamma = mf::ones({1024}, {.requires_grad = true}), beta = mf::zeros({1024}, {.requires_grad = true});
  mf::Tensor w = mf::rand({4096, 1024});
  row("layer_norm 4096x1024", time_it([&] { mf::NoGradGuard ng; mf::layer_norm(l, gamma, beta); }), 2.0 * l.numel() * 4,
      torch_time(torch_out, "layer_norm"));
  row("layer_norm 4096x1024 fwd+bwd", time_it([&] {
        mf::grad({mf::sum(mf::layer_norm(l, gamma, beta) * w)}, {l, gamma, beta});
      }), 5.0 * l.numel() * 4, torch_time(torch_out, "layer_norm_fwd_bwd"));

  mf::Tensor bx = mf::rand({64, 32, 32, 64});
  bx.set_requires_grad();
  mf::Tensor bg = mf::ones({64}, {.requires_grad = true}), bb = mf::zeros({64}, {.requires_grad = true});
  mf::Tensor rm = mf::zeros({64}), rv = mf::ones({64}), bw = mf::rand({64, 32, 32, 64});
  row("batch_norm train 64x32x32x64", time_it([&] { mf::NoGradGuard ng; mf::batch_norm(bx, bg, bb, rm, rv, true); }),
      2.0 * bx.numel() * 4, torch_time(torch_out, "batch_norm"));
  row("batch_norm train 64x32x32x64 fwd+bwd", time_it([&] {
        mf::grad({mf::sum(mf::batch_norm(bx, bg, bb, rm, rv, true) * bw)}, {bx, bg, bb});
      }), 5.0 * bx.numel() * 4, torch_time(torch_out, "batch_norm_fwd_bwd"));
  return 0;
}
