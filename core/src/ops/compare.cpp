// Comparisons (eq, ne, lt, le, gt, ge) and logical ops: bool outputs, no gradient.
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/ops/elementwise.h"

namespace meshflow {
namespace {

// Operands arrive in one dtype (the public functions promote them); the output is bool.
std::vector<TensorMeta> infer_compare(const std::vector<TensorMeta>& in, const Attrs&) {
  const char* op = current_op_name();
  MF_CHECK(in[0].dtype == in[1].dtype, op, ": dtypes differ (", dtype_name(in[0].dtype), " and ",
           dtype_name(in[1].dtype), ")");
  return {{broadcast_shapes(in[0].shape, in[1].shape, op), DType::Bool, in[0].device}};
}

std::vector<TensorMeta> infer_logical_not(const std::vector<TensorMeta>& in, const Attrs&) {
  return {{in[0].shape, DType::Bool, in[0].device}};
}

// Comparisons and logic are elementwise and not linear: inputs must be whole sums.
MF_STATIC_INIT {
  for (const char* name : {"eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or"}) {
    OpDef& d = define_op(name);
    d.infer = infer_compare;
    d.sharding = sharding::elementwise_rule<sharding::PartialRule::None>;
  }
  OpDef& n = define_op("logical_not");
  n.infer = infer_logical_not;
  n.sharding = sharding::elementwise_rule<sharding::PartialRule::None>;
}

Tensor compare(const OpDef& op, const Tensor& a, const Tensor& b) {
  MF_CHECK(a.defined() && b.defined(), op.name, ": an operand is an undefined tensor");
  if (a.dtype() == b.dtype()) return call_op1(op, {a, b});
  DType t = promote_types(a.dtype(), b.dtype());
  return call_op1(op, {a.dtype() == t ? a : cast(a, t), b.dtype() == t ? b : cast(b, t)});
}

Tensor as_bool(const Tensor& x, const char* op) {
  MF_CHECK(x.defined(), op, ": an operand is an undefined tensor");
  return x.dtype() == DType::Bool ? x : ne(x, scalar_like(0.0, x));
}

}  // namespace

#define MF_COMPARE(fn)                                   \
  Tensor fn(const Tensor& a, const Tensor& b) {          \
    static const OpDef& op = ops::fn();                  \
    return compare(op, a, b);                            \
  }
MF_COMPARE(eq)
MF_COMPARE(ne)
MF_COMPARE(lt)
MF_COMPARE(le)
MF_COMPARE(gt)
MF_COMPARE(ge)
#undef MF_COMPARE

// Logical ops treat any nonzero value as true (like NumPy), so they accept every dtype.
Tensor logical_not(const Tensor& x) {
  static const OpDef& op = ops::logical_not();
  return call_op1(op, {as_bool(x, "logical_not")});
}
Tensor logical_and(const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::logical_and();
  return call_op1(op, {as_bool(a, "logical_and"), as_bool(b, "logical_and")});
}
Tensor logical_or(const Tensor& a, const Tensor& b) {
  static const OpDef& op = ops::logical_or();
  return call_op1(op, {as_bool(a, "logical_or"), as_bool(b, "logical_or")});
}

}  // namespace meshflow
