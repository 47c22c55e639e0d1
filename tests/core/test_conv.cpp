// conv2d, conv1d, max_pool2d, avg_pool2d: float64 loop references (with TF's "same" rule written
// out here), f32 vs f64, finite-difference gradients, PyTorch cross-check, error messages.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "test_util.h"

using namespace meshflow;
using mf_test::gradcheck;
using mf_test::random_tensor;
using mf_test::tensors_near;

namespace {

// TF: out = ceil(in / stride); total = max((out - 1) * stride + extent - in, 0); before = total / 2.
int64_t pad_before(const std::string& padding, int64_t in, int64_t extent, int64_t stride) {
  if (padding == "valid") return 0;
  int64_t out = (in + stride - 1) / stride;
  return std::max<int64_t>((out - 1) * stride + extent - in, 0) / 2;
}
int64_t out_size(const std::string& padding, int64_t in, int64_t extent, int64_t stride) {
  return padding == "same" ? (in + stride - 1) / stride : (in - extent) / stride + 1;
}

Tensor naive_conv2d(const Tensor& x, const Tensor& w, const Conv2dOptions& o) {
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t KH = w.size(0), KW = w.size(1), Cg = w.size(2), CO = w.size(3), COg = CO / o.groups;
  const int64_t eh = (KH - 1) * o.dilation[0] + 1, ew = (KW - 1) * o.dilation[1] + 1;
  const int64_t OH = out_size(o.padding, H, eh, o.strides[0]), OW = out_size(o.padding, W, ew, o.strides[1]);
  const int64_t pt = pad_before(o.padding, H, eh, o.strides[0]), pl = pad_before(o.padding, W, ew, o.strides[1]);
  auto xv = mf_test::values(x), wv = mf_test::values(w);
  std::vector<double> out(static_cast<size_t>(N * OH * OW * CO), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox)
        for (int64_t co = 0; co < CO; ++co) {
          const int64_t g = co / COg;
          double s = 0;
          for (int64_t i = 0; i < KH; ++i)
            for (int64_t j = 0; j < KW; ++j)
              for (int64_t c = 0; c < Cg; ++c) {
                int64_t iy = oy * o.strides[0] - pt + i * o.dilation[0], ix = ox * o.strides[1] - pl + j * o.dilation[1];
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                s += xv[((n * H + iy) * W + ix) * C + g * Cg + c] * wv[((i * KW + j) * Cg + c) * CO + co];
              }
          out[((n * OH + oy) * OW + ox) * CO + co] = s;
        }
  (void)C;
  return mf_test::from_values(out, {N, OH, OW, CO});
}

Tensor naive_pool(const Tensor& x, const Pool2dOptions& o, bool is_max) {
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  auto st = o.strides.empty() ? o.pool_size : o.strides;
  const int64_t OH = out_size(o.padding, H, o.pool_size[0], st[0]), OW = out_size(o.padding, W, o.pool_size[1], st[1]);
  const int64_t pt = pad_before(o.padding, H, o.pool_size[0], st[0]), pl = pad_before(o.padding, W, o.pool_size[1], st[1]);
  auto xv = mf_test::values(x);
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox)
        for (int64_t c = 0; c < C; ++c) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          int count = 0;
          for (int64_t i = 0; i < o.pool_size[0]; ++i)
            for (int64_t j = 0; j < o.pool_size[1]; ++j) {
              int64_t iy = oy * st[0] - pt + i, ix = ox * st[1] - pl + j;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              double v = xv[((n * H + iy) * W + ix) * C + c];
              best = std::max(best, v);
              sum += v;
              ++count;
            }
          out.push_back(is_max ? best : sum / count);
        }
  return mf_test::from_values(out, {N, OH, OW, C});
}

struct ConvCase {
  Shape x, w;
  Conv2dOptions o;
};

