// conv2d forward and forward+backward in ms: Meshflow with each CPU algorithm (oneDNN, the default,
// and im2col + OpenBLAS GEMM), oneDNN's primitives called directly on the same NHWC data, and
// PyTorch through benchmarks/peers/conv_torch.py.
// Run: OMP_NUM_THREADS=2 ./build/benchmarks/bench_conv   (runs the torch peer when it is installed)
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "meshflow/core/core.h"
#include "timing.h"

namespace mf = meshflow;
using dnnl::memory;

namespace {

struct ConvCase {
  const char* name;
  int64_t n, h, w, cin, cout, k;
  const char* padding;
};

// Best of at least 3 runs after a warm-up, more until they add up to 0.4 s (at most 30), in ms.
double best_ms(const std::function<void()>& fn) {
  return 1e3 * bench::best_seconds({.repeats = 3, .warmups = 1, .budget_s = 0.4, .max_repeats = 30}, fn);
}

struct Timing {
  double fwd_ms, fwd_bwd_ms;
};

Timing time_meshflow(const ConvCase& c, mf::ConvAlgorithm algorithm) {
  mf::set_cpu_conv_algorithm(algorithm);
  mf::Tensor x = mf::randn({c.n, c.h, c.w, c.cin}), w = mf::randn({c.k, c.k, c.cin, c.cout});
  mf::Conv2dOptions o{.padding = c.padding};
  Timing t;
  t.fwd_ms = best_ms([&] { mf::NoGradGuard ng; mf::conv2d(x, w, o); });
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  mf::Tensor dy = mf::ones(mf::conv2d(x.detach(), w.detach(), o).shape());
  t.fwd_bwd_ms = best_ms([&] { mf::grad({mf::conv2d(x, w, o)}, {x, w}, {dy}); });
  return t;
}

// oneDNN on user memory in NHWC (activations) and HWIO (weights, Meshflow's layout); the
// primitive picks its own weight layout ("any") and the reorder into it is timed, since
// weights change every training step. Primitives are created once, outside the timing.
Timing time_onednn(const ConvCase& c, std::string* impl) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const int64_t pad_total_h = c.padding == std::string("same") ? c.k - 1 : 0;
  const int64_t oh = c.h + pad_total_h - c.k + 1, ow = c.w + pad_total_h - c.k + 1;
  const memory::dims src_dims{c.n, c.cin, c.h, c.w}, wei_dims{c.cout, c.cin, c.k, c.k}, dst_dims{c.n, c.cout, oh, ow};
  const memory::dims strides{1, 1}, pad_l{pad_total_h / 2, pad_total_h / 2},
      pad_r{pad_total_h - pad_total_h / 2, pad_total_h - pad_total_h / 2};
  using tag = memory::format_tag;
  const auto f32 = memory::data_type::f32;
  memory::desc src_md(src_dims, f32, tag::nhwc), dst_md(dst_dims, f32, tag::nhwc);
  memory::desc wei_any(wei_dims, f32, tag::any), wei_user_md(wei_dims, f32, tag::hwio);
  dnnl::convolution_forward::primitive_desc fwd_pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src_md,
                                      wei_any, dst_md, strides, pad_l, pad_r),
      eng);
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd(
      dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, src_md, wei_any, dst_md, strides,
                                            pad_l, pad_r),
      eng, fwd_pd);
  dnnl::convolution_backward_weights::primitive_desc bwd_w_pd(
      dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src_md, wei_any, dst_md, strides,
                                               pad_l, pad_r),
      eng, fwd_pd);
  *impl = std::string(fwd_pd.impl_info_str()) + "/" + bwd_data_pd.impl_info_str() + "/" + bwd_w_pd.impl_info_str();
  mf::Tensor x = mf::randn({c.n, c.h, c.w, c.cin}), w = mf::randn({c.k, c.k, c.cin, c.cout});
  mf::Tensor y = mf::empty({c.n, oh, ow, c.cout}), dy = mf::ones({c.n, oh, ow, c.cout});
  mf::Tensor dx = mf::empty(x.shape()), dw = mf::empty(w.shape());
  memory src(src_md, eng, x.raw_data()), dst(dst_md, eng, y.raw_data()), wei_user(wei_user_md, eng, w.raw_data());
  memory diff_dst(dst_md, eng, dy.raw_data()), diff_src(src_md, eng, dx.raw_data());
  memory diff_wei_user(wei_user_md, eng, dw.raw_data());
  memory wei_fwd(fwd_pd.weights_desc(), eng), wei_bwd(bwd_data_pd.weights_desc(), eng);
  memory diff_wei(bwd_w_pd.diff_weights_desc(), eng);
  dnnl::reorder to_fwd(wei_user, wei_fwd), to_bwd(wei_user, wei_bwd), from_diff(diff_wei, diff_wei_user);
  dnnl::convolution_forward fwd(fwd_pd);
  dnnl::convolution_backward_data bwd_data(bwd_data_pd);
  dnnl::convolution_backward_weights bwd_w(bwd_w_pd);
  auto forward = [&] {
    to_fwd.execute(strm, wei_user, wei_fwd);
    fwd.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei_fwd}, {DNNL_ARG_DST, dst}});
  };
  auto backward = [&] {
    to_bwd.execute(strm, wei_user, wei_bwd);
    bwd_data.execute(strm, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, wei_bwd}, {DNNL_ARG_DIFF_SRC, diff_src}});
    bwd_w.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, diff_wei}});
    from_diff.execute(strm, diff_wei, diff_wei_user);
  };
  Timing t;
  t.fwd_ms = best_ms([&] { forward(); strm.wait(); });
  t.fwd_bwd_ms = best_ms([&] { forward(); backward(); strm.wait(); });
  return t;
}

