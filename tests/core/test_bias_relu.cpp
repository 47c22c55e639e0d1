// bias_relu (relu(x + bias) in one pass, its backward in one): the same values as the two ops it
// fuses, bit for bit where the arithmetic is the same (the forward, dx), and the bias's gradient
// against a float64 sum; NaN passes forward and no gradient flows through it; shapes checked.
#include "meshflow/core/autograd.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::random_tensor;
using mf_test::tensors_near;

namespace {

struct Grads {
  Tensor y, dx, db;
};

// y and the gradients of sum(y * w) for a fixed random w, through `f`.
template <typename F>
Grads run(const Tensor& x0, const Tensor& b0, const Tensor& w, F f, bool bias_grad = true) {
  Tensor x = x0.detach(), b = b0.detach();
  x.set_requires_grad();
  if (bias_grad) b.set_requires_grad();
  Tensor y = f(x, b);
  std::vector<Tensor> wrt{x};
  if (bias_grad) wrt.push_back(b);
  std::vector<Tensor> g = grad({sum(mul(y, w))}, wrt);
  return {y.detach(), g[0], bias_grad ? g[1] : Tensor()};
}

Tensor composed(const Tensor& x, const Tensor& b) { return relu(add(x, b)); }
Tensor fused(const Tensor& x, const Tensor& b) { return bias_relu(x, b); }

TEST(BiasRelu, MatchesReluOfAddForEveryShapeAndDtype) {
  // Shapes from one row to many chunks of rows (a conv activation [64, 26, 26, 32]).
  for (DType dt : {DType::F32, DType::F64})
    for (const Shape& s : {Shape{1, 5}, Shape{7, 3, 10}, Shape{300, 64}, Shape{64, 26, 26, 32}}) {
      Tensor x = random_tensor(s, 1, -1, 1, dt), b = random_tensor({s.back()}, 2, -0.5, 0.5, dt);
      Tensor w = random_tensor(s, 3, -1, 1, dt);
      Grads want = run(x, b, w, composed), got = run(x, b, w, fused);
      EXPECT_TRUE(tensors_near(got.y, want.y, 0, 0)) << shape_str(s);
      EXPECT_TRUE(tensors_near(got.dx, want.dx, 0, 0)) << shape_str(s);
      // dbias: the fused sweep sums in double; the reference, in float64, from the same dx.
      Tensor db64 = sum(want.dx.to(DType::F64), [&] {
        std::vector<int64_t> axes;
        for (int64_t a = 0; a + 1 < static_cast<int64_t>(s.size()); ++a) axes.push_back(a);
        return axes;
      }());
      EXPECT_TRUE(tensors_near(got.db, db64, dt == DType::F32 ? 1e-5 : 1e-12, 1e-6)) << shape_str(s);
      EXPECT_EQ(got.db.dtype(), dt);
    }
}

TEST(BiasRelu, WithoutABiasGradientOnlyXsIsComputed) {
  Tensor x = random_tensor({40, 8}, 4, -1, 1, DType::F32), b = random_tensor({8}, 5, -1, 1, DType::F32);
  Tensor w = random_tensor({40, 8}, 6, -1, 1, DType::F32);
  Grads want = run(x, b, w, composed, false), got = run(x, b, w, fused, false);
  EXPECT_TRUE(tensors_near(got.dx, want.dx, 0, 0));
  EXPECT_FALSE(got.db.defined());
}

TEST(BiasRelu, NanPassesForwardAndStopsTheGradient) {
  std::vector<float> xv(12, 0.5f);
  xv[4] = std::nanf("");
  xv[7] = -std::numeric_limits<float>::infinity();
  Tensor x = from_vector(xv, {3, 4}), b = from_vector(std::vector<float>{0.1f, -0.2f, 0.3f, -0.9f}, {4});
  Tensor w = ones({3, 4});
  Grads got = run(x, b, w, fused);
  std::vector<float> y = got.y.to_vector<float>(), dx = got.dx.to_vector<float>(), db = got.db.to_vector<float>();
  EXPECT_TRUE(std::isnan(y[4]));                 // relu(NaN + b) is NaN, as torch.relu
  EXPECT_EQ(y[7], 0.0f);                         // -inf + b -> 0
  EXPECT_EQ(y[3], 0.0f);                         // 0.5 - 0.9 < 0
  EXPECT_FLOAT_EQ(y[0], 0.6f);
  EXPECT_EQ(dx[4], 0.0f);                        // no gradient through the NaN (as relu_grad)
  EXPECT_EQ(dx[3], 0.0f);
  EXPECT_EQ(dx[0], 1.0f);
  EXPECT_FLOAT_EQ(db[0], 2.0f);                  // column 0: rows 1 and 2 pass (row 1's x is NaN)
  EXPECT_FLOAT_EQ(db[3], 0.0f);
}

TEST(BiasRelu, BadOperandsAreNamed) {
  Tensor x = zeros({2, 3});
  auto message = [&](const Tensor& b) {
    try {
      (void)bias_relu(x, b);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(zeros({4})).find("bias_relu: bias must be 1-D with x's last dimension"), std::string::npos);
  EXPECT_NE(message(zeros({1, 3})).find("bias_relu: bias must be 1-D"), std::string::npos);
  EXPECT_NE(message(Tensor()).find("bias_relu: an operand is an undefined tensor"), std::string::npos);
}

}  // namespace
