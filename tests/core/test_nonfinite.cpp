// NaN and infinities through every elementwise, reduction, softmax and pooling op, against PyTorch
// (python3-torch): NaN is never swallowed (relu(NaN) is NaN, a pooling window or a max holding a
// NaN gives NaN), in float64 and in float32 (where float32 pooling may take the oneDNN path).
#include <cmath>
#include <functional>

#include "../models/torch_ref.h"
#include "meshflow/core/ops/conv.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/norm.h"
#include "meshflow/core/ops/reduce.h"
#include "meshflow/core/ops/shape.h"
#include "test_util.h"

using namespace meshflow;

namespace {

const double kNan = std::nan(""), kInf = INFINITY;
// 4 x 4: every row has a NaN or an infinity somewhere, one row is all finite.
const std::vector<double> kX = {1.5, kNan, -2, kInf, -kInf, 0.5, -0.25, 3, 0.75, -1, 2, -3, kNan, kInf, -kInf, 0};
const std::vector<double> kY = {2, 1, kNan, -kInf, 0.5, kInf, 2, -1, 1.5, 0.25, -2, 4, 1, -1, 3, kNan};

struct Case {
  const char* name;
  const char* torch;  // Python over torch tensors x, y (4 x 4 float64) and xi (1 x 1 x 4 x 4)
  std::function<Tensor(const Tensor& x, const Tensor& y)> ours;
};

std::vector<Case> cases() {
  return {
      {"relu", "torch.relu(x)", [](auto& x, auto&) { return relu(x); }},
      {"bias_relu", "torch.relu(x + y[0])", [](auto& x, auto& y) { return bias_relu(x, y.slice(0, 0, 1).reshape({4})); }},
      {"leaky_relu", "F.leaky_relu(x, 0.2)", [](auto& x, auto&) { return leaky_relu(x, 0.2); }},
      {"elu", "F.elu(x, 1.0)", [](auto& x, auto&) { return elu(x, 1.0); }},
      {"gelu", "F.gelu(x)", [](auto& x, auto&) { return gelu(x); }},
      {"silu", "F.silu(x)", [](auto& x, auto&) { return silu(x); }},
      {"softplus", "F.softplus(x)", [](auto& x, auto&) { return softplus(x); }},
      {"sigmoid", "torch.sigmoid(x)", [](auto& x, auto&) { return sigmoid(x); }},
      {"tanh", "torch.tanh(x)", [](auto& x, auto&) { return tanh(x); }},
      {"exp", "torch.exp(x)", [](auto& x, auto&) { return exp(x); }},
      {"log", "torch.log(x)", [](auto& x, auto&) { return log(x); }},
      {"sqrt", "torch.sqrt(x)", [](auto& x, auto&) { return sqrt(x); }},
      {"abs", "torch.abs(x)", [](auto& x, auto&) { return abs(x); }},
      // torch 1.13 makes sign(NaN) 0; ours keeps NaN, as NumPy and TensorFlow do (never swallowed).
      {"sign", "torch.where(torch.isnan(x), x, torch.sign(x))", [](auto& x, auto&) { return sign(x); }},
      {"square", "torch.square(x)", [](auto& x, auto&) { return square(x); }},
      {"clip", "torch.clamp(x, -1.0, 1.0)", [](auto& x, auto&) { return clip(x, -1.0, 1.0); }},
      {"add", "x + y", [](auto& x, auto& y) { return x + y; }},
      {"mul", "x * y", [](auto& x, auto& y) { return x * y; }},
      {"div", "x / y", [](auto& x, auto& y) { return x / y; }},
      {"maximum", "torch.maximum(x, y)", [](auto& x, auto& y) { return maximum(x, y); }},
      {"minimum", "torch.minimum(x, y)", [](auto& x, auto& y) { return minimum(x, y); }},
      {"pow", "torch.pow(torch.abs(x), y)", [](auto& x, auto& y) { return pow(abs(x), y); }},
      {"where", "torch.where(x > 0, x, y)", [](auto& x, auto& y) { return where(gt(x, zeros_like(x)), x, y); }},
      {"sum", "x.sum(1)", [](auto& x, auto&) { return sum(x, {1}); }},
      {"mean", "x.mean(1)", [](auto& x, auto&) { return mean(x, {1}); }},
      {"max", "x.amax(1)", [](auto& x, auto&) { return max(x, {1}); }},
      {"min", "x.amin(1)", [](auto& x, auto&) { return min(x, {1}); }},
      {"argmax", "x.argmax(1)", [](auto& x, auto&) { return argmax(x, 1); }},
      {"argmin", "x.argmin(1)", [](auto& x, auto&) { return argmin(x, 1); }},
      {"softmax", "torch.softmax(x, 1)", [](auto& x, auto&) { return softmax(x, 1); }},
      {"log_softmax", "torch.log_softmax(x, 1)", [](auto& x, auto&) { return log_softmax(x, 1); }},
      {"max_pool2d", "F.max_pool2d(xi, 2)", [](auto& x, auto&) { return max_pool2d(reshape(x, {1, 4, 4, 1})); }},
      {"max_pool2d_3x3_stride1", "F.max_pool2d(xi, 3, 1)",
       [](auto& x, auto&) { return max_pool2d(reshape(x, {1, 4, 4, 1}), {.pool_size = {3, 3}, .strides = {1, 1}}); }},
      {"avg_pool2d", "F.avg_pool2d(xi, 2)", [](auto& x, auto&) { return avg_pool2d(reshape(x, {1, 4, 4, 1})); }},
  };
}

bool same(double a, double b, double tol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(a - b) <= tol * (1 + std::fabs(b));
}

}  // namespace

TEST(NonFinite, EveryOpTreatsNanAndInfinityAsPyTorchDoes) {
  std::string script =
      "import torch.nn.functional as F\nnan = float('nan'); inf = float('inf')\n"
      "x = torch.tensor(" + mf_test::py_list(kX) + ", dtype=torch.float64).reshape(4, 4)\n"
      "y = torch.tensor(" + mf_test::py_list(kY) + ", dtype=torch.float64).reshape(4, 4)\n"
      "xi = x.reshape(1, 1, 4, 4)\n";
  const auto all = cases();
  for (const auto& c : all) script += std::string("out(") + c.torch + ")\n";
  MF_TORCH_OR_SKIP(flat, script);
  // The cases' outputs come back as one list, in order: each case takes as many as it produced.
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor x = from_vector(kX, {4, 4}, {.dtype = dt}), y = from_vector(kY, {4, 4}, {.dtype = dt});
    size_t at = 0;
    for (const auto& c : all) {
      Tensor got = c.ours(x, y);
      std::vector<double> v = got.to(DType::F64).contiguous().to_vector<double>();
      ASSERT_LE(at + v.size(), flat.size()) << c.name;
      const double tol = dt == DType::F64 ? 1e-12 : 1e-6;
      for (size_t i = 0; i < v.size(); ++i)
        EXPECT_TRUE(same(v[i], flat[at + i], tol))
            << c.name << " " << dtype_name(dt) << " element " << i << ": ours " << v[i] << ", torch " << flat[at + i];
      at += v.size();
    }
    EXPECT_EQ(at, flat.size());
  }
}