// "name fwd_ms fwd_bwd_ms" lines from the PyTorch peer, keyed by name; empty without torch.
std::map<std::string, Timing> run_torch_peer(int threads) {
  std::map<std::string, Timing> out;
  std::string cmd = "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 " MESHFLOW_BENCH_DIR
                    "/peers/conv_torch.py --threads " + std::to_string(threads) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char name[64];
  double f, fb;
  while (std::fscanf(p, "%63s %lf %lf", name, &f, &fb) == 3) out[name] = {f, fb};
  pclose(p);
  return out;
}

}  // namespace

int main() {
  const int threads = omp_get_max_threads();
  mf::set_num_threads(threads);
  const ConvCase cases[] = {{"cnn_conv1", 64, 28, 28, 1, 32, 3, "valid"},
                            {"cnn_conv2", 64, 13, 13, 32, 64, 3, "valid"},
                            {"resnet_3x3", 8, 56, 56, 64, 64, 3, "same"}};
  std::map<std::string, Timing> torch = run_torch_peer(threads);
  std::printf("conv2d f32 NHWC, %d thread(s); ms (best of repeats), fwd | fwd+bwd\n", threads);
  std::printf("%-11s %17s %17s %17s %17s %9s %9s\n", "case", "mf(oneDNN)", "mf(im2col)", "raw oneDNN", "torch",
              "mf/raw", "mf/torch");
  for (const ConvCase& c : cases) {
    Timing i = time_meshflow(c, mf::ConvAlgorithm::Im2col);
    Timing m = time_meshflow(c, mf::ConvAlgorithm::OneDnn);
    std::string impl;
    Timing d = time_onednn(c, &impl);
    auto it = torch.find(c.name);
    Timing t = it != torch.end() ? it->second : Timing{0, 0};
    std::printf("%-11s %7.2f | %7.2f %7.2f | %7.2f %7.2f | %7.2f %7.2f | %7.2f %4.2f|%4.2f %4.2f|%4.2f  [%s]\n",
                c.name, m.fwd_ms, m.fwd_bwd_ms, i.fwd_ms, i.fwd_bwd_ms, d.fwd_ms, d.fwd_bwd_ms, t.fwd_ms, t.fwd_bwd_ms, m.fwd_ms / d.fwd_ms,
                m.fwd_bwd_ms / d.fwd_bwd_ms, t.fwd_ms > 0 ? m.fwd_ms / t.fwd_ms : 0.0,
                t.fwd_bwd_ms > 0 ? m.fwd_bwd_ms / t.fwd_bwd_ms : 0.0, impl.c_str());
  }
  std::printf("ratios are time / time: below 1 means Meshflow is faster\n");
  return 0;
}
