// max_pool2d / avg_pool2d forward and forward+backward in ms: Meshflow (f32 runs oneDNN pooling) vs oneDNN
// primitives called directly on the same NHWC data: the cost of the op layer and the cache.
// Run: OMP_NUM_THREADS=2 ./build/benchmarks/bench_pool
#include <omp.h>

#include <cstdio>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>

#include "meshflow/core/core.h"
#include "timing.h"

namespace mf = meshflow;
using dnnl::memory;

namespace {

struct PoolCase {
  const char* name;
  int64_t n, h, w, c, k, s;
};

// Best of at least 3 runs after a warm-up, more until they add up to 0.3 s (at most 50), in ms.
double best_ms(const std::function<void()>& fn) {
  return 1e3 * bench::best_seconds({.repeats = 3, .warmups = 1, .budget_s = 0.3, .max_repeats = 50}, fn);
}

struct Timing {
  double fwd_ms, fwd_bwd_ms;
};

Timing time_meshflow(const PoolCase& c, bool is_max) {
  mf::Tensor x = mf::randn({c.n, c.h, c.w, c.c});
  mf::Pool2dOptions o{.pool_size = {c.k, c.k}, .strides = {c.s, c.s}};
  auto pool = [&](const mf::Tensor& t) { return is_max ? mf::max_pool2d(t, o) : mf::avg_pool2d(t, o); };
  Timing t;
  t.fwd_ms = best_ms([&] { mf::NoGradGuard ng; pool(x); });
  x.set_requires_grad(true);
  mf::Tensor dy = mf::ones(pool(x.detach()).shape());
  t.fwd_bwd_ms = best_ms([&] { mf::grad({pool(x)}, {x}, {dy}); });
  return t;
}

Timing time_onednn(const PoolCase& c, bool is_max) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const int64_t oh = (c.h - c.k) / c.s + 1, ow = (c.w - c.k) / c.s + 1;
  const auto f32 = memory::data_type::f32;
  memory::desc src_md({c.n, c.c, c.h, c.w}, f32, memory::format_tag::nhwc);
  memory::desc dst_md({c.n, c.c, oh, ow}, f32, memory::format_tag::nhwc);
  const auto alg = is_max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_exclude_padding;
  const memory::dims strides{c.s, c.s}, kernel{c.k, c.k}, pad{0, 0};
  dnnl::pooling_forward::primitive_desc fwd_pd(
      {dnnl::prop_kind::forward_training, alg, src_md, dst_md, strides, kernel, pad, pad}, eng);
  dnnl::pooling_backward::primitive_desc bwd_pd({alg, src_md, dst_md, strides, kernel, pad, pad}, eng, fwd_pd);
  mf::Tensor x = mf::randn({c.n, c.h, c.w, c.c}), y = mf::empty({c.n, oh, ow, c.c});
  mf::Tensor dy = mf::ones(y.shape()), dx = mf::empty(x.shape());
  memory src(src_md, eng, x.raw_data()), dst(dst_md, eng, y.raw_data());
  memory diff_dst(dst_md, eng, dy.raw_data()), diff_src(src_md, eng, dx.raw_data());
  memory workspace(fwd_pd.workspace_desc(), eng);
  dnnl::pooling_forward fwd(fwd_pd);
  dnnl::pooling_backward bwd(bwd_pd);
  auto forward = [&] {
    fwd.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_WORKSPACE, workspace}});
  };
  Timing t;
  t.fwd_ms = best_ms([&] { forward(); strm.wait(); });
  t.fwd_bwd_ms = best_ms([&] {
    forward();
    bwd.execute(strm, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}, {DNNL_ARG_WORKSPACE, workspace}});
    strm.wait();
  });
  return t;
}

}  // namespace

int main() {
  const int threads = omp_get_max_threads();
  mf::set_num_threads(threads);
  const PoolCase cases[] = {{"cnn_pool1", 64, 26, 26, 32, 2, 2},
                            {"cnn_pool2", 64, 11, 11, 64, 2, 2},
                            {"resnet_pool", 8, 112, 112, 64, 3, 2}};
  std::printf("pool2d f32 NHWC, %d thread(s); ms (best of repeats), fwd | fwd+bwd\n", threads);
  std::printf("%-12s %4s %17s %17s %11s\n", "case", "op", "meshflow", "oneDNN", "mf/oneDNN");
  for (const PoolCase& c : cases)
    for (bool is_max : {true, false}) {
      Timing m = time_meshflow(c, is_max), d = time_onednn(c, is_max);
      std::printf("%-12s %4s %7.3f | %7.3f %7.3f | %7.3f %5.2f|%5.2f\n", c.name, is_max ? "max" : "avg", m.fwd_ms,
                  m.fwd_bwd_ms, d.fwd_ms, d.fwd_bwd_ms, m.fwd_ms / d.fwd_ms, m.fwd_bwd_ms / d.fwd_bwd_ms);
    }
  return 0;
}
