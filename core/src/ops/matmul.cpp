// matmul: shape inference (batched, broadcast batch dims, transpose flags), 1-D operands, backward,
// and the switch that lets cuda f32 products use TF32.
#include <algorithm>
#include <atomic>
#include <limits>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/sharding.h"
#include "meshflow/core/op_list.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/linalg.h"

namespace meshflow {

namespace {

using autograd::sum_to;

std::string flags_str(bool ta, bool tb) {
  if (!ta && !tb) return "";
  return detail::str_cat(" (transpose_a=", ta ? "true" : "false", ", transpose_b=", tb ? "true" : "false", ")");
}

std::vector<TensorMeta> infer_matmul(const std::vector<TensorMeta>& in, const Attrs& attrs) {
  const Shape &a = in[0].shape, &b = in[1].shape;
  const bool ta = attrs.b("transpose_a"), tb = attrs.b("transpose_b");
  MF_CHECK(in[0].dtype == in[1].dtype, "matmul: dtypes differ (", dtype_name(in[0].dtype), " and ",
           dtype_name(in[1].dtype), ")");
  MF_CHECK(is_floating(in[0].dtype), "matmul: expected floating tensors, got ", dtype_name(in[0].dtype),
           "; cast to f32 first");
  MF_CHECK(a.size() >= 2 && b.size() >= 2, "matmul: expected operands of rank >= 2, got ", shape_str(a), " x ",
           shape_str(b));
  const size_t ra = a.size(), rb = b.size();
  const int64_t m = ta ? a[ra - 1] : a[ra - 2], ka = ta ? a[ra - 2] : a[ra - 1];
  const int64_t kb = tb ? b[rb - 1] : b[rb - 2], n = tb ? b[rb - 2] : b[rb - 1];
  MF_CHECK(ka < 0 || kb < 0 || ka == kb, "matmul: inner dimensions differ: ", shape_str(a), " x ", shape_str(b),
           flags_str(ta, tb), " (", ka, " vs ", kb, ")");
  Shape out = broadcast_shapes(Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2), "matmul");
  out.push_back(m);
  out.push_back(n);
  return {{out, in[0].dtype, in[0].device}};
}

// Note [matmul backward]: dA = dC B^T and dB = A^T dC, expressed with matmul's transpose flags so
// no transposed copy is made; the flags of the forward decide which operand order gives the
// gradient directly in the layout of A (or B). Broadcast batch dims are summed away by sum_to.
std::vector<Tensor> matmul_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const Tensor &a = c.inputs[0], &b = c.inputs[1], &dc = g[0];
  const bool ta = c.attrs.b("transpose_a"), tb = c.attrs.b("transpose_b");
  Tensor da, db;
  if (c.needs_input_grad[0]) da = sum_to(ta ? matmul(b, dc, tb, true) : matmul(dc, b, false, !tb), a.shape());
  if (c.needs_input_grad[1]) {
    if (b.dim() == 2 && a.dim() > 2 && !ta) {
      // A shared 2-D B (a Dense layer on [batch, time, features]): stack A's batches into rows
      // so dB is one GEMM instead of a batched product followed by a sum over batches.
      const int64_t k = a.size(-1), n = dc.size(-1), rows = a.numel() / std::max<int64_t>(k, 1);
      Tensor a_rows = a.reshape({rows, k}), dc_rows = dc.reshape({rows, n});
      db = tb ? matmul(dc_rows, a_rows, true, false) : matmul(a_rows, dc_rows, true, false);
    } else {
      db = sum_to(tb ? matmul(dc, a, true, ta) : matmul(a, dc, !ta, false), b.shape());
    }
  }
  return {da, db};
}

