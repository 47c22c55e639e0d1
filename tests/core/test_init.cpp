// Initializers: Keras's fans, variance of each scheme against its closed form, truncation,
// orthogonality, lookup by name.
#include <cmath>
#include <set>
#include <thread>

#include "test_util.h"

using namespace meshflow;

namespace {
struct Moments {
  double mean = 0, var = 0, max_abs = 0;
};

Moments moments(const Tensor& t) {
  auto v = mf_test::values(t);
  Moments m;
  for (double e : v) m.mean += e;
  m.mean /= static_cast<double>(v.size());
  for (double e : v) {
    m.var += (e - m.mean) * (e - m.mean);
    m.max_abs = std::max(m.max_abs, std::fabs(e));
  }
  m.var /= static_cast<double>(v.size());
  return m;
}
}  // namespace

TEST(Init, FansFollowKeras) {
  EXPECT_EQ(init::fans({7}), std::make_pair(7.0, 7.0));
  EXPECT_EQ(init::fans({3, 5}), std::make_pair(3.0, 5.0));
  EXPECT_EQ(init::fans({3, 3, 16, 32}), std::make_pair(9.0 * 16, 9.0 * 32));  // conv kernel [kh, kw, in, out]
  EXPECT_EQ(init::fans({}), std::make_pair(1.0, 1.0));
}

TEST(Init, ConstantsAndPlainDistributions) {
  EXPECT_TRUE(mf_test::tensors_near(init::zeros({2, 3}), zeros({2, 3}), 0, 0));
  EXPECT_TRUE(mf_test::tensors_near(init::ones({4}, DType::F64), ones({4}, {.dtype = DType::F64}), 0, 0));
  EXPECT_EQ(init::constant({2}, 2.5, DType::BF16).dtype(), DType::BF16);
  Generator gen(1);
  Moments u = moments(init::uniform({200000}, -2, 4, &gen));
  EXPECT_NEAR(u.mean, 1.0, 0.02);
  EXPECT_NEAR(u.var, 36.0 / 12.0, 0.03 * 3.0);
  Moments n = moments(init::normal({200000}, 1.0, 0.5, &gen, DType::F64));
  EXPECT_NEAR(n.mean, 1.0, 0.01);
  EXPECT_NEAR(n.var, 0.25, 0.03 * 0.25);
  // Truncated at two standard deviations: variance 0.77374 sigma^2 (standard normal on [-2, 2]).
  Moments t = moments(init::truncated_normal({200000}, 0.0, 0.5, &gen));
  EXPECT_LE(t.max_abs, 1.0 + 1e-6);
  EXPECT_NEAR(t.var, 0.7737413 * 0.25, 0.03 * 0.7737413 * 0.25);
}

TEST(Init, VarianceScalingMatchesClosedForms) {
  Generator gen(2);
  const Shape dense{600, 400};
  const double fi = 600, fo = 400;
  const double limit = std::sqrt(6.0 / (fi + fo));
  Moments gu = moments(init::glorot_uniform(dense, &gen));
  EXPECT_NEAR(gu.var, limit * limit / 3.0, 0.03 * limit * limit / 3.0);
  EXPECT_LE(gu.max_abs, limit);
  // The truncated normals divide their stddev by 0.8796..., so the variance is exactly scale/fan
  // and every value lies within two of the (divided) stddevs.
  const double gn_std = std::sqrt(2.0 / (fi + fo)) / 0.87962566103423978;
  Moments gn = moments(init::glorot_normal(dense, &gen));
  EXPECT_NEAR(gn.var, 2.0 / (fi + fo), 0.03 * 2.0 / (fi + fo));
  EXPECT_LE(gn.max_abs, 2.0 * gn_std * (1 + 1e-6));
  Moments hu = moments(init::he_uniform(dense, &gen));
  EXPECT_NEAR(hu.var, 2.0 / fi, 0.03 * 2.0 / fi);
  Moments hn = moments(init::he_normal(dense, &gen, DType::F64));
  EXPECT_NEAR(hn.var, 2.0 / fi, 0.03 * 2.0 / fi);
  EXPECT_LE(hn.max_abs, 2.0 * std::sqrt(2.0 / fi) / 0.87962566103423978 * (1 + 1e-9));
  Moments ln = moments(init::lecun_normal(dense, &gen));
  EXPECT_NEAR(ln.var, 1.0 / fi, 0.03 / fi);
  EXPECT_NEAR(ln.mean, 0.0, 0.01 * std::sqrt(1.0 / fi));
  // A conv kernel's fans include the receptive field.
  Moments conv = moments(init::he_normal({5, 5, 64, 32}, &gen));
  EXPECT_NEAR(conv.var, 2.0 / (25 * 64), 0.03 * 2.0 / (25 * 64));
}

