// CUDA matmul through cuBLASLt (f32, f64, bf16, f16) with the CPU kernel's semantics: batch dims
// broadcast, transpose flags, operands of any strides (a dense copy only when BLAS cannot read
// them), k == 0 giving zeros. Halves accumulate in f32 and round once, like the CPU path.
#include <cublasLt.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>

#include "cuda_util.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/ops/linalg.h"

namespace meshflow {
namespace {

constexpr size_t kMaxWorkspace = size_t(32) << 20;

// How one stored [rows, cols] matrix reads as row-major with leading dim `ld`, or (flip) as the
// transpose of a row-major [cols, rows] one. Size-1 dims may carry any stride. The same rule as
// the CPU kernel, so both accept the same views without copying.
struct MatLayout {
  int64_t ld;
  bool flip;
};

std::optional<MatLayout> mat_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  const int64_t rmax = std::max<int64_t>(rows, 1), cmax = std::max<int64_t>(cols, 1);
  if ((cols == 1 || col_stride == 1) && (rows == 1 || row_stride >= cmax))
    return MatLayout{rows == 1 ? cmax : row_stride, false};
  if ((rows == 1 || row_stride == 1) && (cols == 1 || col_stride >= rmax))
    return MatLayout{cols == 1 ? rmax : col_stride, true};
  return std::nullopt;
}

// A dense copy on x's device in fresh (256-byte aligned) memory, outside autograd.
Tensor dense_copy(const Tensor& x) {
  NoGradGuard no_grad;
  return x.detach().clone();
}

// An operand as cuBLASLt reads it: the tensor (the input or a dense copy), its matrix layout and
// its batch strides right-aligned to the output's batch dims (0 on broadcast dims).
struct Operand {
  Tensor t;
  MatLayout layout;
  Strides batch_strides;
};

Operand prepare(const Tensor& x, const Shape& batch, bool force_copy) {
  const int64_t r = x.dim();
  Tensor t = force_copy ? dense_copy(x) : x;
  auto layout = mat_layout(t.size(r - 2), t.size(r - 1), t.strides()[r - 2], t.strides()[r - 1]);
  if (!layout) {
    t = dense_copy(x);
    layout = mat_layout(t.size(r - 2), t.size(r - 1), t.strides()[r - 2], t.strides()[r - 1]);
  }
  Strides batch_strides(batch.size(), 0);
  const size_t skip = batch.size() - static_cast<size_t>(r - 2);
  for (int64_t d = 0; d < r - 2; ++d)
    if (t.size(d) != 1) batch_strides[skip + d] = t.strides()[d];
  return {t, *layout, batch_strides};
}

// The step s with offset(i) == i * s for the flat index i over batch dims [from, end), if one
// exists (0 when every dim there is broadcast or of size 1).
std::optional<int64_t> uniform_stride(const Shape& batch, const Strides& st, size_t from) {
  std::optional<int64_t> s;
  int64_t after = 1;  // elements of the dims after d, in flat-index units
  for (size_t d = batch.size(); d-- > from;) {
    if (batch[d] != 1) {
      if (!s) {
        if (st[d] % after != 0) return std::nullopt;
        s = st[d] / after;
      } else if (st[d] != *s * after) {
        return std::nullopt;
      }
    }
    after *= batch[d];
  }
  return s.value_or(0);
}

int64_t batch_offset(int64_t index, const Shape& batch, const Strides& strides, size_t ndims) {
  int64_t off = 0;
  for (size_t d = ndims; d-- > 0;) {
    off += (index % batch[d]) * strides[d];
    index /= batch[d];
  }
  return off;
}

// The largest power of two up to 256 dividing every address an operand's batches start at:
// cuBLASLt's heuristic assumes 256-byte aligned pointers unless told otherwise, and views
// (slices, offsets) can start anywhere.
uint32_t alignment_of(const void* p, const Strides& batch_strides, size_t elem) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | 256u;
  for (int64_t s : batch_strides) bits |= static_cast<uint64_t>(s) * elem;
  return static_cast<uint32_t>(bits & (~bits + 1));
}

struct TypeInfo {
  cudaDataType_t data;
  cudaDataType_t scale;
  cublasComputeType_t compute;
};

TypeInfo type_info(DType t) {
  switch (t) {
    case DType::F32:
      return {CUDA_R_32F, CUDA_R_32F, allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F};
    case DType::F64: return {CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F};
    case DType::BF16: return {CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F};
    case DType::F16: return {CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F};
    default: break;
  }
  MF_THROW("matmul: no cuda kernel for dtype ", dtype_name(t), " (f32, f64, bf16 and f16 are supported)");
}

