// CUDA kernel for where(cond, a, b), whose definition is in core/src/ops/where.cpp (the twin of
// core/kernels/cpu/where.cpp).
#include "elementwise_cuda.cuh"

namespace meshflow {
namespace {

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

MF_STATIC_INIT { register_kernel("where", DeviceType::CUDA, where_kernel); }

}  // namespace
}  // namespace meshflow
