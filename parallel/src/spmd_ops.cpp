// The collectives of partitioned programs as registry ops (spmd_ops.h).
#include "spmd_ops.h"

#include <map>
#include <mutex>
#include <numeric>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/op.h"

namespace meshflow::spmd {

namespace {

std::mutex g_mutex;
std::map<int64_t, std::shared_ptr<distributed::Communicator>> g_comms;
int64_t g_next = 1;

distributed::Communicator& comm_of(const Attrs& a) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_comms.find(a.i("comm"));
  MF_CHECK(it != g_comms.end(), "spmd collective: communicator handle ", a.i("comm"),
           " is not registered (its partitioned program was destroyed)");
  return *it->second;
}

// Axis order that brings `dim` first, and its inverse.
std::vector<int64_t> to_front(int64_t dim, int64_t rank) {
  std::vector<int64_t> p{dim};
  for (int64_t d = 0; d < rank; ++d)
    if (d != dim) p.push_back(d);
  return p;
}
std::vector<int64_t> inverse(const std::vector<int64_t>& p) {
  std::vector<int64_t> q(p.size());
  for (size_t i = 0; i < p.size(); ++i) q[static_cast<size_t>(p[i])] = static_cast<int64_t>(i);
  return q;
}

TensorMeta with_dim(TensorMeta m, int64_t dim, int64_t size) {
  m.shape[static_cast<size_t>(dim)] = size;
  return m;
}

std::vector<TensorMeta> infer_same(const std::vector<TensorMeta>& in, const Attrs&) { return {in[0]}; }
std::vector<TensorMeta> infer_gather(const std::vector<TensorMeta>& in, const Attrs& a) {
  return {with_dim(in[0], a.i("dim"), a.i("full"))};
}
std::vector<TensorMeta> infer_piece(const std::vector<TensorMeta>& in, const Attrs& a) {
  const int64_t dim = a.i("dim");
  return {with_dim(in[0], dim, piece(in[0].shape[static_cast<size_t>(dim)], static_cast<int>(a.i("parts")),
                                     static_cast<int>(a.i("index"))).second)};
}

void all_reduce_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  out[0].copy_(in[0]);
  comm_of(a).all_reduce(out[0]);
}

void all_gather_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  NoGradGuard no_grad;
  const int64_t dim = a.i("dim");
  auto p = to_front(dim, in[0].dim());
  // Communicators move numbers, not bools (Note [Collective rules]): masks travel as i32.
  const DType wire = in[0].dtype() == DType::Bool ? DType::I32 : in[0].dtype();
  Tensor front = in[0].permute(p).contiguous();
  if (wire != front.dtype()) front = front.to(wire);
  Shape full = front.shape();
  full[0] = a.i("full");
  Tensor gathered = empty(full, {.dtype = wire, .device = in[0].device()});
  comm_of(a).all_gather(front, gathered);
  Tensor back = gathered.permute(inverse(p));
  out[0].copy_(wire != out[0].dtype() ? back.to(out[0].dtype()) : back);
}

void split_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  NoGradGuard no_grad;
  const int64_t dim = a.i("dim");
  auto [first, count] = piece(in[0].size(dim), static_cast<int>(a.i("parts")), static_cast<int>(a.i("index")));
  out[0].copy_(in[0].slice(dim, first, first + count));
}

void reduce_scatter_kernel(const ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                           const Attrs& a) {
  NoGradGuard no_grad;
  const int64_t dim = a.i("dim");
  auto p = to_front(dim, in[0].dim());
  Tensor front = in[0].permute(p).contiguous();
  Shape part = front.shape();
  part[0] = out[0].size(dim);
  Tensor mine = empty(part, {.dtype = in[0].dtype(), .device = in[0].device()});
  comm_of(a).reduce_scatter(front, mine);
  out[0].copy_(mine.permute(inverse(p)));
}