// Everything a cuBLASLt plan depends on. In cuBLASLt's column-major terms: D [M, N] =
// op(A) [M, K] x op(B) [K, N], batch_count products with the given element strides.
struct PlanKey {
  int device;
  int data, compute;
  bool trans_a, trans_b;
  int64_t m, n, k, lda, ldb, ldc, batch_count, stride_a, stride_b, stride_c;
  uint32_t align_a, align_b, align_c;
  auto tie() const {
    return std::tie(device, data, compute, trans_a, trans_b, m, n, k, lda, ldb, ldc, batch_count, stride_a, stride_b,
                    stride_c, align_a, align_b, align_c);
  }
  bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
};

// Descriptors and the heuristic's algorithm for one PlanKey, kept for reuse.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  bool found = false;  // false: the heuristic had nothing for this key

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

cublasLtMatrixLayout_t make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                   int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  MF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    MF_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    MF_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return l;
}

std::shared_ptr<Plan> build_plan(const PlanKey& key, const TypeInfo& ti) {
  auto plan = std::make_shared<Plan>();
  MF_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, ti.compute, ti.scale));
  const cublasOperation_t op_a = key.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = key.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  MF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  MF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  // Stored (pre-op) shapes: op(A) is [M, K], so A is stored [K, M] when transposed.
  plan->a = make_layout(ti.data, key.trans_a ? key.k : key.m, key.trans_a ? key.m : key.k, key.lda, key.batch_count,
                        key.stride_a);
  plan->b = make_layout(ti.data, key.trans_b ? key.n : key.k, key.trans_b ? key.k : key.n, key.ldb, key.batch_count,
                        key.stride_b);
  plan->c = make_layout(ti.data, key.m, key.n, key.ldc, key.batch_count, key.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  MF_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t max_ws = kMaxWorkspace;
  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws,
                                                           sizeof(max_ws));
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c}};
  for (const auto& [attr, value] : aligns)
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(cu::cublaslt_handle(key.device), plan->desc, plan->a, plan->b, plan->c,
                                        plan->c, pref, 1, &result, &count);
  cublasLtMatmulPreferenceDestroy(pref);
  // NOT_SUPPORTED means no algorithm fits (e.g. misaligned views); the caller retries with copies.
  if (st != CUBLAS_STATUS_NOT_SUPPORTED) MF_CUBLAS_CHECK(st);
  if (st == CUBLAS_STATUS_SUCCESS && count > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    plan->algo = result.algo;
    plan->workspace = result.workspaceSize;
    plan->found = true;
  }
  return plan;
}

// Plans by key, shared by all threads; capped so odd shape streams cannot grow it forever (a
// plan in use stays alive through its shared_ptr when the cache is cleared).
std::shared_ptr<Plan> get_plan(const PlanKey& key, const TypeInfo& ti) {
  static std::mutex mu;
  static std::map<PlanKey, std::shared_ptr<Plan>> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  std::shared_ptr<Plan> plan = build_plan(key, ti);
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= 4096) cache.clear();
  cache.emplace(key, plan);
  return plan;
}

