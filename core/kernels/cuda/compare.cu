// CUDA kernels for comparisons, logical ops, maximum, minimum, pow and where (the twins of
// core/kernels/cpu/compare.cpp).
#include "elementwise_cuda.cuh"

namespace meshflow {
namespace {

struct EqOp { template <typename C> __device__ bool operator()(C a, C b) const { return a == b; } };
struct NeOp { template <typename C> __device__ bool operator()(C a, C b) const { return a != b; } };
struct LtOp { template <typename C> __device__ bool operator()(C a, C b) const { return a < b; } };
struct LeOp { template <typename C> __device__ bool operator()(C a, C b) const { return a <= b; } };
struct GtOp { template <typename C> __device__ bool operator()(C a, C b) const { return a > b; } };
struct GeOp { template <typename C> __device__ bool operator()(C a, C b) const { return a >= b; } };
struct AndOp { __device__ bool operator()(bool a, bool b) const { return a && b; } };
struct OrOp { __device__ bool operator()(bool a, bool b) const { return a || b; } };
struct NotOp { __device__ bool operator()(bool a) const { return !a; } };

// NaN propagates (a != a only for NaN); ties pick a, matching the backward's tie rule.
struct MaximumOp {
  template <typename C> __device__ C operator()(C a, C b) const { return (a >= b || a != a) ? a : b; }
};
struct MinimumOp {
  template <typename C> __device__ C operator()(C a, C b) const { return (a <= b || a != a) ? a : b; }
};
struct PowOp { template <typename C> __device__ C operator()(C a, C b) const { return cu::m_pow(a, b); } };

// Comparisons take every dtype (bool included) and write bool.
template <typename Op>
void compare_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(in[0].dtype(), "comparison",
                 [&]<typename T>() { cu::launch_binary<T, bool>(ctx, in[0], in[1], out[0], Op{}); });
}

void logical_kernel_check(const std::vector<Tensor>& in) {
  for (const Tensor& t : in) MF_CHECK(t.dtype() == DType::Bool, "logical op kernel: expected bool inputs");
}

template <typename Op>
void logical_binary_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                           const Attrs&) {
  logical_kernel_check(in);
  cu::DeviceGuard guard(ctx.device().index);
  cu::launch_binary<bool, bool>(ctx, in[0], in[1], out[0], Op{});
}

void logical_not_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                        const Attrs&) {
  logical_kernel_check(in);
  cu::DeviceGuard guard(ctx.device().index);
  cu::launch_unary<bool, bool>(ctx, in[0], out[0], NotOp{});
}

void pow_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  cu::DeviceGuard guard(ctx.device().index);
  dispatch_dtype(in[0].dtype(), "pow", [&]<typename T>() {
    if constexpr (cu::is_float_v<T>) {
      cu::launch_binary<T, T>(ctx, in[0], in[1], out[0], PowOp{});
    } else {
      MF_THROW("pow: needs floating tensors, got ", dtype_name(in[0].dtype()));
    }
  });
}

// where(cond, a, b): four operands (out, cond, a, b), each broadcast on its own. Elements are
// moved, not converted, so the copy is by bit pattern of T's size.
template <typename S>
struct WhereBody {
  S* o;
  const bool* c;
  const S* a;
  const S* b;
  __device__ __forceinline__ void operator()(const int64_t (&off)[4]) const { o[off[0]] = c[off[1]] ? a[off[2]] : b[off[3]]; }
};

template <typename S>
void launch_where(const ExecContext& ctx, const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& o) {
  const Shape& s = o.shape();
  cu::launch_offsets<4>(ctx, s, {cu::geometry_of(o, s), cu::geometry_of(cond, s), cu::geometry_of(a, s),
                                 cu::geometry_of(b, s)},
                        WhereBody<S>{static_cast<S*>(o.raw_data()), static_cast<const bool*>(cond.raw_data()),
                                     static_cast<const S*>(a.raw_data()), static_cast<const S*>(b.raw_data())});
}

void where_kernel(const ExecContext& ctx, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  const Tensor &cond = in[0], &a = in[1], &b = in[2], &o = out[0];
  if (o.numel() == 0) return;
  MF_CHECK(cond.dtype() == DType::Bool, "where: cond must be a bool tensor, got ", dtype_name(cond.dtype()));
  cu::DeviceGuard guard(ctx.device().index);
  switch (dtype_size(o.dtype())) {
    case 1: return launch_where<uint8_t>(ctx, cond, a, b, o);
    case 2: return launch_where<uint16_t>(ctx, cond, a, b, o);
    case 4: return launch_where<uint32_t>(ctx, cond, a, b, o);
    case 8: return launch_where<uint64_t>(ctx, cond, a, b, o);
    default: MF_THROW("where: unsupported element size for dtype ", dtype_name(o.dtype()));
  }
}

MF_STATIC_INIT {
  register_kernel("eq", DeviceType::CUDA, compare_kernel<EqOp>);
  register_kernel("ne", DeviceType::CUDA, compare_kernel<NeOp>);
  register_kernel("lt", DeviceType::CUDA, compare_kernel<LtOp>);
  register_kernel("le", DeviceType::CUDA, compare_kernel<LeOp>);
  register_kernel("gt", DeviceType::CUDA, compare_kernel<GtOp>);
  register_kernel("ge", DeviceType::CUDA, compare_kernel<GeOp>);
  register_kernel("logical_and", DeviceType::CUDA, logical_binary_kernel<AndOp>);
  register_kernel("logical_or", DeviceType::CUDA, logical_binary_kernel<OrOp>);
  register_kernel("logical_not", DeviceType::CUDA, logical_not_kernel);
  register_kernel("maximum", DeviceType::CUDA, cu::binary_kernel<MaximumOp>);
  register_kernel("minimum", DeviceType::CUDA, cu::binary_kernel<MinimumOp>);
  register_kernel("pow", DeviceType::CUDA, pow_kernel);
  register_kernel("where", DeviceType::CUDA, where_kernel);
}

}  // namespace
}  // namespace meshflow