TEST(Init, OrthogonalHasOrthonormalColumnsOrRows) {
  Generator gen(3);
  for (Shape s : {Shape{64, 32}, Shape{32, 64}, Shape{40, 40}, Shape{2, 5, 12}}) {
    Tensor w = init::orthogonal(s, 1.0, &gen);
    ASSERT_EQ(w.shape(), s);
    int64_t rows = w.numel() / s.back(), cols = s.back();
    auto v = mf_test::values(w);
    // Gram matrix of the shorter side must be the identity.
    const bool tall = rows >= cols;
    const int64_t k = tall ? cols : rows, len = tall ? rows : cols;
    double worst = 0;
    for (int64_t a = 0; a < k; ++a)
      for (int64_t b = 0; b < k; ++b) {
        double dot = 0;
        for (int64_t i = 0; i < len; ++i)
          dot += tall ? v[i * cols + a] * v[i * cols + b] : v[a * cols + i] * v[b * cols + i];
        worst = std::max(worst, std::fabs(dot - (a == b ? 1.0 : 0.0)));
      }
    EXPECT_LT(worst, 1e-5) << shape_str(s);
  }
  Tensor g = init::orthogonal({8, 8}, 2.0, &gen, DType::F64);
  double col0 = 0;
  for (int64_t i = 0; i < 8; ++i) col0 += g.at({i, 0}) * g.at({i, 0});
  EXPECT_NEAR(col0, 4.0, 1e-12);
  EXPECT_MF_ERROR(init::orthogonal({5}), "orthogonal", "2 dimensions", "[5]");
}

TEST(Init, SameGeneratorSeedSameValues) {
  Generator a(11), b(11);
  EXPECT_TRUE(mf_test::tensors_near(init::glorot_uniform({30, 20}, &a), init::glorot_uniform({30, 20}, &b), 0, 0));
  EXPECT_TRUE(mf_test::tensors_near(init::orthogonal({30, 20}, 1.0, &a), init::orthogonal({30, 20}, 1.0, &b), 0, 0));
}

TEST(Init, ByNameCoversKerasNames) {
  Generator gen(4);
  for (const char* name : {"zeros", "ones", "random_uniform", "random_normal", "truncated_normal", "glorot_uniform",
                           "glorot_normal", "he_uniform", "he_normal", "lecun_normal", "orthogonal", "GlorotUniform",
                           "HeNormal"}) {
    Tensor t = init::by_name(name, {16, 8}, &gen);
    EXPECT_EQ(t.shape(), (Shape{16, 8})) << name;
  }
  EXPECT_EQ(init::by_name("ones", {3}).at({1}), 1.0);
  Moments ru = moments(init::by_name("random_uniform", {100000}, &gen));
  EXPECT_LE(ru.max_abs, 0.05);
  EXPECT_NEAR(ru.var, 0.1 * 0.1 / 12.0, 0.03 * 0.1 * 0.1 / 12.0);
  // By name and by function give the same values from the same generator state.
  Generator a(9), b(9);
  EXPECT_TRUE(mf_test::tensors_near(init::by_name("HeUniform", {10, 10}, &a), init::he_uniform({10, 10}, &b), 0, 0));
  EXPECT_MF_ERROR(init::by_name("glorot_unifrom", {2, 2}), "unknown initializer", "glorot_unifrom",
                  "glorot_uniform", "he_normal", "orthogonal");
}

// Threads that build models at once draw from the default generator together (replica threads,
// devices that are threads): each must get counters of its own, never the same stream twice.
TEST(Generator, ThreadsReserveDisjointCounters) {
  meshflow::Generator g(7);
  constexpr int kThreads = 4, kDraws = 20000;
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kDraws; ++i) got[t].push_back(g.reserve(3));
    });
  for (auto& th : threads) th.join();
  std::set<uint64_t> all;
  for (const auto& v : got) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kDraws));
  EXPECT_EQ(g.offset(), static_cast<uint64_t>(3 * kThreads * kDraws));
}