// One matmul call, in the operands' (possibly copied) form. Returns false, having launched
// nothing, when cuBLASLt has no algorithm for some product (the caller retries with dense copies).
bool run_matmul(const ExecContext& ctx, const Tensor& a_in, const Tensor& b_in, Tensor& out, bool ta, bool tb,
                bool force_copy) {
  const int64_t r = out.dim();
  const int64_t m = out.size(r - 2), n = out.size(r - 1);
  const int64_t k = ta ? a_in.size(a_in.dim() - 2) : a_in.size(a_in.dim() - 1);
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const int64_t nbatch = shape_numel(batch);
  const Operand a = prepare(a_in, batch, force_copy), b = prepare(b_in, batch, force_copy);
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLASLt's first operand
  // is our B and its second our A. A stored row-major matrix reads column-major as its own
  // transpose, so an operand is transposed for cuBLASLt when exactly one of (flag, flip) holds.
  const bool trans_a = ta != a.layout.flip, trans_b = tb != b.layout.flip;
  const TypeInfo ti = type_info(out.dtype());
  const size_t elem = dtype_size(out.dtype());
  const char* pa = static_cast<const char*>(a.t.raw_data());
  const char* pb = static_cast<const char*>(b.t.raw_data());
  char* pc = static_cast<char*>(out.raw_data());

  // Batches of A fold into the rows of one product when B is shared by all of them and A's
  // batches are stacked rows at a uniform step (a Dense layer over [batch, time, features]).
  bool fold = !batch.empty() && !ta && !a.layout.flip;
  for (int64_t s : b.batch_strides) fold = fold && s == 0;
  if (fold) {
    auto s = uniform_stride(batch, a.batch_strides, 0);
    fold = s && (nbatch == 1 || *s == m * a.layout.ld);
  }
  int64_t rows = m, count = 1, outer = 1;
  size_t split = batch.size();  // batch dims [0, split) are looped here, [split, end) batched
  int64_t stride_a = 0, stride_b = 0;
  if (fold) {
    rows = nbatch * m;
  } else {
    // The fewest leading dims to loop over so that the rest are one strided batch for both.
    for (split = 0; split < batch.size(); ++split)
      if (uniform_stride(batch, a.batch_strides, split) && uniform_stride(batch, b.batch_strides, split)) break;
    for (size_t d = 0; d < split; ++d) outer *= batch[d];
    count = nbatch / std::max<int64_t>(outer, 1);
    stride_a = *uniform_stride(batch, a.batch_strides, split);
    stride_b = *uniform_stride(batch, b.batch_strides, split);
  }
  MF_CHECK(count <= INT32_MAX, "matmul: ", count, " batched products in one call exceed cuBLASLt's limit");

  PlanKey key{};
  key.device = ctx.device().index;
  key.data = static_cast<int>(ti.data);
  key.compute = static_cast<int>(ti.compute);
  key.trans_a = trans_b;  // cuBLASLt's A is our B (see above)
  key.trans_b = trans_a;
  key.m = n;
  key.n = rows;
  key.k = k;
  key.lda = b.layout.ld;
  key.ldb = a.layout.ld;
  key.ldc = n;
  key.batch_count = count;
  key.stride_a = stride_b;
  key.stride_b = stride_a;
  key.stride_c = m * n;
  key.align_a = alignment_of(pb, b.batch_strides, elem);
  key.align_b = alignment_of(pa, a.batch_strides, elem);
  key.align_c = alignment_of(pc, Strides{m * n}, elem);
  std::shared_ptr<Plan> plan = get_plan(key, ti);
  if (!plan->found) return false;

  void* workspace = plan->workspace ? ctx.workspace(plan->workspace) : nullptr;
  const float one_f = 1.0f, zero_f = 0.0f;
  const double one_d = 1.0, zero_d = 0.0;
  const bool dbl = ti.scale == CUDA_R_64F;
  const void* alpha = dbl ? static_cast<const void*>(&one_d) : &one_f;
  const void* beta = dbl ? static_cast<const void*>(&zero_d) : &zero_f;
  cublasLtHandle_t handle = cu::cublaslt_handle(key.device);
  for (int64_t o = 0; o < outer; ++o) {
    const int64_t off_a = batch_offset(o, batch, a.batch_strides, split);
    const int64_t off_b = batch_offset(o, batch, b.batch_strides, split);
    char* c = pc + static_cast<size_t>(o * count * m * n) * elem;
    MF_CUBLAS_CHECK(cublasLtMatmul(handle, plan->desc, alpha, pb + static_cast<size_t>(off_b) * elem, plan->a,
                                   pa + static_cast<size_t>(off_a) * elem, plan->b, beta, c, plan->c, c, plan->c,
                                   &plan->algo, workspace, plan->workspace, cu::stream_of(ctx)));
  }
  return true;
}

void matmul_cuda(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& attrs) {
  const bool ta = attrs.b("transpose_a"), tb = attrs.b("transpose_b");
  Tensor& c = out[0];
  if (c.numel() == 0) return;
  cu::DeviceGuard guard(ctx.device().index);
  const int64_t k = ta ? in[0].size(in[0].dim() - 2) : in[0].size(in[0].dim() - 1);
  if (k == 0) {
    MF_CUDA_CHECK(cudaMemsetAsync(c.raw_data(), 0, static_cast<size_t>(c.numel()) * dtype_size(c.dtype()),
                                  cu::stream_of(ctx)));
    return;
  }
  if (run_matmul(ctx, in[0], in[1], c, ta, tb, false)) return;
  // Dense copies start 256-byte aligned with leading dims equal to their widths, the layout
  // cuBLASLt supports most widely.
  MF_CHECK(run_matmul(ctx, in[0], in[1], c, ta, tb, true), "matmul: cuBLASLt has no algorithm for ",
           dtype_name(c.dtype()), " ", shape_str(in[0].shape()), " x ", shape_str(in[1].shape()),
           " (transpose_a=", ta ? "true" : "false", ", transpose_b=", tb ? "true" : "false", ") on ",
           ctx.device().str());
}

MF_STATIC_INIT { register_kernel("matmul", DeviceType::CUDA, matmul_cuda); }

}  // namespace
}  // namespace meshflow
