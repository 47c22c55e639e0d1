// Unary math ops (exp, log, sqrt, rsqrt, square, abs, sign, tanh, sigmoid): definitions and backward.
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/sharding.h"
#include "ops/unary_common.h"

namespace meshflow {
namespace {

using BW = std::vector<Tensor>;

BW exp_backward(const BackwardContext& c, const BW& g) { return {mul(g[0], c.outputs[0])}; }
BW log_backward(const BackwardContext& c, const BW& g) { return {div(g[0], c.inputs[0])}; }
BW sqrt_backward(const BackwardContext& c, const BW& g) { return {div(g[0], c.outputs[0] * 2.0)}; }
// d/dx x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3, read from the saved output.
BW rsqrt_backward(const BackwardContext& c, const BW& g) {
  const Tensor& y = c.outputs[0];
  return {mul(g[0], y * y * y * -0.5)};
}
BW square_backward(const BackwardContext& c, const BW& g) { return {mul(g[0], c.inputs[0] * 2.0)}; }
// sign(0) = 0 gives abs'(0) = 0, PyTorch's choice.
BW abs_backward(const BackwardContext& c, const BW& g) { return {mul(g[0], sign(c.inputs[0]))}; }
BW sign_backward(const BackwardContext& c, const BW&) { return {zeros_like(c.inputs[0])}; }
BW tanh_backward(const BackwardContext& c, const BW& g) {
  const Tensor& y = c.outputs[0];
  return {mul(g[0], 1.0 - y * y)};
}
BW sigmoid_backward(const BackwardContext& c, const BW& g) {
  const Tensor& y = c.outputs[0];
  return {mul(g[0], y * (1.0 - y))};
}

MF_STATIC_INIT {
  struct Entry {
    const char* name;
    BackwardFn backward;
    bool save_outputs;
    bool float_only;
  };
  const Entry entries[] = {
      {"exp", exp_backward, true, true},       {"log", log_backward, false, true},
      {"sqrt", sqrt_backward, true, true},     {"rsqrt", rsqrt_backward, true, true},
      {"square", square_backward, false, false}, {"abs", abs_backward, false, false},
      {"sign", sign_backward, false, false},   {"tanh", tanh_backward, true, true},
      {"sigmoid", sigmoid_backward, true, true},
  };
  for (const Entry& e : entries) {
    OpDef& d = define_op(e.name);
    d.infer = e.float_only ? internal::infer_unary_float : internal::infer_unary_numeric;
    d.backward = e.backward;
    d.save_outputs = e.save_outputs;
    d.sharding = internal::unary_nonlinear_sharding;
  }
}

}  // namespace

namespace internal {

std::vector<TensorMeta> infer_unary_numeric(const std::vector<TensorMeta>& in, const Attrs&) {
  const char* op = current_op_name();
  MF_CHECK(in[0].dtype != DType::Bool, op, ": not defined for bool tensors; cast to a number type first");
  return {in[0]};
}

std::vector<TensorMeta> infer_bias_epilogue(const std::vector<TensorMeta>& in, const Attrs&) {
  const char* op = current_op_name();
  const TensorMeta &x = in[0], &b = in[1];
  MF_CHECK(is_floating(x.dtype), op, ": x must be floating, got ", dtype_name(x.dtype));
  MF_CHECK(b.dtype == x.dtype, op, ": bias is ", dtype_name(b.dtype), " but x is ", dtype_name(x.dtype));
  MF_CHECK(!x.shape.empty() && b.shape.size() == 1 && (x.shape.back() < 0 || b.shape[0] == x.shape.back()), op,
           ": bias must be 1-D with x's last dimension: x ", shape_str(x.shape), ", bias ", shape_str(b.shape));
  return {x};
}

std::vector<TensorMeta> infer_unary_float(const std::vector<TensorMeta>& in, const Attrs&) {
  const char* op = current_op_name();
  MF_CHECK(is_floating(in[0].dtype), op, ": needs a floating tensor, got ", dtype_name(in[0].dtype),
           "; cast to f32 first");
  return {in[0]};
}

ShardingDecision unary_nonlinear_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& layouts,
                                          const Attrs&) {
  return sharding::elementwise(in, layouts, sharding::PartialRule::None);
}

Tensor call_unary(const OpDef& op, const Tensor& x, bool float_only, const Attrs& attrs) {
  MF_CHECK(x.defined(), op.name, ": the input is an undefined tensor");
  // Integer inputs to a float-only op compute in f32, as PyTorch's exp(int) does.
  if (float_only && is_integral(x.dtype())) return call_op1(op, {cast(x, DType::F32)}, attrs);
  return call_op1(op, {x}, attrs);
}

}  // namespace internal

#define MF_UNARY(fn, float_only)                       \
  Tensor fn(const Tensor& x) {                         \
    static const OpDef& op = ops::fn();                \
    return internal::call_unary(op, x, float_only);   \
  }
MF_UNARY(exp, true)
MF_UNARY(log, true)
MF_UNARY(sqrt, true)
MF_UNARY(rsqrt, true)
MF_UNARY(square, false)
MF_UNARY(abs, false)
MF_UNARY(sign, false)
MF_UNARY(tanh, true)
MF_UNARY(sigmoid, true)
#undef MF_UNARY

}  // namespace meshflow