std::vector<ConvCase> conv_cases() {
  return {
      {{2, 7, 9, 3}, {3, 3, 3, 4}, {}},
      {{2, 7, 9, 3}, {3, 3, 3, 4}, {.padding = "same"}},
      {{1, 9, 8, 2}, {3, 2, 2, 5}, {.strides = {2, 2}}},
      {{1, 9, 8, 2}, {3, 3, 2, 5}, {.strides = {2, 2}, .padding = "same"}},
      {{2, 10, 11, 3}, {4, 4, 3, 2}, {.strides = {2, 3}, .padding = "same"}},
      {{1, 11, 9, 2}, {3, 3, 2, 3}, {.dilation = {2, 2}}},
      {{1, 11, 9, 2}, {3, 2, 2, 3}, {.padding = "same", .dilation = {2, 1}}},
      {{2, 6, 7, 4}, {3, 3, 2, 6}, {.groups = 2}},
      {{2, 6, 7, 4}, {3, 3, 1, 8}, {.padding = "same", .groups = 4}},    // depthwise, multiplier 2
      {{2, 5, 5, 6}, {1, 1, 6, 3}, {}},                                   // 1x1: im2col skipped
      {{3, 1, 13, 2}, {1, 5, 2, 3}, {.strides = {1, 2}, .padding = "same"}},
  };
}

}  // namespace

TEST(Conv2d, MatchesFloat64LoopsInEveryConfiguration) {
  int seed = 100;
  for (const ConvCase& cs : conv_cases()) {
    Tensor x = random_tensor(cs.x, ++seed), w = random_tensor(cs.w, ++seed);
    Tensor ref = naive_conv2d(x, w, cs.o);
    EXPECT_TRUE(tensors_near(conv2d(x, w, cs.o), ref, 1e-12, 1e-12)) << shape_str(cs.x) << " * " << shape_str(cs.w);
    Tensor y32 = conv2d(x.to(DType::F32), w.to(DType::F32), cs.o);
    EXPECT_EQ(y32.dtype(), DType::F32);
    EXPECT_TRUE(tensors_near(y32, ref, 1e-4, 1e-4)) << "f32 " << shape_str(cs.x) << " * " << shape_str(cs.w);
  }
}

TEST(Conv2d, NonContiguousInputsAndHalfPrecision) {
  Tensor x = random_tensor({2, 3, 6, 5}, 1).permute({0, 2, 3, 1});  // [2, 6, 5, 3], not contiguous
  Tensor w = random_tensor({3, 3, 3, 4}, 2);
  EXPECT_TRUE(tensors_near(conv2d(x, w), naive_conv2d(x, w, {}), 1e-12, 1e-12));
  Tensor yb = conv2d(x.to(DType::BF16), w.to(DType::BF16));
  EXPECT_EQ(yb.dtype(), DType::BF16);
  EXPECT_TRUE(tensors_near(yb, naive_conv2d(x.to(DType::BF16), w.to(DType::BF16), {}), 0.05, 0.01));
}

TEST(Conv2d, GradientsMatchFiniteDifferences) {
  int seed = 200;
  for (const ConvCase& cs : conv_cases()) {
    Tensor x = random_tensor(cs.x, ++seed), w = random_tensor(cs.w, ++seed);
    auto o = cs.o;
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], o); }, {x, w}))
        << shape_str(cs.x) << " * " << shape_str(cs.w);
  }
}

TEST(Conv1d, MatchesConv2dLoopsAndGradients) {
  Tensor x = random_tensor({2, 11, 4}, 300), w = random_tensor({3, 2, 6}, 301);
  Conv1dOptions o{.stride = 2, .padding = "same", .dilation = 2, .groups = 2};
  Tensor y = conv1d(x, w, o);
  Conv2dOptions o2{.strides = {1, 2}, .padding = "same", .dilation = {1, 2}, .groups = 2};
  Tensor ref = naive_conv2d(x.unsqueeze(1), w.unsqueeze(0), o2).squeeze(1);
  EXPECT_TRUE(tensors_near(y, ref, 1e-12, 1e-12));
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& v) { return conv1d(v[0], v[1], o); }, {x, w}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& v) { return conv1d(v[0], v[1]); },
                        {random_tensor({1, 7, 3}, 302), random_tensor({2, 3, 2}, 303)}));
}

