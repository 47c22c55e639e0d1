// Layout helpers and the elementwise sharding rule (Note [Sharding rules] in op.h).
#include "meshflow/core/sharding.h"

#include <algorithm>
#include <limits>
#include <set>

#include "meshflow/core/error.h"

namespace meshflow {

bool operator==(const DimLayout& a, const DimLayout& b) { return a.axes == b.axes; }
bool operator==(const Layout& a, const Layout& b) {
  if (a.dims.size() != b.dims.size()) return false;
  for (size_t i = 0; i < a.dims.size(); ++i)
    if (!(a.dims[i] == b.dims[i])) return false;
  std::vector<std::string> pa = a.partial_axes, pb = b.partial_axes;
  std::sort(pa.begin(), pa.end());
  std::sort(pb.begin(), pb.end());
  return pa == pb;
}

namespace sharding {

Layout replicated(size_t rank) { return Layout{std::vector<DimLayout>(rank), {}}; }

bool has_partial(const Layout& l) { return !l.partial_axes.empty(); }

bool is_replicated(const Layout& l) {
  if (has_partial(l)) return false;
  for (const DimLayout& d : l.dims)
    if (!d.axes.empty()) return false;
  return true;
}

std::string str(const Layout& l) {
  std::string s = "[";
  for (size_t i = 0; i < l.dims.size(); ++i) {
    if (i) s += ", ";
    const auto& axes = l.dims[i].axes;
    if (axes.empty()) {
      s += "R";
    } else if (axes.size() == 1) {
      s += axes[0];
    } else {
      s += "(";
      for (size_t k = 0; k < axes.size(); ++k) s += (k ? ", " : "") + axes[k];
      s += ")";
    }
  }
  s += "]";
  if (has_partial(l)) {
    s += " partial(";
    for (size_t k = 0; k < l.partial_axes.size(); ++k) s += (k ? ", " : "") + l.partial_axes[k];
    s += ")";
  }
  return s;
}

std::vector<std::string> axes_named(const Layout& l) {
  std::vector<std::string> out;
  for (const DimLayout& d : l.dims) out.insert(out.end(), d.axes.begin(), d.axes.end());
  out.insert(out.end(), l.partial_axes.begin(), l.partial_axes.end());
  return out;
}

bool mentions(const Layout& l, const std::string& axis) {
  auto all = axes_named(l);
  return std::find(all.begin(), all.end(), axis) != all.end();
}

bool valid(const Layout& l) {
  auto all = axes_named(l);
  std::set<std::string> seen(all.begin(), all.end());
  return seen.size() == all.size();
}

Layout without_partial(Layout l) {
  l.partial_axes.clear();
  return l;
}

namespace {

int64_t meta_bytes(const TensorMeta& m) {
  int64_t n = 1;
  for (int64_t d : m.shape) n *= std::max<int64_t>(d, 1);
  return n * static_cast<int64_t>(dtype_size(m.dtype));
}

// Where an axis sits in a layout: the dimension it splits (and its place among that dimension's
// axes), or a pending sum, or nowhere (replicated over it).
struct AxisPlace {
  int dim = -1;
  int position = 0;
  bool partial = false;
  bool operator==(const AxisPlace&) const = default;
};

AxisPlace place_of(const Layout& l, const std::string& axis) {
  for (size_t d = 0; d < l.dims.size(); ++d)
    for (size_t k = 0; k < l.dims[d].axes.size(); ++k)
      if (l.dims[d].axes[k] == axis) return {static_cast<int>(d), static_cast<int>(k), false};
  for (const std::string& a : l.partial_axes)
    if (a == axis) return {-1, 0, true};
  return {};
}

}  // namespace

double conversion_bytes(const TensorMeta& meta, const Layout& from, const Layout& to) {
  const double bytes = static_cast<double>(meta_bytes(meta));
  std::set<std::string> axes;
  for (const auto& a : axes_named(from)) axes.insert(a);
  for (const auto& a : axes_named(to)) axes.insert(a);
  double cost = 0;
  for (const std::string& axis : axes) {
    AxisPlace f = place_of(from, axis), t = place_of(to, axis);
    if (f == t) continue;
    if (f.partial && t.partial) continue;
    if (t.partial) return std::numeric_limits<double>::infinity();  // a whole value never becomes a pending sum
    if (f.partial) {
      cost += t.dim >= 0 ? bytes : 2 * bytes;  // reduce-scatter, or all-reduce
    } else if (f.dim >= 0) {
      cost += bytes;  // gather (then maybe split another way)
    }
    // replicated -> split: a local slice, free
  }
  return cost;
}

Layout replicate_dims(Layout l, const std::vector<int64_t>& dims) {
  for (int64_t d : dims) l.dims[static_cast<size_t>(d)].axes.clear();
  return l;
}

ShardingDecision elementwise(const std::vector<TensorMeta>& in, const std::vector<Layout>& layouts,
                             PartialRule partial) {
  const size_t n = in.size();
  size_t rank = 0;
  for (const auto& m : in) rank = std::max(rank, m.shape.size());
  // Input i's dimension j sits at output dimension j + offset[i]; it is broadcast when its size is 1
  // and another input's is not.
  std::vector<int64_t> out_size(rank, 1);
  for (const auto& m : in)
    for (size_t j = 0; j < m.shape.size(); ++j) {
      size_t d = j + rank - m.shape.size();
      if (m.shape[j] != 1) out_size[d] = m.shape[j];
    }
  auto broadcast = [&](size_t i, size_t j) { return in[i].shape[j] == 1 && out_size[j + rank - in[i].shape.size()] != 1; };

  // The pending sum of the output, if the partial rule lets the inputs keep theirs.
  std::vector<std::string> out_partial;
  std::vector<bool> keep_partial(n, false);
  {
    std::vector<size_t> partial_inputs;
    for (size_t i = 0; i < n; ++i)
      if (has_partial(layouts[i])) partial_inputs.push_back(i);
    auto sorted = [](std::vector<std::string> v) {
      std::sort(v.begin(), v.end());
      return v;
    };
    if (!partial_inputs.empty()) {
      bool ok = false;
      switch (partial) {
        case PartialRule::None: break;
        case PartialRule::Pass: ok = n == 1; break;
        case PartialRule::SameAll:
          ok = partial_inputs.size() == n;
          for (size_t i = 1; ok && i < n; ++i)
            ok = sorted(layouts[i].partial_axes) == sorted(layouts[0].partial_axes);
          break;
        case PartialRule::OneFactor: ok = partial_inputs.size() == 1; break;
        case PartialRule::First: ok = partial_inputs.size() == 1 && partial_inputs[0] == 0; break;
      }
      if (ok) {
        out_partial = layouts[partial_inputs[0]].partial_axes;
        for (size_t i : partial_inputs) keep_partial[i] = true;
      }
    }
  }

  // Candidate output splits: the union of the inputs' (first input wins a dimension), then each input's.
  auto projected = [&](size_t i) {
    std::vector<DimLayout> dims(rank);
    for (size_t j = 0; j < in[i].shape.size(); ++j)
      if (!broadcast(i, j)) dims[j + rank - in[i].shape.size()] = layouts[i].dims[j];
    return dims;
  };
  std::vector<std::vector<DimLayout>> candidates;
  {
    std::vector<DimLayout> merged(rank);
    std::set<std::string> used(out_partial.begin(), out_partial.end());
    for (size_t i = 0; i < n; ++i) {
      auto p = projected(i);
      for (size_t d = 0; d < rank; ++d) {
        if (!merged[d].axes.empty() || p[d].axes.empty()) continue;
        bool clash = false;
        for (const auto& a : p[d].axes) clash = clash || used.count(a);
        if (clash) continue;
        merged[d] = p[d];
        used.insert(p[d].axes.begin(), p[d].axes.end());
      }
    }
    candidates.push_back(merged);
    for (size_t i = 0; i < n; ++i) candidates.push_back(projected(i));
    candidates.push_back(std::vector<DimLayout>(rank));
  }

  ShardingDecision best;
  double best_cost = std::numeric_limits<double>::infinity();
  for (const auto& dims : candidates) {
    ShardingDecision d;
    d.outputs.push_back(Layout{dims, out_partial});
    if (!valid(d.outputs[0])) continue;
    double cost = 0;
    for (size_t i = 0; i < n; ++i) {
      Layout need = replicated(in[i].shape.size());
      for (size_t j = 0; j < in[i].shape.size(); ++j)
        if (!broadcast(i, j)) need.dims[j] = dims[j + rank - in[i].shape.size()];
      if (keep_partial[i]) need.partial_axes = layouts[i].partial_axes;
      cost += conversion_bytes(in[i], layouts[i], need);
      d.inputs.push_back(std::move(need));
    }
    if (cost < best_cost) {
      best_cost = cost;
      best = std::move(d);
    }
  }
  MF_CHECK(!best.outputs.empty(), "elementwise sharding rule: no valid layout for inputs laid out as ", str(layouts[0]));
  return best;
}

}  // namespace sharding
}  // namespace meshflow
