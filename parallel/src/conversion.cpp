// Layouts over a mesh: checks, local parts, and conversions between layouts (conversion.h).
#include "conversion.h"

#include <algorithm>
#include <set>

#include "meshflow/core/error.h"
#include "meshflow/core/sharding.h"
#include "meshflow/parallel/partitioner.h"
#include "spmd_ops.h"

namespace meshflow {

Layout layout(std::initializer_list<Split> dims) {
  Layout l;
  for (const Split& s : dims) l.dims.push_back(DimLayout{s.axes});
  return l;
}

void check_layout(const Layout& l, const TensorMeta& meta, const Mesh& mesh, const std::string& what) {
  const std::string tail = " (tensor " + what + " " + dtype_name(meta.dtype) + shape_str(meta.shape) + ", layout " +
                           sharding::str(l) + ", " + mesh.str() + ")";
  MF_CHECK(l.dims.size() == meta.shape.size(), "layout has ", l.dims.size(), " dimensions but the tensor has ",
           meta.shape.size(), tail);
  std::set<std::string> seen;
  for (const std::string& a : sharding::axes_named(l)) {
    MF_CHECK(mesh.has_axis(a), "mesh axis '", a, "' is not in the mesh", tail);
    MF_CHECK(seen.insert(a).second, "mesh axis '", a, "' is used twice", tail);
  }
}

std::pair<int64_t, int64_t> local_range(int64_t size, const std::vector<std::string>& axes, const Mesh& mesh,
                                        int rank) {
  const std::vector<int> coords = mesh.coords(rank);
  int64_t first = 0, count = size;
  for (const std::string& a : axes) {
    auto [f, c] = spmd::piece(count, mesh.axis_size(a), coords[static_cast<size_t>(mesh.axis_index(a))]);
    first += f;
    count = c;
  }
  return {first, count};
}

Shape local_shape(const Shape& global, const Layout& l, const Mesh& mesh, int rank) {
  Shape s = global;
  for (size_t d = 0; d < s.size() && d < l.dims.size(); ++d) s[d] = local_range(s[d], l.dims[d].axes, mesh, rank).second;
  return s;
}

const char* collective_name(Collective::Kind kind) {
  switch (kind) {
    case Collective::Kind::AllReduce: return "all_reduce";
    case Collective::Kind::AllGather: return "all_gather";
    case Collective::Kind::ReduceScatter: return "reduce_scatter";
  }
  return "?";
}

std::string Collective::str() const {
  return detail::str_cat(collective_name(kind), " over ", axis, " of ", dtype_name(dtype), shape_str(shape), " (",
                         bytes, " B, ", backward ? "backward" : "forward", ") at ", where);
}

namespace spmd {


int64_t wire_bytes(const Shape& s, DType t) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n * (t == DType::Bool ? 4 : static_cast<int64_t>(dtype_size(t)));
}

std::vector<Step> conversion(const Layout& from, const Layout& to, const std::string& what) {
  std::vector<Step> steps;
  Layout cur = from;
  for (const std::string& axis : from.partial_axes) {
    if (std::find(to.partial_axes.begin(), to.partial_axes.end(), axis) != to.partial_axes.end()) continue;
    bool scattered = false;
    for (size_t d = 0; d < to.dims.size() && !scattered; ++d) {
      auto want = cur.dims[d].axes;
      want.push_back(axis);
      if (to.dims[d].axes == want) {
        steps.push_back({Step::Kind::ReduceScatter, axis, static_cast<int64_t>(d)});
        cur.dims[d].axes = want;
        scattered = true;
      }
    }
    if (!scattered) steps.push_back({Step::Kind::AllReduce, axis});
  }
  cur.partial_axes = to.partial_axes;
  for (const std::string& axis : to.partial_axes)
    MF_CHECK(std::find(from.partial_axes.begin(), from.partial_axes.end(), axis) != from.partial_axes.end(),
             "partitioner: ", what, " would have to become a pending sum over '", axis, "' (", sharding::str(from),
             " -> ", sharding::str(to), "); no rule asks for that");
  std::vector<size_t> common(cur.dims.size(), 0);
  for (size_t d = 0; d < cur.dims.size(); ++d) {
    const auto &a = cur.dims[d].axes, &b = to.dims[d].axes;
    size_t k = 0;
    while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
    common[d] = k;
    for (size_t j = a.size(); j > k; --j) steps.push_back({Step::Kind::AllGather, a[j - 1], static_cast<int64_t>(d)});
  }
  for (size_t d = 0; d < cur.dims.size(); ++d) {
    const auto& b = to.dims[d].axes;
    for (size_t j = common[d]; j < b.size(); ++j) steps.push_back({Step::Kind::Split, b[j], static_cast<int64_t>(d)});
  }
  return steps;
}

Layout after(Layout l, const Step& s) {
  auto drop_partial = [&] {
    l.partial_axes.erase(std::remove(l.partial_axes.begin(), l.partial_axes.end(), s.axis), l.partial_axes.end());
  };
  switch (s.kind) {
    case Step::Kind::AllReduce: drop_partial(); break;
    case Step::Kind::ReduceScatter:
      drop_partial();
      l.dims[static_cast<size_t>(s.dim)].axes.push_back(s.axis);
      break;
    case Step::Kind::AllGather: l.dims[static_cast<size_t>(s.dim)].axes.pop_back(); break;
    case Step::Kind::Split: l.dims[static_cast<size_t>(s.dim)].axes.push_back(s.axis); break;
  }
  return l;
}

Tensor cut(const Tensor& whole, const Layout& l, const Mesh& mesh, int rank) {
  Tensor part = whole;
  for (size_t d = 0; d < l.dims.size(); ++d) {
    auto [first, count] = local_range(part.size(static_cast<int64_t>(d)), l.dims[d].axes, mesh, rank);
    part = part.slice(static_cast<int64_t>(d), first, first + count);
  }
  return part;
}

Tensor convert(Tensor t, const Shape& global, Layout l, const std::vector<Step>& steps,
               const std::map<std::string, int64_t>& comms, const Mesh& mesh, int rank) {
  for (const Step& s : steps) {
    l = after(l, s);
    const int64_t h = comms.at(s.axis);
    switch (s.kind) {
      case Step::Kind::AllReduce: t = all_reduce(t, h); break;
      case Step::Kind::ReduceScatter: t = reduce_scatter(t, h, s.dim); break;
      case Step::Kind::AllGather:  // to this rank's part over the axes that remain
        t = all_gather(t, h, s.dim, local_shape(global, l, mesh, rank)[static_cast<size_t>(s.dim)]);
        break;
      case Step::Kind::Split: t = split(t, h, s.dim); break;
    }
  }
  return t;
}

}  // namespace spmd
}  // namespace meshflow