TEST(Pool2d, MatchesFloat64Loops) {
  Tensor x = random_tensor({2, 7, 8, 5}, 400);
  for (const Pool2dOptions& o : {Pool2dOptions{}, Pool2dOptions{.pool_size = {3, 3}, .strides = {2, 2}},
                                 Pool2dOptions{.pool_size = {3, 2}, .strides = {2, 1}, .padding = "same"},
                                 Pool2dOptions{.pool_size = {2, 2}, .padding = "same"}}) {
    EXPECT_TRUE(tensors_near(max_pool2d(x, o), naive_pool(x, o, true), 1e-12, 1e-12));
    EXPECT_TRUE(tensors_near(avg_pool2d(x, o), naive_pool(x, o, false), 1e-12, 1e-12));
    EXPECT_TRUE(tensors_near(max_pool2d(x.to(DType::F32), o), naive_pool(x, o, true), 1e-6, 1e-6));
    EXPECT_TRUE(tensors_near(avg_pool2d(x.to(DType::F32), o), naive_pool(x, o, false), 1e-6, 1e-6));
  }
}

// Max pooling's forward takes channels in register blocks (32 floats, 16 doubles) and a remainder:
// 37 channels exercise both, with a NaN inside a block and one in the remainder.
TEST(Pool2d, MaxOverChannelBlocksMatchesLoopsAndKeepsNaN) {
  Tensor x = random_tensor({2, 6, 5, 37}, 404);
  const Pool2dOptions o{.pool_size = {3, 2}, .strides = {2, 1}, .padding = "same"};
  EXPECT_TRUE(tensors_near(max_pool2d(x, o), naive_pool(x, o, true), 1e-12, 1e-12));
  EXPECT_TRUE(tensors_near(max_pool2d(x.to(DType::F32), o), naive_pool(x, o, true), 1e-6, 1e-6));
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor y = x.to(dt).clone();
    std::vector<double> v = mf_test::values(y);
    v[(((0 * 6 + 2) * 5 + 1) * 37) + 3] = NAN;   // sample 0, row 2, column 1, channel 3 (a block)
    v[(((1 * 6 + 4) * 5 + 3) * 37) + 36] = NAN;  // sample 1, row 4, column 3, channel 36 (the remainder)
    y = from_vector(v, y.shape(), {.dtype = DType::F64}).to(dt);
    std::vector<double> out = mf_test::values(max_pool2d(y, {.pool_size = {2, 2}}));  // [2, 3, 2, 37]
    auto at = [](int n, int r, int c, int ch) { return static_cast<size_t>((((n * 3 + r) * 2 + c) * 37) + ch); };
    EXPECT_TRUE(std::isnan(out[at(0, 1, 0, 3)])) << dtype_name(dt);
    EXPECT_TRUE(std::isnan(out[at(1, 2, 1, 36)])) << dtype_name(dt);
    size_t nans = 0;
    for (double o2 : out) nans += std::isnan(o2);
    EXPECT_EQ(nans, 2u) << dtype_name(dt);
  }
}

// f32 pooling runs through oneDNN; its gradients must match the f64 kernels checked above.
TEST(Pool2d, Float32GradientsAgreeWithFloat64) {
  Tensor x = random_tensor({2, 7, 8, 5}, 402);
  for (const Pool2dOptions& o : {Pool2dOptions{}, Pool2dOptions{.pool_size = {3, 3}, .strides = {2, 2}, .padding = "same"},
                                 Pool2dOptions{.pool_size = {2, 3}, .strides = {1, 2}}}) {
    for (bool is_max : {true, false}) {
      Tensor dy = random_tensor((is_max ? max_pool2d(x, o) : avg_pool2d(x, o)).shape(), 403);
      auto input_grad = [&](DType dt) {
        Tensor xs = x.to(dt).detach().set_requires_grad();
        return grad({is_max ? max_pool2d(xs, o) : avg_pool2d(xs, o)}, {xs}, {dy.to(dt)})[0];
      };
      EXPECT_TRUE(tensors_near(input_grad(DType::F32), input_grad(DType::F64), 1e-6, 1e-6)) << (is_max ? "max" : "avg");
    }
  }
}