Tensor view_same(const Tensor& input, const TensorMeta&, const Attrs&) {
  return make_view(input, input.shape(), input.strides(), input.offset());
}

std::vector<Tensor> all_reduce_backward(const BackwardContext&, const std::vector<Tensor>& g) { return {g[0]}; }
std::vector<Tensor> all_gather_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  return {spmd::split(g[0], c.attrs.i("comm"), c.attrs.i("dim"))};
}
std::vector<Tensor> to_gather_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  const int64_t dim = c.attrs.i("dim");
  return {all_gather(g[0], c.attrs.i("comm"), dim, c.inputs[0].size(dim))};
}
std::vector<Tensor> grad_sync_backward(const BackwardContext& c, const std::vector<Tensor>& g) {
  return {all_reduce(g[0], c.attrs.i("comm"))};
}

MF_STATIC_INIT {
  OpDef& r = define_op("spmd_all_reduce");
  r.infer = infer_same;
  r.backward = all_reduce_backward;
  register_kernel("spmd_all_reduce", DeviceType::CPU, all_reduce_kernel);
  OpDef& g = define_op("spmd_all_gather");
  g.infer = infer_gather;
  g.backward = all_gather_backward;
  register_kernel("spmd_all_gather", DeviceType::CPU, all_gather_kernel);
  OpDef& s = define_op("spmd_split");
  s.infer = infer_piece;
  s.backward = to_gather_backward;
  register_kernel("spmd_split", DeviceType::CPU, split_kernel);
  OpDef& rs = define_op("spmd_reduce_scatter");
  rs.infer = infer_piece;
  rs.backward = to_gather_backward;
  register_kernel("spmd_reduce_scatter", DeviceType::CPU, reduce_scatter_kernel);
  OpDef& f = define_op("spmd_grad_sync");
  f.infer = infer_same;
  f.view = view_same;
  f.backward = grad_sync_backward;
}

Attrs piece_attrs(int64_t comm, int64_t dim) {
  distributed::Communicator& c = comm_of(Attrs{{"comm", comm}});
  return Attrs{{"comm", comm}, {"dim", dim}, {"parts", int64_t{c.size()}}, {"index", int64_t{c.rank()}}};
}

}  // namespace

int64_t register_comm(std::shared_ptr<distributed::Communicator> comm) {
  MF_CHECK(comm != nullptr, "spmd: the communicator is null");
  std::lock_guard<std::mutex> lock(g_mutex);
  g_comms[g_next] = std::move(comm);
  return g_next++;
}

void unregister_comm(int64_t handle) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_comms.erase(handle);
}

std::pair<int64_t, int64_t> piece(int64_t n, int parts, int index) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t first = index * base + std::min<int64_t>(index, extra);
  return {first, base + (index < extra ? 1 : 0)};
}

Tensor all_reduce(const Tensor& x, int64_t comm) {
  static const OpDef& op = get_op("spmd_all_reduce");
  return call_op1(op, {x}, {{"comm", comm}});
}
Tensor all_gather(const Tensor& x, int64_t comm, int64_t dim, int64_t full) {
  static const OpDef& op = get_op("spmd_all_gather");
  return call_op1(op, {x}, {{"comm", comm}, {"dim", dim}, {"full", full}});
}
Tensor split(const Tensor& x, int64_t comm, int64_t dim) {
  static const OpDef& op = get_op("spmd_split");
  return call_op1(op, {x}, piece_attrs(comm, dim));
}
Tensor reduce_scatter(const Tensor& x, int64_t comm, int64_t dim) {
  static const OpDef& op = get_op("spmd_reduce_scatter");
  return call_op1(op, {x}, piece_attrs(comm, dim));
}
Tensor grad_sync(const Tensor& x, int64_t comm) {
  static const OpDef& op = get_op("spmd_grad_sync");
  return call_op1(op, {x}, {{"comm", comm}});
}

}  // namespace meshflow::spmd