// Note [matmul sharding]
// C[..., m, n] = sum_k A[..., m, k] B[..., k, n]. C's m dimension is split as A's, its n as B's,
// its batch dimensions as the operands' (broadcast like elementwise ops); when A and B split k
// over the same axes, each device holds a partial product and C is a pending sum over them (a
// row-parallel matmul). Each role (batch, m, k, n) may also be made whole; the rule tries every
// combination and keeps the valid one that moves the fewest bytes, preferring (on a tie) the one
// that leaves C the most split. A pending sum in one operand passes to C (matmul is linear in each).
ShardingDecision matmul_sharding(const std::vector<TensorMeta>& in, const std::vector<Layout>& l, const Attrs& attrs) {
  const bool ta = attrs.b("transpose_a"), tb = attrs.b("transpose_b");
  const size_t ra = in[0].shape.size(), rb = in[1].shape.size();
  const size_t am = ta ? ra - 1 : ra - 2, ak = ta ? ra - 2 : ra - 1;
  const size_t bk = tb ? rb - 1 : rb - 2, bn = tb ? rb - 2 : rb - 1;
  const size_t batch = std::max(ra, rb) - 2;
  // Batch dimensions: the operands' splits, broadcast as elementwise ops do.
  auto batch_split = [&](size_t which) {
    std::vector<DimLayout> dims(batch);
    const TensorMeta& m = in[which];
    const size_t r = m.shape.size();
    for (size_t j = 0; j + 2 < r; ++j)
      if (m.shape[j] != 1) dims[j + batch - (r - 2)] = l[which].dims[j];
    return dims;
  };
  std::vector<std::vector<DimLayout>> batch_options{batch_split(0), batch_split(1), std::vector<DimLayout>(batch)};
  std::vector<DimLayout> m_options{l[0].dims[am], {}}, n_options{l[1].dims[bn], {}}, k_options{l[0].dims[ak], l[1].dims[bk], {}};
  // A pending sum passes through when only one operand has one.
  const bool pa = sharding::has_partial(l[0]), pb = sharding::has_partial(l[1]);
  const bool keep_a = pa && !pb, keep_b = pb && !pa;

  ShardingDecision best;
  double best_cost = std::numeric_limits<double>::infinity();
  size_t best_split = 0;
  for (const auto& bo : batch_options)
    for (const auto& mo : m_options)
      for (const auto& ko : k_options)
        for (const auto& no : n_options) {
          Layout a = sharding::replicated(ra), b = sharding::replicated(rb);
          for (size_t j = 0; j + 2 < ra; ++j)
            if (in[0].shape[j] != 1) a.dims[j] = bo[j + batch - (ra - 2)];
          for (size_t j = 0; j + 2 < rb; ++j)
            if (in[1].shape[j] != 1) b.dims[j] = bo[j + batch - (rb - 2)];
          a.dims[am] = mo;
          a.dims[ak] = ko;
          b.dims[bk] = ko;
          b.dims[bn] = no;
          if (keep_a) a.partial_axes = l[0].partial_axes;
          if (keep_b) b.partial_axes = l[1].partial_axes;
          Layout c{bo, ko.axes};
          c.dims.push_back(mo);
          c.dims.push_back(no);
          if (keep_a) c.partial_axes.insert(c.partial_axes.end(), l[0].partial_axes.begin(), l[0].partial_axes.end());
          if (keep_b) c.partial_axes.insert(c.partial_axes.end(), l[1].partial_axes.begin(), l[1].partial_axes.end());
          if (!sharding::valid(a) || !sharding::valid(b) || !sharding::valid(c)) continue;
          const double cost = sharding::conversion_bytes(in[0], l[0], a) + sharding::conversion_bytes(in[1], l[1], b);
          size_t split = 0;
          for (const auto& d : c.dims) split += d.axes.size();
          if (cost < best_cost || (cost == best_cost && split > best_split)) {
            best_cost = cost;
            best_split = split;
            best = ShardingDecision{{a, b}, {c}};
          }
        }
  MF_CHECK(!best.outputs.empty(), "matmul: no valid sharding for operands laid out as ", sharding::str(l[0]), " and ",
           sharding::str(l[1]));
  return best;
}

MF_STATIC_INIT {
  OpDef& d = define_op("matmul");
  d.infer = infer_matmul;
  d.backward = matmul_backward;
  d.sharding = matmul_sharding;
}

std::atomic<bool> g_allow_tf32{false};

}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  static const OpDef& op = ops::matmul();
  MF_CHECK(a.defined() && b.defined(), "matmul: an operand is an undefined tensor");
  MF_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: expected operands of rank >= 1, got ", shape_str(a.shape()),
           " x ", shape_str(b.shape()), "; scalars multiply with mul");
  if (a.dtype() != b.dtype()) {
    DType t = promote_types(a.dtype(), b.dtype());
    return matmul(a.dtype() == t ? a : cast(a, t), b.dtype() == t ? b : cast(b, t), transpose_a, transpose_b);
  }
  // Vectors follow numpy: [k] x [..., k, n] is a row vector, [..., m, k] x [k] a column vector,
  // and the added axis is removed from the result. Transpose flags mean nothing for a vector.
  const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  if (a_vec || b_vec) {
    const int64_t ka = a_vec ? a.size(0) : (transpose_a ? a.size(-2) : a.size(-1));
    const int64_t kb = b_vec ? b.size(0) : (transpose_b ? b.size(-1) : b.size(-2));
    MF_CHECK(ka == kb, "matmul: inner dimensions differ: ", shape_str(a.shape()), " x ", shape_str(b.shape()),
             flags_str(transpose_a, transpose_b), " (", ka, " vs ", kb, ")");
  }
  Tensor a2 = a_vec ? a.unsqueeze(0) : a;
  Tensor b2 = b_vec ? b.unsqueeze(1) : b;
  Tensor c = call_op1(op, {a2, b2}, Attrs{{"transpose_a", transpose_a && !a_vec}, {"transpose_b", transpose_b && !b_vec}});
  if (b_vec) c = c.squeeze(c.dim() - 1);
  if (a_vec) c = c.squeeze(c.dim() - (b_vec ? 1 : 2));
  return c;
}

}  // namespace meshflow