TEST(Pool2d, GradientsMatchFiniteDifferences) {
  Tensor x = random_tensor({2, 5, 6, 3}, 401);  // distinct values: max is differentiable here
  for (const Pool2dOptions& o : {Pool2dOptions{}, Pool2dOptions{.pool_size = {3, 3}, .strides = {2, 2}, .padding = "same"},
                                 Pool2dOptions{.pool_size = {2, 3}, .strides = {1, 2}}}) {
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& v) { return max_pool2d(v[0], o); }, {x}));
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& v) { return avg_pool2d(v[0], o); }, {x}));
  }
}

TEST(Pool2d, MaxGradientGoesToFirstMaximumOnTies) {
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor x = ones({1, 2, 2, 1}, {.dtype = dt, .requires_grad = true});
    sum(max_pool2d(x)).backward();
    EXPECT_TRUE(tensors_near(x.grad(), mf_test::from_values({1, 0, 0, 0}, {1, 2, 2, 1}))) << dtype_name(dt);
  }
}

TEST(ConvErrors, NameTheOpShapesAndHint) {
  EXPECT_MF_ERROR(conv2d(ones({1, 5, 5, 3}), ones({3, 3, 4, 8})), "conv2d", "channel mismatch", "[1, 5, 5, 3]",
                  "[3, 3, 4, 8]");
  EXPECT_MF_ERROR(conv2d(ones({1, 5, 5, 6}), ones({3, 3, 2, 8}), {.groups = 4}), "conv2d", "groups=4", "6");
  EXPECT_MF_ERROR(conv2d(ones({5, 5, 3}), ones({3, 3, 3, 8})), "conv2d", "rank 4", "[5, 5, 3]");
  EXPECT_MF_ERROR(conv2d(ones({1, 5, 5, 3}), ones({3, 3, 8})), "conv2d", "kernel of rank 4", "[3, 3, 8]");
  EXPECT_MF_ERROR(conv2d(ones({1, 2, 2, 3}), ones({3, 3, 3, 8})), "conv2d", "larger than input", "same");
  EXPECT_MF_ERROR(conv2d(ones({1, 5, 5, 3}), ones({3, 3, 3, 8}), {.padding = "full"}), "conv2d", "\"full\"");
  EXPECT_MF_ERROR(conv2d(ones({1, 5, 5, 3}), ones({3, 3, 3, 8}), {.strides = {0, 1}}), "conv2d", "strides");
  EXPECT_MF_ERROR(conv1d(ones({1, 5, 3}), ones({3, 2, 8})), "conv1d", "channel mismatch", "[1, 5, 3]");
  EXPECT_MF_ERROR(conv1d(ones({1, 5, 5, 3}), ones({3, 3, 8})), "conv1d", "rank 3");
  EXPECT_MF_ERROR(max_pool2d(ones({4, 4, 3})), "max_pool2d", "rank 4", "[4, 4, 3]");
  EXPECT_MF_ERROR(avg_pool2d(ones({1, 4, 4, 3}), {.pool_size = {2}}), "avg_pool2d", "2 values");
}

// Runs PyTorch (NCHW) on the same data, padding explicitly by TF's rule, and compares.
TEST(Conv2d, AgreesWithPyTorch) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3-torch missing";
  Tensor x = random_tensor({2, 9, 10, 4}, 500), w = random_tensor({3, 3, 2, 6}, 501);
  const std::string dir = ::testing::TempDir();
  auto dump = [&](const Tensor& t, const std::string& name) {
    std::ofstream f(dir + name);
    f.precision(17);
    for (double v : mf_test::values(t)) f << v << "\n";
  };
  dump(x, "mf_x.txt");
  dump(w, "mf_w.txt");
  std::ofstream script(dir + "mf_conv.py");
  script << "import torch, torch.nn.functional as F\n"
            "d='" << dir << "'\n"
            "def load(n, s): return torch.tensor([float(v) for v in open(d+n)], dtype=torch.float64).reshape(s)\n"
            "x = load('mf_x.txt', (2, 9, 10, 4)).permute(0, 3, 1, 2)\n"
            "w = load('mf_w.txt', (3, 3, 2, 6)).permute(3, 2, 0, 1)\n"
            "def same(i, k, s):\n"
            "    o = (i + s - 1) // s; t = max((o - 1) * s + k - i, 0); return t // 2, t - t // 2\n"
            "pt, pb = same(9, 5, 2); pl, pr = same(10, 3, 1)\n"
            "y = F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, stride=(2, 1), dilation=(2, 1), groups=2)\n"
            "mp = F.max_pool2d(x, 3, 2)\n"
            "qt, qb = same(9, 3, 2); ql, qr = same(10, 3, 2)\n"
            "ones = F.pad(torch.ones_like(x), (ql, qr, qt, qb))\n"
            "ap = F.avg_pool2d(F.pad(x, (ql, qr, qt, qb)), 3, 2, divisor_override=1) / F.avg_pool2d(ones, 3, 2, divisor_override=1)\n"
            "for name, t in (('y', y), ('mp', mp), ('ap', ap)):\n"
            "    open(d+'mf_'+name+'.txt', 'w').write('\\n'.join(repr(v) for v in t.permute(0, 2, 3, 1).flatten().tolist()))\n";
  script.close();
  ASSERT_EQ(std::system(("/usr/bin/python3 " + dir + "mf_conv.py").c_str()), 0);
  auto load = [&](const std::string& name, const Shape& s) {
    std::ifstream f(dir + name);
    std::vector<double> v;
    for (double d; f >> d;) v.push_back(d);
    return mf_test::from_values(v, s);
  };
  Tensor y = conv2d(x, w, {.strides = {2, 1}, .padding = "same", .dilation = {2, 1}, .groups = 2});
  EXPECT_TRUE(tensors_near(y, load("mf_y.txt", y.shape()), 1e-10, 1e-10));
  Tensor mp = max_pool2d(x, {.pool_size = {3, 3}, .strides = {2, 2}});
  EXPECT_TRUE(tensors_near(mp, load("mf_mp.txt", mp.shape()), 1e-12, 1e-12));
  Tensor ap = avg_pool2d(x, {.pool_size = {3, 3}, .strides = {2, 2}, .padding = "same"});
  EXPECT_TRUE(tensors_near(ap, load("mf_ap.txt", ap.shape()), 1e-12, 1e-12));
}

// f32 runs through oneDNN by default; its forward and both gradients must agree with the f64
// im2col path (which the finite-difference checks above validate), and so must f32 im2col.
TEST(Conv2d, Float32KernelsAgreeWithFloat64Gradients) {
  int seed = 600;
  for (ConvAlgorithm alg : {ConvAlgorithm::OneDnn, ConvAlgorithm::Im2col}) {
    set_cpu_conv_algorithm(alg);
    for (const ConvCase& cs : conv_cases()) {
      Tensor x = random_tensor(cs.x, ++seed), w = random_tensor(cs.w, ++seed);
      Tensor dy = random_tensor(naive_conv2d(x, w, cs.o).shape(), ++seed);
      auto grads = [&](DType dt) {
        Tensor xs = x.to(dt).detach().set_requires_grad(), ws = w.to(dt).detach().set_requires_grad();
        Tensor y = conv2d(xs, ws, cs.o);
        std::vector<Tensor> g = grad({y}, {xs, ws}, {dy.to(dt)});
        return std::vector<Tensor>{y, g[0], g[1]};
      };
      auto g64 = grads(DType::F64), g32 = grads(DType::F32);
      for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(tensors_near(g32[i], g64[i], 1e-4, 1e-4))
            << (alg == ConvAlgorithm::OneDnn ? "oneDNN " : "im2col ") << i << " " << shape_str(cs.x) << " * "
            << shape_str(cs.w);
    }
  }
  set_cpu_conv_algorithm(ConvAlgorithm::Auto);
}
